"""(docs/history/2026-12-03-resnet-teacher.md) Which 2D teacher generalises to unseen rooms: ViT (package default) vs a small ResNet (stride 16), trained on
frame labels of the train rooms of ROOT_TRAIN, judged on the val rooms of ROOT_EVAL by lifted argmax mIoU."""
import sys, time, json, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from concerto3d.data.scene import (split_scenes, load_scene, load_correspondences, label_path, read_frame_labels,
                                   image_path, read_image)
from concerto3d.evaluation.lifting import lift_patch_features
from concerto3d.ops.patches import patch_majority_labels
torch.manual_seed(0); np.random.seed(0); torch.set_num_threads(2)
arch, root_train, root_eval, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
flip = "flip" in sys.argv[5:]
C, P = 20, 16
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1); STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

def frames(root, split):
    ims, labs = [], []
    for sd in split_scenes(root, split):
        for k in range(len(list((sd / "images").glob("*.jpg")))):
            ims.append(read_image(image_path(sd, k))[0]); labs.append(read_frame_labels(label_path(sd, k)))
    return torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(np.stack(labs))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        if arch == "vit":
            from transformers import ViTConfig, ViTModel
            self.b = ViTModel(ViTConfig(image_size=[144, 192], patch_size=16, hidden_size=192, num_hidden_layers=4,
                                        num_attention_heads=3, intermediate_size=768), add_pooling_layer=False)
            ch = 192
        else:
            from transformers import ResNetConfig, ResNetBackbone
            w = {"resnet": [32, 64, 128, 256], "resnet64": [64, 128, 256, 512]}[arch]
            self.b = ResNetBackbone(ResNetConfig(embedding_size=w[0], hidden_sizes=w, depths=[2, 2, 2, 2],
                                                 layer_type="basic", out_features=["stage3"]))
            ch = w[2]
        self.head = nn.Linear(ch, C)
    def grid(self, x):
        x = (x.float() / 255 - MEAN) / STD
        if arch == "vit":
            h = self.b(pixel_values=x).last_hidden_state[:, 1:]
            return h.reshape(x.size(0), 9, 12, -1)
        return self.b(pixel_values=x).feature_maps[0].permute(0, 2, 3, 1)
    def forward(self, x):
        return self.head(self.grid(x))

X, Y = frames(root_train, "train")
T = patch_majority_labels(Y, P, C)
print(f"{arch}: {len(X)} train frames", flush=True)
net = Net(); print(sum(p.numel() for p in net.parameters()) / 1e6, "M params", flush=True)
bs = 16; steps = epochs * len(X) // bs
opt = torch.optim.AdamW(net.parameters(), lr=1e-3 if arch != "vit" else 5e-4, weight_decay=0.05)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=steps, pct_start=0.05)
t0 = time.time(); net.train()
for s in range(steps):
    idx = torch.randint(len(X), (bs,))
    x, t = X[idx].float(), T[idx]
    # photometric jitter: brightness, contrast per image
    b = torch.empty(bs, 1, 1, 1).uniform_(0.6, 1.4); c = torch.empty(bs, 1, 1, 1).uniform_(0.6, 1.4)
    m = x.mean((1, 2, 3), keepdim=True); x = ((x - m) * c + m) * b
    if flip:
        f = torch.rand(bs) < 0.5; x[f] = x[f].flip(-1); t = t.clone(); t[f] = t[f].flip(-1)
    x = x.clamp(0, 255)
    loss = F.cross_entropy(net(x).reshape(-1, C), t.reshape(-1), ignore_index=-1)
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    if s % 100 == 0:
        print(f"step {s}/{steps} loss {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)
print(f"trained in {time.time() - t0:.0f}s", flush=True)
net.eval()
inter = np.zeros(C); union = np.zeros(C); pc = pn = 0
with torch.no_grad():
    for sd in split_scenes(root_eval, "val"):
        sc = load_scene(sd); n = len(sc)
        corr = np.array(load_correspondences(sd, num_points=n), dtype=np.int64)
        nf = int(corr[:, 0].max()) + 1
        x = torch.from_numpy(np.stack([read_image(image_path(sd, k))[0] for k in range(nf)])).permute(0, 3, 1, 2)
        logits = net(x)
        t = patch_majority_labels(torch.from_numpy(np.stack([read_frame_labels(label_path(sd, k)) for k in range(nf)])), P, C)
        ok = t >= 0; pc += (logits.argmax(-1)[ok] == t[ok]).sum().item(); pn += ok.sum().item()
        lf = lift_patch_features(logits.softmax(-1), corr, n, P)
        pred = lf.features.argmax(1).numpy(); pred[~lf.seen.numpy()] = -2
        y = sc.segment20; okp = y >= 0
        for c in range(C):
            a = (pred == c) & okp; bb = y == c
            inter[c] += (a & bb).sum(); union[c] += (a | bb).sum()
pres = union > 0
print(json.dumps({"arch": arch, "flip": flip, "epochs": epochs, "train_rooms": root_train,
                  "heldout_patch_acc": round(100 * pc / pn, 1),
                  "lifted_argmax_miou": round(100 * float(np.mean(inter[pres] / union[pres])), 1),
                  "per_class": [round(100 * float(i / u), 1) if u else None for i, u in zip(inter, union)]}), flush=True)

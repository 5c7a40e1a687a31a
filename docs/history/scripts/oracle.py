"""(docs/history/2026-12-03-resnet-teacher.md) Upper bound of a patch-level 2D teacher: lift ground-truth patch label histograms, argmax, mIoU."""
import sys, numpy as np, torch
from concerto3d.data.scene import split_scenes, load_scene, load_correspondences, label_path, read_frame_labels
from concerto3d.evaluation.lifting import lift_patch_features
root = sys.argv[1]; C = 20
for p in [int(x) for x in sys.argv[2:]]:
    inter = np.zeros(C); union = np.zeros(C); seen_tot = lab_tot = 0
    for sd in split_scenes(root, "val"):
        sc = load_scene(sd); n = len(sc)
        corr = np.array(load_correspondences(sd, num_points=n), dtype=np.int64)
        F = int(corr[:, 0].max()) + 1
        grids = []
        for k in range(F):
            lab = read_frame_labels(label_path(sd, k))
            H, W = lab.shape
            oh = np.zeros((H, W, C), np.float32)
            m = lab >= 0
            oh[m, lab[m]] = 1
            g = oh.reshape(H // p, p, W // p, p, C).mean((1, 3))
            grids.append(g)
        lf = lift_patch_features(torch.from_numpy(np.stack(grids)), corr, n, p)
        pred = lf.features.argmax(1).numpy()
        y = sc.segment20; ok = y >= 0
        seen = lf.seen.numpy()
        pred[~seen] = -2
        seen_tot += (seen & ok).sum(); lab_tot += ok.sum()
        for c in range(C):
            a = (pred == c) & ok; b = (y == c)
            inter[c] += (a & b).sum(); union[c] += (a | b).sum()
    present = union > 0
    print(f"patch {p}: oracle lifted mIoU {100*np.mean(inter[present]/union[present]):.1f}  seen {seen_tot/lab_tot:.3f}")

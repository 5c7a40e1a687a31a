"""A stand-in for DINOv2: the ablation's ViT trained on whole labelled frames of other synthetic rooms.

Concerto's joint row distils an image encoder that already knows the scene's categories (DINOv2, 142M images) into
the point encoder. Nothing may be downloaded here, so this script makes an image encoder that knows them the only
way this machine can: supervised, on the frames of *other* rooms (the stand-in pool of benchmarks/ablation_standin.sh,
seed 1, disjoint from the benchmark's rooms). Every patch of every frame is a training target: the majority
segment20 label of the scene points its pixels see through the correspondences (patches that see no labelled point
are ignored). ``benchmarks/ablation_headroom.py --modality 2d`` trains the same ViT through the training pipeline
instead, where only the patches that see the current 2048-point crop have a label (about 60 a step); this script
gives it every labelled patch of a batch of whole frames (about 100 a frame).

    .venv/bin/python benchmarks/image_standin.py data/ablation/pool/preprocessed \\
        --out data/ablation/pool/image_encoder_frames [--steps 2000] [--batch 32] [--probe data/ablation/preprocessed]

It reports patch accuracy and patch mIoU on the pool's own val rooms while it trains, saves the encoder as a 2d
run (``OUT/model``, loadable by ``concerto3d ablate --image-encoder OUT``), and with ``--probe DATA`` probes it as
the ablation's 2D row (patch features lifted onto DATA's points, unseen points zeros) and writes the figures to
``OUT/standin.json``.

Measured (2-core CPU, 2 threads, the defaults, 1280 frames of the pool's 64 train rooms): 0.9 s a step, 30 min;
val patch accuracy 57 % / mIoU 9.8 after 250 steps, 59 % / 19.1 after 2000 (the training cross-entropy falls from
1.33 to 0.32: it overfits); lifted onto the benchmark's rooms as the 2D row: mIoU 10.1 (results/ablation_standin).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def frame_patch_labels(corr: np.ndarray, labels: np.ndarray, num_frames: int, grid: tuple[int, int],
                       patch: int, num_classes: int) -> np.ndarray:
    """(F, Hp, Wp) int64 majority label of the labelled points each patch's pixels see, -1 where none.

    Args:
        corr: (M, 4) rows (frame, u, v, point) at the stored image size.
        labels: (N,) segment20 labels of the scene's points, -1 = ignore.
    """
    from concerto3d import ops

    hp, wp = grid
    point, key = ops.correspondence_patch_keys(torch.from_numpy(corr).long(), (hp * patch, wp * patch), patch)
    keys, label = ops.majority_patch_labels(key, torch.from_numpy(labels).long()[point], num_classes)
    out = torch.full((num_frames * hp * wp,), -1, dtype=torch.long)
    out[keys] = label
    return out.view(num_frames, hp, wp).numpy()


def load_frames(data: Path, split: str, size: tuple[int, int], patch: int, num_classes: int):
    """All frames of a split: (F, H, W, 3) uint8 images and (F, Hp, Wp) patch labels."""
    from concerto3d.data.dataset import read_image
    from concerto3d.evaluation.features import read_split

    images, grids = [], []
    for scene_dir in read_split(data, split):
        scene_dir = Path(scene_dir)
        corr = np.load(scene_dir / "correspondences.npy").astype(np.int64)
        labels = np.load(scene_dir / "segment20.npy").astype(np.int64)
        frames = sorted(int(p.stem) for p in (scene_dir / "images").glob("*.jpg"))
        for k in frames:
            image, stored = read_image(scene_dir / "images" / f"{k:06d}.jpg", size)
            if stored != tuple(size):
                raise SystemExit(f"{scene_dir}: images are {stored}, expected {size} (preprocess --image-size)")
            images.append(image)
        grids.append(frame_patch_labels(corr, labels, max(frames) + 1, (size[0] // patch, size[1] // patch),
                                        patch, num_classes)[frames])
    return np.stack(images), np.concatenate(grids)


def augment(images: torch.Tensor, grid: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror half the frames (with their label grids) and jitter brightness and contrast by up to 20 %."""
    b = images.size(0)
    flip = torch.rand(b, generator=gen) < 0.5
    images = torch.where(flip.view(b, 1, 1, 1), images.flip(-1), images)
    grid = torch.where(flip.view(b, 1, 1), grid.flip(-1), grid)
    brightness = 1 + 0.4 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    contrast = 1 + 0.4 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = ((images * brightness - mean) * contrast + mean).clamp(0, 1)
    return images, grid


def patch_scores(pred: np.ndarray, target: np.ndarray, num_classes: int) -> tuple[float, float]:
    """(accuracy, mIoU over the classes present in target) of labelled patches (target -1 = no label)."""
    from concerto3d.evaluation.metrics import confusion_matrix, miou, overall_accuracy

    conf = confusion_matrix(pred, target, num_classes)
    return overall_accuracy(conf), miou(conf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="preprocessed rooms to train on (their train split), e.g. the stand-in pool")
    parser.add_argument("--out", required=True, help="run folder for the trained image encoder")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32, help="frames a step")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--probe", help="the ablation's preprocessed scenes: probe the encoder as its 2D row")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides after benchmarks/ablation.yaml (the ablation's ViT by default)")
    args = parser.parse_intermixed_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    from concerto3d.config import load_config
    from concerto3d.labels import NUM_CLASSES_20
    from concerto3d.models.concerto import ConcertoModel
    from concerto3d.models.pretrained import save_model
    from concerto3d.training.schedules import learning_rate_schedule

    cfg = load_config(ROOT / "benchmarks" / "ablation.yaml",
                      [*args.overrides, "objective.kind=2d", f"steps={args.steps}", f"seed={args.seed}"])
    model = ConcertoModel(cfg)
    encoder = model.image_encoder
    size, patch = tuple(cfg.image_encoder.image_size), encoder.patch_size
    tic = time.perf_counter()
    train_img, train_lab = load_frames(Path(args.data), "train", size, patch, NUM_CLASSES_20)
    val_img, val_lab = load_frames(Path(args.data), "val", size, patch, NUM_CLASSES_20)
    print(f"{len(train_img)} train frames ({(train_lab >= 0).mean():.0%} of patches labelled), {len(val_img)} val "
          f"frames, loaded in {time.perf_counter() - tic:.0f} s", flush=True)
    train_img = torch.from_numpy(train_img).permute(0, 3, 1, 2).contiguous()  # uint8, converted per batch
    train_lab = torch.from_numpy(train_lab)

    head = torch.nn.Linear(encoder.out_channels, NUM_CLASSES_20)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    lr = learning_rate_schedule(args.lr, args.lr / 100, args.steps, max(10, args.steps // 20))
    gen = torch.Generator().manual_seed(args.seed)

    def evaluate() -> tuple[float, float]:
        encoder.eval()
        preds = []
        with torch.no_grad():
            for start in range(0, len(val_img), 64):
                x = torch.from_numpy(val_img[start:start + 64]).permute(0, 3, 1, 2).float().div(255.0)
                preds.append(head(encoder(encoder.normalize(x)).patch_grid).argmax(-1).numpy())
        encoder.train()
        return patch_scores(np.concatenate(preds).ravel(), val_lab.ravel(), NUM_CLASSES_20)

    history = []
    tic = time.perf_counter()
    for step in range(args.steps):
        pick = torch.randint(len(train_img), (args.batch,), generator=gen)
        images, grid = augment(train_img[pick].float().div(255.0), train_lab[pick], gen)
        logits = head(encoder(encoder.normalize(images)).patch_grid)
        loss = F.cross_entropy(logits.reshape(-1, NUM_CLASSES_20), grid.reshape(-1), ignore_index=-1)
        for group in optimizer.param_groups:
            group["lr"] = float(lr[step])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % args.eval_every == 0 or step == args.steps - 1:
            accuracy, miou = evaluate()
            history.append({"step": step + 1, "loss": loss.item(), "val_patch_accuracy": accuracy,
                            "val_patch_miou": miou})
            print(f"step {step + 1}: cross-entropy {loss.item():.3f}, val patches: accuracy {100 * accuracy:.1f}, "
                  f"mIoU {100 * miou:.1f} ({time.perf_counter() - tic:.0f} s)", flush=True)
    save_model(model, cfg, args.out, steps=args.steps)
    summary = {"data": str(args.data), "steps": args.steps, "batch": args.batch, "lr": args.lr,
               "train_frames": len(train_img), "val_frames": len(val_img), "history": history,
               "seconds": time.perf_counter() - tic}

    if args.probe:
        from concerto3d.evaluation.ablate import AblationSettings, _lifted_features, probe_features

        settings = AblationSettings(steps=args.steps, probe_points=20000, probe_epochs=20, probe_batch_size=4096)
        feats = _lifted_features(Path(args.out), Path(args.probe), settings, "stand-in")
        result = probe_features(feats, epochs=20, seed=args.seed, batch_size=4096, probe_points=20000)
        summary["probe"] = {"data": str(args.probe), "miou": result["miou"],
                            "overall_accuracy": result["overall_accuracy"], "iou": result["iou"]}
        print(f"2D row with this encoder (lifted onto {args.probe}): mIoU {100 * result['miou']:.1f}, overall "
              f"accuracy {100 * result['overall_accuracy']:.1f}")
    (Path(args.out) / "standin.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

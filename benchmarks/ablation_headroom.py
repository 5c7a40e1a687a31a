"""How much can any pre-training move the ablation's linear probe? Supervised upper bounds at the same budget.

``--modality 3d`` (default) trains the ablation's point encoder (benchmarks/ablation.yaml: 2048-point crops,
batch 2) for ``--steps`` steps with the labels (a linear head, cross-entropy, ignore -1) instead of a
self-supervised loss, saves it like a training run, and probes it with the ablation's probe (20 epochs, 20,000
points per train scene). Compare the mIoU with the random-init row: the gap is the most that a self-supervised row
could gain at this step budget.

``--modality 2d`` does the same for the image encoder: each ViT patch is classified (a linear head) into the
majority label of the crop points it sees through the correspondences, and the trained encoder is saved as a 2d
run and probed as the ablation's 2D row (patch features lifted onto the points; unseen points get zeros). It
stands in for an image encoder that already knows the classes, as DINOv2 comes close to on ScanNet: put its run
folder at ``OUT/runs/2d-seed<s>`` of an ablation (with its probe at ``OUT/probes/2d-seed<s>.json``) and
``ablate --rows 2d,joint --joint-target 2d`` aligns the joint row's points with it.

    .venv/bin/python benchmarks/ablation_headroom.py data/ablation/preprocessed --out data/ablation/headroom
    .venv/bin/python benchmarks/ablation_headroom.py data/ablation/preprocessed --out data/ablation/headroom2d \\
        --modality 2d
    .venv/bin/python benchmarks/ablation_headroom.py data/ablation/preprocessed --out /tmp/p8 --modality 2d \
        image_encoder.patch_size=8 data.patch_size=8      # key=value overrides after benchmarks/ablation.yaml

Measured (2-core CPU, seed 0, 300 steps): 3d 21.6 mIoU supervised (22.0 in an earlier run with another batch
order) vs 17.7-18.5 for the random-init encoder; see results/ablation/README.md for the 2d figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def patch_labels(batch, patch_size: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keys (P,), labels (P,))``: every image patch that sees labelled crop points, and the most frequent label
    among the pixels' points (a point seen by several pixels of a patch counts once per pixel)."""
    from concerto3d import ops

    point, key = ops.correspondence_patch_keys(batch.corr, tuple(batch.images.shape[-2:]), patch_size)
    return ops.majority_patch_labels(key, batch.labels[point], num_classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the ablation's preprocessed scenes")
    parser.add_argument("--out", required=True, help="run folder for the supervised model")
    parser.add_argument("--modality", choices=("3d", "2d"), default="3d",
                        help="train the point encoder (3d) or the image encoder (2d) with the labels")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-probe", action="store_true",
                        help="only train and save the encoder (e.g. a stand-in image encoder for ablate "
                             "--image-encoder)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="training overrides after benchmarks/ablation.yaml, e.g. image_encoder.patch_size=8")
    args = parser.parse_intermixed_args()
    torch.set_num_threads(args.threads)

    from concerto3d.config import load_config
    from concerto3d.data.collate import collate_scenes
    from concerto3d.data.dataset import SceneDataset
    from concerto3d.evaluation.ablate import AblationSettings, _lifted_features, _point_features, probe_features
    from concerto3d.labels import NUM_CLASSES_20
    from concerto3d.models.concerto import ConcertoModel
    from concerto3d.models.pretrained import save_model
    from concerto3d.training.schedules import build_schedules
    from concerto3d.training.trainer import batch_indices, seed_everything

    cfg = load_config(ROOT / "benchmarks" / "ablation.yaml",
                      [*args.overrides, f"objective.kind={args.modality}", f"steps={args.steps}",
                       f"seed={args.seed}", f"data.seed={args.seed}"])
    seed_everything(cfg.seed)
    dataset = SceneDataset(args.data, "train", cfg.data)
    model = ConcertoModel(cfg)  # the same encoder (and initialisation) as the ablation's row of that modality
    encoder = model.point_encoder if args.modality == "3d" else model.image_encoder
    head = torch.nn.Linear(encoder.out_channels, NUM_CLASSES_20)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    lr = build_schedules(cfg.optim, cfg.steps).lr
    per_epoch = len(batch_indices(len(dataset), cfg.batch_size, cfg.seed, 0))
    tic = time.perf_counter()
    for step in range(cfg.steps):
        epoch, position = divmod(step, per_epoch)
        dataset.set_epoch(epoch)
        batch = collate_scenes([dataset[i] for i in batch_indices(len(dataset), cfg.batch_size, cfg.seed,
                                                                   epoch)[position]])
        if args.modality == "3d":
            view = batch.view_student
            logits = head(encoder(view.coord, view.feat, view.batch).point_feat)
            loss = F.cross_entropy(logits, batch.labels[view.index], ignore_index=-1)
        else:
            keys, labels = patch_labels(batch, encoder.patch_size, NUM_CLASSES_20)
            if keys.numel() == 0:
                continue
            patches = encoder(batch.images).patch_grid
            logits = head(patches.reshape(-1, patches.size(-1))[keys])
            loss = F.cross_entropy(logits, labels)
        for group in optimizer.param_groups:
            group["lr"] = float(lr[step])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            print(f"step {step}: cross-entropy {loss.item():.3f} ({time.perf_counter() - tic:.0f} s)", flush=True)
    save_model(model, cfg, args.out, steps=cfg.steps)
    if args.no_probe:
        return

    settings = AblationSettings(steps=cfg.steps, probe_points=20000, probe_epochs=20, probe_batch_size=4096)
    if args.modality == "3d":
        feats = _point_features(Path(args.out), Path(args.data), settings, args.seed, "supervised")
    else:
        feats = _lifted_features(Path(args.out), Path(args.data), settings, "supervised")
    result = probe_features(feats, epochs=20, seed=args.seed, batch_size=4096, probe_points=20000)
    summary = {"modality": args.modality, "steps": cfg.steps, "seed": args.seed, "miou": result["miou"],
               "overall_accuracy": result["overall_accuracy"], "iou": result["iou"]}
    (Path(args.out) / "headroom.json").write_text(json.dumps(summary, indent=1))
    print(f"supervised {args.modality} upper bound after {cfg.steps} steps: mIoU {100 * result['miou']:.1f}, "
          f"overall accuracy {100 * result['overall_accuracy']:.1f}")


if __name__ == "__main__":
    main()

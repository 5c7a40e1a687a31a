"""How much can the 2D row's lifting carry? Lift patch-majority labels instead of image features.

An image encoder that knew the class of every ``--patch``-pixel patch (the majority label of the points the patch
sees) would, through the ablation's lifting (each point takes what the patches that see it say, averaged over
views), label the val points this well. Points no frame sees get nothing and count as wrong. Compare with the 2D
row's probe (results/ablation): the gap is what the image encoder does not know, not what the lifting loses.

    .venv/bin/python benchmarks/ablation_lift_oracle.py data/ablation/preprocessed [--patch 16]

Measured on the benchmark's scans (144x192 frames, 16-pixel patches): 69.5 mIoU on the seen points, 37.9 on all
points; the 10 frames of a val room see 21-43 % of its points.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def lifted_patch_labels(labels: np.ndarray, corr: np.ndarray, image_size: tuple[int, int], patch: int,
                        num_classes: int) -> np.ndarray:
    """Per point, the majority over its correspondences of their patches' majority labels; -2 where unseen (or seen
    only by patches without a labelled point).

    Args:
        labels: (N,) int labels, -1 = ignore (not counted in a patch's vote).
        corr: (M, 4) int rows (frame, u, v, point) at ``image_size`` (H, W), grouped into patches as in training
            (``ops.correspondence_patch_keys``).
    """
    import torch

    from concerto3d import ops

    point, key = ops.correspondence_patch_keys(torch.from_numpy(corr.astype(np.int64)), image_size, patch)
    keys, patch_label = ops.majority_patch_labels(key, torch.from_numpy(labels).long()[point], num_classes)
    # each correspondence votes its patch's label for its point (a patch without a labelled point has none, -1)
    label_of_patch = torch.full((int(key.max()) + 1 if key.numel() else 0,), -1, dtype=torch.long)
    label_of_patch[keys] = patch_label
    seen, point_label = ops.majority_patch_labels(point, label_of_patch[key], num_classes)
    out = np.full(len(labels), -2, dtype=np.int64)
    out[seen.numpy()] = point_label.numpy()
    return out


def main() -> None:
    from concerto3d.evaluation.features import read_split
    from concerto3d.evaluation.metrics import confusion_matrix, miou
    from concerto3d.labels import NUM_CLASSES_20

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a preprocessed dataset (its val split is scored)")
    parser.add_argument("--patch", type=int, default=16, help="patch side in pixels of the stored frames")
    args = parser.parse_args()
    # unseen points are predicted as an extra class K, so that they count as wrong in "all" (K is absent from the
    # ground truth, so it does not enter the mean)
    conf = {k: np.zeros((NUM_CLASSES_20 + 1,) * 2, dtype=np.int64) for k in ("seen", "all")}
    for folder in read_split(Path(args.data), "val"):
        labels = np.load(folder / "segment20.npy").astype(np.int64)
        image_size = tuple(json.loads((folder / "meta.json").read_text())["image_size"])
        pred = lifted_patch_labels(labels, np.load(folder / "correspondences.npy"), image_size, args.patch,
                                   NUM_CLASSES_20)
        seen = pred >= 0
        print(f"{folder.name}: {100 * seen.mean():.0f} % of the points seen")
        pred = np.where(seen, pred, NUM_CLASSES_20)
        conf["seen"] += confusion_matrix(pred, np.where(seen, labels, -1), NUM_CLASSES_20 + 1)
        conf["all"] += confusion_matrix(pred, labels, NUM_CLASSES_20 + 1)
    for key, what in (("seen", "seen points"), ("all", "all points (unseen = wrong)")):
        print(f"{what}: mIoU {100 * miou(conf[key]):.1f}")


if __name__ == "__main__":
    main()

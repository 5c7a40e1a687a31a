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
    """Per point, the majority over its correspondences of their patches' majority labels; -2 where unseen.

    Args:
        labels: (N,) int labels, -1 = ignore (not counted in a patch's vote).
        corr: (M, 4) int rows (frame, u, v, point) at ``image_size`` (H, W), grouped into patches as in training
            (``ops.correspondence_patch_keys``).
    """
    import torch

    from concerto3d import ops

    point, key = (t.numpy() for t in ops.correspondence_patch_keys(torch.from_numpy(corr.astype(np.int64)),
                                                                   image_size, patch))
    _, patch_id = np.unique(key, return_inverse=True)
    lab = labels[point]
    ok = lab >= 0
    votes = np.zeros((patch_id.max() + 1 if len(patch_id) else 0, num_classes))
    np.add.at(votes, (patch_id[ok], lab[ok]), 1)
    patch_label = votes.argmax(axis=1)
    point_votes = np.zeros((len(labels), num_classes))
    np.add.at(point_votes, (point, patch_label[patch_id]), 1)
    return np.where(point_votes.sum(axis=1) > 0, point_votes.argmax(axis=1), -2)


def main() -> None:
    from concerto3d.evaluation.features import read_split
    from concerto3d.labels import NUM_CLASSES_20

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a preprocessed dataset (its val split is scored)")
    parser.add_argument("--patch", type=int, default=16, help="patch side in pixels of the stored frames")
    args = parser.parse_args()
    inter = {k: np.zeros(NUM_CLASSES_20) for k in ("seen", "all")}
    union = {k: np.zeros(NUM_CLASSES_20) for k in ("seen", "all")}
    for folder in read_split(Path(args.data), "val"):
        labels = np.load(folder / "segment20.npy").astype(np.int64)
        image_size = tuple(json.loads((folder / "meta.json").read_text())["image_size"])
        pred = lifted_patch_labels(labels, np.load(folder / "correspondences.npy"), image_size, args.patch,
                                   NUM_CLASSES_20)
        seen = pred >= 0
        print(f"{folder.name}: {100 * seen.mean():.0f} % of the points seen")
        for key, mask in (("seen", seen & (labels >= 0)), ("all", labels >= 0)):
            for c in range(NUM_CLASSES_20):
                g, q = (labels == c) & mask, (pred == c) & mask
                inter[key][c] += (g & q).sum()
                union[key][c] += (g | q).sum()
    for key, what in (("seen", "seen points"), ("all", "all points (unseen = wrong)")):
        present = union[key] > 0
        print(f"{what}: mIoU {100 * (inter[key][present] / union[key][present]).mean():.1f}")


if __name__ == "__main__":
    main()

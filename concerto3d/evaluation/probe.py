"""The linear probe of frozen features: a dataset's train split fits one linear head, its val split scores it.

Two entry points with the same head (standardised features, one ``nn.Linear``, cross-entropy with ignore index -1,
one confusion matrix over the whole val split):

* :func:`run_probe` embeds a loaded model's features itself (``concerto3d probe``): the train split cached in
  memory, the val split streamed a scene at a time;
* :func:`probe_features` takes features already computed for both splits (:class:`SplitFeatures`), as the ablation
  does for lifted image features and their concatenation with point features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from concerto3d.data.scene import labelled_points
from concerto3d.errors import InputError
from concerto3d.labels import IGNORE_INDEX, NUM_CLASSES_20, SCANNET20_NAMES

if TYPE_CHECKING:
    from concerto3d.evaluation.linear_probe import ProbeResult

__all__ = ["run_probe", "SplitFeatures", "subsample_labelled", "probe_features"]


def run_probe(model, data_dir, epochs: int = 20, lr: float = 1e-2, seed: int = 0, batch_size: int | None = 8192,
              max_points: int | None = None, device=None,
              train_points_per_scene: int | None = None) -> tuple[dict, ProbeResult]:
    """Probe a loaded model on a preprocessed dataset.

    The train split's features are embedded once and cached in memory; the val split is streamed (embedded, predicted
    and added to one confusion matrix a scene at a time), so memory grows with the train split only.

    Args:
        model: anything with ``.embed(points, colors, normals) -> (N, C)`` (and usually ``.point_encoder``).
        data_dir: preprocessed dataset with ``splits/train.txt`` and ``splits/val.txt``.
        epochs, lr, seed, batch_size: the linear head's training (see ``train_linear_probe``).
        max_points: per-scene embedding cap (the rest interpolated).
        device: where the head trains; default CPU.
        train_points_per_scene: cache at most this many labelled points of each train scene (default: all).
    Returns:
        (summary dict ready for JSON, :class:`ProbeResult` on val).
    """
    from concerto3d.io.progress import progress_bar

    from concerto3d.data.scene import split_scenes
    from concerto3d.evaluation.features import embed_split, extract_point_features, freeze
    from concerto3d.evaluation.linear_probe import ProbeResult, evaluate_probe, predict_probe, train_linear_probe
    from concerto3d.evaluation.metrics import confusion_matrix

    train_scenes = split_scenes(data_dir, "train")
    val_scenes = split_scenes(data_dir, "val")
    if sum(labelled_points(s) for s in val_scenes) == 0:  # fail before the slow part
        raise InputError("the val split has no labelled points (segment20.npy all -1)", Path(data_dir))
    freeze(model)

    # 1. train features: one pass of the frozen encoder, cached
    t0 = time.perf_counter()
    train_x, train_y = embed_split(model, train_scenes, max_points, seed, "embed train",
                                   labelled_per_scene=train_points_per_scene)
    t_embed = time.perf_counter() - t0
    dims = {x.shape[1] for x in train_x}
    if len(dims) != 1:
        raise ValueError(f"the model returned features of different widths across scenes: {sorted(dims)}")
    n_train_labelled = int(sum((y != IGNORE_INDEX).sum() for y in train_y))
    if n_train_labelled == 0:
        raise InputError("the train split has no labelled points (segment20.npy all -1)", Path(data_dir))

    # 2. the linear head
    t0 = time.perf_counter()
    probe = train_linear_probe(np.concatenate(train_x), np.concatenate(train_y), NUM_CLASSES_20, epochs=epochs,
                               lr=lr, seed=seed, batch_size=batch_size, device=device)
    t_train = time.perf_counter() - t0
    train_result = evaluate_probe(probe, train_x, train_y, NUM_CLASSES_20)
    del train_x

    # 3. val: streamed into one confusion matrix over the whole split
    t0 = time.perf_counter()
    conf = np.zeros((NUM_CLASSES_20, NUM_CLASSES_20), dtype=np.int64)
    for scene_dir in progress_bar(val_scenes, desc="embed + predict val", unit="scene"):
        sf = extract_point_features(model, scene_dir, max_points=max_points, seed=seed)
        conf += confusion_matrix(predict_probe(probe, sf.features), sf.labels, NUM_CLASSES_20)
    result = ProbeResult(conf)
    t_val = time.perf_counter() - t0
    summary = {
        "data": str(data_dir),
        "split": "val",
        **result.to_dict(SCANNET20_NAMES),
        "train_miou": train_result.miou,
        "train_overall_accuracy": train_result.overall_accuracy,
        "feature_dim": dims.pop(),
        "scenes": {"train": len(train_scenes), "val": len(val_scenes)},
        "labelled_points": {"train": n_train_labelled, "val": int(result.confusion.sum())},
        "head": {"epochs": epochs, "lr": lr, "seed": seed, "batch_size": batch_size, "optimizer": "adamw",
                 "train_points_per_scene": train_points_per_scene},
        "seconds": {"embed_train": round(t_embed, 2), "train_head": round(t_train, 2), "val": round(t_val, 2)},
    }
    return summary, result


@dataclass
class SplitFeatures:
    """Per-scene features and labels of the train and val splits, plus notes copied into the probe's summary.

    Attributes:
        train_x, val_x: per scene (N_i, C) float32; train_y, val_y: per scene (N_i,) int64, -1 = ignore.
        notes: extra facts about the features (e.g. ``{"unseen": ...}`` of lifted image features).
    """

    train_x: list[np.ndarray]
    train_y: list[np.ndarray]
    val_x: list[np.ndarray]
    val_y: list[np.ndarray]
    notes: dict = field(default_factory=dict)


def subsample_labelled(xs: list[np.ndarray], ys: list[np.ndarray], per_scene: int | None,
                       seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """At most ``per_scene`` labelled points of each scene, a random subset seeded by ``seed`` (pure).

    Args:
        xs: per-scene features (N_i, C); ys: per-scene labels (N_i,), -1 = ignore.
        per_scene: the cap, or None to keep every labelled point.
    Returns:
        (features, labels) of the kept points, scene by scene, in their original order.
    """
    rng = np.random.default_rng(seed)
    out_x, out_y = [], []
    for x, y in zip(xs, ys):
        labelled = np.flatnonzero(y != IGNORE_INDEX)
        if per_scene is not None and len(labelled) > per_scene:
            labelled = np.sort(rng.choice(labelled, size=per_scene, replace=False))
        out_x.append(x[labelled])
        out_y.append(y[labelled])
    return out_x, out_y


def probe_features(feats: SplitFeatures, epochs: int = 100, lr: float = 1e-2, seed: int = 0,
                   batch_size: int | None = None, device=None, probe_points: int | None = None) -> dict:
    """Train the linear head on the train features and evaluate it on the val features.

    Args:
        feats: per-scene train/val features (N_i, C) and labels (N_i,).
        epochs, lr, seed, batch_size, device: the head's training (``train_linear_probe``).
        probe_points: fit on at most this many labelled points per train scene (:func:`subsample_labelled`).
    Returns:
        summary dict: ``miou``, ``overall_accuracy``, ``mean_accuracy``, ``iou`` {class: IoU or None},
        ``class_points``, ``confusion``, ``train_miou``, ``feature_dim``, ``labelled_points``, plus ``feats.notes``.
    """
    from concerto3d.evaluation.linear_probe import evaluate_probe, train_linear_probe

    dims = {x.shape[1] for x in feats.train_x + feats.val_x}
    if len(dims) != 1:
        raise ValueError(f"features of different widths across scenes: {sorted(dims)}")
    n_train = int(sum((y != IGNORE_INDEX).sum() for y in feats.train_y))
    n_val = int(sum((y != IGNORE_INDEX).sum() for y in feats.val_y))
    if n_train == 0 or n_val == 0:
        raise InputError(f"expected labelled points in both splits, got {n_train} (train) and {n_val} (val); "
                         "segment20.npy is all -1")
    fit_x, fit_y = subsample_labelled(feats.train_x, feats.train_y, probe_points, seed)
    head = train_linear_probe(np.concatenate(fit_x), np.concatenate(fit_y), NUM_CLASSES_20,
                              epochs=epochs, lr=lr, seed=seed, batch_size=batch_size, device=device)
    train_result = evaluate_probe(head, fit_x, fit_y, NUM_CLASSES_20)
    result = evaluate_probe(head, feats.val_x, feats.val_y, NUM_CLASSES_20)
    return {
        **result.to_dict(SCANNET20_NAMES),
        "train_miou": train_result.miou,
        "feature_dim": dims.pop(),
        "labelled_points": {"train": n_train, "train_fitted": int(sum(len(y) for y in fit_y)), "val": n_val},
        "scenes": {"train": len(feats.train_x), "val": len(feats.val_x)},
        "head": {"epochs": epochs, "lr": lr, "seed": seed, "batch_size": batch_size, "probe_points": probe_points},
        **feats.notes,
    }

"""Per-point features of preprocessed scenes from a frozen, trained model.

A preprocessed scene (data/README.md §3, read by :mod:`concerto3d.data.scene`) holds ``coord.npy``, ``color.npy``,
``normal.npy`` and ``segment20.npy``. :func:`extract_point_features` runs ``model.embed`` on the scene's points and
returns one feature row per original point; :func:`embed_split` does it for a list of scenes. When a scene is too
large to embed at once (``max_points``), a random subset is embedded and the features are carried back to every
point by inverse-distance interpolation over the ``k`` nearest embedded points.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from concerto3d.data.scene import Scene, load_scene
from concerto3d.labels import IGNORE_INDEX

__all__ = ["interpolate_features", "freeze", "SceneFeatures", "embed_scene", "extract_point_features",
           "embed_split"]


def interpolate_features(src_coord, src_feat, dst_coord, k: int = 3) -> torch.Tensor:
    """Carry features from sampled points back to all points by inverse-distance weighting of the k nearest.

    Args:
        src_coord: (M, 3) float, the points that have features.
        src_feat: (M, C) float features.
        dst_coord: (N, 3) float, the points that need features.
        k: neighbours (clamped to M).
    Returns:
        (N, C) float32 tensor on ``src_feat``'s device; a destination point that coincides with a source point gets
        that point's feature exactly.
    """
    import torch_cluster  # the knn of torch-geometric needs pyg-lib; torch-cluster's does not

    src_feat = torch.as_tensor(src_feat).float()
    device = src_feat.device
    src = torch.as_tensor(src_coord, device=device).float()
    dst = torch.as_tensor(dst_coord, device=device).float()
    if src.ndim != 2 or src.shape[1] != 3 or dst.ndim != 2 or dst.shape[1] != 3 or len(src) != len(src_feat):
        raise ValueError(f"expected src_coord (M, 3), src_feat (M, C), dst_coord (N, 3), got {tuple(src.shape)}, "
                         f"{tuple(src_feat.shape)}, {tuple(dst.shape)}")
    if len(src) == 0:
        raise ValueError("no source points to interpolate from")
    k = min(k, len(src))
    dst_idx, src_idx = torch_cluster.knn(src, dst, k)  # for each dst point, its k nearest src points
    d2 = (dst[dst_idx] - src[src_idx]).pow(2).sum(dim=1)
    w = 1.0 / d2.clamp_min(1e-16)  # an exact hit dominates every other neighbour
    out = torch.zeros(len(dst), src_feat.shape[1], device=device)
    out.index_add_(0, dst_idx, w[:, None] * src_feat[src_idx])
    norm = torch.zeros(len(dst), device=device).index_add_(0, dst_idx, w)
    return out / norm[:, None]


def freeze(model) -> None:
    """Eval mode and no gradients for the model's encoders (``.point_encoder`` / ``.image_encoder`` when present):
    features are always read from the frozen encoder."""
    for name in ("point_encoder", "image_encoder"):
        module = getattr(model, name, None)
        if module is not None:
            module.eval()
            module.requires_grad_(False)


@dataclass
class SceneFeatures:
    """Features of one scene, one row per original point.

    Attributes:
        name: scene folder name.
        features: (N, C) float32.
        labels: (N,) int64 segment20, -1 = ignore.
    """

    name: str
    features: np.ndarray
    labels: np.ndarray


def embed_scene(model, scene: Scene, max_points: int | None = None, seed: int = 0, k: int = 3) -> np.ndarray:
    """Features of every point of a loaded :class:`Scene` from ``model.embed(points, colors, normals)``.

    Args:
        model: a ``PretrainedModel`` (or anything with ``.embed(points (N,3), colors (N,3) uint8, normals (N,3))
            -> (N, C)``); its encoders are put in eval mode (:func:`freeze`).
        scene: the scene's arrays.
        max_points: embed at most this many points (a seeded random subset) and interpolate the rest; ``None`` =
            all points.
        seed: seeds that subset.
        k: neighbours for the interpolation.
    Returns:
        (N, C) float32 numpy array.
    """
    freeze(model)
    n = len(scene)
    if max_points is not None and n > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    else:
        keep = None
    sel = slice(None) if keep is None else keep
    with torch.no_grad():
        feats = model.embed(scene.coord[sel], colors=scene.color[sel], normals=scene.normal[sel])
    feats = feats.detach().float().cpu().numpy() if torch.is_tensor(feats) else np.asarray(feats, np.float32)
    expected = n if keep is None else len(keep)
    if feats.ndim != 2 or feats.shape[0] != expected:
        raise ValueError(f"model.embed returned shape {feats.shape}, expected ({expected}, C) for scene {scene.name}")
    if keep is not None:
        feats = interpolate_features(scene.coord[keep], feats, scene.coord, k=k).numpy()
    return feats.astype(np.float32, copy=False)


def extract_point_features(model, scene_dir: str | os.PathLike, max_points: int | None = None, seed: int = 0,
                           k: int = 3) -> SceneFeatures:
    """Load a preprocessed scene folder and embed it (see :func:`embed_scene`).

    Returns:
        :class:`SceneFeatures` with features (N, C) float32 and labels (N,) int64 for the N points of coord.npy.
    """
    scene = load_scene(scene_dir)
    return SceneFeatures(scene.name, embed_scene(model, scene, max_points, seed, k), scene.segment20)


def embed_split(model, scenes: list[Path], max_points: int | None, seed: int, desc: str,
                labelled_per_scene: int | None = None,
                progress: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Features and labels of each scene of a split: two lists of (N_i, C) float32 and (N_i,) int64 arrays.

    With ``labelled_per_scene``, each scene keeps only its labelled points, at most that many (a random subset
    seeded by ``seed`` and the scene's position), which bounds the memory of the cached training set.
    """
    from concerto3d.io.progress import progress_bar

    feats, labels = [], []
    for i, scene_dir in enumerate(progress_bar(scenes, desc=desc, unit="scene", disable=not progress)):
        sf = extract_point_features(model, scene_dir, max_points=max_points, seed=seed)
        x, y = sf.features, sf.labels
        if labelled_per_scene is not None:
            keep = np.flatnonzero(y != IGNORE_INDEX)
            if len(keep) > labelled_per_scene:
                keep = np.sort(np.random.default_rng([seed, i]).choice(keep, labelled_per_scene, replace=False))
            x, y = x[keep], y[keep]
        feats.append(x)
        labels.append(y)
    return feats, labels

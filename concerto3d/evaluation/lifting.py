"""Lift image-encoder patch features onto 3D points through the 2D-3D correspondences.

Each correspondence row ``(k, u, v, point)`` says that ``point`` is seen at pixel column ``u``, row ``v`` of image
``k``. That pixel lies in patch ``(row, col) = (v // patch_size, u // patch_size)`` of image k's patch grid, so the
point receives that patch's feature. A point seen by several pixels or views gets the mean of all of them; a point
no image sees gets zeros and is reported as unseen. This is how the "2D only" row of the Concerto table probes an
image encoder with the same point-wise linear head as the point encoders.

:func:`lift_patch_features` is the maths; :func:`lift_scene_features` runs a frozen image encoder on the images of
one preprocessed scene and lifts them; :func:`lift_split` does it for every scene of a split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from concerto3d.data.scene import (image_path, load_correspondences, load_scene, read_image, rescale_pixels,
                                   split_scenes)
from concerto3d.labels import IGNORE_INDEX

__all__ = ["LiftedFeatures", "lift_patch_features", "LiftedScene", "lift_scene_features", "LiftedSplit",
           "lift_split"]


class LiftedFeatures(NamedTuple):
    """Result of :func:`lift_patch_features`.

    Attributes:
        features: (N, C) float, mean patch feature per point, zeros where unseen.
        seen: (N,) bool, True where at least one correspondence hits the point.
        num_unseen: number of points no image sees.
    """

    features: torch.Tensor
    seen: torch.Tensor
    num_unseen: int


def lift_patch_features(patch_grid, corr, num_points: int, patch_size: int) -> LiftedFeatures:
    """Average, for every point, the features of the patches whose pixels see it.

    Args:
        patch_grid: (F, Hp, Wp, C) float patch features of F images (torch or numpy); image k covers pixels
            ``0..Wp*patch_size-1`` by ``0..Hp*patch_size-1``.
        corr: (M, 4) integer rows (k, u, v, point): image index, pixel column, pixel row, point index.
        num_points: N, the number of points of the scene.
        patch_size: pixels per patch side.
    Returns:
        :class:`LiftedFeatures` (features (N, C), seen (N,), num_unseen), on ``patch_grid``'s device.

    Raises:
        ValueError: shapes do not match, or a row points outside the images, the patch grid or the points.
    """
    grid = torch.as_tensor(patch_grid)
    if grid.ndim != 4 or not grid.is_floating_point():
        raise ValueError(f"expected a float patch grid (F, Hp, Wp, C), got shape {tuple(grid.shape)} "
                         f"dtype {grid.dtype}")
    corr = torch.as_tensor(corr, device=grid.device)
    if corr.ndim != 2 or corr.shape[1] != 4 or corr.is_floating_point():
        raise ValueError(f"expected integer correspondences (M, 4) = (k, u, v, point), got shape "
                         f"{tuple(corr.shape)} dtype {corr.dtype}")
    if patch_size < 1 or num_points < 0:
        raise ValueError(f"expected patch_size >= 1 and num_points >= 0, got {patch_size} and {num_points}")
    num_frames, hp, wp, channels = grid.shape
    corr = corr.long()
    k, u, v, point = corr.unbind(dim=1)
    row, col = v // patch_size, u // patch_size
    checks = (("image index k", k, num_frames), ("patch column u // patch_size", col, wp),
              ("patch row v // patch_size", row, hp), ("point index", point, num_points))
    for name, value, limit in checks:
        if value.numel() and (value.min() < 0 or value.max() >= limit):
            raise ValueError(f"{name} must lie in 0..{limit - 1}, got range {int(value.min())}..{int(value.max())}")

    flat = grid.reshape(num_frames * hp * wp, channels)
    hit = flat[(k * hp + row) * wp + col]  # (M, C), the patch feature each correspondence sees
    summed = torch.zeros(num_points, channels, dtype=grid.dtype, device=grid.device).index_add_(0, point, hit)
    count = torch.zeros(num_points, dtype=grid.dtype, device=grid.device).index_add_(
        0, point, torch.ones_like(point, dtype=grid.dtype))
    seen = count > 0
    features = summed / count.clamp_min(1)[:, None]
    return LiftedFeatures(features, seen, int(num_points - seen.sum()))


@dataclass
class LiftedScene:
    """Image features lifted onto the points of one scene.

    Attributes:
        features: (N, C) float32, mean patch feature over the pixels that see each point, zeros where unseen.
        labels: (N,) int64 segment20, -1 = ignore.
        seen: (N,) bool.
    """

    features: np.ndarray
    labels: np.ndarray
    seen: np.ndarray


def lift_scene_features(image_encoder, scene_dir: str | os.PathLike, image_batch: int = 8) -> LiftedScene:
    """Run a frozen image encoder on a preprocessed scene's images and lift its patch features onto the points.

    Stored images of another size than the encoder's ``config.image_size`` are resized (bilinear) and their
    correspondences rescaled, as in training (``data.scene.read_image`` / ``rescale_pixels``).

    Args:
        image_encoder: a :class:`concerto3d.models.image_encoder.ImageEncoder` (put in eval mode here).
        scene_dir: a preprocessed scene with ``images/<k>.jpg`` and ``correspondences.npy`` (data/README.md §3).
        image_batch: images per forward pass.
    Returns:
        :class:`LiftedScene` with features (N, C), labels (N,), seen (N,).
    """
    scene = load_scene(scene_dir)
    n = len(scene)
    corr = np.array(load_correspondences(scene_dir, num_points=n), dtype=np.int64)
    size = tuple(int(s) for s in image_encoder.config.image_size)
    frames = np.unique(corr[:, 0]) if len(corr) else np.zeros(0, np.int64)
    device = next(image_encoder.parameters()).device
    image_encoder.eval()

    images = np.zeros((len(frames), size[0], size[1], 3), np.uint8)
    for i, k in enumerate(frames):
        images[i], stored = read_image(image_path(scene_dir, k), size)
        if stored != size:
            rows = corr[:, 0] == k
            corr[rows, 1], corr[rows, 2] = rescale_pixels(corr[rows, 1], corr[rows, 2], stored, size)
    if len(frames) == 0:
        return LiftedScene(np.zeros((n, image_encoder.out_channels), np.float32), scene.segment20,
                           np.zeros(n, bool))

    grids = []
    with torch.no_grad():
        for start in range(0, len(frames), image_batch):
            batch = torch.from_numpy(images[start:start + image_batch]).to(device)
            batch = image_encoder.normalize(batch.permute(0, 3, 1, 2).float().div_(255.0))
            grids.append(image_encoder(batch).patch_grid.float())
    grid = torch.cat(grids)
    remap = np.searchsorted(frames, corr[:, 0])  # image k -> its position in `frames`
    rows = torch.from_numpy(np.column_stack([remap, corr[:, 1:]])).to(device)
    lifted = lift_patch_features(grid, rows, n, image_encoder.patch_size)
    return LiftedScene(lifted.features.cpu().numpy().astype(np.float32), scene.segment20,
                       lifted.seen.cpu().numpy())


@dataclass
class LiftedSplit:
    """Lifted features of every scene of a split.

    Attributes:
        features: per scene (N_i, C) float32; labels: per scene (N_i,) int64.
        counts: ``points``, ``unseen`` (no image sees them), ``labelled``, ``labelled_unseen`` over the split.
    """

    features: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def lift_split(image_encoder, data: str | os.PathLike, split: str, image_batch: int = 8, desc: str = "lift",
               progress: bool = True) -> LiftedSplit:
    """:func:`lift_scene_features` for every scene of ``DATA/splits/<split>.txt``, in the list's order.

    Args:
        image_encoder: a frozen :class:`concerto3d.models.image_encoder.ImageEncoder`.
        data: a preprocessed dataset.
        split: the split's name; image_batch: images per forward pass.
        desc, progress: the progress bar's label (``"<desc> <split>"``), and whether to show it.
    """
    from concerto3d.io.progress import progress_bar

    out = LiftedSplit(counts={"points": 0, "unseen": 0, "labelled": 0, "labelled_unseen": 0})
    for scene_dir in progress_bar(split_scenes(Path(data), split), desc=f"{desc} {split}", unit="scene", leave=False,
                          disable=not progress):
        lifted = lift_scene_features(image_encoder, scene_dir, image_batch)
        out.features.append(lifted.features)
        out.labels.append(lifted.labels)
        has_label = lifted.labels != IGNORE_INDEX
        out.counts["points"] += len(lifted.seen)
        out.counts["unseen"] += int((~lifted.seen).sum())
        out.counts["labelled"] += int(has_label.sum())
        out.counts["labelled_unseen"] += int((has_label & ~lifted.seen).sum())
    return out

"""Lift image-encoder patch features onto 3D points through the 2D-3D correspondences.

Each correspondence row ``(k, u, v, point)`` says that ``point`` is seen at pixel column ``u``, row ``v`` of image
``k``. That pixel lies in patch ``(row, col) = (v // patch_size, u // patch_size)`` of image k's patch grid, so the
point receives that patch's feature. A point seen by several pixels or views gets the mean of all of them; a point
no image sees gets zeros and is reported as unseen. This is how the "2D only" row of the Concerto table probes an
image encoder with the same point-wise linear head as the point encoders.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


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

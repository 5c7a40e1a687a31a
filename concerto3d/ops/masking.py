"""Masking of a point cloud by grid cells (Masked Scene Contrast, Sonata): whole cells, not single points, so a
masked point's neighbours are masked too and its features must come from farther context."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["grid_mask"]


def grid_mask(coord: Tensor, batch: Tensor, cell: float, ratio: float,
              generator: torch.Generator | None = None) -> Tensor:
    """A random mask over the cells of a cubic grid, drawn independently per crop.

    Args:
        coord: (N, 3) float, metres.
        batch: (N,) long, crop of each point.
        cell: edge of a grid cell, metres (> 0); the grid is shifted by a random offset per call.
        ratio: probability that a cell is masked, in [0, 1].
        generator: random generator on ``coord``'s device (the global one when None).
    Returns:
        (N,) bool, True where the point's cell is masked; every point of a (crop, cell) pair gets the same value.
    """
    if cell <= 0:
        raise ValueError(f"grid_mask: expected cell > 0, got {cell}")
    if not 0 <= ratio <= 1:
        raise ValueError(f"grid_mask: expected ratio in [0, 1], got {ratio}")
    if coord.size(0) == 0:
        return torch.zeros(0, dtype=torch.bool, device=coord.device)
    offset = torch.rand(3, device=coord.device, generator=generator) * cell
    cells = torch.floor((coord + offset) / cell).long()
    keys = torch.cat([batch.view(-1, 1).long(), cells], dim=1)
    _, inverse = torch.unique(keys, dim=0, return_inverse=True)
    draw = torch.rand(int(inverse.max()) + 1, device=coord.device, generator=generator)
    return draw[inverse] < ratio

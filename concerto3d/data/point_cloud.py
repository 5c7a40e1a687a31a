"""The point cloud that flows through the point augmentations, and the row selections made on it.

The index map: ``cloud.index[i]`` is the row of the *original* cloud (the one a pipeline started from, usually the
scene crop) that point ``i`` came from. Moving points keeps it; dropping points composes it (``index_out =
index_in[kept]``, :meth:`PointCloud.take`). :func:`nearest_k` and :func:`grid_sample_rows` choose the rows kept by
crops and grid sampling.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PointCloud:
    """A point cloud on its way through the augmentations (numpy arrays, never modified in place).

    Attributes:
        coord: (N, 3) float32, metres, crop-centred frame.
        color: (N, 3) float32 in [0, 1].
        normal: (N, 3) float32, unit length (zeros allowed where unknown).
        index: (N,) int64, row of the original cloud each point came from.
        has_color: False once the colour is dropped (or never used); its channels are zeroed in the features.
        has_normal: False once the normal is dropped (or never used).
    """

    coord: np.ndarray
    color: np.ndarray
    normal: np.ndarray
    index: np.ndarray
    has_color: bool = True
    has_normal: bool = True

    def __post_init__(self):
        n = len(self.coord)
        for name in ("coord", "color", "normal"):
            arr = getattr(self, name)
            if arr.ndim != 2 or arr.shape != (n, 3):
                raise ValueError(f"PointCloud.{name}: expected shape ({n}, 3), got {arr.shape}")
        if self.index.shape != (n,):
            raise ValueError(f"PointCloud.index: expected shape ({n},), got {self.index.shape}")

    @classmethod
    def from_arrays(cls, coord: np.ndarray, color: np.ndarray | None = None, normal: np.ndarray | None = None,
                    has_color: bool = True, has_normal: bool = True) -> "PointCloud":
        """A fresh cloud whose index map is the identity.

        Args:
            coord: (N, 3) metres.
            color: (N, 3) floats in [0, 1], or uint8 0..255 (divided by 255); None = zeros, ``has_color=False``.
            normal: (N, 3); None = zeros, ``has_normal=False``.
        """
        coord = np.asarray(coord, dtype=np.float32)
        n = len(coord)
        if color is None:
            color, has_color = np.zeros((n, 3), np.float32), False
        elif np.asarray(color).dtype == np.uint8:
            color = np.asarray(color, dtype=np.float32) / 255.0
        if normal is None:
            normal, has_normal = np.zeros((n, 3), np.float32), False
        return cls(coord=coord, color=np.asarray(color, dtype=np.float32),
                   normal=np.asarray(normal, dtype=np.float32), index=np.arange(n, dtype=np.int64),
                   has_color=has_color, has_normal=has_normal)

    def __len__(self) -> int:
        return len(self.coord)

    def replace(self, **changes) -> "PointCloud":
        """A new cloud with some fields replaced (the others shared, as they are never modified in place)."""
        return dataclasses.replace(self, **changes)

    def take(self, keep: np.ndarray) -> "PointCloud":
        """The subset ``keep`` ((K,) int rows or (N,) bool mask), with the index map composed."""
        return self.replace(coord=self.coord[keep], color=self.color[keep], normal=self.normal[keep],
                            index=self.index[keep])


def nearest_k(coord: np.ndarray, centre: np.ndarray, k: int, shape: str = "sphere") -> np.ndarray:
    """The ``k`` points closest to ``centre``, as sorted row indices.

    Args:
        coord: (N, 3).
        centre: (3,).
        k: how many to keep (capped at N).
        shape: "sphere" (Euclidean distance: a ball) or "box" (largest of |dx|, |dy|: a vertical square column).
    Returns:
        (min(k, N),) int64, ascending.
    """
    diff = coord - centre
    if shape == "sphere":
        dist = np.einsum("ij,ij->i", diff, diff)
    elif shape == "box":
        dist = np.abs(diff[:, :2]).max(axis=1)
    else:
        raise ValueError(f"crop shape: expected 'sphere' or 'box', got {shape!r}")
    k = min(int(k), len(coord))
    if k >= len(coord):
        return np.arange(len(coord), dtype=np.int64)
    keep = np.argpartition(dist, k - 1)[:k]
    return np.sort(keep).astype(np.int64)


def voxel_keys(coord: np.ndarray, grid_size: float) -> np.ndarray:
    """(N,) int64 key of the grid cell of side ``grid_size`` that holds each point (equal keys = same cell)."""
    cell = np.floor(coord / grid_size).astype(np.int64)
    cell -= cell.min(axis=0)
    dims = cell.max(axis=0) + 1
    return (cell[:, 0] * dims[1] + cell[:, 1]) * dims[2] + cell[:, 2]


def grid_sample_rows(coord: np.ndarray, grid_size: float, rng: np.random.Generator) -> np.ndarray:
    """One randomly chosen point per occupied grid cell.

    Returns:
        (K,) int64 sorted row indices, K = number of occupied cells.
    """
    keys = voxel_keys(coord, grid_size)
    order = rng.permutation(len(coord))
    _, first = np.unique(keys[order], return_index=True)
    return np.sort(order[first]).astype(np.int64)

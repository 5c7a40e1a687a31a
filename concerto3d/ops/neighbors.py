"""Neighbour queries (radius, k nearest) and k-NN feature interpolation between point sets.

torch-geometric >= 2.8 routes its own ``radius``/``knn``/``knn_interpolate`` through pyg-lib, which PyPI does not
carry; these call torch-cluster directly. Edge lists follow torch-cluster's convention: row 0 indexes the query
points ``y``, row 1 the searched points ``x``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["radius", "knn", "knn_interpolate", "shuffle_keys"]

_MASK32 = 0xFFFFFFFF


def _mul32(h: Tensor, c: int) -> Tensor:
    """(h * c) mod 2^32 for 0 <= h < 2^32, in two 16-bit halves of ``c`` so that int64 never overflows."""
    return (h * (c & 0xFFFF) + (((h * (c >> 16)) & 0xFFFF) << 16)) & _MASK32


def shuffle_keys(n: int, device: torch.device | str | None = None) -> Tensor:
    """(n,) int64 distinct pseudo-random keys in [0, 2^32) of rows ``0..n-1``, the same on every device and call.

    MurmurHash3's 32-bit finaliser (fmix32) of the row index: a bijection of [0, 2^32), so the keys are distinct,
    and a mixing one, so rows at any fixed stride (a grid stored x-major) get unrelated keys.
    """
    h = torch.arange(n, dtype=torch.long, device=device)
    h = _mul32(h ^ (h >> 16), 0x85EBCA6B)
    h = _mul32(h ^ (h >> 13), 0xC2B2AE35)
    return h ^ (h >> 16)


def _check_points(name: str, pos: Tensor, batch: Tensor | None) -> None:
    if pos.dim() != 2 or pos.size(1) != 3:
        raise ValueError(f"{name}: expected points of shape (N, 3), got {tuple(pos.shape)}")
    if batch is not None and batch.shape != (pos.size(0),):
        raise ValueError(f"{name}: expected batch of shape ({pos.size(0)},), got {tuple(batch.shape)}")


def radius(x: Tensor, y: Tensor, r: float, batch_x: Tensor | None = None, batch_y: Tensor | None = None,
           max_num_neighbors: int = 32) -> Tensor:
    """Points of ``x`` within distance ``r`` of each point of ``y``, in the same cloud.

    Args:
        x: (N, 3) float, searched points.
        y: (M, 3) float, query points.
        r: radius in the units of the coordinates (metres).
        batch_x: (N,) long sorted cloud index of ``x``, or None for one cloud.
        batch_y: (M,) long sorted cloud index of ``y``, or None for one cloud.
        max_num_neighbors: at most this many neighbours per query point. Where more lie within ``r``, the ones
            kept are those with the smallest :func:`shuffle_keys` of their ``x`` row: a fixed pseudo-random part of
            the ball, the same on CPU and CUDA.

    Returns:
        (2, E) long: ``[y index, x index]`` for every neighbour pair, in no particular order (it differs between
        devices). A query point that is also in ``x`` finds itself (distance 0) unless its ball is over the cap.

    torch-cluster alone keeps the first neighbours it meets: in memory order on CUDA, in k-d tree order on CPU.
    Points stored in voxel order then give a one-sided part of every full ball, and a different one on each device
    (an untrained encoder's features differed by up to 6 % between CPU and CUDA, see docs/performance.md).
    """
    _check_points("radius", x, batch_x)
    _check_points("radius", y, batch_y)
    if r <= 0:
        raise ValueError(f"radius: expected r > 0, got {r!r}")
    if max_num_neighbors < 1:
        raise ValueError(f"radius: expected max_num_neighbors >= 1, got {max_num_neighbors!r}")
    import torch_cluster

    cap = int(max_num_neighbors)
    if x.device.type == "cuda":
        # The CUDA kernel scans x in memory order and keeps the first `cap` hits: hand it x in key order.
        return _radius_in_key_order(torch_cluster.radius, x, y, float(r), batch_x, batch_y, cap)
    # The CPU kernel keeps the first hits of its k-d tree walk: ask for every hit, keep the smallest keys.
    edges = torch_cluster.radius(x, y, float(r), batch_x, batch_y, max_num_neighbors=max(1, x.size(0)))
    return _keep_smallest_keys(edges, y.size(0), cap)


def _radius_in_key_order(kernel, x: Tensor, y: Tensor, r: float, batch_x: Tensor | None, batch_y: Tensor | None,
                         cap: int) -> Tensor:
    """Run a radius ``kernel`` that keeps the first ``cap`` hits in memory order on ``x`` sorted by
    :func:`shuffle_keys` within each cloud; map its ``x`` indices back to the caller's rows."""
    key = shuffle_keys(x.size(0), x.device)
    perm = torch.argsort(key if batch_x is None else (batch_x << 32) | key)
    edges = kernel(x[perm], y, r, None if batch_x is None else batch_x[perm], batch_y, max_num_neighbors=cap)
    return torch.stack([edges[0], perm[edges[1]]])


def _keep_smallest_keys(edges: Tensor, num_queries: int, cap: int) -> Tensor:
    """Of every query's neighbours in ``edges`` (``[y, x]``), keep the ``cap`` with the smallest x keys.

    Queries at or under the cap keep every edge untouched; only the others' edges are sorted (by query, then key).
    """
    row, col = edges
    if row.numel() == 0:
        return edges
    degree = torch.bincount(row, minlength=num_queries)
    over = degree > cap
    if not bool(over.any()):
        return edges
    crowded = over[row]
    r, c = row[crowded], col[crowded]
    order = torch.argsort((r << 32) | shuffle_keys(int(c.max()) + 1, c.device)[c])
    r, c = r[order], c[order]
    degree = torch.where(over, degree, torch.zeros_like(degree))
    first = torch.cumsum(degree, 0) - degree  # where each crowded query's run starts in the sorted edges
    keep = torch.arange(r.numel(), device=r.device) - first[r] < cap
    return torch.cat([edges[:, ~crowded], torch.stack([r[keep], c[keep]])], dim=1)


def knn(x: Tensor, y: Tensor, k: int, batch_x: Tensor | None = None, batch_y: Tensor | None = None) -> Tensor:
    """The ``k`` nearest points of ``x`` to each point of ``y``, in the same cloud.

    Args:
        x: (N, 3) float, searched points.
        y: (M, 3) float, query points.
        k: neighbours per query point (fewer when a cloud of ``x`` has fewer than ``k`` points).
        batch_x: (N,) long sorted cloud index of ``x``, or None for one cloud.
        batch_y: (M,) long sorted cloud index of ``y``, or None for one cloud.

    Returns:
        (2, E) long: ``[y index, x index]`` for every neighbour pair.
    """
    _check_points("knn", x, batch_x)
    _check_points("knn", y, batch_y)
    if k < 1:
        raise ValueError(f"knn: expected k >= 1, got {k!r}")
    import torch_cluster

    return torch_cluster.knn(x, y, int(k), batch_x, batch_y)


def knn_interpolate(x: Tensor, pos_x: Tensor, pos_y: Tensor, batch_x: Tensor | None = None,
                    batch_y: Tensor | None = None, k: int = 3) -> Tensor:
    """Carry features from points ``pos_x`` to points ``pos_y`` by inverse-squared-distance k-NN weighting.

    ``f(y) = sum_i w_i f(x_i) / sum_i w_i`` over the ``k`` nearest ``x_i`` (same cloud), ``w_i = 1 / d(y, x_i)^2``
    (distances clamped at 1e-16, so a ``y`` that coincides with an ``x`` takes that point's features), as in
    PointNet++ feature propagation and PyG's ``knn_interpolate``.

    Args:
        x: (N, C) float, features of ``pos_x``.
        pos_x: (N, 3) float, points that carry features.
        pos_y: (M, 3) float, points that receive them.
        batch_x: (N,) long sorted cloud index of ``pos_x``, or None.
        batch_y: (M,) long sorted cloud index of ``pos_y``, or None.
        k: neighbours to average.

    Returns:
        (M, C) features at ``pos_y``; gradients flow to ``x`` (not to the positions).
    """
    if x.dim() != 2 or x.size(0) != pos_x.size(0):
        raise ValueError(f"knn_interpolate: expected x of shape ({pos_x.size(0)}, C), got {tuple(x.shape)}")
    with torch.no_grad():
        y_idx, x_idx = knn(pos_x, pos_y, k, batch_x, batch_y)
        diff = (pos_x[x_idx] - pos_y[y_idx]).float()
        weights = 1.0 / (diff * diff).sum(dim=-1).clamp_min(1e-16)
        # Normalise in float32 before casting, so that half-precision features never see weights up to 1e16.
        total = torch.zeros(pos_y.size(0), dtype=weights.dtype, device=weights.device).index_add_(0, y_idx, weights)
        weights = (weights / total[y_idx]).to(x.dtype).unsqueeze(1)
        # torch-cluster lists the neighbours query by query; when every query found k of them (the usual case),
        # the weighted sum is a reshape, which is much faster than a scatter, forward and backward.
        m = pos_y.size(0)
        uniform = y_idx.numel() == m * k and bool(
            (y_idx == torch.arange(m, device=y_idx.device).repeat_interleave(k)).all())
    neighbours = x.index_select(0, x_idx) * weights  # index_select: its backward is cheaper than x[x_idx]'s
    if uniform:
        return neighbours.view(m, k, x.size(1)).sum(dim=1)
    return torch.zeros(m, x.size(1), dtype=x.dtype, device=x.device).index_add(0, y_idx, neighbours)

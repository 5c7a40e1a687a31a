"""Neighbour queries (radius, k nearest) and k-NN feature interpolation between point sets.

torch-geometric >= 2.8 routes its own ``radius``/``knn``/``knn_interpolate`` through pyg-lib, which PyPI does not
carry; these call torch-cluster directly. Edge lists follow torch-cluster's convention: row 0 indexes the query
points ``y``, row 1 the searched points ``x``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["radius", "radius_table", "knn", "knn_interpolate"]

# torch-cluster's CUDA k-NN keeps its candidates in fixed arrays of this size
_CUDA_KNN_MAX_K = 100


def _check_points(name: str, pos: Tensor, batch: Tensor | None) -> None:
    if pos.dim() != 2 or pos.size(1) != 3:
        raise ValueError(f"{name}: expected points of shape (N, 3), got {tuple(pos.shape)}")
    if batch is not None and batch.shape != (pos.size(0),):
        raise ValueError(f"{name}: expected batch of shape ({pos.size(0)},), got {tuple(batch.shape)}")


def radius(x: Tensor, y: Tensor, r: float, batch_x: Tensor | None = None, batch_y: Tensor | None = None,
           max_num_neighbors: int = 32) -> Tensor:
    """Points of ``x`` within distance ``r`` of each point of ``y``, in the same cloud; the nearest ones where the
    ball holds more than ``max_num_neighbors``.

    Args:
        x: (N, 3) float, searched points.
        y: (M, 3) float, query points.
        r: radius in the units of the coordinates (metres).
        batch_x: (N,) long sorted cloud index of ``x``, or None for one cloud.
        batch_y: (M,) long sorted cloud index of ``y``, or None for one cloud.
        max_num_neighbors: at most this many neighbours per query point: the nearest ones within ``r``.

    Returns:
        (2, E) long: ``[y index, x index]`` for every neighbour pair, grouped by query point. A query point that is
        also in ``x`` finds itself (distance 0).

    A k-nearest-neighbour query (``k = max_num_neighbors``) cut at ``r``: the same neighbours on CPU and CUDA (up
    to ties in distance). torch-cluster's own capped radius query keeps the first hits it meets instead: in memory
    order on CUDA (the low-x side of every full ball, for points stored in voxel order), in k-d tree order on CPU
    (a clump near the centre), so the same encoder gave features up to 6 % apart on the two devices, see
    docs/performance.md. The cost grows with ``max_num_neighbors``, not with how many points the ball holds: a
    cap far above the ball's occupancy pays for a large k-NN query (4096 queries with a cap of 4096 on 16k points:
    28 s on 2 cores, against 0.05 s with the encoder's cap of 32).
    """
    _check_points("radius", x, batch_x)
    _check_points("radius", y, batch_y)
    if r <= 0:
        raise ValueError(f"radius: expected r > 0, got {r!r}")
    if max_num_neighbors < 1:
        raise ValueError(f"radius: expected max_num_neighbors >= 1, got {max_num_neighbors!r}")
    if x.size(0) == 0 or y.size(0) == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    row, col = knn(x, y, int(max_num_neighbors), batch_x, batch_y)
    inside = ((x.detach()[col] - y.detach()[row]) ** 2).sum(dim=1) < float(r) ** 2  # a mask: no graph
    return torch.stack([row[inside], col[inside]])


def radius_table(x: Tensor, y: Tensor, r: float, batch_x: Tensor | None = None, batch_y: Tensor | None = None,
                 max_num_neighbors: int = 32) -> tuple[Tensor, Tensor]:
    """The neighbours of :func:`radius` as a dense table, one row per query point.

    Args:
        x, y, r, batch_x, batch_y, max_num_neighbors: as :func:`radius`.

    Returns:
        table: (M, W) long indices into ``x``, ``W`` the most neighbours any query has (at most
            ``max_num_neighbors``, at least 1): row ``i`` holds the neighbours of ``y[i]`` that :func:`radius`
            lists, in its order, then copies of the row's first neighbour where the ball held fewer (0 for a query
            without any neighbour).
        counts: (M,) long, how many of the row's entries are neighbours (the rest are padding).

    A max over a row equals the max over the query's neighbours, since the padding repeats one of them; this lets
    a grouped MLP run on an (M, W, C) block instead of scattering over an edge list.
    """
    row, col = radius(x, y, r, batch_x, batch_y, max_num_neighbors)
    m = y.size(0)
    counts = torch.bincount(row, minlength=m)
    k = max(1, int(counts.max())) if m else 1  # no column that is padding in every row
    starts = torch.cumsum(counts, 0) - counts
    first = col[starts.clamp_max(max(col.numel() - 1, 0))] if col.numel() else torch.zeros_like(counts)
    table = torch.where(counts > 0, first, torch.zeros_like(first)).unsqueeze(1).repeat(1, k)
    table[row, torch.arange(row.numel(), device=row.device) - starts[row]] = col
    return table, counts


def knn(x: Tensor, y: Tensor, k: int, batch_x: Tensor | None = None, batch_y: Tensor | None = None) -> Tensor:
    """The ``k`` nearest points of ``x`` to each point of ``y``, in the same cloud.

    Args:
        x: (N, 3) float, searched points.
        y: (M, 3) float, query points.
        k: neighbours per query point (fewer when a cloud of ``x`` has fewer than ``k`` points).
        batch_x: (N,) long sorted cloud index of ``x``, or None for one cloud.
        batch_y: (M,) long sorted cloud index of ``y``, or None for one cloud.

    Returns:
        (2, E) long: ``[y index, x index]`` for every neighbour pair, grouped by query point.
    """
    _check_points("knn", x, batch_x)
    _check_points("knn", y, batch_y)
    if k < 1:
        raise ValueError(f"knn: expected k >= 1, got {k!r}")
    import torch_cluster

    if x.device.type == "cuda" and k > _CUDA_KNN_MAX_K:  # beyond torch-cluster's CUDA k-NN: ask the host
        host = [None if t is None else t.cpu() for t in (batch_x, batch_y)]
        return torch_cluster.knn(x.cpu(), y.cpu(), int(k), *host).to(x.device)
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
        # torch-cluster lists the neighbours query by query; when every query found k of them (the usual case),
        # they form an (M, k) table.
        m = pos_y.size(0)
        uniform = y_idx.numel() == m * k and bool(
            (y_idx.view(m, k) == torch.arange(m, device=y_idx.device).unsqueeze(1)).all())
        # Normalise in float32 before casting, so that half-precision features never see weights up to 1e16.
        if uniform:
            weights = weights.view(m, k)
            weights = (weights / weights.sum(dim=1, keepdim=True)).to(x.dtype)
        else:
            total = torch.zeros(m, dtype=weights.dtype, device=weights.device).index_add_(0, y_idx, weights)
            weights = (weights / total[y_idx]).to(x.dtype).unsqueeze(1)
    if uniform:
        # A weighted sum of k rows of x per query, in one kernel each way: no (M * k, C) gather and product
        # (5x less time than gather, multiply and sum, forward and backward, at 16k -> 65k points and 96 channels).
        return F.embedding_bag(x_idx.view(m, k), x, per_sample_weights=weights, mode="sum")
    neighbours = x.index_select(0, x_idx) * weights  # index_select: its backward is cheaper than x[x_idx]'s
    return torch.zeros(m, x.size(1), dtype=x.dtype, device=x.device).index_add(0, y_idx, neighbours)

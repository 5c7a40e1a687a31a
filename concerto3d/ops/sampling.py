"""Farthest point sampling (FPS) over a batch of point clouds.

Three implementations with the same semantics, so that any of them can stand in for another:

* :func:`fps` is fpsample's bucket FPS on the host, whatever the input's device (torch-cluster's CPU FPS is O(N·M)
  and about 100x slower on large clouds; its CUDA FPS runs one thread block per cloud and one pass over the cloud
  per sample: on an H200 it took 45x fpsample's time on 100k points, and 1.2-8.6x on training batches, batched or
  cloud by cloud, see docs/performance.md).
* :func:`fps_cluster` always calls torch-cluster (on any device).
* :func:`fps_reference` is a plain brute-force torch loop, the slow reference the tests hold the others to.

Semantics (all three):

* the points of cloud ``b`` are the rows where ``batch == b``; ``batch`` is sorted (clouds are contiguous);
* a cloud of ``n`` points gives ``m = ceil(ratio * n)`` samples (at least 1, at most ``n``);
* the first sample of every cloud is its first point, so the result is deterministic;
* the result holds global row indices, cloud after cloud, each cloud's in selection order.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["fps", "fps_cluster", "fps_reference", "num_samples"]

# A product such as 0.1 * 30 is 3.0000000000000004 in floating point; without this slack ceil() would give 4.
_CEIL_SLACK = 1e-6


def num_samples(n: int, ratio: float) -> int:
    """Number of samples FPS keeps from a cloud of ``n`` points: ``ceil(ratio * n)``, clamped to ``[1, n]``.

    Args:
        n: points in the cloud (>= 1).
        ratio: fraction to keep, in ``(0, 1]``.
    """
    return max(1, min(n, math.ceil(n * ratio - _CEIL_SLACK)))


def _check(pos: Tensor, batch: Tensor | None, ratio: float) -> None:
    if pos.dim() != 2 or pos.size(1) != 3:
        raise ValueError(f"fps: expected pos of shape (N, 3), got {tuple(pos.shape)}")
    if not pos.is_floating_point():
        raise ValueError(f"fps: expected floating-point pos, got {pos.dtype}")
    if not (isinstance(ratio, (float, int)) and 0.0 < float(ratio) <= 1.0):
        raise ValueError(f"fps: expected ratio in (0, 1], got {ratio!r}")
    if batch is not None:
        if batch.shape != (pos.size(0),):
            raise ValueError(f"fps: expected batch of shape ({pos.size(0)},), got {tuple(batch.shape)}")
        if batch.dtype != torch.long:
            raise ValueError(f"fps: expected batch of dtype torch.long, got {batch.dtype}")
        if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
            raise ValueError("fps: expected batch sorted in ascending order (clouds contiguous)")


def _cloud_slices(batch: Tensor | None, n: int) -> list[tuple[int, int]]:
    """(start, end) row ranges of the non-empty clouds, in batch order."""
    if batch is None:
        return [(0, n)] if n else []
    counts = torch.unique_consecutive(batch, return_counts=True)[1].tolist()
    starts = np.concatenate([[0], np.cumsum(counts)]).tolist()
    return [(int(s), int(e)) for s, e in zip(starts[:-1], starts[1:])]


def fps_reference(pos: Tensor, batch: Tensor | None, ratio: float) -> Tensor:
    """Brute-force farthest point sampling, O(N·M): the reference the fast versions are tested against.

    Args:
        pos: (N, 3) float, point coordinates.
        batch: (N,) long, sorted cloud index of every point, or None for a single cloud.
        ratio: fraction of each cloud to keep, in (0, 1].

    Returns:
        (M,) long global indices into ``pos``, cloud after cloud, each cloud's in selection order. Ties in
        distance go to the lowest index.
    """
    _check(pos, batch, ratio)
    out = []
    for start, end in _cloud_slices(batch, pos.size(0)):
        cloud = pos[start:end]
        m = num_samples(end - start, ratio)
        chosen = torch.empty(m, dtype=torch.long, device=pos.device)
        chosen[0] = 0
        dist = torch.full((end - start,), float("inf"), dtype=pos.dtype, device=pos.device)
        for i in range(1, m):
            last = cloud[chosen[i - 1]]
            dist = torch.minimum(dist, ((cloud - last) ** 2).sum(dim=1))
            chosen[i] = torch.argmax(dist)
        out.append(chosen + start)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=pos.device)


def _bucket_height(n: int) -> int:
    """KD-tree height for fpsample's bucket FPS (buckets of about n / 2**h points; fpsample asks 2**h <= n).

    Measured on 2 cores: 3 suits a few thousand points, 5 tens of thousands, 7 about 100k.
    """
    h = 3 if n < 4096 else 5 if n < 65536 else 7
    return max(1, min(h, n.bit_length() - 1))


def _kdline_position(cloud: np.ndarray, h: int, target: int = 0) -> int:
    """Where fpsample's KD-line tree build moves row ``target`` of ``cloud``.

    fpsample 1.0.x builds its tree by partitioning the points in place and only then reads its start point as
    ``points[start_idx]``, so ``start_idx`` names a position in the partitioned order, not a row of the input. To
    start at row ``target`` we pass the position it lands on. This replays the build (quickfps ``divideTree``:
    split the widest bounding-box dimension at the float32 mean with a Hoare partition, down to depth ``h``) along
    the one branch that holds ``target``. The caller checks the first sample and falls back to an exact FPS if a
    different fpsample does something else.

    Only the branch's segment is kept, in the build's order: a level's mean is a sequential float32 sum, so the
    order of the points matters, and the next level needs only the half that holds ``target``.
    """
    seg = np.array(cloud.T, dtype=np.float32, order="C")  # (3, n): each coordinate contiguous
    left, where = 0, int(target)  # seg is the build's points[left:left + seg.shape[1]]; target is seg[:, where]
    for level in range(h):
        count = seg.shape[1]
        if count == 1:
            break
        span = _max(seg, axis=1)
        span -= _min(seg, axis=1)
        vals = seg[int(span.argmax())]  # the first dimension of largest span, as quickfps
        ge = vals >= _accumulate(vals)[-1] / np.float32(count)  # the mean, from a sequential float32 sum
        n_lt = count - int(np.count_nonzero(ge))  # the partition puts these first
        if n_lt == 0 or n_lt == count:  # nothing moves, and quickfps splits off one point
            n_left = 1 if n_lt == 0 else count - 1
            if where < n_left:
                seg = seg[:, :n_left]
            else:
                seg, left, where = seg[:, n_left:], left + n_left, where - n_left
            continue
        # The Hoare partition swaps the i-th point >= the mean from the left with the i-th point < it from the right.
        from_left = ge[:n_lt].nonzero()[0]  # ascending
        to_left = (~ge[n_lt:]).nonzero()[0]  # ascending, counted from n_lt: from_left[i] pairs with to_left[-1 - i]
        if where < n_lt:
            if ge[where]:
                where = n_lt + int(to_left[to_left.size - 1 - from_left.searchsorted(where)])
        elif not ge[where]:
            where = int(from_left[from_left.size - 1 - to_left.searchsorted(where - n_lt)])
        if level == h - 1:
            break
        if where < n_lt:  # keep the half that holds target, in the partitioned order
            order = np.arange(n_lt)
            order[from_left] = to_left[::-1] + n_lt
        else:
            order = np.arange(n_lt, count)
            order[to_left] = from_left[::-1]
            left, where = left + n_lt, where - n_lt
        seg = seg.take(order, axis=1)
    return left + where


# the replay's reductions, bound once: the ufunc methods skip ndarray.max's Python layer
_max, _min, _accumulate = np.maximum.reduce, np.minimum.reduce, np.add.accumulate


def _fps_fpsample(pos: Tensor, batch: Tensor | None, ratio: float) -> Tensor:
    """:func:`fps` on a CPU ``pos`` that is float32 and contiguous."""
    import fpsample  # imported here: only the CPU path needs it

    points = pos.numpy()
    out = []
    for start, end in _cloud_slices(batch, pos.size(0)):
        n = end - start
        m = num_samples(n, ratio)
        if m == 1:
            idx = np.zeros(1, dtype=np.int64)
        else:
            cloud = points[start:end]  # rows of a C-contiguous array: contiguous, no copy
            h = _bucket_height(n)
            idx = _as_int64(fpsample.bucket_fps_kdline_sampling(cloud, m, h=h, start_idx=_start_index(cloud, h)))
            if idx[0] != 0:  # an fpsample whose tree build differs from the replay: exact but slower FPS
                _warn_fallback()
                idx = _as_int64(fpsample.fps_sampling(cloud, m, start_idx=0))
        if start:
            idx += start
        out.append(idx)
    if len(out) == 1:
        return torch.from_numpy(out[0])
    return torch.from_numpy(np.concatenate(out)) if out else torch.empty(0, dtype=torch.long)


def _as_int64(idx: np.ndarray) -> np.ndarray:
    """fpsample's indices (uint64, below 2**63) as a writable int64 array, without a copy where it can."""
    if idx.dtype == np.uint64 and idx.flags.writeable and idx.flags.c_contiguous:
        return idx.view(np.int64)
    return np.array(idx, dtype=np.int64)


_START_IS_REORDERED: bool | None = None


def _start_index(cloud: np.ndarray, h: int) -> int:
    """The ``start_idx`` that makes fpsample's bucket FPS start at row 0 (see :func:`_kdline_position`)."""
    global _START_IS_REORDERED
    if _START_IS_REORDERED is None:  # does this fpsample read start_idx after reordering? Ask once.
        import fpsample

        probe = np.random.default_rng(0).random((64, 3)).astype(np.float32)
        first = int(fpsample.bucket_fps_kdline_sampling(probe, 1, h=3, start_idx=0)[0])
        _START_IS_REORDERED = first != 0
    return _kdline_position(cloud, h) if _START_IS_REORDERED else 0


def _warn_fallback() -> None:
    import logging

    logging.getLogger(__name__).warning(
        "fpsample's bucket FPS did not start at the requested point; using its exact O(N*M) FPS instead")


def fps_cluster(pos: Tensor, batch: Tensor | None, ratio: float) -> Tensor:
    """Farthest point sampling with torch-cluster (``random_start=False``), on the input's device.

    Same arguments, result and semantics as :func:`fps_reference`. On CPU it is O(N·M): prefer :func:`fps`.
    """
    _check(pos, batch, ratio)
    import torch_cluster

    if pos.size(0) == 0:
        return torch.empty(0, dtype=torch.long, device=pos.device)
    if batch is None:
        batch = torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
    # torch-cluster computes ceil(ratio * n) in float32 itself; ask for the exact count per cloud instead, so that
    # it agrees with num_samples() whatever the rounding.
    out = []
    for start, end in _cloud_slices(batch, pos.size(0)):
        n = end - start
        m = num_samples(n, ratio)
        if m == 1:
            out.append(torch.tensor([start], dtype=torch.long, device=pos.device))
            continue
        # A ratio a hair above m/n makes torch-cluster's ceil land on m (and never on m + 1 while m < n).
        r = min(1.0, (m - 0.5) / n)
        idx = torch_cluster.fps(pos[start:end].detach(), None, ratio=r, random_start=False)
        if idx.numel() != m:  # pragma: no cover - a guard against a change in torch-cluster's rounding
            raise RuntimeError(f"torch_cluster.fps returned {idx.numel()} samples, expected {m}")
        out.append(idx + start)
    return torch.cat(out)


def fps(pos: Tensor, batch: Tensor | None, ratio: float) -> Tensor:
    """Farthest point sampling of every cloud in a batch, with fpsample's bucket FPS on the host.

    A CUDA ``pos`` is copied to the host (12 bytes a point) and the indices are copied back: on an H200 that beat
    torch-cluster's CUDA FPS (:func:`fps_cluster` keeps it) on every cloud tried, by 45x on 100k points and by
    4.45x on the whole training step of 8 crops.

    Args:
        pos: (N, 3) float, point coordinates.
        batch: (N,) long, sorted cloud index of every point, or None for a single cloud.
        ratio: fraction of each cloud to keep, in (0, 1]; a cloud of n points keeps ``ceil(ratio * n)`` (>= 1).

    Returns:
        (M,) long global indices into ``pos`` on ``pos.device``, cloud after cloud, each cloud's in selection
        order, starting from the cloud's first point.

    Example:
        >>> idx = fps(coord, batch, 0.25)
        >>> coord_down, batch_down = coord[idx], batch[idx]
    """
    _check(pos, batch, ratio)
    # one copy of the whole batch to the host as float32 (a no-op for a contiguous float32 CPU pos), not one per cloud
    points = pos.detach().to(device="cpu", dtype=torch.float32).contiguous()
    idx = _fps_fpsample(points, None if batch is None else batch.cpu(), ratio)
    return idx.to(pos.device)

"""Neighbour queries and k-NN interpolation against brute-force references."""

import torch

from concerto3d.ops import knn, knn_interpolate, radius
from concerto3d.ops.neighbors import shuffle_keys


def _brute_knn_interpolate(x, pos_x, pos_y, batch_x, batch_y, k):
    out = torch.zeros(pos_y.size(0), x.size(1), dtype=torch.float64)
    for i in range(pos_y.size(0)):
        same = (batch_x == batch_y[i]).nonzero().flatten()
        d2 = ((pos_x[same] - pos_y[i]) ** 2).sum(dim=1).double()
        order = torch.argsort(d2)[:k]
        w = 1.0 / d2[order].clamp_min(1e-16)
        out[i] = (w[:, None] * x[same[order]].double()).sum(0) / w.sum()
    return out


def test_knn_interpolate_matches_brute_force_and_passes_gradients():
    g = torch.Generator().manual_seed(0)
    pos_x = torch.rand(40, 3, generator=g)
    pos_y = torch.rand(25, 3, generator=g)
    batch_x = torch.repeat_interleave(torch.arange(2), torch.tensor([15, 25]))
    batch_y = torch.repeat_interleave(torch.arange(2), torch.tensor([10, 15]))
    x = torch.randn(40, 5, generator=g, requires_grad=True)
    got = knn_interpolate(x, pos_x, pos_y, batch_x, batch_y, k=3)
    expected = _brute_knn_interpolate(x.detach(), pos_x, pos_y, batch_x, batch_y, 3)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    got.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert x.grad[:15].abs().sum() > 0 and x.grad[15:].abs().sum() > 0


def test_knn_interpolate_with_fewer_than_k_source_points_in_a_cloud():
    g = torch.Generator().manual_seed(3)
    pos_x, pos_y = torch.rand(12, 3, generator=g), torch.rand(9, 3, generator=g)
    batch_x = torch.tensor([0, 0] + [1] * 10)  # cloud 0 has 2 source points, k = 3
    batch_y = torch.tensor([0] * 4 + [1] * 5)
    x = torch.randn(12, 4, generator=g)
    got = knn_interpolate(x, pos_x, pos_y, batch_x, batch_y, k=3)
    expected = _brute_knn_interpolate(x, pos_x, pos_y, batch_x, batch_y, 3)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_knn_interpolate_at_a_source_point_returns_its_feature():
    pos_x = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    x = torch.tensor([[1.0], [2.0], [3.0]])
    got = knn_interpolate(x, pos_x, pos_x[1:2], k=3)
    torch.testing.assert_close(got, torch.tensor([[2.0]]))


def test_radius_finds_exactly_the_points_within_r_of_the_same_cloud():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(60, 3, generator=g)
    y = x[::5].contiguous()
    batch_x = (torch.arange(60) >= 30).long()
    batch_y = batch_x[::5].contiguous()
    row, col = radius(x, y, 0.3, batch_x, batch_y, max_num_neighbors=100)
    got = set(zip(row.tolist(), col.tolist()))
    d = torch.cdist(y, x)
    expected = {(i, j) for i in range(y.size(0)) for j in range(60)
                if d[i, j] <= 0.3 and batch_y[i] == batch_x[j]}
    # Points right at the boundary may go either way; none of these random distances is that close.
    assert got == expected
    assert all((i, 5 * i) in got for i in range(y.size(0)))  # every query finds itself


def test_knn_returns_the_k_nearest_per_query():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(30, 3, generator=g)
    y = torch.rand(4, 3, generator=g)
    row, col = knn(x, y, 5)
    for i in range(4):
        assert set(col[row == i].tolist()) == set(torch.cdist(y[i:i + 1], x)[0].argsort()[:5].tolist())


def _grid_in_voxel_order(side: int, spacing: float) -> torch.Tensor:
    """A side^3 grid of points stored x-major, the order a voxel-downsampled scan has."""
    i = torch.arange(side, dtype=torch.float32) * spacing
    return torch.cartesian_prod(i, i, i)


def _capped_reference(x, y, r, batch_x, batch_y, cap):
    """Brute force: each query's points within r (same cloud), the `cap` with the smallest shuffle keys."""
    keys = shuffle_keys(x.size(0))
    d = torch.cdist(y, x)
    out = set()
    for i in range(y.size(0)):
        ball = ((d[i] <= r) & (batch_x == batch_y[i])).nonzero().flatten()
        out |= {(i, int(j)) for j in ball[keys[ball].argsort()[:cap]]}
    return out


def _first_in_memory_order(x, y, r, batch_x=None, batch_y=None, max_num_neighbors=32):
    """What torch-cluster's CUDA kernel does, on the CPU: per query, the first hits in x's memory order."""
    bx = torch.zeros(x.size(0), dtype=torch.long) if batch_x is None else batch_x
    by = torch.zeros(y.size(0), dtype=torch.long) if batch_y is None else batch_y
    d = torch.cdist(y, x)
    rows, cols = [], []
    for i in range(y.size(0)):
        hits = ((d[i] < r) & (bx == by[i])).nonzero().flatten()[:max_num_neighbors]
        rows += [i] * hits.numel()
        cols += hits.tolist()
    return torch.tensor([rows, cols], dtype=torch.long)


def _fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finaliser, in plain Python integers."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def test_shuffle_keys_are_fmix32_of_the_row_distinct_and_the_same_on_every_call():
    keys = shuffle_keys(100_000)
    assert keys.unique().numel() == 100_000 and int(keys.min()) >= 0 and int(keys.max()) < 2**32
    rows = [0, 1, 2, 71, 72, 5184, 65_535, 65_536, 99_999]
    assert [int(keys[i]) for i in rows] == [_fmix32(i) for i in rows]
    assert torch.equal(keys[:10], shuffle_keys(10))
    # neighbouring rows land far apart: the order they give is not the memory order
    assert float(torch.corrcoef(torch.stack([keys[:1000].double(), torch.arange(1000.0)]))[0, 1]) ** 2 < 0.01


def test_a_capped_radius_keeps_the_smallest_keys_of_the_ball_in_two_clouds():
    x = torch.cat([_grid_in_voxel_order(9, 0.02), _grid_in_voxel_order(8, 0.02) + 5.0])
    batch_x = torch.repeat_interleave(torch.arange(2), torch.tensor([729, 512]))
    y = x[::37].contiguous()
    batch_y = batch_x[::37].contiguous()
    row, col = radius(x, y, 0.05, batch_x, batch_y, max_num_neighbors=16)
    got = set(zip(row.tolist(), col.tolist()))
    assert got == _capped_reference(x, y, 0.05, batch_x, batch_y, 16)
    assert int(torch.bincount(row).max()) == 16  # the cap bound: interior balls hold 81 grid points


def test_the_cuda_path_keeps_the_same_neighbours_as_the_cpu_path():
    # torch-cluster's CUDA kernel keeps the first hits in memory order; handed x in key order, it must keep what
    # the CPU path keeps (emulated here, so that the test runs without a GPU).
    x = torch.cat([_grid_in_voxel_order(10, 0.02), _grid_in_voxel_order(7, 0.03)])
    batch_x = torch.repeat_interleave(torch.arange(2), torch.tensor([1000, 343]))
    y, batch_y = x[::11].contiguous(), batch_x[::11].contiguous()
    cpu = radius(x, y, 0.061, batch_x, batch_y, max_num_neighbors=20)
    from concerto3d.ops.neighbors import _radius_in_key_order

    emulated = _radius_in_key_order(_first_in_memory_order, x, y, 0.061, batch_x, batch_y, 20)
    assert set(zip(*cpu.tolist())) == set(zip(*emulated.tolist()))


def test_a_full_ball_keeps_neighbours_from_every_side_of_it():
    x = _grid_in_voxel_order(21, 0.01)  # 20 cm cube, 1 cm spacing, stored x-major
    centre = torch.tensor([[0.1, 0.1, 0.1]])
    row, col = radius(x, centre, 0.1, max_num_neighbors=32)  # ~4000 points in the ball, keep 32
    offset = (x[col] - centre).mean(dim=0)
    assert col.numel() == 32
    assert float(offset.abs().max()) < 0.03, offset  # centred within a third of the radius
    # spread over the ball (a uniform sample's mean distance is 3/4 r), not one clump near the centre, which is
    # what torch-cluster's k-d tree walk on CPU keeps (mean distance ~0.36 r here)
    assert float((x[col] - centre).norm(dim=1).mean()) > 0.6 * 0.1
    # keeping the first hits in memory order (torch-cluster on CUDA) takes the ball's low-x cap alone
    first = _first_in_memory_order(x, centre, 0.1, max_num_neighbors=32)[1]
    assert float((x[first] - centre).mean(dim=0)[0]) < -0.08

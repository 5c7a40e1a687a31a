"""Neighbour queries and k-NN interpolation against brute-force references."""

import torch

from concerto3d.ops import knn, knn_interpolate, radius, radius_table


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


def test_knn_interpolate_table_path_equals_gather_multiply_sum_with_gradients():
    """Every query finds k points: the embedding_bag path against the (M * k, C) gather it replaced."""
    g = torch.Generator().manual_seed(7)
    pos_x, pos_y = torch.rand(300, 3, generator=g), torch.rand(700, 3, generator=g)
    batch_x = torch.repeat_interleave(torch.arange(2), torch.tensor([120, 180]))
    batch_y = torch.repeat_interleave(torch.arange(2), torch.tensor([300, 400]))
    x = torch.randn(300, 6, generator=g, requires_grad=True)
    upstream = torch.randn(700, 6, generator=g)
    (got_grad,) = torch.autograd.grad((knn_interpolate(x, pos_x, pos_y, batch_x, batch_y, k=3) * upstream).sum(), x)
    got = knn_interpolate(x, pos_x, pos_y, batch_x, batch_y, k=3)
    y_idx, x_idx = knn(pos_x, pos_y, 3, batch_x, batch_y)
    w = 1.0 / ((pos_x[x_idx] - pos_y[y_idx]) ** 2).sum(dim=1).clamp_min(1e-16)
    w = (w.view(700, 3) / w.view(700, 3).sum(dim=1, keepdim=True)).view(-1, 1)
    expected = (x.index_select(0, x_idx) * w).view(700, 3, 6).sum(dim=1)
    (expected_grad,) = torch.autograd.grad((expected * upstream).sum(), x)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_grad, expected_grad, rtol=1e-5, atol=1e-6)


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


def _nearest_within_reference(x, y, r, batch_x, batch_y, cap):
    """Brute force: each query's points within r (same cloud), the `cap` nearest of them."""
    d = torch.cdist(y.double(), x.double())
    out = set()
    for i in range(y.size(0)):
        ball = ((d[i] < r) & (batch_x == batch_y[i])).nonzero().flatten()
        out |= {(i, int(j)) for j in ball[d[i, ball].argsort()[:cap]]}
    return out


def _sorted_by_x(points):
    """Points in x-major order, the order a voxel-downsampled scan is stored in."""
    return points[points[:, 0].argsort()]


def test_a_capped_radius_keeps_the_nearest_points_of_each_ball_in_two_clouds():
    g = torch.Generator().manual_seed(4)
    x = torch.cat([_sorted_by_x(torch.rand(900, 3, generator=g) * 0.3),
                   _sorted_by_x(torch.rand(500, 3, generator=g) * 0.3) + 5.0])
    batch_x = torch.repeat_interleave(torch.arange(2), torch.tensor([900, 500]))
    y, batch_y = x[::23].contiguous(), batch_x[::23].contiguous()
    row, col = radius(x, y, 0.08, batch_x, batch_y, max_num_neighbors=16)
    assert set(zip(row.tolist(), col.tolist())) == _nearest_within_reference(x, y, 0.08, batch_x, batch_y, 16)
    assert int(torch.bincount(row).max()) == 16  # the cap binds: interior balls hold ~70 points
    assert bool((row[1:] >= row[:-1]).all())  # grouped by query point


def test_a_full_ball_keeps_its_nearest_points_on_every_side_of_the_centre():
    g = torch.Generator().manual_seed(5)
    x = _sorted_by_x(torch.rand(20_000, 3, generator=g) * 0.2)  # ~2,000 points in the ball, stored x-major
    centre = torch.tensor([[0.1, 0.1, 0.1]])
    row, col = radius(x, centre, 0.1, max_num_neighbors=32)
    d = (x - centre).norm(dim=1)
    assert set(col.tolist()) == set(d.argsort()[:32].tolist())
    # centred (torch-cluster's capped query on CUDA, first hits in memory order, keeps the ball's low-x side)
    assert float((x[col] - centre).mean(dim=0).abs().max()) < 0.3 * float(d[col].max())


def test_radius_table_holds_the_radius_neighbours_row_by_row_padded_with_the_first():
    g = torch.Generator().manual_seed(6)
    x = torch.cat([torch.rand(300, 3, generator=g), torch.rand(200, 3, generator=g) * 0.5 + 3.0])
    batch_x = torch.repeat_interleave(torch.arange(2), torch.tensor([300, 200]))
    y, batch_y = x[::7].contiguous(), batch_x[::7].contiguous()
    y[::5] += 10.0  # some queries far from every point: no neighbour at all
    row, col = radius(x, y, 0.15, batch_x, batch_y, max_num_neighbors=12)
    table, counts = radius_table(x, y, 0.15, batch_x, batch_y, max_num_neighbors=12)
    assert table.shape == (y.size(0), 12) and counts.tolist() == torch.bincount(row, minlength=y.size(0)).tolist()
    assert 0 < int((counts == 12).sum()) < y.size(0) and int((counts == 0).sum()) > 0  # full, partial and empty rows
    # as wide as the fullest ball, not as the cap
    wide, wide_counts = radius_table(x, y, 0.15, batch_x, batch_y, max_num_neighbors=200)
    assert wide.shape[1] == int(wide_counts.max()) < 200
    for i in range(y.size(0)):
        mine = col[row == i].tolist()
        assert table[i, :len(mine)].tolist() == mine
        assert table[i, len(mine):].tolist() == [mine[0] if mine else 0] * (12 - len(mine))

"""Fast paths of concerto3d.ops held to their references."""

import numpy as np
import pytest
import torch

from concerto3d import ops
from concerto3d.ops import sampling


@pytest.mark.parametrize("n, h", [(50, 1), (700, 3), (5000, 5), (20000, 7)])
def test_kdline_replay_names_the_position_fpsample_starts_from(n, h):
    """The replay of fpsample's tree build puts any target row where fpsample reads its start point."""
    fpsample = pytest.importorskip("fpsample")
    rng = np.random.default_rng(n)
    cloud = rng.random((n, 3)).astype(np.float32)
    cloud[: n // 3, 2] = 0.25  # a flat part and repeated values: ties in the partition
    sampling._start_index(cloud, h)  # asks fpsample once how it reads start_idx
    if not sampling._START_IS_REORDERED:
        pytest.skip("this fpsample reads start_idx as an input row; no replay needed")
    for target in [0, n - 1, *rng.integers(0, n, 3).tolist()]:
        start = sampling._kdline_position(cloud, h, target)
        assert int(fpsample.bucket_fps_kdline_sampling(cloud, 1, h=h, start_idx=start)[0]) == target


def _quickfps_position(cloud, h, target):
    """Slow reference for the replay: quickfps's tree build (``divideTree``, ``planeSplit``, ``qSelectMedian``,
    ``findSplitDim``) point by point in float32 scalars, along the branch that holds row ``target``."""
    pts = [(tuple(np.float32(v) for v in row), i) for i, row in enumerate(cloud)]
    left, right = 0, len(pts)
    for _ in range(h):
        count = right - left
        if count == 1:
            break
        best, dim = np.float32(0), 0
        for d in range(3):
            span = max(p[0][d] for p in pts[left:right]) - min(p[0][d] for p in pts[left:right])
            if span > best:
                best, dim = span, d
        total = np.float32(0)
        for p in pts[left:right]:
            total = np.float32(total + p[0][dim])
        split = np.float32(total / np.float32(count))
        start, end = left, right - 1
        while True:
            while start <= end and pts[start][0][dim] < split:
                start += 1
            while start <= end and pts[end][0][dim] >= split:
                end -= 1
            if start > end:
                break
            pts[start], pts[end] = pts[end], pts[start]
            start, end = start + 1, end - 1
        n_left = 1 if start == left else count - 1 if start == right else start - left
        where = next(k for k in range(left, right) if pts[k][1] == target)
        left, right = (left, left + n_left) if where < left + n_left else (left + n_left, right)
    return next(k for k in range(left, right) if pts[k][1] == target)


def _degenerate_clouds():
    rng = np.random.default_rng(7)
    rand = rng.random((600, 3)).astype(np.float32)
    dup = rand.copy()
    dup[::2] = dup[0]  # half the points on top of the first one
    line = np.zeros((300, 3), np.float32)
    line[:, 0] = rng.integers(0, 3, 300)  # collinear, three values: every split has ties
    grid = (rng.integers(0, 4, (500, 3)) / 4).astype(np.float32)  # a lattice: ties in every dimension
    flat = rand.copy()
    flat[:, 2] = 0.25
    flat[::3, 0] = 0.5
    # x within 2 ulp of 0.1: the float32 mean rounds above the maximum, so quickfps splits off the last point alone
    # and the 12 left then split for real
    above = np.full((13, 3), 0.1, np.float32)
    below1 = np.nextafter(np.float32(0.1), np.float32(0))
    above[0, 0] = below1
    above[[3, 10], 0] = np.nextafter(below1, np.float32(0))
    assert np.add.accumulate(above[:, 0])[-1] / np.float32(13) > above[:, 0].max()
    return {"random": (rand, 5), "duplicates": (dup, 5), "collinear": (line, 5), "grid": (grid, 5),
            "flat": (flat, 3), "identical": (np.ones((64, 3), np.float32), 4),
            "mean_above_max": (above, 3),
            "two": (rand[:2], 1), "three": (rand[:3], 1), "leaves_of_one": (rand[:8], 3),
            "far_from_origin": (rand * 1e-3 + np.float32(1000.0), 5)}


@pytest.mark.parametrize("name", list(_degenerate_clouds()))
def test_kdline_replay_equals_the_point_by_point_build_on_degenerate_clouds(name):
    fpsample = pytest.importorskip("fpsample")
    cloud, h = _degenerate_clouds()[name]
    n = len(cloud)
    for target in sorted({0, 1, n // 2, n - 1}):
        expected = _quickfps_position(cloud, h, target)
        position = sampling._kdline_position(cloud, h, target)
        assert position == expected and type(position) is int  # fpsample takes a Python int only
        sampling._start_index(cloud, h)  # asks fpsample once how it reads start_idx
        if sampling._START_IS_REORDERED:
            assert int(fpsample.bucket_fps_kdline_sampling(cloud, 1, h=h, start_idx=expected)[0]) == target


@pytest.mark.parametrize("name", ["random", "duplicates", "collinear", "grid", "flat", "identical",
                                  "mean_above_max"])
def test_fps_on_degenerate_clouds_is_fpsample_started_at_the_first_point(name):
    """Ties go wherever fpsample sends them; ops.fps must make exactly the call that starts at row 0."""
    fpsample = pytest.importorskip("fpsample")
    cloud, _ = _degenerate_clouds()[name]
    n, ratio = len(cloud), 0.25
    m, h = ops.num_samples(n, ratio), sampling._bucket_height(n)
    start = _quickfps_position(cloud, h, 0) if sampling._START_IS_REORDERED else 0
    expected = fpsample.bucket_fps_kdline_sampling(cloud, m, h=h, start_idx=start).astype(np.int64)
    got = ops.fps(torch.from_numpy(cloud), None, ratio)
    assert got[0] == 0 and got.dtype == torch.long
    assert got.tolist() == expected.tolist()


def test_fps_batch_of_float64_strided_clouds_equals_float32_calls_one_cloud_at_a_time():
    g = torch.Generator().manual_seed(11)
    sizes = [1, 400, 2, 900, 37]
    wide = torch.rand(sum(sizes), 5, dtype=torch.float64, generator=g)
    pos = wide[:, 1:4]  # float64 and not contiguous: converted once for the whole batch
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    got = ops.fps(pos, batch, 0.3)
    expected, start = [], 0
    for n in sizes:
        one = ops.fps(pos[start:start + n].to(torch.float32).contiguous(), None, 0.3)
        expected.append(one + start)
        start += n
    assert torch.equal(got, torch.cat(expected))
    assert torch.equal(got, ops.fps_reference(pos.float(), batch, 0.3))
    got += 1  # the result is the caller's: writable, and sharing nothing with a later call
    assert torch.equal(ops.fps(pos, batch, 0.3), torch.cat(expected))


def test_fps_falls_back_to_exact_fps_when_fpsample_does_not_start_at_the_first_point(monkeypatch, caplog):
    pytest.importorskip("fpsample")
    pos = torch.rand(500, 3, generator=torch.Generator().manual_seed(12))
    sampling._start_index(pos.numpy(), 3)
    monkeypatch.setattr(sampling, "_START_IS_REORDERED", True)
    replay = sampling._kdline_position
    monkeypatch.setattr(sampling, "_kdline_position", lambda cloud, h, target=0: replay(cloud, h, 1))  # row 1
    with caplog.at_level("WARNING"):
        got = ops.fps(pos, None, 0.1)
    assert "did not start" in caplog.text
    assert torch.equal(got, ops.fps_reference(pos, None, 0.1))


def test_fps_equals_reference_on_an_indoor_like_batch():
    rng = np.random.default_rng(0)
    pos = torch.from_numpy(rng.random((3000, 3)).astype(np.float32) * [4, 4, 0.01])
    batch = torch.tensor([0] * 1000 + [1] * 2000)
    assert torch.equal(ops.fps(pos, batch, 0.1), ops.fps_reference(pos, batch, 0.1))


def test_pool_to_patches_gradient_equals_dense_averaging():
    torch.manual_seed(0)
    feat = torch.randn(20, 4, requires_grad=True)
    point = torch.tensor([0, 3, 3, 7, 19, 7])
    key = torch.tensor([5, 2, 5, 2, 9, 9])
    keys, pooled = ops.pool_to_patches(feat, point, key)
    weights = torch.stack([(key == k).float() / (key == k).sum() for k in keys])  # (P, M) averaging matrix
    expected = weights @ feat[point]
    torch.testing.assert_close(pooled, expected)
    (g,) = torch.autograd.grad(pooled.square().sum(), feat)
    (g_ref,) = torch.autograd.grad(expected.square().sum(), feat)
    torch.testing.assert_close(g, g_ref)

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

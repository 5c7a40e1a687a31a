"""Farthest point sampling: the fast paths (fpsample on CPU, torch-cluster) against the brute-force reference."""

import pytest
import torch

from concerto3d.ops import fps, fps_cluster, fps_reference, num_samples


def _batch(sizes):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


@pytest.mark.parametrize("impl", [fps, fps_cluster], ids=["fpsample", "torch_cluster"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_fps_matches_reference_on_random_batches(impl, seed):
    g = torch.Generator().manual_seed(seed)
    sizes = [700, 1, 333, 1500]
    pos = torch.rand(sum(sizes), 3, generator=g) * torch.tensor([4.0, 3.0, 2.5])
    batch = _batch(sizes)
    expected = fps_reference(pos, batch, 0.25)
    got = impl(pos, batch, 0.25)
    assert got.dtype == torch.long
    assert torch.equal(got, expected)


def test_fps_on_flat_and_large_clouds_starts_at_the_first_point_and_matches_reference():
    # A floor (zero extent in z) and a cloud big enough for a deeper fpsample tree (h = 5).
    g = torch.Generator().manual_seed(5)
    floor = torch.cat([torch.rand(900, 2, generator=g), torch.zeros(900, 1)], dim=1)
    big = torch.rand(5000, 3, generator=g)
    for pos, ratio in [(floor, 0.3), (big, 0.05)]:
        got = fps(pos, None, ratio)
        assert got[0] == 0
        assert torch.equal(got, fps_reference(pos, None, ratio))


def test_reference_selects_farthest_points_in_order_and_starts_at_first_point():
    # On a line the farthest point from 0 is the end, then the middle.
    pos = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [4, 0, 0], [10, 0, 0]])
    assert fps_reference(pos, None, 0.6).tolist() == [0, 4, 3]  # 3 = ceil(0.6 * 5) points


def test_global_indices_grouped_per_cloud_and_counts_are_ceil_of_ratio():
    sizes = [10, 30, 7]
    pos = torch.randn(sum(sizes), 3, generator=torch.Generator().manual_seed(3))
    batch = _batch(sizes)
    idx = fps(pos, batch, 0.1)
    # 0.1 * 30 is 3.0000000000000004 in floating point: still 3 samples, not 4.
    assert torch.bincount(batch[idx]).tolist() == [1, 3, 1]
    assert batch[idx].tolist() == sorted(batch[idx].tolist())
    assert idx[0] == 0 and idx[1] == 10 and idx[4] == 40  # each cloud starts at its first point


@pytest.mark.parametrize("impl", [fps, fps_cluster, fps_reference])
def test_ratio_one_keeps_every_point_once_and_tiny_ratio_keeps_one(impl):
    sizes = [50, 9]
    pos = torch.rand(sum(sizes), 3, generator=torch.Generator().manual_seed(4))
    batch = _batch(sizes)
    everything = impl(pos, batch, 1.0)
    assert sorted(everything.tolist()) == list(range(59))
    assert impl(pos, batch, 1e-6).tolist() == [0, 50]


def test_num_samples_edges():
    assert num_samples(1, 0.25) == 1
    assert num_samples(8192, 0.25) == 2048
    assert num_samples(10, 0.3) == 3
    assert num_samples(5, 1.0) == 5


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5])
def test_bad_ratio_is_rejected(ratio):
    with pytest.raises(ValueError, match="ratio"):
        fps(torch.rand(10, 3), None, ratio)


def test_unsorted_batch_and_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="sorted"):
        fps(torch.rand(4, 3), torch.tensor([0, 1, 0, 1]), 0.5)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        fps(torch.rand(4, 2), None, 0.5)
    with pytest.raises(ValueError, match="batch"):
        fps(torch.rand(4, 3), torch.zeros(3, dtype=torch.long), 0.5)


def test_fps_matches_reference_on_generated_batches():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
    @hypothesis.given(sizes=st.lists(st.integers(1, 60), min_size=1, max_size=4),
                      ratio=st.floats(0.01, 1.0), seed=st.integers(0, 2**16))
    def check(sizes, ratio, seed):
        pos = torch.rand(sum(sizes), 3, generator=torch.Generator().manual_seed(seed))
        batch = _batch(sizes)
        expected = fps_reference(pos, batch, ratio)
        assert torch.bincount(batch[expected], minlength=len(sizes)).tolist() == [num_samples(n, ratio)
                                                                                  for n in sizes]
        assert torch.equal(fps(pos, batch, ratio), expected)

    check()

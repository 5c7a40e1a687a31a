"""The set abstraction's dense-table path (models/grouped_mlp.py) gives the numbers of PyG's PointNetConv."""

import copy

import pytest
import torch
from torch import nn

from concerto3d import ops
from concerto3d.models import point_encoder
from concerto3d.models.grouped_mlp import grouped_mlp_max, supports_grouped_mlp
from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig, SetAbstraction, mlp

TINY = dict(ratios=(0.5, 0.25), radii=(0.25, 0.5), max_neighbors=8, sa_channels=(8, 16), global_channels=16,
            fp_channels=(12,), out_channels=10)


def _clouds(sizes, in_channels, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    coord = (torch.rand(sum(sizes), 3, generator=g) * 2.0).to(dtype)
    feat = torch.cat([coord, (torch.rand(sum(sizes), in_channels - 3, generator=g) * 2 - 1).to(dtype)], dim=1)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return coord, feat, batch


def _run(module, inputs, out_of, seed=1):
    """Outputs, and the gradients of every parameter and floating input, of a fixed random linear loss."""
    inputs = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out = out_of(module(*inputs))
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    leaves = [t for t in inputs if t.requires_grad] + list(module.parameters())
    grads = torch.autograd.grad((out * weights).sum(), leaves, allow_unused=True)  # scene_feat skips the way up
    return out.detach(), [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_set_abstraction_equals_pointnetconv_in_float64(layers, monkeypatch):
    monkeypatch.setattr(point_encoder, "_MIN_TABLE_FILL", 0.0)  # the table however sparse
    torch.manual_seed(0)
    fast = SetAbstraction(6, 16, 0.25, 0.3, 8, layers).double()
    ref = copy.deepcopy(fast)
    ref.fast = False
    coord, _, batch = _clouds([150, 90], 6, torch.float64)
    coord = coord * 0.5  # 1 m cubes: most balls hold 8 or more points, those at the corners fewer
    x = torch.randn(240, 6, dtype=torch.float64)
    idx = ops.fps(coord, batch, 0.25)
    counts = ops.radius_table(coord, coord[idx], 0.3, batch, batch[idx], 8)[1]
    assert 1 <= int(counts.min()) < 8 == int(counts.max())  # the table is padded in some rows, full in others
    out_f, grads_f = _run(fast, (x, coord, batch), lambda o: o[0])
    out_r, grads_r = _run(ref, (x, coord, batch), lambda o: o[0])
    torch.testing.assert_close(out_f, out_r, rtol=1e-10, atol=1e-12)
    for a, b in zip(grads_f, grads_r):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_point_encoder_fast_paths_equal_the_written_out_forms_in_float32(monkeypatch):
    monkeypatch.setattr(point_encoder, "_MIN_TABLE_FILL", 0.0)
    torch.manual_seed(0)
    cfg = PointEncoderConfig(**TINY)
    fast = PointEncoder(cfg)
    ref = copy.deepcopy(fast)
    for stage in [*ref.down, *ref.up]:  # PyG's PointNetConv; interpolation, concatenation, then the MLP
        stage.fast = False
    coord, feat, batch = _clouds([160, 120], cfg.in_channels)
    for out_of in (lambda o: o.point_feat, lambda o: o.scene_feat):
        out_f, grads_f = _run(fast, (coord, feat, batch), out_of)
        out_r, grads_r = _run(ref, (coord, feat, batch), out_of)
        torch.testing.assert_close(out_f, out_r, rtol=1e-4, atol=1e-5)
        assert sum(float(g.abs().sum()) for g in grads_r) > 0
        for a, b in zip(grads_f, grads_r):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_no_grad_and_autograd_paths_give_the_same_features():
    torch.manual_seed(0)
    local_nn = mlp([9, 16, 16, 16])
    x, pos = torch.randn(100, 6), torch.rand(100, 3)
    table = ops.radius_table(pos, pos[:30], 0.4, max_num_neighbors=6)[0]
    with torch.no_grad():
        plain = grouped_mlp_max(local_nn, x, pos, pos[:30], table)
    fused = grouped_mlp_max(local_nn, x.requires_grad_(), pos, pos[:30], table)
    assert fused.requires_grad
    torch.testing.assert_close(fused.detach(), plain, rtol=0, atol=0)


def test_a_second_backward_through_the_same_graph_is_refused():
    local_nn = mlp([6, 8, 8])
    x, pos = torch.randn(40, 3, requires_grad=True), torch.rand(40, 3)
    table = ops.radius_table(pos, pos[:10], 0.5, max_num_neighbors=4)[0]
    loss = grouped_mlp_max(local_nn, x, pos, pos[:10], table).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()


def test_only_linear_layernorm_relu_stacks_take_the_fast_path():
    assert supports_grouped_mlp(mlp([6, 8, 8]))
    assert not supports_grouped_mlp(mlp([6, 8, 8], plain_last=True))
    assert not supports_grouped_mlp(nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU()))
    sa = SetAbstraction(3, 8, 0.5, 0.5, 4, 1)
    sa.conv.local_nn = nn.Sequential(nn.Linear(6, 8), nn.ReLU())  # anything else runs PyG's PointNetConv
    coord, feat, batch = _clouds([40], 6)
    ref = copy.deepcopy(sa)
    ref.fast = False
    torch.testing.assert_close(sa(feat[:, 3:], coord, batch)[0], ref(feat[:, 3:], coord, batch)[0])


def test_feature_propagation_first_layer_before_interpolation_equals_after_in_float64():
    torch.manual_seed(0)
    cfg = PointEncoderConfig(**TINY)
    fast = PointEncoder(cfg).double()
    ref = copy.deepcopy(fast)
    for stage in ref.up:
        stage.fast = False
    coord, feat, batch = _clouds([160, 120], cfg.in_channels, torch.float64)
    out_f, grads_f = _run(fast, (coord, feat, batch), lambda o: o.point_feat)
    out_r, grads_r = _run(ref, (coord, feat, batch), lambda o: o.point_feat)
    torch.testing.assert_close(out_f, out_r, rtol=1e-10, atol=1e-12)
    for a, b in zip(grads_f, grads_r):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_sparse_balls_take_pyg_edge_list_rebuilt_from_the_table(monkeypatch):
    """Below the fill threshold the table's neighbours go to PointNetConv as the edge list ops.radius gives."""
    torch.manual_seed(0)
    fast = SetAbstraction(6, 16, 0.25, 0.3, 8, 2)
    ref = copy.deepcopy(fast)
    ref.fast = False
    coord, _, batch = _clouds([150, 90], 6)
    x = torch.randn(240, 6)
    called = []
    monkeypatch.setattr(point_encoder, "grouped_mlp_max", lambda *a: called.append(1))
    monkeypatch.setattr(point_encoder, "_MIN_TABLE_FILL", 1.01)  # never dense
    out_f, grads_f = _run(fast, (x, coord, batch), lambda o: o[0])
    out_r, grads_r = _run(ref, (x, coord, batch), lambda o: o[0])
    assert not called
    torch.testing.assert_close(out_f, out_r, rtol=0, atol=0)
    for a, b in zip(grads_f, grads_r):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

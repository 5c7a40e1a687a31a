"""Cross-modal losses against independent reference formulas."""

import math

import pytest
import torch

from concerto3d.objectives import cosine_prediction, dense_info_nce, info_nce


def _info_nce_loop(a, b, t):
    """Symmetric InfoNCE as a Python double loop over rows (cosine similarities)."""
    n = a.size(0)
    cos = [[float(torch.dot(a[i], b[j]) / (a[i].norm() * b[j].norm())) for j in range(n)] for i in range(n)]
    a_to_b = -sum(cos[i][i] / t - math.log(sum(math.exp(cos[i][j] / t) for j in range(n))) for i in range(n)) / n
    b_to_a = -sum(cos[i][i] / t - math.log(sum(math.exp(cos[j][i] / t) for j in range(n))) for i in range(n)) / n
    return (a_to_b + b_to_a) / 2


def test_info_nce_matches_double_loop_and_has_gradients():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 5, generator=g, requires_grad=True)
    b = torch.randn(6, 5, generator=g)
    loss = info_nce(a, b, temperature=0.2)
    assert loss.item() == pytest.approx(_info_nce_loop(a.detach(), b, 0.2), rel=1e-5)
    loss.backward()
    assert a.grad.abs().sum() > 0


def test_info_nce_is_near_zero_for_perfectly_matched_orthogonal_pairs():
    e = torch.eye(4) * 3.0
    assert info_nce(e, e, 0.05).item() < 1e-6
    # Swapped partners make every positive a negative: a large loss.
    assert info_nce(e, e.flip(0), 0.05).item() > 10


def test_dense_info_nce_on_a_subset_equals_info_nce_on_those_rows():
    g = torch.Generator().manual_seed(1)
    p, q = torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g)
    assert dense_info_nce(p, q, 0.1).item() == pytest.approx(info_nce(p, q, 0.1).item())
    keep = torch.randperm(20, generator=torch.Generator().manual_seed(7))[:5]
    got = dense_info_nce(p, q, 0.1, max_negatives=5, generator=torch.Generator().manual_seed(7))
    assert got.item() == pytest.approx(info_nce(p[keep], q[keep], 0.1).item())


def test_cosine_prediction_values_and_detached_target():
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    target = torch.tensor([[2.0, 0.0], [1.0, 0.0]], requires_grad=True)
    loss = cosine_prediction(pred, target)
    assert loss.item() == pytest.approx((0.0 + 1.0) / 2)
    loss.backward()
    assert pred.grad is not None and target.grad is None


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="one shape"):
        info_nce(torch.randn(3, 4), torch.randn(3, 5))

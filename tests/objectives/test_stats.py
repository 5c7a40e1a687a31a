"""Collapse monitors against hand-computed values."""

import math

import pytest
import torch

from concerto3d.objectives import effective_rank, feature_std


def test_feature_std_hand_values():
    assert feature_std(torch.tensor([[2.0, 1.0], [4.0, 2.0], [1.0, 0.5]])).item() == pytest.approx(0.0, abs=1e-7)
    # Normalised rows (1, 0) and (0, 1): each dimension has values {1, 0}, std 0.5.
    assert feature_std(torch.tensor([[3.0, 0.0], [0.0, 0.5]])).item() == pytest.approx(0.5)


def test_effective_rank_hand_values():
    u, v = torch.randn(6, 1), torch.randn(1, 4)
    assert effective_rank(u @ v).item() == pytest.approx(1.0, rel=1e-6)
    assert effective_rank(torch.eye(5)).item() == pytest.approx(5.0, rel=1e-6)
    # Singular values (2, 1, 1): p = (1/2, 1/4, 1/4), H = 1.5 ln 2, exp(H) = 2 ** 1.5.
    assert effective_rank(torch.diag(torch.tensor([1.0, 2.0, 1.0, 0.0]))).item() == pytest.approx(2 ** 1.5, rel=1e-6)
    # Rotations change nothing.
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    d = torch.diag(torch.tensor([3.0, 1.0, 0.5, 0.1], dtype=torch.float64))
    s = torch.tensor([3.0, 1.0, 0.5, 0.1]) / 4.6
    assert effective_rank(q @ d).item() == pytest.approx(math.exp(-(s * s.log()).sum().item()), rel=1e-5)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="N >= 2"):
        feature_std(torch.randn(1, 3))
    with pytest.raises(ValueError, match="non-empty"):
        effective_rank(torch.randn(0, 3))

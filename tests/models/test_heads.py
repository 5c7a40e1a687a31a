"""Projection and prototype heads."""

import math

import pytest
import torch

from concerto3d.models.heads import ProjectionHead, PrototypeHead


def test_projection_head_is_linear_relu_linear():
    head = ProjectionHead(8, 16, 4)
    x = torch.randn(5, 8)
    first, _, last = head.net
    torch.testing.assert_close(head(x), last(torch.relu(first(x))))
    assert head(torch.randn(2, 3, 8)).shape == (2, 3, 4)
    assert ProjectionHead(8, 16).net[-1].out_features == 256


def test_prototype_head_gives_cosines_to_normalised_prototypes():
    head = PrototypeHead(8, hidden_dim=16, bottleneck_dim=6, num_prototypes=12, num_layers=2)
    x = torch.randn(7, 8, requires_grad=True)
    logits = head(x)
    assert logits.shape == (7, 12)
    assert logits.abs().max() <= 1.0 + 1e-5
    # Scaling the prototypes changes nothing: they are normalised (weight norm with the gain fixed to 1).
    with torch.no_grad():
        head.prototypes.mul_(3.0)
    torch.testing.assert_close(head(x), logits)
    head(x).sum().backward()
    assert head.prototypes.grad is not None and x.grad is not None


def test_batch_norm_head_ignores_a_shared_component_and_channel_scales():
    # What a randomly initialised point encoder gives: every point's feature is a large shared vector plus a small
    # point-specific part. The batch-normalised head sees only the point-specific part.
    torch.manual_seed(0)
    head = PrototypeHead(8, hidden_dim=16, bottleneck_dim=6, num_prototypes=12, num_layers=2, batch_norm=True)
    small = torch.randn(50, 8)
    shifted = 100.0 * torch.randn(1, 8) + small
    scaled = small * torch.linspace(0.5, 4.0, 8)
    torch.testing.assert_close(head(shifted), head(small), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(head(scaled), head(small), atol=1e-4, rtol=1e-4)
    head.eval()  # the same statistics in evaluation (no running averages): teacher and student behave alike
    torch.testing.assert_close(head(small), head.train()(small))
    with pytest.raises(ValueError, match="at least 2 rows"):
        head(torch.randn(1, 8))


def test_sinkhorn_targets_of_a_shared_component_are_uniform_without_batch_norm_only():
    # The finding behind batch_norm=True: features = shared vector + 2 % point-specific part. Without the norm the
    # cosines to the prototypes hardly differ between points and the balanced targets are close to uniform (the
    # teacher teaches nothing); with it they are not.
    from concerto3d.objectives import sinkhorn_knopp

    torch.manual_seed(0)
    feats = torch.randn(1, 96) + 0.02 * torch.randn(400, 96)

    def target_entropy(batch_norm):
        torch.manual_seed(1)
        head = PrototypeHead(96, hidden_dim=128, bottleneck_dim=64, num_prototypes=256, batch_norm=batch_norm)
        with torch.no_grad():
            q = sinkhorn_knopp(head(feats), teacher_temp=0.04)
        return float(-(q * q.clamp_min(1e-12).log()).sum(1).mean() / math.log(256))

    assert target_entropy(False) > 0.99
    assert target_entropy(True) < 0.95

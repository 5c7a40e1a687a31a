"""Projection and prototype heads."""

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

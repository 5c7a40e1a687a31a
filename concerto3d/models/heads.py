"""Small heads on top of the encoders: a projection head (cross-modal alignment, and the contrast and MSE
self-distillation) and a DINO prototype head (Sinkhorn and DINO self-distillation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ProjectionHead", "PrototypeHead"]


class ProjectionHead(nn.Module):
    """``Linear -> ReLU -> Linear``: maps encoder features into the space where a loss compares them.

    Args:
        in_dim: input width.
        hidden_dim: hidden width.
        out_dim: output width.

    Shapes:
        x: (..., in_dim) -> (..., out_dim)
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PrototypeHead(nn.Module):
    """DINO head: [batch norm] -> MLP -> l2-normalised bottleneck -> cosine similarity to K l2-normalised prototypes.

    The prototypes are stored unnormalised and normalised in every forward pass, which is the weight-normalised
    last layer of DINO with its gain fixed to 1; the logits are cosines in [-1, 1] that the distillation loss
    divides by its temperatures.

    Args:
        in_dim: input width.
        hidden_dim: width of the MLP's hidden layers.
        bottleneck_dim: width of the normalised bottleneck.
        num_prototypes: K, the number of prototypes (output width).
        num_layers: linear layers of the MLP (>= 1; the last one outputs the bottleneck).
        batch_norm: standardise every input channel with the statistics of the rows of this call (a
            ``BatchNorm1d`` without running statistics or affine weights, in training and evaluation alike), as
            SwAV's head does before its Sinkhorn targets. Encoder features of a randomly initialised point encoder
            share a large common component; without it, the cosines to the prototypes hardly differ between points
            and the balanced (Sinkhorn) or centred (DINO) teacher targets start, and stay, uniform.

    Shapes:
        x: (N, in_dim) -> logits (N, num_prototypes)
    """

    def __init__(self, in_dim: int, hidden_dim: int = 512, bottleneck_dim: int = 128, num_prototypes: int = 1024,
                 num_layers: int = 3, batch_norm: bool = False):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"PrototypeHead: expected num_layers >= 1, got {num_layers}")
        widths = [in_dim] + [hidden_dim] * (num_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(c_in, c_out))
            if i < num_layers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.norm = (nn.BatchNorm1d(in_dim, affine=False, track_running_stats=False) if batch_norm
                     else nn.Identity())
        self.prototypes = nn.Parameter(torch.empty(num_prototypes, bottleneck_dim))
        nn.init.trunc_normal_(self.prototypes, std=0.02)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def embed(self, x: Tensor) -> Tensor:
        """(N, in_dim) -> (N, bottleneck_dim) l2-normalised bottleneck features."""
        if isinstance(self.norm, nn.BatchNorm1d) and x.size(0) < 2:
            raise ValueError("PrototypeHead(batch_norm=True): expected at least 2 rows, got "
                             f"{x.size(0)}")
        return F.normalize(self.mlp(self.norm(x)), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.embed(x) @ F.normalize(self.prototypes, dim=-1).t()

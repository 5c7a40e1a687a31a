"""Collapse monitors: statistics of a batch of features that fall when the representation collapses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["feature_std", "effective_rank"]


@torch.no_grad()
def feature_std(x: Tensor) -> Tensor:
    """Mean over dimensions of the per-dimension standard deviation of the l2-normalised rows.

    0 when every row points the same way (collapse); about ``1 / sqrt(D)`` for rows spread evenly on the sphere.

    Args:
        x: (N, D) features, N >= 2.

    Returns:
        scalar (population std, i.e. divided by N).
    """
    if x.dim() != 2 or x.size(0) < 2:
        raise ValueError(f"feature_std: expected (N >= 2, D) features, got {tuple(x.shape)}")
    return F.normalize(x.float(), dim=-1).std(dim=0, unbiased=False).mean()


@torch.no_grad()
def effective_rank(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Effective rank (Roy & Vetterli, 2007): ``exp(H(p))``, ``p = s / sum(s)`` over the singular values ``s``.

    1 for a rank-1 matrix, ``D`` for a matrix whose D singular values are equal (e.g. the identity). The features
    are used as they are (not centred), so identical rows give 1.

    Args:
        x: (N, D) features.
        eps: singular-value mass below which ``p log p`` counts as 0.

    Returns:
        scalar in [1, min(N, D)] (0 for an all-zero matrix, NaN when ``x`` holds inf/NaN: the SVD would not
        converge, and the trainer skips such a step as non-finite).
    """
    if x.dim() != 2 or x.numel() == 0:
        raise ValueError(f"effective_rank: expected a non-empty (N, D) matrix, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        return torch.full((), float("nan"), device=x.device)
    s = torch.linalg.svdvals(x.double())
    total = s.sum()
    if total <= 0:
        return torch.zeros((), dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
    p = s / total
    p = p[p > eps]
    return torch.exp(-(p * p.log()).sum()).float()

"""2D-3D alignment losses: contrastive (InfoNCE) and, for a frozen image encoder, cosine prediction.

All are pure functions of tensors; the caller pairs the rows (row ``i`` of both inputs is one positive pair).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["info_nce", "dense_info_nce", "cosine_prediction"]


def _check_pairs(name: str, a: Tensor, b: Tensor) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"{name}: expected two (B, D) tensors of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if a.size(0) == 0:
        raise ValueError(f"{name}: expected at least one pair, got none")


def info_nce(a: Tensor, b: Tensor, temperature: float = 0.07, symmetric: bool = True) -> Tensor:
    """InfoNCE between paired embeddings, symmetric by default; positives on the diagonal.

    ``(CE(a·bᵀ / t, arange(B)) + CE(b·aᵀ / t, arange(B))) / 2`` with ``a`` and ``b`` l2-normalised per row.

    Args:
        a: (B, D) embeddings.
        b: (B, D) embeddings, row i paired with ``a[i]``; every other row is a negative.
        temperature: softmax temperature t > 0.
        symmetric: False keeps only the first term (each row of ``a`` picks its partner among the rows of ``b``,
            as a MoCo query among its keys).

    Returns:
        scalar loss (``log B`` for random embeddings, 0 for perfect separation).
    """
    _check_pairs("info_nce", a, b)
    if temperature <= 0:
        raise ValueError(f"info_nce: expected temperature > 0, got {temperature}")
    a = F.normalize(a.float(), dim=-1)
    b = F.normalize(b.float(), dim=-1)
    logits = a @ b.t() / temperature
    target = torch.arange(a.size(0), device=a.device)
    if not symmetric:
        return F.cross_entropy(logits, target)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def dense_info_nce(point_emb: Tensor, patch_emb: Tensor, temperature: float = 0.07,
                   max_negatives: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Symmetric InfoNCE over all matched (pooled points, image patch) pairs of a batch.

    Every other pair of the batch, from any image, is a negative.

    Args:
        point_emb: (P, D) point features pooled per patch (``ops.pool_to_patches``), projected.
        patch_emb: (P, D) the image features of the same patches (``ops.gather_patches``), projected.
        temperature: softmax temperature.
        max_negatives: when P exceeds it, a random subset of this many pairs is used (bounds the P x P logits).
        generator: random generator for that subset (on the embeddings' device).

    Returns:
        scalar loss.
    """
    _check_pairs("dense_info_nce", point_emb, patch_emb)
    if max_negatives is not None and point_emb.size(0) > max_negatives:
        if max_negatives < 2:
            raise ValueError(f"dense_info_nce: expected max_negatives >= 2, got {max_negatives}")
        keep = torch.randperm(point_emb.size(0), device=point_emb.device, generator=generator)[:max_negatives]
        point_emb, patch_emb = point_emb[keep], patch_emb[keep]
    return info_nce(point_emb, patch_emb, temperature)


def cosine_prediction(pred: Tensor, target: Tensor) -> Tensor:
    """Mean ``1 - cos(pred, target)`` over rows; the target is detached (a frozen image encoder's features).

    Args:
        pred: (P, D) predicted features.
        target: (P, D) target features; no gradient flows into them.

    Returns:
        scalar in [0, 2].
    """
    _check_pairs("cosine_prediction", pred, target)
    return (1.0 - F.cosine_similarity(pred.float(), target.detach().float(), dim=-1)).mean()

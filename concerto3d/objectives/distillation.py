"""3D self-distillation losses between a student and its momentum (EMA) teacher, on matched points.

The default (``objective.distillation=contrast``) is :func:`contrastive_distillation`, the momentum-contrast form
(MoCo, PointContrast): each student point must pick its own teacher point among the other matched points, whose
features are negatives; the negatives keep the features spread. The prototype forms are options: DINO's
(:func:`dino_distillation`; the teacher's prototype logits are centred, an EMA of their batch mean,
:func:`update_center`, and sharpened, ``teacher_temp < student_temp``, and the student learns the teacher's
distribution by cross-entropy) and the DINOv2/Sonata alternative to centring, :func:`sinkhorn_knopp` (balanced
assignments of the points to the prototypes). On the synthetic ablation both learned invariant, low-rank features
that probed no better than an untrained encoder (docs/history/2026-11-ablation-rounds.md).
:func:`mse_distillation` regresses normalised teacher features directly; it is the simplest form and collapses more
easily. :func:`koleo_loss` is
DINOv2's spreading regulariser, usable with any of them.

Under ``torch.distributed`` the batch statistics (:func:`update_center`, :func:`sinkhorn_knopp`) are summed over all
processes, so every process sees the same centre and assignments; :func:`contrastive_distillation` and
:func:`koleo_loss` use each process's own rows.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from concerto3d.objectives.cross_modal import info_nce

__all__ = ["distillation_cross_entropy", "dino_distillation", "update_center", "sinkhorn_knopp",
           "mse_distillation", "contrastive_distillation", "koleo_loss"]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum(x: Tensor) -> Tensor:
    if _distributed():
        dist.all_reduce(x)
    return x


def _check_logits(name: str, student: Tensor, teacher: Tensor) -> None:
    if student.dim() != 2 or student.shape != teacher.shape:
        raise ValueError(f"{name}: expected student and teacher of one shape (P, K), got {tuple(student.shape)} "
                         f"and {tuple(teacher.shape)}")
    if student.size(0) == 0:
        raise ValueError(f"{name}: expected at least one matched point, got none")


def distillation_cross_entropy(student_logits: Tensor, teacher_probs: Tensor, student_temp: float = 0.1) -> Tensor:
    """Mean over points of ``H(teacher_probs, softmax(student_logits / student_temp))``.

    Args:
        student_logits: (P, K) student prototype logits.
        teacher_probs: (P, K) target distributions (rows sum to 1); detached.
        student_temp: student softmax temperature.

    Returns:
        scalar loss.
    """
    _check_logits("distillation_cross_entropy", student_logits, teacher_probs)
    log_p = F.log_softmax(student_logits.float() / student_temp, dim=-1)
    return -(teacher_probs.detach().float() * log_p).sum(dim=-1).mean()


def dino_distillation(student_logits: Tensor, teacher_logits: Tensor, center: Tensor | None,
                      student_temp: float = 0.1, teacher_temp: float = 0.04) -> Tensor:
    """DINO loss: ``H(softmax((t - center) / teacher_temp), log_softmax(s / student_temp))`` averaged over points.

    Args:
        student_logits: (P, K) student logits of P matched points.
        teacher_logits: (P, K) teacher logits of the same points (no gradient flows into them).
        center: (K,) or (1, K) running mean of the teacher logits (:func:`update_center`), or None for no centring.
        student_temp: student temperature.
        teacher_temp: teacher temperature, lower than the student's (sharpening).

    Returns:
        scalar loss.
    """
    _check_logits("dino_distillation", student_logits, teacher_logits)
    teacher = teacher_logits.detach().float()
    if center is not None:
        teacher = teacher - center.detach().float().reshape(1, -1)
    teacher_probs = F.softmax(teacher / teacher_temp, dim=-1)
    return distillation_cross_entropy(student_logits, teacher_probs, student_temp)


@torch.no_grad()
def update_center(center: Tensor, teacher_logits: Tensor, momentum: float = 0.9) -> Tensor:
    """EMA of the teacher's batch-mean logits: ``momentum * center + (1 - momentum) * mean(teacher_logits)``.

    Args:
        center: (K,) or (1, K) current centre.
        teacher_logits: (P, K) teacher logits of this step (all processes' under torch.distributed).
        momentum: in [0, 1].

    Returns:
        the new centre, shaped like ``center`` (a new tensor; ``center`` is not modified).
    """
    if teacher_logits.dim() != 2 or teacher_logits.size(1) != center.numel():
        raise ValueError(f"update_center: expected teacher_logits of shape (P, {center.numel()}), got "
                         f"{tuple(teacher_logits.shape)}")
    total = _all_reduce_sum(teacher_logits.float().sum(dim=0))
    count = _all_reduce_sum(torch.tensor(float(teacher_logits.size(0)), device=teacher_logits.device))
    batch_mean = total / count.clamp_min(1.0)
    return (center.float() * momentum + batch_mean.reshape(center.shape) * (1.0 - momentum)).to(center.dtype)


@torch.no_grad()
def sinkhorn_knopp(teacher_logits: Tensor, teacher_temp: float, n_iters: int = 3) -> Tensor:
    """Balanced soft assignment of points to prototypes (DINOv2 / Sonata's teacher targets).

    Starting from ``exp(logits / teacher_temp)``, alternately rescales every prototype (column) to the same total
    mass and every point (row) to sum to 1, as DINOv2's ``sinkhorn_knopp_teacher``. The computation runs in log
    space, so very sharp temperatures give the same numbers without overflow or 0/0.

    Args:
        teacher_logits: (P, K) teacher logits.
        teacher_temp: teacher temperature.
        n_iters: normalisation rounds.

    Returns:
        (P, K) assignments, rows summing to 1.
    """
    if teacher_logits.dim() != 2 or teacher_logits.size(0) == 0:
        raise ValueError(f"sinkhorn_knopp: expected teacher_logits of shape (P > 0, K), got "
                         f"{tuple(teacher_logits.shape)}")
    log_q = teacher_logits.float() / teacher_temp  # (P, K)
    num_points = _all_reduce_sum(torch.tensor(float(log_q.size(0)), device=log_q.device))
    log_q = log_q - _global_logsumexp(log_q, dim=None)
    for _ in range(n_iters):
        log_q = log_q - _global_logsumexp(log_q, dim=0) - math.log(log_q.size(1))  # each prototype: mass 1/K
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - num_points.log()  # each point: mass 1/P
    return torch.exp(log_q + num_points.log())


def _global_logsumexp(x: Tensor, dim: int | None) -> Tensor:
    """logsumexp over ``dim`` (None: all elements) and over every process's rows under torch.distributed."""
    if not _distributed():
        return torch.logsumexp(x.flatten(), dim=0) if dim is None else torch.logsumexp(x, dim=dim, keepdim=True)
    m = x.amax() if dim is None else x.amax(dim=dim, keepdim=True)
    dist.all_reduce(m, op=dist.ReduceOp.MAX)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    total = torch.exp(x - m).sum() if dim is None else torch.exp(x - m).sum(dim=dim, keepdim=True)
    return _all_reduce_sum(total).log() + m


def mse_distillation(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean over points of ``||normalize(student) - normalize(teacher)||²`` (= 2 - 2 cos); the teacher is detached.

    Args:
        student: (P, D) student features of matched points.
        teacher: (P, D) teacher features of the same points.

    Returns:
        scalar in [0, 4].
    """
    _check_logits("mse_distillation", student, teacher)
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.detach().float(), dim=-1)
    return ((s - t) ** 2).sum(dim=-1).mean()


def contrastive_distillation(student: Tensor, teacher: Tensor, temperature: float = 0.1) -> Tensor:
    """Momentum-contrast loss: ``CE(s·tᵀ / temperature, arange(P))`` with rows l2-normalised.

    Student point ``i`` is matched to teacher point ``i`` (the same crop point seen in the other view); the other
    P - 1 teacher points are its negatives. The teacher is detached (it is the EMA key encoder).

    Args:
        student: (P, D) student embeddings of matched points.
        teacher: (P, D) teacher embeddings of the same points, row for row.
        temperature: softmax temperature > 0.

    Returns:
        scalar loss (``log P`` for unrelated embeddings, 0 for perfect matching).
    """
    _check_logits("contrastive_distillation", student, teacher)
    return info_nce(student, teacher.detach(), temperature, symmetric=False)


def koleo_loss(features: Tensor, eps: float = 1e-8) -> Tensor:
    """DINOv2's KoLeo regulariser: ``-mean_i log(min_{j != i} ||x_i - x_j||)`` of l2-normalised rows.

    It is lowest when the rows spread evenly over the sphere, and grows without bound as two rows meet, so it pushes
    against features that collapse onto a few directions (a low effective rank). As in DINOv2, its gradient grows as
    1/distance for rows that nearly coincide, and rows that coincide exactly get none.

    Args:
        features: (P, D) features, P >= 2.
        eps: added to the distances before the log.

    Returns:
        scalar.
    """
    if features.dim() != 2 or features.size(0) < 2:
        raise ValueError(f"koleo_loss: expected (P >= 2, D) features, got {tuple(features.shape)}")
    x = F.normalize(features.float(), dim=-1)
    with torch.no_grad():  # the nearest neighbour of each row (by cosine); the distance keeps its gradient
        sim = x @ x.t()
        sim.fill_diagonal_(-2.0)
        nearest = sim.argmax(dim=1)
    distance = (x - x[nearest]).norm(dim=-1)
    return -torch.log(distance + eps).mean()

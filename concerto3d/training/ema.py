"""Exponential moving average (EMA) of a student's weights into its momentum teacher."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ema_update"]


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or similar ``.module`` wrapper), else the model itself."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher <- momentum * teacher + (1 - momentum) * student`` for every parameter; buffers are copied.

    Parameters are matched by name, so teacher and student must have the same architecture (a deep copy of the
    student, typically). A DDP-wrapped student is unwrapped.

    Args:
        teacher: the EMA model, updated in place.
        student: the trained model.
        momentum: in [0, 1]; 1 keeps the teacher as it is, 0 copies the student.
    """
    if not 0.0 <= float(momentum) <= 1.0:
        raise ValueError(f"ema_update: expected momentum in [0, 1], got {momentum!r}")
    teacher, student = _unwrap(teacher), _unwrap(student)
    t_params, s_params = dict(teacher.named_parameters()), dict(student.named_parameters())
    if t_params.keys() != s_params.keys():
        missing = sorted(set(s_params) ^ set(t_params))[:3]
        raise ValueError(f"ema_update: teacher and student parameters differ, e.g. {missing}")
    for name, t in t_params.items():
        s = s_params[name]
        if t.shape != s.shape:
            raise ValueError(f"ema_update: parameter {name} has shape {tuple(t.shape)} in the teacher and "
                             f"{tuple(s.shape)} in the student")
        t.mul_(momentum).add_(s.detach().to(t.dtype), alpha=1.0 - momentum)
    s_buffers = dict(student.named_buffers())
    for name, t in teacher.named_buffers():
        if name in s_buffers:
            t.copy_(s_buffers[name])

"""Schedules precomputed as arrays indexed by step (after DINOv2's ``CosineScheduler``).

Each schedule is a plain ``(steps,)`` float64 array, built once at the start of a run: the value at step ``s`` is
``schedule[s]``. Nothing depends on how many times a function was called, so a resumed run reads the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["cosine_schedule", "learning_rate_schedule", "momentum_schedule", "Schedules", "build_schedules"]


def cosine_schedule(base: float, final: float, steps: int, warmup_steps: int = 0,
                    warmup_start: float = 0.0) -> np.ndarray:
    """Linear warmup from ``warmup_start`` to ``base``, then a half cosine from ``base`` to ``final``.

    Args:
        base: value at the end of the warmup (the peak for a learning rate).
        final: value at the last step.
        steps: length of the schedule, >= 1.
        warmup_steps: steps of linear warmup, 0 <= warmup_steps <= steps.
        warmup_start: value at step 0 when there is a warmup.
    Returns:
        (steps,) float64; ``out[warmup_steps] == base`` and ``out[-1] == final`` (when the cosine part has >= 2 steps).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0 <= warmup_steps <= steps:
        raise ValueError(f"warmup_steps must be in [0, {steps}], got {warmup_steps}")
    warmup = np.linspace(warmup_start, base, warmup_steps, endpoint=False)
    n = steps - warmup_steps
    t = np.arange(n) / max(n - 1, 1)  # 0 .. 1 over the cosine part
    cosine = final + 0.5 * (base - final) * (1.0 + np.cos(math.pi * t))
    return np.concatenate([warmup, cosine]).astype(np.float64)


def learning_rate_schedule(lr: float, min_lr: float, steps: int, warmup_steps: int) -> np.ndarray:
    """AdamW learning rate per step: linear warmup from 0 to ``lr`` (clamped to the run), cosine down to ``min_lr``.

    Returns: (steps,) float64.
    """
    return cosine_schedule(lr, min_lr, steps, warmup_steps=min(warmup_steps, steps), warmup_start=0.0)


def momentum_schedule(kind: str, steps: int, start: float = 0.996, end: float = 1.0,
                      fixed: float = 0.999) -> np.ndarray:
    """EMA teacher momentum per step: ``cosine`` from ``start`` to ``end`` (DINO), or ``fixed`` at ``fixed``.

    Returns: (steps,) float64, each value in [0, 1].
    """
    if kind == "cosine":
        out = cosine_schedule(start, end, steps)
    elif kind == "fixed":
        out = np.full(steps, fixed, dtype=np.float64)
    else:
        raise ValueError(f"momentum schedule must be 'cosine' or 'fixed', got {kind!r}")
    if out.min() < 0.0 or out.max() > 1.0:
        raise ValueError(f"momentum must stay in [0, 1], got values from {out.min()} to {out.max()}")
    return out


@dataclass
class Schedules:
    """The per-step values a training run reads: ``lr[s]`` and ``momentum[s]``, each (steps,) float64."""

    lr: np.ndarray
    momentum: np.ndarray

    def __len__(self) -> int:
        return len(self.lr)


def build_schedules(optim, steps: int) -> Schedules:
    """Schedules from an :class:`concerto3d.config.OptimConfig` for a run of ``steps`` optimiser steps."""
    return Schedules(
        lr=learning_rate_schedule(optim.lr, optim.min_lr, steps, optim.warmup_steps),
        momentum=momentum_schedule(optim.momentum_schedule, steps, optim.momentum_start, optim.momentum_end,
                                   optim.momentum_fixed),
    )

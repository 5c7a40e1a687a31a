"""The base class of the point and image augmentations: called as ``transform(x, rng)``, applied with probability
``p``, printed with its arguments (``RandomRotateZ(angle=full, p=1.0)``); plus the argument checks they share."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


class Transform:
    """Base class: ``transform(x, rng)`` applies with probability ``p``, else returns a shallow copy of ``x``.

    Subclasses implement :meth:`apply` and list the arguments they print in ``_repr_fields``.
    """

    p: float = 1.0
    _repr_fields: tuple[str, ...] = ()

    def __call__(self, x, rng: np.random.Generator):
        if self.p < 1.0 and not rng.random() < self.p:
            return x.replace() if hasattr(x, "replace") else x
        return self.apply(x, rng)

    def apply(self, x, rng: np.random.Generator):  # pragma: no cover - abstract
        raise NotImplementedError

    def _repr_values(self) -> dict[str, str]:
        return {name: _fmt(getattr(self, name)) for name in self._repr_fields}

    def __repr__(self) -> str:
        items = [f"{k}={v}" for k, v in self._repr_values().items()] + [f"p={float(self.p)}"]
        return f"{type(self).__name__}({', '.join(items)})"


def _check_p(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability p: expected a number in [0, 1], got {p}")
    return float(p)


def _check_range(name: str, value: Sequence[float], low: float = -math.inf) -> tuple[float, float]:
    value = tuple(float(v) for v in value)
    if len(value) != 2 or not low <= value[0] <= value[1]:
        raise ValueError(f"{name}: expected (min, max) with {low} <= min <= max, got {value}")
    return value

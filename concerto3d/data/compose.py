"""Chaining augmentations: :class:`Compose` applies transforms in order and prints as their list."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


class Compose:
    """Apply transforms in order; prints as the list of its transforms.

    Works for anything the transforms accept (point clouds in ``transforms``, image tensors in ``image_transforms``).
    """

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x, rng: np.random.Generator):
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        if not self.transforms:
            return "Compose([])"
        return "Compose([\n" + "".join(f"  {t!r},\n" for t in self.transforms) + "])"

"""The training model of an objective: ``build_model(cfg)``."""

from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["build_model"]


def build_model(cfg, resolve_backbone: Callable[[str | None], nn.Module | None] | None = None) -> nn.Module:
    """``SupervisedModel`` for ``objective.kind=supervised`` (the ceiling), ``SupervisedImageModel`` for
    ``2d-supervised`` (a 2D teacher from labelled frames), else ``ConcertoModel`` (joint, 3d, 2d).

    Args:
        cfg: a :class:`concerto3d.config.TrainConfig`.
        resolve_backbone: passed to :class:`ConcertoModel` (how a concerto3d run named as the image encoder's
            ``pretrained_path`` is opened).
    """
    if cfg.objective.kind == "supervised":
        from concerto3d.models.supervised import SupervisedModel

        return SupervisedModel(cfg)
    if cfg.objective.kind == "2d-supervised":
        from concerto3d.models.supervised import SupervisedImageModel

        return SupervisedImageModel(cfg, resolve_backbone=resolve_backbone)
    from concerto3d.models.concerto import ConcertoModel

    return ConcertoModel(cfg, resolve_backbone=resolve_backbone)

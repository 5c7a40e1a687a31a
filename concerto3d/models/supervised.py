"""The supervised ceiling: the same point encoder trained with the labels of the train rooms.

``objective.kind=supervised`` (``concerto3d train --objective supervised``) trains the point encoder of the other
objectives, with the same inputs, augmentations and budget, through a linear classifier on its per-point features
with cross-entropy against the crop's ScanNet-20 labels (``TrainBatch.labels``, -1 ignored). Its features are then
probed exactly like a self-supervised encoder's, which gives the table its ceiling: how far a self-supervised row is
from what the architecture can represent when it is told the classes.

The model has the interface of :class:`concerto3d.models.concerto.ConcertoModel` that the trainer and the model
folder use (``point_encoder``, ``image_encoder`` = None, ``heads``, ``teacher`` (empty), :meth:`ema_pairs` (none)).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from concerto3d.labels import IGNORE_INDEX, NUM_CLASSES_20
from concerto3d.models.concerto import feature_stats
from concerto3d.models.point_encoder import PointEncoder

__all__ = ["SupervisedModel", "segmentation_loss"]


def segmentation_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the labelled points; 0 (with a graph) when none is labelled.

    Shapes:
        logits: (N, K) float; labels: (N,) long, ``IGNORE_INDEX`` = not labelled.
    """
    labelled = labels != IGNORE_INDEX
    if not bool(labelled.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[labelled], labels[labelled])


class SupervisedModel(nn.Module):
    """Point encoder + linear classifier, trained on the labels of the student view's points.

    Args:
        cfg: a :class:`concerto3d.config.TrainConfig` (reads ``point_encoder``).
        num_classes: classes of the labels (ScanNet-20).
    """

    kind = "supervised"

    def __init__(self, cfg, num_classes: int = NUM_CLASSES_20):
        super().__init__()
        self.point_encoder = PointEncoder(cfg.point_encoder)
        self.image_encoder = None
        self.heads = nn.ModuleDict({"classifier": nn.Linear(self.point_encoder.out_channels, num_classes)})
        self.teacher = nn.ModuleDict()

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """No teacher: nothing to average."""
        return []

    def forward(self, batch, step_state=None) -> dict[str, Tensor]:
        """The losses of one batch: ``loss`` = ``loss_supervised`` (cross-entropy of the student view's labelled
        points), and monitors ``accuracy`` (of those points), ``labelled``, and the feature monitors of
        :func:`concerto3d.models.concerto.feature_stats` (``matched`` = the labelled points)."""
        view = batch.view_student
        feat = self.point_encoder(view.coord, view.feat, view.batch).point_feat
        logits = self.heads["classifier"](feat)
        labels = batch.labels[view.index]
        loss = segmentation_loss(logits, labels)
        labelled = labels != IGNORE_INDEX
        correct = (logits.detach().argmax(dim=1) == labels) & labelled
        accuracy = correct.sum().float() / labelled.sum().clamp_min(1).float()
        return {"loss": loss, "loss_supervised": loss.detach(), "accuracy": accuracy,
                **feature_stats(feat, int(labelled.sum()), feat.size(0))}

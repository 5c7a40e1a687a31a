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

from concerto3d import ops
from concerto3d.labels import IGNORE_INDEX, NUM_CLASSES_20
from concerto3d.models.concerto import feature_stats
from concerto3d.models.image_encoder import ImageEncoder
from concerto3d.models.point_encoder import PointEncoder

__all__ = ["SupervisedModel", "SupervisedImageModel", "segmentation_loss"]


def segmentation_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the labelled points; 0 (with a graph) when none is labelled.

    Shapes:
        logits: (N, K) float; labels: (N,) long, ``IGNORE_INDEX`` = not labelled.
    """
    labelled = labels != IGNORE_INDEX
    if not bool(labelled.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[labelled], labels[labelled])


def classifier_outputs(feat: Tensor, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """A supervised model's step outputs: ``loss`` = ``loss_supervised`` (:func:`segmentation_loss`), ``accuracy``
    of the labelled rows, and :func:`feature_stats` of ``feat`` (``matched`` = the labelled rows).

    Shapes: feat (N, C), logits (N, K), labels (N,) long with ``IGNORE_INDEX`` = unlabelled."""
    loss = segmentation_loss(logits, labels)
    labelled = labels != IGNORE_INDEX
    correct = (logits.detach().argmax(dim=1) == labels) & labelled
    accuracy = correct.sum().float() / labelled.sum().clamp_min(1).float()
    return {"loss": loss, "loss_supervised": loss.detach(), "accuracy": accuracy,
            **feature_stats(feat, int(labelled.sum()), feat.size(0))}


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
        return classifier_outputs(feat, self.heads["classifier"](feat), batch.labels[view.index])


class SupervisedImageModel(nn.Module):
    """Image encoder + linear patch classifier, trained on the frames' 2D labels (``objective.kind=2d-supervised``).

    It makes a 2D teacher that knows the classes from labelled frames of other rooms, the stand-in for DINOv2's
    outside knowledge: its run (or model folder) is then given as ``--image-encoder`` / ``image_encoder
    .pretrained_path``, frozen, to the joint objective. Each patch's target is the most frequent label of its pixels
    (:func:`concerto3d.ops.patch_majority_labels`); patches without a labelled pixel do not count.

    Args:
        cfg: a :class:`concerto3d.config.TrainConfig` (reads ``image_encoder``, ``data.image_size``/``patch_size``).
        resolve_backbone: opens ``image_encoder.pretrained_path`` (a Hugging Face folder or a concerto3d run) as a
            backbone to fine-tune; None: the encoder is built from the config.
    """

    kind = "2d-supervised"

    def __init__(self, cfg, resolve_backbone=None, num_classes: int = NUM_CLASSES_20):
        super().__init__()
        if cfg.image_encoder.freeze:
            raise ValueError("SupervisedImageModel: the 2d-supervised objective trains the image encoder; set "
                             "image_encoder.freeze=false")
        backbone = resolve_backbone(cfg.image_encoder.pretrained_path) if resolve_backbone is not None else None
        self.image_encoder = ImageEncoder(cfg.image_encoder.following(cfg.data.image_size, cfg.data.patch_size),
                                          backbone=backbone)
        self.point_encoder = None
        self.num_classes = num_classes
        self.heads = nn.ModuleDict({"classifier": nn.Linear(self.image_encoder.out_channels, num_classes)})
        self.teacher = nn.ModuleDict()

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """No teacher: nothing to average."""
        return []

    def forward(self, batch, step_state=None) -> dict[str, Tensor]:
        """``loss`` = ``loss_supervised`` (cross-entropy of the labelled patches of ``batch.images``), monitors
        ``accuracy`` and ``labelled`` (patches) and the feature monitors of :func:`feature_stats`."""
        if batch.images.size(0) == 0 or batch.image_labels.dim() != 3:
            raise ValueError("SupervisedImageModel: the batch has no images with labels (data.frame_labels=true, "
                             "and preprocessed frames with labels/<k>.png)")
        grid = self.image_encoder(batch.images).patch_grid  # (F, Hp, Wp, C)
        targets = ops.patch_majority_labels(batch.image_labels, self.image_encoder.patch_size, self.num_classes)
        feat = grid.reshape(-1, grid.size(-1))
        return classifier_outputs(feat, self.heads["classifier"](feat), targets.reshape(-1))

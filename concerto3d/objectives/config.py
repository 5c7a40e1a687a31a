"""What the training model learns from: :class:`ObjectiveConfig` (``objective.*`` of a training config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ObjectiveConfig"]


@dataclass
class ObjectiveConfig:
    """What the model learns from, and how strongly each loss counts.

    ``kind``: ``joint`` = 3D self-distillation + 2D-3D cross-modal alignment (Concerto); ``3d`` = 3D
    self-distillation only (Sonata-like); ``2d`` = the image encoder alone, self-distilled on two photometric views;
    ``supervised`` = the point encoder trained with the labels (the ablation's ceiling; ``models/supervised.py``);
    ``2d-supervised`` = the image encoder trained with the frames' 2D labels (a 2D teacher made from labelled frames
    of other rooms, the stand-in for DINOv2's outside knowledge; ``models/supervised.py``).
    """

    kind: Literal["joint", "3d", "2d", "supervised", "2d-supervised"] = "joint"
    proj_dim: int = 256                      # output size of the projection heads (feature/projection dim)
    hidden_dim: int = 512                    # hidden size of the projection heads
    # cross-modal (joint only)
    temperature: float = 0.07                # InfoNCE temperature, dense and scene level
    cross_modal_weight: float = 1.0          # weight of the dense point-patch alignment
    scene_weight: float = 0.5                # weight of the scene-level InfoNCE (pooled points vs pooled images)
    max_negatives: int = 4096                # dense InfoNCE: at most this many (points, patch) pairs per step
    # a frozen pre-trained image encoder as the target (image_encoder.pretrained_path + freeze): cosine = regress
    # each pooled point embedding onto its patch's feature (Concerto's prediction of DINOv2 features); info_nce =
    # the dense symmetric InfoNCE against the frozen features, every other patch of the step a negative
    frozen_target_loss: Literal["cosine", "info_nce"] = "cosine"
    # a frozen target's patch features are computed once per frame of the unaugmented images and cached next to
    # the data (inference/feature_cache.py) instead of running the encoder every step; false: run it every step on
    # the augmented images
    frozen_feature_cache: bool = True
    # true: the point encoder's features are averaged per patch (and per crop) and the projection head maps the means
    # (Concerto pools points onto patches, then predicts; the head runs on P patches, not N points); false: every
    # point is projected, then averaged (the former form)
    pool_then_project: bool = True
    # self-distillation
    # contrast (default): momentum contrast, each student point picks its teacher point among the other matched
    # points (the negatives keep the features spread; on the synthetic ablation the prototype forms below learned
    # low-rank features that probed no better than a random encoder, docs/history/2026-11-ablation-rounds.md);
    # sinkhorn (Sonata, DINOv2): balanced teacher targets over prototypes; dino: centred + sharpened teacher targets;
    # mse: normalised feature regression (collapses most easily)
    distillation: Literal["dino", "sinkhorn", "mse", "contrast"] = "contrast"
    distillation_weight: float = 0.5
    num_prototypes: int = 1024               # prototype head size for dino / sinkhorn
    head_batch_norm: bool = True             # standardise the prototype head's input over the batch's points (SwAV)
    student_temperature: float = 0.1
    teacher_temperature: float = 0.04
    center_momentum: float = 0.9             # dino centring
    sinkhorn_iterations: int = 3
    contrast_temperature: float = 0.1        # contrast: softmax temperature
    # masking (Masked Scene Contrast, Sonata): the student view's colour and normal channels are replaced by a
    # learned token in this fraction of the cells of a mask_size grid (metres); the teacher sees the whole view, so
    # the student must infer a masked point's features from its unmasked surroundings. 0 = off.
    mask_ratio: float = 0.0
    mask_size: float = 0.1
    koleo_weight: float = 0.0                # DINOv2's KoLeo spreading term on the student's encoder features
    max_distill_points: int = 1024           # a random subset of at most this many matched points per step (the
                                             # heads cost most of a CPU step; 1024 halves a 3D step against 4096,
                                             # with no probe difference beyond the seed spread); 0 = all
    # 2d objective: the student sees a random crop of each frame (this fraction of its height and width, resized back
    # and mirrored with probability 1/2), the teacher the whole frame. With the photometric views alone the patches
    # of both views sit at the same positions and the position embeddings alone can match them. (1, 1) = no crop.
    image_crop: tuple[float, float] = (0.5, 0.8)

    def __post_init__(self):
        for name in ("temperature", "student_temperature", "teacher_temperature", "contrast_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"objective.{name}: expected > 0, got {getattr(self, name)}")
        for name in ("cross_modal_weight", "scene_weight", "distillation_weight", "koleo_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"objective.{name}: expected >= 0, got {getattr(self, name)}")
        if not 0 <= self.center_momentum <= 1:
            raise ValueError(f"objective.center_momentum: expected in [0, 1], got {self.center_momentum}")
        self.image_crop = tuple(float(v) for v in self.image_crop)
        if len(self.image_crop) != 2 or not 0 < self.image_crop[0] <= self.image_crop[1] <= 1:
            raise ValueError(f"objective.image_crop: expected (min, max) with 0 < min <= max <= 1, got "
                             f"{self.image_crop}")
        if not 0 <= self.mask_ratio < 1:
            raise ValueError(f"objective.mask_ratio: expected in [0, 1), got {self.mask_ratio}")
        if self.mask_size <= 0:
            raise ValueError(f"objective.mask_size: expected metres > 0, got {self.mask_size}")
        if self.max_distill_points < 0:
            raise ValueError(f"objective.max_distill_points: expected >= 0, got {self.max_distill_points}")
        if min(self.proj_dim, self.hidden_dim, self.num_prototypes, self.max_negatives) < 2:
            raise ValueError("objective: expected proj_dim, hidden_dim, num_prototypes and max_negatives >= 2")

"""Training objectives as pure functions: 2D-3D alignment, 3D self-distillation, and collapse monitors."""

from concerto3d.objectives.cross_modal import cosine_prediction, dense_info_nce, info_nce
from concerto3d.objectives.distillation import (contrastive_distillation, dino_distillation,
                                                distillation_cross_entropy, koleo_loss, mse_distillation,
                                                sinkhorn_knopp, update_center)
from concerto3d.objectives.stats import effective_rank, feature_std

__all__ = [
    "info_nce", "dense_info_nce", "cosine_prediction",
    "dino_distillation", "distillation_cross_entropy", "update_center", "sinkhorn_knopp", "mse_distillation",
    "contrastive_distillation", "koleo_loss",
    "feature_std", "effective_rank",
]

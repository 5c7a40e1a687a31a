"""The joint 2D-3D model: student encoders and heads, their EMA teacher, and the losses of one training step.

``ConcertoModel(cfg)(batch, step_state)`` returns a dict whose ``"loss"`` is what the trainer back-propagates; the
other entries are the parts of the loss and collapse monitors, all scalars (logged, never back-propagated).

Objectives (``cfg.objective.kind``):

``joint`` (Concerto)
    * 3D self-distillation: the student point encoder sees ``view_student``, the EMA teacher sees ``view_teacher``;
      points of the two views that come from the same crop point (same ``PointView.index``) are matched, and each
      student point must pick its teacher point among all matched teacher points (momentum contrast, the default;
      prototype distributions with Sinkhorn-Knopp or DINO targets, or MSE, as options), weight
      ``distillation_weight``.
    * dense cross-modal alignment: each correspondence (image, u, v, crop point) puts the student's feature of that
      point on image patch (v // p, u // p); the point features are averaged per (image, patch)
      (``ops.pool_to_patches``), projected, and aligned with the projected patch features of the image encoder by
      ``dense_info_nce`` (or, for a frozen pretrained image encoder, regressed onto its patch features with
      ``cosine_prediction``, or contrasted with them by ``dense_info_nce`` when
      ``objective.frozen_target_loss=info_nce``), weight ``cross_modal_weight``.
    * scene level: the mean projected point embedding of each crop against the mean projected patch embedding of
      the crop's images, ``info_nce`` with the other crops of the batch as negatives, weight ``scene_weight``.
``3d``
    the self-distillation alone (no image encoder).
``2d``
    the image encoder alone: the EMA teacher sees ``images_teacher``, the student a random patch-aligned crop of
    ``images`` (two photometric augmentations of the same frames; the crop, mirrored half of the time, keeps
    ``objective.image_crop`` of the patch rows and columns, :func:`student_image_crop`); each student patch is
    matched to the teacher's patch of the same pixels, the same distillation loss.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from concerto3d import objectives, ops
from concerto3d.data.collate import FEATURE_CHANNELS, FEATURE_SLICES
from concerto3d.models.heads import ProjectionHead, PrototypeHead
from concerto3d.models.image_encoder import ImageEncoder
from concerto3d.models.point_encoder import PointEncoder

__all__ = ["StepState", "ConcertoModel", "match_views", "student_image_crop"]

# at most this many feature rows enter the effective-rank monitor (an SVD per logged step)
_STATS_ROWS = 4096
# at most this many rows enter the KoLeo term (a rows x rows similarity per step)
_KOLEO_ROWS = 2048


@dataclass
class StepState:
    """Per-step values the losses read (from the trainer's schedules).

    Attributes:
        step: optimiser step, 0-based.
        teacher_temperature: the DINO teacher temperature of this step.
    """

    step: int = 0
    teacher_temperature: float = 0.04


def match_views(index_student: Tensor, index_teacher: Tensor, num_points: int) -> tuple[Tensor, Tensor]:
    """Pairs of student and teacher view points that come from the same crop point.

    Args:
        index_student: (Ns,) long, crop point of each student view point, in [0, num_points).
        index_teacher: (Nt,) long, crop point of each teacher view point.
        num_points: number of crop points in the batch.
    Returns:
        ``(student_rows (P,), teacher_rows (P,))`` long: ``index_student[s] == index_teacher[t]`` for each pair.
        A crop point seen several times by the teacher view is matched to one of them.
    """
    where_teacher = index_teacher.new_full((num_points,), -1)
    where_teacher[index_teacher] = torch.arange(len(index_teacher), device=index_teacher.device)
    teacher_rows = where_teacher[index_student]
    student_rows = torch.nonzero(teacher_rows >= 0).squeeze(1)
    return student_rows, teacher_rows[student_rows]


def student_image_crop(images: Tensor, patch: int, scale: tuple[float, float],
                       generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """A random crop of every image, resized back to the image size and mirrored with probability 1/2, and which
    patch of the full image each of its patches looks at.

    One crop fraction per call, drawn in ``scale`` (the crop keeps that fraction of the height and of the width);
    the offset and the mirroring are drawn per image. The crop is resized to (H, W) (bilinear), so a patch of the
    crop covers ``fraction`` of a patch of the image; it is matched to the image patch under its centre.

    Args:
        images: (F, 3, H, W), H and W multiples of ``patch``.
        patch: the patch side in pixels.
        scale: (min, max) fraction of the height and width kept; (1, 1) returns the images unchanged.
        generator: random generator (on the CPU); the global one when None.
    Returns:
        ``(crops (F, 3, H, W), source (F, Hp, Wp) long)``: ``source[f, i, j]`` is the row-major index
        ``row * Wp + col`` of the image patch under the centre of patch (i, j) of crop f.
    """
    num, _, height, width = images.shape
    hp, wp = height // patch, width // patch
    identity = torch.arange(hp * wp, device=images.device).reshape(1, hp, wp).expand(num, -1, -1)
    if scale[0] >= 1.0:
        return images, identity
    fraction = float(torch.empty(()).uniform_(scale[0], scale[1], generator=generator)) if scale[0] < scale[1] \
        else scale[0]
    h, w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top = torch.randint(0, height - h + 1, (num,), generator=generator).tolist()
    left = torch.randint(0, width - w + 1, (num,), generator=generator).tolist()
    mirror = (torch.rand(num, generator=generator) < 0.5).tolist()
    centres_y = (torch.arange(hp, dtype=torch.float64) + 0.5) * patch * h / height  # in crop pixels
    centres_x = (torch.arange(wp, dtype=torch.float64) + 0.5) * patch * w / width
    crops, sources = [], []
    for f in range(num):
        crop = images[f:f + 1, :, top[f]:top[f] + h, left[f]:left[f] + w]
        crop = F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)
        x = centres_x.flip(0) if mirror[f] else centres_x
        if mirror[f]:
            crop = crop.flip(-1)
        rows = ((top[f] + centres_y) // patch).long().clamp_(0, hp - 1)
        cols = ((left[f] + x) // patch).long().clamp_(0, wp - 1)
        crops.append(crop)
        sources.append(rows.unsqueeze(1) * wp + cols.unsqueeze(0))
    return torch.cat(crops), torch.stack(sources).to(images.device)


class ConcertoModel(nn.Module):
    """Student encoders + heads, the EMA teacher, and the training losses.

    Args:
        cfg: a :class:`concerto3d.config.TrainConfig` (reads ``point_encoder``, ``image_encoder``, ``objective``).
        resolve_backbone: ``f(pretrained_path) -> backbone | None``, called once while the image encoder is built:
            the trainer passes ``concerto3d.inference.load_image_backbone``, so that ``image_encoder.pretrained_path``
            may name a concerto3d run (this module opens no folder itself); None: the config's Hugging Face folder
            or architecture only.

    Attributes:
        point_encoder: the student :class:`PointEncoder` (None for the ``2d`` objective).
        image_encoder: the student :class:`ImageEncoder` (None for the ``3d`` objective).
        heads: ``nn.ModuleDict`` of the student's heads: ``point_distill`` / ``image_distill`` (prototype head for
            Sinkhorn / DINO, projection head for contrast, projection + predictor for MSE), ``point_proj`` and
            ``image_proj`` (cross-modal projections).
        teacher: ``nn.ModuleDict`` with the EMA copies (``point_encoder`` + ``point_distill``, or ``image_encoder``
            + ``image_distill`` for ``2d``); no gradients; the trainer updates it with ``training.ema.ema_update`` on
            each pair of :meth:`ema_pairs`.
        center: (K,) buffer, the DINO centre of the teacher logits.
    """

    def __init__(self, cfg, resolve_backbone: Callable[[str | None], nn.Module | None] | None = None):
        super().__init__()
        obj = cfg.objective
        self.kind = obj.kind
        self.objective = obj
        if self.kind not in ("joint", "3d", "2d"):
            raise ValueError(f"ConcertoModel: objective kind must be joint, 3d or 2d, got {self.kind!r}")
        self.point_encoder = PointEncoder(cfg.point_encoder) if self.kind in ("joint", "3d") else None
        self.image_encoder = None
        if self.kind in ("joint", "2d"):
            backbone = resolve_backbone(cfg.image_encoder.pretrained_path) if resolve_backbone is not None else None
            encoder_cfg = cfg.image_encoder.following(cfg.data.image_size, cfg.data.patch_size)
            self.image_encoder = ImageEncoder(encoder_cfg, backbone=backbone)
        self.frozen_image_target = bool(self.image_encoder is not None and cfg.image_encoder.pretrained_path
                                        and cfg.image_encoder.freeze)
        if (self.image_encoder is not None and cfg.data.patch_size is not None
                and self.image_encoder.patch_size != cfg.data.patch_size):
            raise ValueError(f"ConcertoModel: data.patch_size={cfg.data.patch_size} differs from the image encoder's "
                             f"patch size {self.image_encoder.patch_size}")
        if self.kind == "2d" and cfg.image_encoder.freeze:
            raise ValueError("ConcertoModel: the 2d objective trains the image encoder; set image_encoder.freeze=false")

        self.heads = nn.ModuleDict()
        distilled = "point" if self.kind in ("joint", "3d") else "image"
        encoder = self.point_encoder if distilled == "point" else self.image_encoder
        self.heads[f"{distilled}_distill"] = self._distill_head(encoder.out_channels, obj)
        if obj.distillation == "mse":  # BYOL-style predictor on the student side only (MoCo v3 has one too, but
                                      # the contrastive form does not need it: the negatives prevent collapse)
            self.heads["predictor"] = ProjectionHead(obj.proj_dim, obj.hidden_dim, obj.proj_dim)
        if self.kind == "joint":
            target_dim = self.image_encoder.out_channels if self.frozen_image_target else obj.proj_dim
            self.heads["point_proj"] = ProjectionHead(self.point_encoder.out_channels, obj.hidden_dim, target_dim)
            if not self.frozen_image_target:
                self.heads["image_proj"] = ProjectionHead(self.image_encoder.out_channels, obj.hidden_dim,
                                                          obj.proj_dim)

        # learned stand-in for the colour and normal channels of masked student points (objective.mask_ratio)
        self.mask_token = (nn.Parameter(torch.zeros(FEATURE_CHANNELS - 3))
                           if obj.mask_ratio > 0 and self.point_encoder is not None else None)

        self.teacher = nn.ModuleDict({
            f"{distilled}_encoder": copy.deepcopy(encoder),
            f"{distilled}_distill": copy.deepcopy(self.heads[f"{distilled}_distill"]),
        })
        self.teacher.requires_grad_(False)
        self.register_buffer("center", torch.zeros(obj.num_prototypes))

    @staticmethod
    def _distill_head(in_dim: int, obj) -> nn.Module:
        if obj.distillation in ("mse", "contrast"):
            return ProjectionHead(in_dim, obj.hidden_dim, obj.proj_dim)
        return PrototypeHead(in_dim, obj.hidden_dim, bottleneck_dim=min(obj.proj_dim, 256),
                             num_prototypes=obj.num_prototypes, batch_norm=obj.head_batch_norm)

    # -- teacher -----------------------------------------------------------------------------------------------
    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(teacher module, student module) pairs that the EMA update ties together."""
        student = {"point_encoder": self.point_encoder, "image_encoder": self.image_encoder, **self.heads}
        return [(t, student[name]) for name, t in self.teacher.items()]

    def train(self, mode: bool = True) -> "ConcertoModel":
        super().train(mode)
        self.teacher.eval()  # the teacher never uses dropout
        return self

    # -- losses ------------------------------------------------------------------------------------------------
    def forward(self, batch, step_state: StepState | None = None) -> dict[str, Tensor]:
        """The losses of one batch.

        Args:
            batch: a :class:`concerto3d.data.collate.TrainBatch` on this model's device.
            step_state: per-step values (teacher temperature); the defaults when None.
        Returns:
            dict of scalar tensors: ``loss`` (with gradient), the weighted parts (``loss_distill``,
            ``loss_dense``, ``loss_scene``), and monitors: ``feat_std``, ``feat_rank`` (effective rank of the
            student's encoder features), ``matched`` (distillation pairs), ``patches`` (aligned patches),
            ``points`` (student view points).
        """
        state = step_state or StepState(teacher_temperature=self.objective.teacher_temperature)
        if self.kind == "2d":
            return self._forward_2d(batch, state)
        obj = self.objective
        view_s, view_t = batch.view_student, batch.view_teacher
        num_crop_points = int(batch.crop_offsets[-1])
        feat_s, masked = self._mask(view_s)
        student = self.point_encoder(view_s.coord, feat_s, view_s.batch)
        with torch.no_grad():
            teacher = self.teacher["point_encoder"](view_t.coord, view_t.feat, view_t.batch)

        # 3D self-distillation on points matched through the crop index
        s_rows, t_rows = match_views(view_s.index, view_t.index, num_crop_points)
        s_rows, t_rows = self._subsample(s_rows, t_rows)
        loss, monitors = self._distill(student.point_feat[s_rows], teacher.point_feat[t_rows], state, "point")
        out = {"loss_distill": loss * obj.distillation_weight, **monitors, **self._koleo(student.point_feat[s_rows])}
        if self.kind == "joint":
            out.update(self._cross_modal(batch, student.point_feat))
        out["loss"] = sum(v for k, v in out.items() if k.startswith("loss_"))
        out.update(self._stats(student.point_feat, len(s_rows), view_s.coord.size(0)))
        if masked is not None:
            out["masked"] = masked.float().mean().detach()
        return out

    def _mask(self, view) -> tuple[Tensor, Tensor | None]:
        """The student view's features with the colour and normal channels of masked grid cells replaced by
        ``mask_token`` (training only), and the (N,) bool mask (None when masking is off)."""
        if self.mask_token is None or not self.training:
            return view.feat, None
        masked = ops.grid_mask(view.coord, view.batch, self.objective.mask_size, self.objective.mask_ratio)
        position = FEATURE_SLICES["xyz"]
        token = torch.cat([view.feat.new_zeros(position.stop), self.mask_token.to(view.feat.dtype)])
        cues = torch.ones(FEATURE_CHANNELS, dtype=torch.bool, device=view.feat.device)
        cues[position] = False  # the position channels stay: masking hides what a point looks like, not where
        return torch.where(masked[:, None] & cues, token, view.feat), masked

    def _forward_2d(self, batch, state: StepState) -> dict[str, Tensor]:
        if batch.images.size(0) == 0:
            raise ValueError("ConcertoModel(2d): the batch has no images (scenes without frames?)")
        crops, source = student_image_crop(batch.images, self.image_encoder.patch_size, self.objective.image_crop)
        student = self.image_encoder(crops).patch_grid  # (F, Hp, Wp, C)
        with torch.no_grad():
            teacher = self.teacher["image_encoder"](batch.images_teacher).patch_grid  # (F, Hp, Wp, C)
        s = student.reshape(-1, student.size(-1))
        teacher = teacher.reshape(teacher.size(0), -1, teacher.size(-1))  # (F, Hp * Wp, C)
        t = torch.gather(teacher, 1, source.reshape(source.size(0), -1, 1).expand(-1, -1, teacher.size(-1)))
        t = t.reshape(-1, t.size(-1))  # row k: the teacher's patch with the pixels of student patch k
        rows = torch.arange(s.size(0), device=s.device)
        rows, _ = self._subsample(rows, rows)
        loss, monitors = self._distill(s[rows], t[rows], state, "image")
        out = {"loss_distill": loss * self.objective.distillation_weight, **monitors, **self._koleo(s[rows])}
        out["loss"] = sum(v for k, v in out.items() if k.startswith("loss_"))
        out.update(self._stats(s, rows.numel(), s.size(0)))
        return out

    def _subsample(self, s_rows: Tensor, t_rows: Tensor) -> tuple[Tensor, Tensor]:
        """A random subset of at most ``objective.max_distill_points`` matched pairs (all when 0 or fewer)."""
        limit = self.objective.max_distill_points
        if limit <= 0 or s_rows.numel() <= limit:
            return s_rows, t_rows
        keep = torch.randperm(s_rows.numel(), device=s_rows.device)[:limit].sort().values
        return s_rows[keep], t_rows[keep]

    def _distill(self, student_feat: Tensor, teacher_feat: Tensor, state: StepState,
                 which: str) -> tuple[Tensor, dict[str, Tensor]]:
        """Distillation loss between matched (P, C) student and teacher encoder features (0 when P < 2), and its
        monitors: ``teacher_entropy`` and ``student_entropy``, the mean entropy of the targets and of the student's
        distributions over the prototypes divided by log K (1 = uniform: the plateau where the teacher teaches
        nothing; empty for MSE and contrast)."""
        obj = self.objective
        if student_feat.size(0) < 2:  # no overlap (or one point: no batch statistics, no balanced targets)
            return student_feat.sum() * 0.0, {}  # keeps the graph (and DDP) intact
        s = self.heads[f"{which}_distill"](student_feat)
        with torch.no_grad():
            t = self.teacher[f"{which}_distill"](teacher_feat)
        if obj.distillation == "mse":
            return objectives.mse_distillation(self.heads["predictor"](s), t), {}
        if obj.distillation == "contrast":
            return objectives.contrastive_distillation(s, t, obj.contrast_temperature), {}
        if obj.distillation == "sinkhorn":
            targets = objectives.sinkhorn_knopp(t, state.teacher_temperature, obj.sinkhorn_iterations)
            loss = objectives.distillation_cross_entropy(s, targets, obj.student_temperature)
        else:
            # dino_distillation's targets, computed once here because the entropy monitor reads them too
            centred = t.float() - self.center.float().reshape(1, -1)
            targets = torch.softmax(centred / state.teacher_temperature, dim=-1)
            loss = objectives.distillation_cross_entropy(s, targets, obj.student_temperature)
            if self.training and torch.isfinite(t).all():
                self.center.copy_(objectives.update_center(self.center, t, obj.center_momentum))
        with torch.no_grad():
            student_probs = torch.softmax(s.detach().float() / obj.student_temperature, dim=-1)
            monitors = {"teacher_entropy": _mean_entropy(targets), "student_entropy": _mean_entropy(student_probs)}
        return loss, monitors

    def _koleo(self, feat: Tensor) -> dict[str, Tensor]:
        """``{"loss_koleo": weighted KoLeo term}`` on at most ``_KOLEO_ROWS`` rows of the student's encoder features
        (an O(rows²) nearest-neighbour search), or {} when ``objective.koleo_weight`` is 0."""
        weight = self.objective.koleo_weight
        if weight <= 0 or feat.size(0) < 2:
            return {}
        if feat.size(0) > _KOLEO_ROWS:  # evenly spaced rows (the rows are in view order: spread over the crops)
            feat = feat[torch.linspace(0, feat.size(0) - 1, _KOLEO_ROWS, device=feat.device).long()]
        return {"loss_koleo": objectives.koleo_loss(feat) * weight}

    def _cross_modal(self, batch, point_feat: Tensor) -> dict[str, Tensor]:
        """Dense point-patch alignment and the scene-level InfoNCE (joint objective)."""
        obj = self.objective
        zero = point_feat.sum() * 0.0
        if batch.images.size(0) == 0 or batch.corr.size(0) == 0:
            return {"loss_dense": zero, "loss_scene": zero, "patches": torch.zeros((), device=point_feat.device)}
        view = batch.view_student
        if self.frozen_image_target and batch.image_features.size(0) == batch.images.size(0):
            patch_grid = batch.image_features  # the frozen encoder's cached output (the dataset's feature cache)
        else:
            patch_grid = self.image_encoder(batch.images).patch_grid  # (F, Hp, Wp, C)
        image_size = tuple(batch.images.shape[-2:])
        corr_point, corr_key = ops.correspondence_patch_keys(batch.corr, image_size, self.image_encoder.patch_size)
        # crop point -> row of the student view (-1 where the view dropped the point)
        where = torch.full((int(batch.crop_offsets[-1]),), -1, dtype=torch.long, device=point_feat.device)
        where[view.index] = torch.arange(view.index.numel(), device=point_feat.device)
        view_row = where[corr_point]
        seen = view_row >= 0
        # Both losses see the points only through means (per patch, per crop). pool_then_project (default): the
        # encoder features are averaged and the whole head maps the P patch and B crop means, as Concerto pools
        # points onto patches and then predicts. Otherwise each point is projected, then averaged; the head ends in
        # a Linear, which commutes with a mean, so it runs up to that Linear on the N points and the Linear on the
        # means (the same numbers up to rounding, cheaper).
        if obj.pool_then_project:
            point_hidden, project_last = point_feat, self.heads["point_proj"]
        else:
            project_hidden, project_last = _split_last_linear(self.heads["point_proj"])
            point_hidden = project_hidden(point_feat)
        if self.frozen_image_target:
            patch_proj = patch_grid.detach()
        else:
            patch_proj = self.heads["image_proj"](patch_grid)

        # dense: mean point embedding per (image, patch) vs that patch's embedding
        if bool(seen.any()):
            keys, pooled = ops.pool_to_patches(point_hidden, view_row[seen], corr_key[seen])
            pooled = project_last(pooled)
            target = ops.gather_patches(patch_proj, keys)
            if self.frozen_image_target and obj.frozen_target_loss == "cosine":
                dense = objectives.cosine_prediction(pooled, target)
            else:  # the frozen target's features are detached above; InfoNCE moves only the points then
                dense = objectives.dense_info_nce(pooled, target, obj.temperature, max_negatives=obj.max_negatives)
            num_patches = keys.numel()
        else:
            dense, num_patches = zero, 0

        # scene level: mean point embedding of each crop vs mean patch embedding of its images
        num_crops = batch.num_crops
        crop_of_image = batch.image_crop
        has_images = torch.bincount(crop_of_image, minlength=num_crops) > 0
        if int(has_images.sum()) >= 2:
            point_mean = project_last(_segment_mean(point_hidden, view.batch, num_crops))
            # a crop without view points averages to 0 (as the mean of its projections would), not to the bias
            point_mean = point_mean * (torch.bincount(view.batch, minlength=num_crops) > 0).unsqueeze(1)
            image_mean = _segment_mean(patch_proj.mean(dim=(1, 2)), crop_of_image, num_crops)
            scene = objectives.info_nce(point_mean[has_images], image_mean[has_images], obj.temperature)
        else:
            scene = zero  # a single crop has no negatives
        return {"loss_dense": dense * obj.cross_modal_weight, "loss_scene": scene * obj.scene_weight,
                "patches": torch.tensor(float(num_patches), device=point_feat.device)}

    @torch.no_grad()
    def _stats(self, feat: Tensor, matched: int, points: int) -> dict[str, Tensor]:
        return feature_stats(feat, matched, points)


def feature_stats(feat: Tensor, matched: int, points: int) -> dict[str, Tensor]:
    """Collapse monitors of a step's (N, C) student features: ``feat_std``, ``feat_rank`` (of at most
    ``_STATS_ROWS`` evenly spaced rows), and the counts ``matched`` and ``points``, as scalar tensors."""
    rows = feat.detach()
    if rows.size(0) > _STATS_ROWS:  # evenly spaced rows: deterministic, no RNG draw
        rows = rows[torch.linspace(0, rows.size(0) - 1, _STATS_ROWS, device=rows.device).long()]
    rows = rows.float()
    device = feat.device
    return {
        "feat_std": objectives.feature_std(rows) if rows.size(0) >= 2 else torch.zeros((), device=device),
        "feat_rank": objectives.effective_rank(rows - rows.mean(dim=0)),  # centred: a shared offset is no rank
        "matched": torch.tensor(float(matched), device=device),
        "points": torch.tensor(float(points), device=device),
    }


def _split_last_linear(head: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(everything before the last Linear, the last Linear)`` of a :class:`ProjectionHead`.

    ``head(x).mean(0) == last(before(x).mean(0))`` up to rounding, because a Linear is affine. A head of any other
    form is returned whole, followed by an identity.
    """
    net = getattr(head, "net", None)
    if isinstance(head, ProjectionHead) and isinstance(net, nn.Sequential) and isinstance(net[-1], nn.Linear):
        return net[:-1], net[-1]
    return head, nn.Identity()


def _mean_entropy(probs: Tensor) -> Tensor:
    """Mean over rows of the entropy of (P, K) distributions, divided by log K (in [0, 1]; 1 = uniform)."""
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=-1).mean()
    return entropy / math.log(probs.size(-1))


def _segment_mean(x: Tensor, segment: Tensor, size: int) -> Tensor:
    """(N, C) rows, (N,) segment ids in [0, size) -> (size, C) mean per segment (0 for an empty one)."""
    sums = x.new_zeros(size, x.size(1)).index_add(0, segment, x)
    counts = torch.bincount(segment, minlength=size).clamp_min(1).to(x.dtype)
    return sums / counts.unsqueeze(1)

"""The training batch: several scene crops, their two point views, their images and correspondences.

:func:`collate_scenes` joins the :class:`CropSample` s that :class:`concerto3d.data.dataset.SceneDataset` returns
into one :class:`TrainBatch` (docs/architecture.md, "Training batch"). Crop points are concatenated in sample
order; crop ``b`` owns rows ``crop_offsets[b]:crop_offsets[b + 1]``. Every point index (``PointView.index``, the
point column of ``corr``) is shifted by its crop's offset and every image index (column 0 of ``corr``) by its
sample's image offset, so they address the concatenated crop points and images.

Point features (``PointView.feat``, always :data:`FEATURE_CHANNELS` = 9 channels)::

    feat[:, 0:3]  position: (0, 0, height above the scene's floor) with ``position_feature="height"`` (the
                  default), or xyz relative to the crop centre with ``"xyz"``; after augmentation, the same
                  numbers as ``coord`` (whose origin is then the floor below the crop's centre, resp. its centre)
    feat[:, 3:6]  colour scaled to [-1, 1]; zeros when colour is not used or was dropped by augmentation
    feat[:, 6:9]  unit normal; zeros when normals are not used or were dropped

The channel count does not depend on ``use_color`` / ``use_normal`` or on drops: leaving a cue out zeroes its
channels, so one model serves every setting and a checkpoint's input layer never changes shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from concerto3d.data.point_cloud import PointCloud

FEATURE_CHANNELS = 9
FEATURE_SLICES = {"xyz": slice(0, 3), "color": slice(3, 6), "normal": slice(6, 9)}


def feature_channels(use_color: bool = True, use_normal: bool = True) -> int:
    """Number of channels of ``PointView.feat``: always 9 (xyz, colour, normal); an unused cue is zeroed, not
    removed (see the module docstring), so the arguments only document what the caller uses."""
    return FEATURE_CHANNELS


POSITION_FEATURES = ("height", "xyz")


def point_features(cloud: PointCloud, use_color: bool = True, use_normal: bool = True,
                   position: str = "xyz") -> np.ndarray:
    """(N, 9) float32 features of a (crop-centred, augmented) cloud in the layout of the module docstring.

    ``position="height"``: the cloud's z is the height above the floor and x, y are left out (zeros): where a point
    lies horizontally says nothing of what it is, and a whole room at inference spans far more x, y than a training
    crop (the position shortcut). ``"xyz"``: the crop-centred coordinates, the former input.
    """
    if position not in POSITION_FEATURES:
        raise ValueError(f"position: expected one of {POSITION_FEATURES}, got {position!r}")
    feat = np.zeros((len(cloud), FEATURE_CHANNELS), dtype=np.float32)
    if position == "xyz":
        feat[:, FEATURE_SLICES["xyz"]] = cloud.coord
    else:
        feat[:, 2] = cloud.coord[:, 2]
    if use_color and cloud.has_color:
        feat[:, FEATURE_SLICES["color"]] = cloud.color * 2.0 - 1.0
    if use_normal and cloud.has_normal:
        feat[:, FEATURE_SLICES["normal"]] = cloud.normal
    return feat


def _move(obj, fn):
    """A copy of dataclass ``obj`` with ``fn`` applied to every tensor field (nested dataclasses too)."""
    values = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, Tensor):
            v = fn(v)
        elif hasattr(v, "__dataclass_fields__"):
            v = _move(v, fn)
        values[f.name] = v
    return type(obj)(**values)


class _TensorFields:
    """``.to(device)`` and ``.pin_memory()`` for a dataclass of tensors (DataLoader(pin_memory=True) calls the
    latter on CUDA machines)."""

    def to(self, device, non_blocking: bool = False):
        return _move(self, lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self):
        return _move(self, lambda t: t.pin_memory())


@dataclass
class PointView(_TensorFields):
    """One augmented view of the batch's crops.

    Shapes:
        coord: (N, 3) float32, metres, crop-centred and augmented.
        feat: (N, 9) float32, layout in this module's docstring.
        batch: (N,) long, crop index 0..B-1, sorted.
        index: (N,) long, row of the batch's concatenated crop points each view point came from.
    """

    coord: Tensor
    feat: Tensor
    batch: Tensor
    index: Tensor


@dataclass
class TrainBatch(_TensorFields):
    """B scene crops with two point views, F images and M correspondences.

    Shapes:
        crop_offsets: (B+1,) long; crop b owns crop points crop_offsets[b]:crop_offsets[b+1].
        view_student, view_teacher: :class:`PointView` s of the crops.
        images: (F, 3, H, W) float32, ImageNet-normalised, photometric augmentation applied.
        images_teacher: (F, 3, H, W) float32, another photometric augmentation of the same images.
        image_crop: (F,) long, crop each image belongs to.
        corr: (M, 4) long rows (image 0..F-1, u = column, v = row, crop point 0..sum(crop sizes)-1).
        labels: (sum of crop sizes,) long, segment20 per crop point, -1 = ignore (monitoring, and the targets of
            the supervised objective).
        image_features: (F, Hp, Wp, C) float32, a frozen image encoder's cached patch features of the images (as
            stored, before augmentation), or an empty tensor when the dataset reads no cache.
        image_labels: (F, H, W) long, the images' 2D labels (ScanNet-20, -1 = unlabelled) when the dataset reads
            them (``data.frame_labels``), else an empty tensor.
    """

    crop_offsets: Tensor
    view_student: PointView
    view_teacher: PointView
    images: Tensor
    images_teacher: Tensor
    image_crop: Tensor
    corr: Tensor
    labels: Tensor
    image_features: Tensor = field(default_factory=lambda: torch.zeros(0))
    image_labels: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @property
    def num_crops(self) -> int:
        return len(self.crop_offsets) - 1


@dataclass
class CropSample(_TensorFields):
    """One scene crop as the dataset returns it; indices are local to the crop.

    Shapes (n crop points, f images, m correspondences):
        labels: (n,) long, segment20, -1 = ignore.
        view_student, view_teacher: :class:`PointView` with ``batch`` all zeros and ``index`` in 0..n-1.
        images, images_teacher: (f, 3, H, W) float32 normalised (f may be 0).
        corr: (m, 4) long rows (image 0..f-1, u, v, crop point 0..n-1).
        centre: (3,) float32, world coordinates of the origin ``coord`` is relative to: the crop's box centre, its z
            the scene's floor with ``position_feature="height"``.
        scene: the scene folder's name.
        image_features: (f, Hp, Wp, C) float32 cached patch features of the images, or empty (no cache).
        image_labels: (f, H, W) long 2D labels of the images (-1 = unlabelled), or empty (not read).
    """

    labels: Tensor
    view_student: PointView
    view_teacher: PointView
    images: Tensor
    images_teacher: Tensor
    corr: Tensor
    centre: Tensor
    scene: str = ""
    image_features: Tensor = field(default_factory=lambda: torch.zeros(0))
    image_labels: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @property
    def num_points(self) -> int:
        return len(self.labels)


def make_view(cloud: PointCloud, use_color: bool = True, use_normal: bool = True,
              position: str = "xyz") -> PointView:
    """A :class:`PointView` of one crop (``batch`` zeros) from an augmented cloud whose index map points into the
    crop."""
    return PointView(
        coord=torch.from_numpy(np.ascontiguousarray(cloud.coord, dtype=np.float32)),
        feat=torch.from_numpy(point_features(cloud, use_color, use_normal, position)),
        batch=torch.zeros(len(cloud), dtype=torch.long),
        index=torch.from_numpy(np.ascontiguousarray(cloud.index, dtype=np.int64)))


def _collate_views(views: Sequence[PointView], crop_offsets: Tensor) -> PointView:
    sizes = torch.tensor([len(v.coord) for v in views], dtype=torch.long)
    return PointView(
        coord=torch.cat([v.coord for v in views]),
        feat=torch.cat([v.feat for v in views]),
        batch=torch.repeat_interleave(torch.arange(len(views)), sizes),
        index=torch.cat([v.index + crop_offsets[b] for b, v in enumerate(views)]))


def collate_scenes(samples: Sequence[CropSample]) -> TrainBatch:
    """Join B crop samples into one :class:`TrainBatch` (use as ``DataLoader(collate_fn=collate_scenes)``).

    Args:
        samples: B >= 1 :class:`CropSample` s whose images all have the same (H, W).
    Returns:
        The batch, indices shifted as described in the module docstring.
    """
    if len(samples) == 0:
        raise ValueError("collate_scenes: expected at least one sample, got none")
    sizes = [s.num_points for s in samples]
    image_sizes = {tuple(s.images.shape[-2:]) for s in samples}
    if len(image_sizes) != 1:
        raise ValueError(f"collate_scenes: expected images of one size in a batch, got sizes {sorted(image_sizes)}")
    crop_offsets = torch.zeros(len(samples) + 1, dtype=torch.long)
    crop_offsets[1:] = torch.cumsum(torch.tensor(sizes, dtype=torch.long), 0)
    num_images = torch.tensor([len(s.images) for s in samples], dtype=torch.long)
    image_offsets = torch.cumsum(num_images, 0) - num_images

    corr = []
    for b, s in enumerate(samples):
        c = s.corr.clone()
        c[:, 0] += image_offsets[b]
        c[:, 3] += crop_offsets[b]
        corr.append(c)
    return TrainBatch(
        crop_offsets=crop_offsets,
        view_student=_collate_views([s.view_student for s in samples], crop_offsets),
        view_teacher=_collate_views([s.view_teacher for s in samples], crop_offsets),
        images=torch.cat([s.images for s in samples]),
        images_teacher=torch.cat([s.images_teacher for s in samples]),
        image_crop=torch.repeat_interleave(torch.arange(len(samples)), num_images),
        corr=torch.cat(corr),
        labels=torch.cat([s.labels for s in samples]),
        image_features=(torch.cat([s.image_features for s in samples])
                        if all(s.image_features.dim() == 4 for s in samples) else torch.zeros(0)),
        image_labels=(torch.cat([s.image_labels for s in samples])
                      if all(s.image_labels.dim() == 3 for s in samples) else torch.zeros(0, dtype=torch.long)))

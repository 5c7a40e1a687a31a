"""Training data: random crops of preprocessed scenes, with the frames that see them, in two augmented views.

Reads the folders ``concerto3d preprocess`` writes (data/README.md section 3). One sample = one crop of one scene:

1. a random centre (a point seen by some frame, when the scene has correspondences) and the ``max_points`` points
   nearest to it (a ball, or a vertical square column with ``crop_shape="box"``), optionally thinned by a grid;
2. the ``max_frames`` frames that see the most crop points (counted through ``correspondences.npy``), their images
   (resized to ``image_size`` when stored at another size) and their correspondences restricted to the crop, with
   point indices remapped to crop rows 0..n-1 and image indices to 0..f-1;
3. two augmented point views of the crop (student and teacher; each keeps an index map into the crop's points)
   and two photometric augmentations of each image.

Determinism: sample ``i`` of epoch ``e`` draws all its randomness from ``numpy.random.default_rng([seed, e, i])``,
so it is the same in any worker process and after a resume (call :meth:`SceneDataset.set_epoch` before each epoch;
with ``DataLoader(persistent_workers=True)`` the workers keep the epoch they were started with, so leave that off).
The dataset holds no open files: it is safe to pickle into ``DataLoader(num_workers>0)`` workers.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from concerto3d.data.collate import CropSample, make_view
from concerto3d.data.image_transforms import (ImageColorJitter, ImageGaussianBlur, ImageGrayscale, Normalize,
                                              mirror_labelled_frames, to_float_image)
from concerto3d.data.compose import Compose
from concerto3d.data.frame_index import EXACT_ROWS, FrameIndex, select_frames
from concerto3d.data.point_cloud import PointCloud, grid_sample_rows, nearest_k
from concerto3d.data.transforms import (ColorDrop, ColorJitter, ElasticDistortion, NormalDrop, RandomCrop, RandomFlip,
                                        RandomJitter, RandomRotateZ, RandomScale, RandomTilt)
from concerto3d.data.scene import (DEFAULT_IMAGE_SIZE, DEFAULT_PATCH_SIZE, SCENE_FILES, check_array,
                                   image_features_path, image_geometry, image_path, label_path, load_array,
                                   load_correspondences, read_frame_labels, read_image, rescale_pixels, scene_folders,
                                   split_scenes)
from concerto3d.labels import IGNORE_INDEX
from concerto3d.errors import FormatError, InputError

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    """What a training sample holds and how it is augmented.

    Crop and images:
        max_points: points in a scene crop (the nearest to a random centre), before ``grid_size`` thinning.
        min_points: scenes with fewer points are skipped (logged); view crops keep at least this many.
        max_frames: images per crop at most (the frames that see the crop the most).
        image_size: (H, W) of the images given to the image encoder; stored images of another size are resized
            and their correspondences rescaled. Both must be multiples of ``patch_size``. None (default): the size
            the data was preprocessed with (its ``meta.json``; :func:`concerto3d.data.scene.image_geometry`).
        patch_size: the image encoder's patch size in pixels; None (default): the data's, like ``image_size``.
        grid_size: metres; > 0 keeps one random point per grid cell of the crop (0 = off).
        crop_shape: "sphere" (nearest points) or "box" (a vertical square column).
        use_color, use_normal: whether the features carry colour / normals (else those channels are zero).
        position_feature: ``height`` (default): the position channels hold only the height above the scene's
            floor (its lowest point); ``xyz``: crop-centred x, y, z (lets features follow where a point is in the
            room, not what it is; ``data/collate.py``).
        frame_labels: also read the crop's frames' 2D labels (``labels/<k>.png``, -1 where a frame has none) into
            ``CropSample.image_labels``: the targets of the ``2d-supervised`` objective.
        loop: samples per scene per epoch (each a different random crop).
        seed: base seed of the per-sample random generators.
    Point augmentation (per view; ``augment=False`` turns every augmentation off, e.g. for evaluation):
        view_crop: (min, max) fraction of the crop each view keeps (a random ball, at least ``min_points``);
            a min above 0.5 guarantees that the two views share points. (1, 1) = no view crop.
        rotate_z: degrees, rotation about z uniform in [-rotate_z, rotate_z]; >= 180 is a full turn.
        tilt: degrees, small rotations about x and y.
        scale: (min, max) uniform scale factor.
        flip_p: probability of mirroring x, and independently y.
        jitter_sigma, jitter_clip: Gaussian coordinate noise in metres and its clip.
        elastic_p: probability of the elastic distortion (Pointcept's granularities and magnitudes).
        color_jitter: brightness and contrast strength for point colours (applied with probability 0.8).
        color_drop_p, normal_drop_p: probability of zeroing the colours / normals of a view.
    Image augmentation (twice per image, independently; photometric only):
        image_jitter: brightness and contrast strength (saturation is half of it), probability 0.8.
        image_grayscale_p, image_blur_p: probabilities of grayscale and of a Gaussian blur (sigma 0.1..2 px).
        label_flip_p: with ``frame_labels`` only (the ``2d-supervised`` objective, whose targets are the labels),
            the probability of mirroring a frame left to right together with its labels; a mirrored frame's
            correspondences are dropped (its pixels no longer show the points they name), and no other objective
            mirrors frames. Mirroring halves what a 2D teacher trained on a few rooms can memorise (held-out lifted
            mIoU 23.9 -> 28.0 in docs/history/2026-12-03-resnet-teacher.md).
    """

    max_points: int = 8192
    min_points: int = 1024
    max_frames: int = 2
    image_size: tuple[int, int] | None = None
    patch_size: int | None = None
    grid_size: float = 0.0
    crop_shape: Literal["sphere", "box"] = "sphere"
    use_color: bool = True
    use_normal: bool = True
    position_feature: Literal["height", "xyz"] = "height"
    frame_labels: bool = False
    loop: int = 1
    seed: int = 0
    augment: bool = True
    view_crop: tuple[float, float] = (0.6, 1.0)
    rotate_z: float = 180.0
    tilt: float = 3.0
    scale: tuple[float, float] = (0.9, 1.1)
    flip_p: float = 0.5
    jitter_sigma: float = 0.005
    jitter_clip: float = 0.02
    elastic_p: float = 0.5
    color_jitter: float = 0.2
    color_drop_p: float = 0.1
    normal_drop_p: float = 0.1
    image_jitter: float = 0.4
    image_grayscale_p: float = 0.2
    image_blur_p: float = 0.5
    label_flip_p: float = 0.5

    def __post_init__(self):
        # YAML gives lists: keep tuples so the config compares and prints the same way however it was made
        if self.image_size is not None:
            self.image_size = tuple(int(v) for v in self.image_size)
        self.view_crop = tuple(float(v) for v in self.view_crop)
        self.scale = tuple(float(v) for v in self.scale)
        if not 1 <= self.min_points <= self.max_points:
            raise ValueError(f"DataConfig: expected 1 <= min_points <= max_points, got min_points="
                             f"{self.min_points}, max_points={self.max_points}")
        if self.max_frames < 0:
            raise ValueError(f"DataConfig.max_frames: expected >= 0, got {self.max_frames}")
        if self.patch_size is not None and self.patch_size < 1:
            raise ValueError(f"DataConfig.patch_size: expected >= 1, got {self.patch_size}")
        if self.image_size is not None and self.patch_size is not None and (len(self.image_size) != 2 or any(
                s < self.patch_size or s % self.patch_size for s in self.image_size)):
            raise ValueError(f"DataConfig.image_size: expected (H, W), both positive multiples of patch_size="
                             f"{self.patch_size}, got {self.image_size}")
        if self.grid_size < 0:
            raise ValueError(f"DataConfig.grid_size: expected metres >= 0, got {self.grid_size}")
        if self.crop_shape not in ("sphere", "box"):
            raise ValueError(f"DataConfig.crop_shape: expected 'sphere' or 'box', got {self.crop_shape!r}")
        if self.loop < 1:
            raise ValueError(f"DataConfig.loop: expected >= 1, got {self.loop}")
        if len(self.view_crop) != 2 or not 0 < self.view_crop[0] <= self.view_crop[1] <= 1:
            raise ValueError(f"DataConfig.view_crop: expected (min, max) with 0 < min <= max <= 1, "
                             f"got {self.view_crop}")
        for name in ("flip_p", "elastic_p", "color_drop_p", "normal_drop_p", "image_grayscale_p", "image_blur_p",
                     "label_flip_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"DataConfig.{name}: expected a probability in [0, 1], got {getattr(self, name)}")


def build_point_transforms(config: DataConfig) -> Compose:
    """The per-view point augmentation of ``config`` (an empty Compose when ``config.augment`` is False)."""
    if not config.augment:
        return Compose([])
    steps = []
    if config.view_crop != (1.0, 1.0):
        steps.append(RandomCrop("sphere", config.view_crop, min_points=config.min_points))
    if config.rotate_z > 0:
        steps.append(RandomRotateZ(None if config.rotate_z >= 180 else config.rotate_z))
    if config.tilt > 0:
        steps.append(RandomTilt(config.tilt))
    if config.scale != (1.0, 1.0):
        steps.append(RandomScale(config.scale))
    if config.flip_p > 0:
        steps.append(RandomFlip(config.flip_p))
    if config.elastic_p > 0:
        steps.append(ElasticDistortion(p=config.elastic_p))
    if config.jitter_sigma > 0:
        steps.append(RandomJitter(config.jitter_sigma, config.jitter_clip))
    if config.use_color and config.color_jitter > 0:
        steps.append(ColorJitter(config.color_jitter, config.color_jitter))
    if config.use_color and config.color_drop_p > 0:
        steps.append(ColorDrop(config.color_drop_p))
    if config.use_normal and config.normal_drop_p > 0:
        steps.append(NormalDrop(config.normal_drop_p))
    return Compose(steps)


def build_image_transforms(config: DataConfig) -> Compose:
    """The per-image photometric augmentation of ``config``, ending with ImageNet normalisation."""
    steps = []
    if config.augment:
        if config.image_jitter > 0:
            steps.append(ImageColorJitter(config.image_jitter, config.image_jitter, config.image_jitter / 2))
        if config.image_grayscale_p > 0:
            steps.append(ImageGrayscale(config.image_grayscale_p))
        if config.image_blur_p > 0:
            steps.append(ImageGaussianBlur(p=config.image_blur_p))
    steps.append(Normalize())
    return Compose(steps)


@dataclass
class SceneCrop:
    """A crop of one scene before augmentation (numpy; world coordinates).

    Shapes (n points, f images, m correspondences):
        point_index: (n,) int64, rows of the scene's point arrays.
        coord: (n, 3) float32 world metres; color: (n, 3) uint8; normal: (n, 3) float32; segment20: (n,) int64.
        frame_index: (f,) int64, ``k`` of the kept ``images/<k>.jpg`` (ascending).
        images: (f, H, W, 3) uint8 at ``config.image_size``.
        corr: (m, 4) int64 rows (image 0..f-1, u, v, crop point 0..n-1), pixels at ``config.image_size``.
        centre: (3,) float32, centre of the crop's bounding box.
        floor: the scene's floor height (its lowest z), metres.
    """

    scene: str
    point_index: np.ndarray
    coord: np.ndarray
    color: np.ndarray
    normal: np.ndarray
    segment20: np.ndarray
    frame_index: np.ndarray
    images: np.ndarray
    corr: np.ndarray
    centre: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    image_labels: np.ndarray | None = None  # (f, H, W) int64 with data.frame_labels, -1 = unlabelled
    floor: float = 0.0


def with_image_geometry(config: DataConfig, root: str | Path | None, split: str | None = "train") -> DataConfig:
    """``config`` with ``image_size`` and ``patch_size`` filled in where they are None: from the ``meta.json`` of
    the split's scenes (every scene's when ``split`` is None), else (or without ``root``) ``data.scene``'s
    defaults."""
    if config.image_size is not None and config.patch_size is not None:
        return config
    found = image_geometry(root, split) if root is not None and Path(root).is_dir() else None
    size, patch = found if found is not None else (DEFAULT_IMAGE_SIZE, DEFAULT_PATCH_SIZE)
    return dataclasses.replace(config, image_size=config.image_size if config.image_size is not None else size,
                               patch_size=config.patch_size if config.patch_size is not None else patch)


def find_scenes(root: str | Path, split: str | None = None) -> list[str]:
    """Names of the scene folders of a split (``root/splits/<split>.txt``, in its order; see
    :mod:`concerto3d.data.scene`), or of every scene folder under ``root`` (sorted) when ``split`` is None.

    Raises:
        InputError: no usable scene, or a split list that is missing or names a scene that is not there.
        FormatError: a scene folder lacks one of ``SCENE_FILES`` or ``images/``.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("expected a folder of preprocessed scenes (concerto3d preprocess OUT), found none", root)
    if split is None:
        names = [p.name for p in scene_folders(root)]
    else:
        names = [p.name for p in split_scenes(root, split)]
    for name in names:
        for fname in SCENE_FILES + ("images",):
            if not (root / name / fname).exists():
                raise FormatError("expected a preprocessed scene file, it is missing", root / name / fname)
    if not names:
        raise InputError("expected preprocessed scene folders (with coord.npy), found none", root)
    return names


class SceneDataset(torch.utils.data.Dataset):
    """Random crops of preprocessed scenes with their images and two augmented point views.

    Args:
        root: output folder of ``concerto3d preprocess`` (one sub-folder per scene, data/README.md section 3).
        split: "train", "val", ...: the scenes of ``root/splits/<split>.txt`` (a missing list is an error); None =
            every scene folder under ``root``.
        config: a :class:`DataConfig` (defaults when None).

    ``dataset[i]`` is a :class:`concerto3d.data.collate.CropSample` of scene ``i % len(scenes)``; batch them with
    :func:`concerto3d.data.collate.collate_scenes`. ``point_transform`` and ``image_transform`` print the
    augmentations (log them at the start of a run).
    """

    def __init__(self, root: str | Path, split: str | None = "train", config: DataConfig | None = None):
        self.root = Path(root)
        self.config = with_image_geometry(config if config is not None else DataConfig(), self.root, split)
        self.split = split
        self.epoch = 0
        names = find_scenes(self.root, split)
        self.scenes: list[str] = []
        for name in names:
            n = len(load_array(self.root / name / "coord.npy", mmap=True))
            if n < self.config.min_points:
                log.warning("skipping scene %s: %d points, fewer than min_points=%d", name, n,
                            self.config.min_points)
            else:
                self.scenes.append(name)
        if not self.scenes:
            raise InputError(f"expected scenes with at least min_points={self.config.min_points} points, "
                             f"all {len(names)} have fewer", self.root)
        self.point_transform = build_point_transforms(self.config)
        self.image_transform = build_image_transforms(self.config)
        self._image_normalize = build_image_transforms(dataclasses.replace(self.config, augment=False))
        # scene -> (frame count, FrameIndex or None), once its correspondences were checked
        self._frame_index: dict[str, tuple[int, FrameIndex | None]] = {}
        self.feature_cache: str | None = None  # see use_feature_cache

    def __len__(self) -> int:
        return len(self.scenes) * self.config.loop

    def __repr__(self) -> str:
        return (f"SceneDataset(root={str(self.root)!r}, split={self.split!r}, scenes={len(self.scenes)}, "
                f"samples={len(self)}, epoch={self.epoch})")

    def use_feature_cache(self, digest: str | None) -> None:
        """Give every sample the cached patch features of a frozen image encoder for its images
        (``<scene>/image_features/<digest>.npy``, made by ``concerto3d.inference.feature_cache``); None: none.
        With a cache the images are only normalised, not augmented: the features are what the model reads."""
        self.feature_cache = digest

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and augmentations ``__getitem__`` draws (part of the sample's seed)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng([self.config.seed, self.epoch, int(index)])

    # -- crop --------------------------------------------------------------------------------------------------
    def _correspondences(self, folder: Path, num_points: int) -> tuple[np.ndarray, int, FrameIndex | None]:
        """``correspondences.npy`` memory-mapped (checked once per scene and process), F = 1 + the largest frame
        index, and the scene's :class:`FrameIndex` (None: the file is small or not sorted by frame; read it whole)."""
        if folder.name not in self._frame_index:
            corr = load_correspondences(folder, num_points, mmap=True)
            index = FrameIndex.build(corr) if len(corr) > EXACT_ROWS else None
            if len(corr) > EXACT_ROWS and index is None:
                log.warning("%s: correspondences.npy is not sorted by frame; every crop reads all %d rows",
                            folder.name, len(corr))
            num_frames = index.num_frames if index is not None else (
                int(np.asarray(corr[:, 0]).max()) + 1 if len(corr) else 0)
            self._frame_index[folder.name] = (num_frames, index)
        else:
            corr = load_array(folder / "correspondences.npy", mmap=True)
        return (corr, *self._frame_index[folder.name])

    def load_crop(self, index: int, rng: np.random.Generator) -> SceneCrop:
        """Crop scene ``index % len(scenes)`` at a random centre; see the module docstring."""
        cfg = self.config
        name = self.scenes[index % len(self.scenes)]
        folder = self.root / name
        coord = load_array(folder / "coord.npy")
        check_array(coord, folder / "coord.npy", (None, 3), "f")
        n_all = len(coord)
        corr, num_frames, index = self._correspondences(folder, n_all)

        # 1. centre and crop points
        centre_row = corr[rng.integers(len(corr)), 3] if len(corr) else rng.integers(n_all)
        rows = nearest_k(coord, coord[centre_row], cfg.max_points, cfg.crop_shape)
        if cfg.grid_size > 0:
            rows = rows[grid_sample_rows(coord[rows], cfg.grid_size, rng)]
        local = np.full(n_all, -1, dtype=np.int64)
        local[rows] = np.arange(len(rows))

        # 2. frames that see the crop the most, their correspondences (none read when no frame is wanted)
        if cfg.max_frames == 0 or not len(corr):
            frames, candidates = np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.int64)
        elif index is None:  # a small file: read whole, frames counted exactly
            candidates = np.asarray(corr)
            in_crop = local[candidates[:, 3]] >= 0
            frames = select_frames(candidates[in_crop, 0].astype(np.int64), num_frames, cfg.max_frames)
        else:  # a large one: frames chosen from the index, only their rows read
            frames = index.choose(local >= 0, cfg.max_frames)
            candidates = index.rows(corr, frames)
        frame_local = np.full(num_frames, -1, dtype=np.int64)
        frame_local[frames] = np.arange(len(frames))
        corr_point = local[candidates[:, 3]]
        keep = (corr_point >= 0) & (frame_local[candidates[:, 0]] >= 0)
        crop_corr = np.stack([frame_local[candidates[keep, 0]], candidates[keep, 1].astype(np.int64),
                              candidates[keep, 2].astype(np.int64), corr_point[keep]], axis=1).reshape(-1, 4)
        images = np.zeros((len(frames), *cfg.image_size, 3), dtype=np.uint8)
        for i, k in enumerate(frames):
            path = image_path(folder, k)
            if not path.is_file():
                raise FormatError(f"expected the image of frame {k} named in correspondences.npy, it is missing",
                                  path)
            images[i], stored = read_image(path, cfg.image_size)
            mine = crop_corr[:, 0] == i
            u, v = crop_corr[mine, 1], crop_corr[mine, 2]
            if len(u) and (u.max() >= stored[1] or v.max() >= stored[0]):
                raise FormatError(f"expected pixels inside the {stored[1]}x{stored[0]} image {path.name}, found "
                                  f"u up to {u.max()}, v up to {v.max()}", folder / "correspondences.npy")
            if stored != cfg.image_size:
                crop_corr[mine, 1], crop_corr[mine, 2] = rescale_pixels(u, v, stored, cfg.image_size)

        image_labels = None
        if cfg.frame_labels:
            image_labels = np.full((len(frames), *cfg.image_size), IGNORE_INDEX, dtype=np.int64)
            for i, k in enumerate(frames):
                if label_path(folder, k).is_file():
                    image_labels[i] = read_frame_labels(label_path(folder, k), cfg.image_size)

        # 3. the other per-point arrays, read only at the crop's rows
        arrays = {}
        for fname, shape, kind in (("color.npy", (n_all, 3), "iu"), ("normal.npy", (n_all, 3), "f"),
                                   ("segment20.npy", (n_all,), "iu")):
            arr = load_array(folder / fname, mmap=True)
            check_array(arr, folder / fname, shape, kind)
            arrays[fname] = np.asarray(arr[rows])
        crop_coord = coord[rows].astype(np.float32)
        centre = ((crop_coord.min(axis=0) + crop_coord.max(axis=0)) / 2).astype(np.float32)
        return SceneCrop(scene=name, point_index=rows, coord=crop_coord,
                         color=arrays["color.npy"].astype(np.uint8), normal=arrays["normal.npy"].astype(np.float32),
                         segment20=arrays["segment20.npy"].astype(np.int64), frame_index=frames, images=images,
                         corr=crop_corr, centre=centre, floor=float(coord[:, 2].min()), image_labels=image_labels)

    # -- sample ------------------------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> CropSample:
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        cfg = self.config
        rng = self.rng(index)
        crop = self.load_crop(index, rng)
        origin = crop.centre.copy()
        if cfg.position_feature == "height":  # z measured from the floor: coord z is the height channel
            origin[2] = crop.floor
        base = PointCloud.from_arrays(crop.coord - origin, crop.color if cfg.use_color else None,
                                      crop.normal if cfg.use_normal else None)
        student = self.point_transform(base, rng)
        teacher = self.point_transform(base, rng)
        plain = [to_float_image(im) for im in crop.images]
        image_labels, corr = crop.image_labels, crop.corr
        if image_labels is not None and cfg.augment and cfg.label_flip_p > 0 and len(plain):
            plain, image_labels, corr = mirror_labelled_frames(plain, image_labels, corr, cfg.label_flip_p, rng)
        h, w = cfg.image_size
        features = torch.zeros(0)
        if self.feature_cache is not None:  # the frozen encoder's output for the stored (unaugmented) images
            path = image_features_path(self.root / crop.scene, self.feature_cache)
            cached = load_array(path, mmap=True)
            check_array(cached, path, (None, None, None, None), "f")
            if len(crop.frame_index) and int(crop.frame_index.max()) >= len(cached):
                raise FormatError(f"holds {len(cached)} frames, the crop needs frame {int(crop.frame_index.max())}",
                                  path)
            features = torch.from_numpy(np.asarray(cached[crop.frame_index], dtype=np.float32))
        if self.feature_cache is None:
            images = [self.image_transform(x, rng) for x in plain]
            images_teacher = [self.image_transform(x, rng) for x in plain]
        else:  # the cached features stand for the images: no augmentation to pay for (a third of a sample's time)
            images = images_teacher = [self._image_normalize(x, rng) for x in plain]
        return CropSample(
            labels=torch.from_numpy(crop.segment20),
            view_student=make_view(student, cfg.use_color, cfg.use_normal, cfg.position_feature),
            view_teacher=make_view(teacher, cfg.use_color, cfg.use_normal, cfg.position_feature),
            images=torch.stack(images) if images else torch.zeros((0, 3, h, w)),
            images_teacher=torch.stack(images_teacher) if images_teacher else torch.zeros((0, 3, h, w)),
            corr=torch.from_numpy(np.ascontiguousarray(corr)),
            image_labels=(torch.from_numpy(np.ascontiguousarray(image_labels)) if image_labels is not None
                          else torch.zeros(0, dtype=torch.long)),
            centre=torch.from_numpy(origin),
            scene=crop.scene,
            image_features=features)

"""The Concerto table: does joint 2D-3D pre-training beat what each modality learns alone?

Five rows, each probed with the same frozen-feature linear head (``evaluation.linear_probe``) on the same split:

=========  ============================================================================================
row        features of every point
=========  ============================================================================================
random     the point encoder at its random initialisation (no training)
2d         image encoder trained alone (``--objective 2d``); its patch features lifted onto the points through
           the correspondences (mean over the views that see a point; unseen points get zeros and are counted)
3d         point encoder trained by 3D self-distillation alone (``--objective 3d``)
concat     ``[2d, 3d]`` of the same seed side by side (the probe standardises every channel)
joint      point encoder trained by Concerto (``--objective joint``)
=========  ============================================================================================

The trained rows get the same budget: the same config, overrides and ``steps``. Every (row, seed) is one unit of
work with its own folder, so an interrupted ablation resumes where it stopped::

    OUT/ablation.json              the settings (a rerun with other settings is refused)
    OUT/runs/<row>-seed<s>/        the training run (``model/``, checkpoints, metrics.csv); concat has none
    OUT/probes/<row>-seed<s>.json  the probe's summary (mIoU, per-class IoU, confusion, timings)
    OUT/results.csv, results.md, results.png   the table, rewritten after every unit

A unit whose probe JSON exists is not redone; a run folder with ``model/`` is probed without training again; a run
folder with checkpoints but no model (interrupted) is resumed by the trainer.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from concerto3d.errors import InputError
from concerto3d.labels import IGNORE_INDEX, NUM_CLASSES_20, SCANNET20_NAMES
from concerto3d.evaluation.metrics import json_safe

log = logging.getLogger(__name__)

__all__ = [
    "Row", "ROWS", "ROW_KEYS", "AblationSettings", "RowStats", "run_ablation", "lift_scene_features",
    "probe_features", "subsample_labelled", "aggregate", "mean_and_spread", "ordering_checks", "write_results",
    "load_probes", "data_digest",
]


@dataclass(frozen=True)
class Row:
    """One row of the table.

    Attributes:
        key: short name used in folders and on the command line.
        label: what the table prints.
        objective: the ``--objective`` it is trained with, or None (random: not trained; concat: reuses 2d + 3d).
        paper_miou: the paper's ScanNet linear-probe mIoU (Concerto, NeurIPS 2025), or None.
    """

    key: str
    label: str
    objective: str | None
    paper_miou: float | None


ROWS: tuple[Row, ...] = (
    Row("random", "random-init point encoder", None, None),
    Row("2d", "2D only (image encoder, lifted)", "2d", 63.1),
    Row("3d", "3D only (self-distillation)", "3d", 72.5),
    Row("concat", "concat 2D-only + 3D-only", None, 75.9),
    Row("joint", "joint (Concerto)", "joint", 77.3),
)
ROW_KEYS: tuple[str, ...] = tuple(r.key for r in ROWS)
_ROW = {r.key: r for r in ROWS}

# The paper's ordering, best first; each neighbouring pair is checked against the spread over seeds.
PAPER_ORDER: tuple[str, ...] = ("joint", "concat", "3d", "2d", "random")


@dataclass
class AblationSettings:
    """Everything that decides the numbers of an ablation (stored in ``OUT/ablation.json``).

    Attributes:
        steps: optimiser steps of every trained row (the same budget for each).
        seeds: the seeds; seed s trains with ``seed=s data.seed=s`` and seeds the probe.
        overrides: ``key=value`` training overrides applied to every trained row (after ``config``).
        config: a training YAML for every trained row, or None.
        config_sha256: digest of that file's content (filled in by :func:`run_ablation`).
        training_sha256: digest of the whole training config a row is built from (package defaults, then
            ``config``, then ``overrides``; filled in by :func:`run_ablation`), so that a folder whose rows were
            trained under other package defaults is refused instead of mixed with new rows.
        data_sha256: digest of the preprocessed data the rows train and probe on (:func:`data_digest`; filled in
            by :func:`run_ablation`), so that a folder built on other scenes (regenerated scans, another
            preprocessing) is refused, and a table names the data it came from.
        probe_epochs, probe_lr, probe_batch_size: the linear head (same for every row).
        max_points: embed at most this many points per scene and interpolate the rest (None = all).
        probe_points: fit the head on at most this many labelled points per train scene (a seeded random
            subset; None = all); the val split is always scored on every point.
        image_batch: images per image-encoder forward pass when lifting 2D features.
        rows: the rows to compute (a subset of :data:`ROW_KEYS`; concat needs 2d and 3d).
        image_encoder: a pre-trained image encoder that *is* the 2d row (frozen, its patch features lifted; nothing
            trained), and the joint row's target (implies ``joint_target="2d"``): a concerto3d run or model folder
            with an image encoder (e.g. a ``2d`` run on other scans), or a local Hugging Face ViT/DINOv2 folder,
            as the paper's 2D row and target are DINOv2. ``image_encoder_sha256`` (filled in by
            :func:`run_ablation`) is the digest of its files.
        joint_target: what the joint row aligns its points with. ``scratch``: its own image encoder, trained from
            scratch with the points (symmetric InfoNCE). ``2d``: the same seed's 2d-row image encoder, frozen, whose
            patch features the points learn to predict (cosine), as Concerto does with DINOv2; needs the 2d row.
    """

    steps: int = 300
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    overrides: list[str] = field(default_factory=list)
    config: str | None = None
    config_sha256: str | None = None
    training_sha256: str | None = None
    data_sha256: str | None = None
    probe_epochs: int = 100
    probe_lr: float = 1e-2
    probe_batch_size: int | None = None
    max_points: int | None = None
    probe_points: int | None = None
    image_batch: int = 8
    rows: list[str] = field(default_factory=lambda: list(ROW_KEYS))
    joint_target: str = "scratch"
    image_encoder: str | None = None
    image_encoder_sha256: str | None = None

    def __post_init__(self):
        self.seeds = [int(s) for s in self.seeds]
        self.rows = [str(r) for r in self.rows]
        self.overrides = [str(o) for o in self.overrides]
        if self.steps < 1:
            raise InputError(f"--steps must be >= 1, got {self.steps}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise InputError(f"expected one or more distinct seeds, got {self.seeds}")
        unknown = [r for r in self.rows if r not in _ROW]
        if unknown or not self.rows:
            raise InputError(f"--rows: expected some of {', '.join(ROW_KEYS)}, got {', '.join(self.rows) or 'none'}")
        if "concat" in self.rows and not {"2d", "3d"} <= set(self.rows):
            raise InputError("--rows: concat needs the 2d and 3d rows too")
        if self.image_encoder is not None:
            self.image_encoder = str(Path(self.image_encoder).resolve())
            self.joint_target = "2d"
        if self.joint_target not in ("scratch", "2d"):
            raise InputError(f"--joint-target: expected scratch or 2d, got {self.joint_target!r}")
        if (self.joint_target == "2d" and self.image_encoder is None and "joint" in self.rows
                and "2d" not in self.rows):
            raise InputError("--joint-target 2d: the joint row aligns with the 2d row's image encoder; add the 2d row")
        if self.probe_batch_size is not None and self.probe_batch_size < 1:
            raise InputError(f"--probe-batch-size must be >= 1, got {self.probe_batch_size}")
        if self.probe_epochs < 1 or self.probe_lr <= 0:
            raise InputError(f"expected probe epochs >= 1 and lr > 0, got {self.probe_epochs} and {self.probe_lr}")
        if self.max_points is not None and self.max_points < 1:
            raise InputError(f"--max-points must be >= 1, got {self.max_points}")
        if self.probe_points is not None and self.probe_points < 1:
            raise InputError(f"--probe-points must be >= 1, got {self.probe_points}")
        if self.image_batch < 1:
            raise InputError(f"image_batch must be >= 1, got {self.image_batch}")
        self.rows = [k for k in ROW_KEYS if k in self.rows]  # table order

    def result_fields(self) -> dict:
        """The settings a finished unit's numbers depend on (all but the list of seeds and rows)."""
        d = asdict(self)
        d.pop("seeds")
        d.pop("rows")
        d.pop("config")  # the path may move; its content digest is what counts
        d.pop("image_encoder")  # likewise
        return d


# ---------------------------------------------------------------------------------------------------------------
# folders of one unit


def run_dir_of(out: Path, row: str, seed: int) -> Path:
    """``OUT/runs/<row>-seed<s>``: the training run of one (row, seed)."""
    return Path(out) / "runs" / f"{row}-seed{seed}"


def probe_path_of(out: Path, row: str, seed: int) -> Path:
    """``OUT/probes/<row>-seed<s>.json``: the probe summary of one (row, seed)."""
    return Path(out) / "probes" / f"{row}-seed{seed}.json"


def _has_model(run_dir: Path) -> bool:
    return (run_dir / "model" / "config.json").is_file()


# ---------------------------------------------------------------------------------------------------------------
# training


def _train_config(settings: AblationSettings, objective: str, seed: int, extra: Sequence[str] = ()):
    from concerto3d.config import load_config

    overrides = list(settings.overrides) + [f"objective.kind={objective}", f"steps={settings.steps}",
                                            f"seed={seed}", f"data.seed={seed}", *extra]
    return load_config(settings.config, overrides)


def training_digest(settings: AblationSettings) -> str:
    """sha256 of the training config of the joint row at seed 0, as sorted JSON: it changes with any package
    default, the YAML or an override, and is the same for every seed and row of one ablation."""
    from concerto3d.config import to_dict

    cfg = to_dict(_train_config(settings, "joint", 0))
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()


# the per-scene arrays whose bytes enter data_digest (small: a few MB a scene); the rest enter by size
_DIGEST_ARRAYS = ("coord.npy", "color.npy", "normal.npy", "segment20.npy")


def data_digest(data: Path) -> str:
    """sha256 of a preprocessed dataset as the ablation sees it: the split lists, and for every scene they name
    the bytes of its points, colours, normals and labels and the size of every other file (correspondences,
    images).
    ``meta.json`` is left out: it records absolute source paths, which move with the checkout."""
    from concerto3d.evaluation.features import read_split

    h = hashlib.sha256()
    for split in ("train", "val"):
        folders = read_split(data, split)
        h.update(f"{split}:{','.join(f.name for f in folders)}\n".encode())
        for folder in folders:
            scene = folder.name
            for path in sorted(folder.rglob("*")):
                if not path.is_file() or path.name == "meta.json":
                    continue
                rel = path.relative_to(folder).as_posix()
                if rel in _DIGEST_ARRAYS:
                    h.update(f"{scene}/{rel}:".encode() + hashlib.sha256(path.read_bytes()).digest())
                else:
                    h.update(f"{scene}/{rel}:{path.stat().st_size}\n".encode())
    return h.hexdigest()


def image_encoder_digest(path: Path) -> str:
    """sha256 of what ``--image-encoder PATH`` loads: the model folder of a concerto3d run (not its checkpoints or
    logs), or the whole folder of a Hugging Face model."""
    from concerto3d.models.image_encoder import _own_model_folder

    own = _own_model_folder(str(path))
    return files_digest(Path(own) if own is not None else Path(path))


def files_digest(folder: Path) -> str:
    """sha256 over the relative paths and bytes of every file under ``folder``."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + b"\0")
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 24), b""):
                    h.update(chunk)
    return h.hexdigest()


def ensure_trained(data: Path, out: Path, row: str, seed: int, settings: AblationSettings,
                   progress: bool = True) -> tuple[Path, float]:
    """Train (or build, for ``random``) the model of one (row, seed) unless its ``model/`` folder exists.

    Returns:
        (run folder, seconds spent training now; 0 when the model was already there).
    """
    from concerto3d.models.pretrained import save_model

    if row == "2d" and settings.image_encoder is not None:
        return Path(settings.image_encoder), 0.0  # a given pre-trained encoder: nothing to train
    run_dir = run_dir_of(out, row, seed)
    if _has_model(run_dir):
        return run_dir, 0.0
    tic = time.perf_counter()
    if row == "random":
        # The same architecture as the trained point encoders, initialised as a training run with this seed would
        # be, and saved without a single step.
        from concerto3d.models.concerto import ConcertoModel
        from concerto3d.training.trainer import seed_everything

        cfg = _train_config(settings, "3d", seed)
        seed_everything(cfg.seed)
        save_model(ConcertoModel(cfg), cfg, run_dir, weights="student", steps=0)
    else:
        from concerto3d.training.checkpoint import list_checkpoints
        from concerto3d.training.trainer import train

        extra = []
        if row == "joint" and settings.joint_target == "2d":  # the 2d row of this seed ran first (table order)
            target = Path(settings.image_encoder) if settings.image_encoder else run_dir_of(out, "2d", seed)
            if settings.image_encoder is None and not _has_model(target):
                raise InputError("--joint-target 2d: the 2d row's model is missing", target)
            extra = [f"image_encoder.pretrained_path={target.resolve()}", "image_encoder.freeze=true"]
        cfg = _train_config(settings, _ROW[row].objective, seed, extra)
        resume = bool(list_checkpoints(run_dir)) if run_dir.is_dir() else False
        if resume:
            log.info("%s seed %d: resuming the interrupted run in %s", row, seed, run_dir)
        result = train(cfg, data, run_dir, resume=resume, progress=progress)
        if result.interrupted or result.model_dir is None:
            raise KeyboardInterrupt  # the trainer stopped on a signal and wrote a checkpoint; rerun to resume
    return run_dir, time.perf_counter() - tic


# ---------------------------------------------------------------------------------------------------------------
# features


@dataclass
class LiftedScene:
    """Image features lifted onto the points of one scene.

    Attributes:
        features: (N, C) float32, mean patch feature over the pixels that see each point, zeros where unseen.
        labels: (N,) int64 segment20, -1 = ignore.
        seen: (N,) bool.
    """

    features: np.ndarray
    labels: np.ndarray
    seen: np.ndarray


def lift_scene_features(image_encoder, scene_dir: str | os.PathLike, image_batch: int = 8) -> LiftedScene:
    """Run a frozen image encoder on a preprocessed scene's images and lift its patch features onto the points.

    Stored images of another size than the encoder's ``config.image_size`` are resized (bilinear) and their
    correspondences rescaled, as in training (``data.dataset.read_image`` / ``rescale_pixels``).

    Args:
        image_encoder: a :class:`concerto3d.models.image_encoder.ImageEncoder` (put in eval mode here).
        scene_dir: a preprocessed scene with ``images/<k>.jpg`` and ``correspondences.npy`` (data/README.md §3).
        image_batch: images per forward pass.
    Returns:
        :class:`LiftedScene` with features (N, C), labels (N,), seen (N,).
    """
    import torch

    from concerto3d.data.dataset import read_image, rescale_pixels
    from concerto3d.errors import FormatError
    from concerto3d.evaluation.features import load_scene
    from concerto3d.evaluation.lifting import lift_patch_features

    scene_dir = Path(scene_dir)
    scene = load_scene(scene_dir)
    n = len(scene)
    corr_path = scene_dir / "correspondences.npy"
    try:
        corr = np.load(corr_path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError("missing file; the 2D rows need the correspondences of preprocessing", corr_path) from None
    except (ValueError, OSError) as err:
        raise FormatError(f"not a readable .npy array ({err})", corr_path) from None
    if corr.ndim != 2 or corr.shape[1] != 4 or not np.issubdtype(corr.dtype, np.integer):
        raise FormatError(f"expected (M, 4) integer rows (k, u, v, point), got shape {corr.shape} dtype "
                          f"{corr.dtype}", scene_dir / "correspondences.npy")
    corr = corr.astype(np.int64)
    size = tuple(int(s) for s in image_encoder.config.image_size)
    frames = np.unique(corr[:, 0]) if len(corr) else np.zeros(0, np.int64)
    device = next(image_encoder.parameters()).device
    image_encoder.eval()

    images = np.zeros((len(frames), size[0], size[1], 3), np.uint8)
    for i, k in enumerate(frames):
        path = scene_dir / "images" / f"{int(k):06d}.jpg"
        if not path.is_file():
            raise InputError(f"correspondences.npy refers to image {int(k)}, but {path.name} is missing",
                             scene_dir / "images")
        images[i], stored = read_image(path, size)
        if stored != size:
            rows = corr[:, 0] == k
            corr[rows, 1], corr[rows, 2] = rescale_pixels(corr[rows, 1], corr[rows, 2], stored, size)
    channels = image_encoder.out_channels
    if len(frames) == 0:
        return LiftedScene(np.zeros((n, channels), np.float32), scene.segment20, np.zeros(n, bool))

    grids = []
    with torch.no_grad():
        for start in range(0, len(frames), image_batch):
            batch = torch.from_numpy(images[start:start + image_batch]).to(device)
            batch = image_encoder.normalize(batch.permute(0, 3, 1, 2).float().div_(255.0))
            grids.append(image_encoder(batch).patch_grid.float())
    grid = torch.cat(grids)
    remap = np.searchsorted(frames, corr[:, 0])  # image k -> its position in `frames`
    rows = torch.from_numpy(np.column_stack([remap, corr[:, 1:]])).to(device)
    lifted = lift_patch_features(grid, rows, n, image_encoder.patch_size)
    return LiftedScene(lifted.features.cpu().numpy().astype(np.float32), scene.segment20,
                       lifted.seen.cpu().numpy())


@dataclass
class SplitFeatures:
    """Per-scene features and labels of the train and val splits of one (row, seed), plus notes."""

    train_x: list[np.ndarray]
    train_y: list[np.ndarray]
    val_x: list[np.ndarray]
    val_y: list[np.ndarray]
    notes: dict = field(default_factory=dict)


def _point_features(run_dir: Path, data: Path, settings: AblationSettings, seed: int, desc: str,
                    progress: bool = True) -> SplitFeatures:
    from concerto3d.evaluation.features import read_split
    from concerto3d.evaluation.probe_command import embed_split
    from concerto3d.models.pretrained import load_model

    model = load_model(run_dir)
    train_x, train_y = embed_split(model, read_split(data, "train"), settings.max_points, seed, f"{desc} train",
                                   progress=progress)
    val_x, val_y = embed_split(model, read_split(data, "val"), settings.max_points, seed, f"{desc} val",
                               progress=progress)
    return SplitFeatures(train_x, train_y, val_x, val_y)


def _image_encoder_of(path: Path, settings: AblationSettings):
    """The image encoder of a concerto3d run or model folder, or one built on a Hugging Face folder with the
    ablation's image settings (size, normalisation) as the joint row builds it."""
    from concerto3d.models.image_encoder import ImageEncoder, _own_model_folder
    from concerto3d.models.pretrained import load_model

    if _own_model_folder(str(path)) is not None:
        encoder = load_model(path).image_encoder
        if encoder is None:
            raise InputError("expected a model with an image encoder (a 2d run)", path)
        return encoder
    cfg = _train_config(settings, "2d", 0, [f"image_encoder.pretrained_path={Path(path).resolve()}",
                                            "image_encoder.freeze=true"])
    return ImageEncoder(cfg.image_encoder)


def _check_image_encoder(path: Path, settings: AblationSettings) -> None:
    """Load the ``--image-encoder`` and check that the ablation's images and patches fit it (DINOv2 has 14-pixel
    patches; the benchmark's 144x192 images and 16-pixel ``data.patch_size`` do not)."""
    encoder = _image_encoder_of(path, settings)
    cfg = _train_config(settings, "joint", 0)
    patch = int(encoder.patch_size)
    size = tuple(int(v) for v in cfg.data.image_size)
    if cfg.data.patch_size != patch or any(v % patch for v in size):
        fit = [(v // patch) * patch for v in size]
        raise InputError(
            f"--image-encoder has {patch}-pixel patches, but the training config has {size[0]}x{size[1]} images "
            f"and data.patch_size={cfg.data.patch_size}; add e.g. data.patch_size={patch} "
            f"data.image_size=[{fit[0]},{fit[1]}] image_encoder.patch_size={patch} "
            f"image_encoder.image_size=[{fit[0]},{fit[1]}]", path)


def _lifted_features(run_dir: Path, data: Path, settings: AblationSettings, desc: str,
                     progress: bool = True) -> SplitFeatures:
    from tqdm import tqdm

    from concerto3d.evaluation.features import read_split

    image_encoder = _image_encoder_of(run_dir, settings).eval().requires_grad_(False)
    out: dict[str, list] = {"train_x": [], "train_y": [], "val_x": [], "val_y": []}
    unseen = {}
    for split in ("train", "val"):
        points = unseen_points = labelled = labelled_unseen = 0
        for scene_dir in tqdm(read_split(data, split), desc=f"{desc} {split}", unit="scene", leave=False,
                              disable=not progress):
            lifted = lift_scene_features(image_encoder, scene_dir, settings.image_batch)
            out[f"{split}_x"].append(lifted.features)
            out[f"{split}_y"].append(lifted.labels)
            has_label = lifted.labels != IGNORE_INDEX
            points += len(lifted.seen)
            unseen_points += int((~lifted.seen).sum())
            labelled += int(has_label.sum())
            labelled_unseen += int((has_label & ~lifted.seen).sum())
        unseen[split] = {"points": points, "unseen": unseen_points, "labelled": labelled,
                         "labelled_unseen": labelled_unseen}
    return SplitFeatures(**out, notes={"unseen": unseen})


def _concat(a: SplitFeatures, b: SplitFeatures) -> SplitFeatures:
    """``[a, b]`` channel-wise, scene by scene (same scenes, same order, same labels)."""
    def cat(xs, ys):
        if len(xs) != len(ys):
            raise ValueError(f"cannot concatenate features of {len(xs)} and {len(ys)} scenes")
        return [np.concatenate([x, y], axis=1) for x, y in zip(xs, ys)]

    for ya, yb in zip(a.train_y + a.val_y, b.train_y + b.val_y):
        if not np.array_equal(ya, yb):
            raise ValueError("the two feature sets do not describe the same points (labels differ)")
    return SplitFeatures(cat(a.train_x, b.train_x), a.train_y, cat(a.val_x, b.val_x), a.val_y,
                         notes=dict(a.notes))


# ---------------------------------------------------------------------------------------------------------------
# probing


def subsample_labelled(xs: list[np.ndarray], ys: list[np.ndarray], per_scene: int | None,
                       seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """At most ``per_scene`` labelled points of each scene, a random subset seeded by ``seed`` (pure).

    Args:
        xs: per-scene features (N_i, C); ys: per-scene labels (N_i,), -1 = ignore.
        per_scene: the cap, or None to keep every labelled point.
    Returns:
        (features, labels) of the kept points, scene by scene, in their original order.
    """
    rng = np.random.default_rng(seed)
    out_x, out_y = [], []
    for x, y in zip(xs, ys):
        labelled = np.flatnonzero(y != IGNORE_INDEX)
        if per_scene is not None and len(labelled) > per_scene:
            labelled = np.sort(rng.choice(labelled, size=per_scene, replace=False))
        out_x.append(x[labelled])
        out_y.append(y[labelled])
    return out_x, out_y


def probe_features(feats: SplitFeatures, epochs: int = 100, lr: float = 1e-2, seed: int = 0,
                   batch_size: int | None = None, device=None, probe_points: int | None = None) -> dict:
    """Train the linear head on the train features and evaluate it on the val features.

    The same head as ``concerto3d probe``: standardised features, one ``nn.Linear``, cross-entropy with ignore
    index -1, one confusion matrix over the whole val split.

    Args:
        feats: per-scene train/val features (N_i, C) and labels (N_i,).
        epochs, lr, seed, batch_size, device: the head's training (``train_linear_probe``).
        probe_points: fit on at most this many labelled points per train scene (:func:`subsample_labelled`).
    Returns:
        summary dict: ``miou``, ``overall_accuracy``, ``mean_accuracy``, ``iou`` {class: IoU or None},
        ``class_points``, ``confusion``, ``train_miou``, ``feature_dim``, ``labelled_points``, plus ``feats.notes``.
    """
    from concerto3d.evaluation.linear_probe import evaluate_probe, train_linear_probe

    dims = {x.shape[1] for x in feats.train_x + feats.val_x}
    if len(dims) != 1:
        raise ValueError(f"features of different widths across scenes: {sorted(dims)}")
    n_train = int(sum((y != IGNORE_INDEX).sum() for y in feats.train_y))
    n_val = int(sum((y != IGNORE_INDEX).sum() for y in feats.val_y))
    if n_train == 0 or n_val == 0:
        raise InputError(f"expected labelled points in both splits, got {n_train} (train) and {n_val} (val); "
                         "segment20.npy is all -1")
    fit_x, fit_y = subsample_labelled(feats.train_x, feats.train_y, probe_points, seed)
    head = train_linear_probe(np.concatenate(fit_x), np.concatenate(fit_y), NUM_CLASSES_20,
                              epochs=epochs, lr=lr, seed=seed, batch_size=batch_size, device=device)
    train_result = evaluate_probe(head, fit_x, fit_y, NUM_CLASSES_20)
    result = evaluate_probe(head, feats.val_x, feats.val_y, NUM_CLASSES_20)
    return {
        **result.to_dict(SCANNET20_NAMES),
        "train_miou": train_result.miou,
        "feature_dim": dims.pop(),
        "labelled_points": {"train": n_train, "train_fitted": int(sum(len(y) for y in fit_y)), "val": n_val},
        "scenes": {"train": len(feats.train_x), "val": len(feats.val_x)},
        "head": {"epochs": epochs, "lr": lr, "seed": seed, "batch_size": batch_size, "probe_points": probe_points},
        **feats.notes,
    }



def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)  # a reader (or a resumed ablation) never sees half a file


# ---------------------------------------------------------------------------------------------------------------
# aggregation (pure)


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) of the finite values; (nan, nan) if none."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


@dataclass
class RowStats:
    """One row of the table, over the seeds that have finished.

    Attributes:
        key, label, paper_miou: from :class:`Row`.
        seeds: the seeds aggregated.
        miou: per-seed val mIoU (fractions, 0..1), in ``seeds`` order.
        miou_mean, miou_std: their mean and sample standard deviation.
        oa_mean, oa_std: overall accuracy, the same way.
        iou_mean, iou_std: (20,) per-class IoU over seeds (nan where the class is absent from val).
    """

    key: str
    label: str
    paper_miou: float | None
    seeds: list[int]
    miou: list[float]
    miou_mean: float
    miou_std: float
    oa_mean: float
    oa_std: float
    iou_mean: np.ndarray
    iou_std: np.ndarray


def aggregate(probes: dict[str, dict[int, dict]]) -> list[RowStats]:
    """Mean and spread over seeds of each row's probe summaries.

    Args:
        probes: ``{row: {seed: summary}}`` with summaries as written by :func:`probe_features` (``miou``,
            ``overall_accuracy``, ``iou`` {class name: value or None}).
    Returns:
        one :class:`RowStats` per row that has at least one seed, in table order.
    """
    stats = []
    for row in ROWS:
        per_seed = probes.get(row.key) or {}
        if not per_seed:
            continue
        seeds = sorted(per_seed)
        summaries = [per_seed[s] for s in seeds]
        miou = [float("nan") if s.get("miou") is None else float(s["miou"]) for s in summaries]
        m, sd = mean_and_spread(miou)
        oa, oa_sd = mean_and_spread([s.get("overall_accuracy") for s in summaries])
        iou = np.array([[np.nan if s["iou"].get(n) is None else s["iou"][n] for n in SCANNET20_NAMES]
                        for s in summaries], dtype=np.float64)
        per_class = [mean_and_spread(iou[:, c]) for c in range(NUM_CLASSES_20)]
        stats.append(RowStats(row.key, row.label, row.paper_miou, seeds, miou, m, sd, oa, oa_sd,
                              np.array([p[0] for p in per_class]), np.array([p[1] for p in per_class])))
    return stats


@dataclass
class OrderingCheck:
    """Whether ``better`` beats ``worse`` by more than the spread over seeds (the larger of the two stds)."""

    better: str
    worse: str
    difference: float
    spread: float
    holds: bool


def ordering_checks(stats: Sequence[RowStats], pairs: Sequence[tuple[str, str]] | None = None) -> list[OrderingCheck]:
    """Check the paper's claims on the table.

    Args:
        stats: rows from :func:`aggregate`.
        pairs: (better, worse) row keys; default: each neighbouring pair of :data:`PAPER_ORDER` plus the issue's
            headline claims joint > 3d, joint > 2d and joint > random, and 3d > random (the self-supervised 3D
            objective teaches more than the architecture gives untrained).
    Returns:
        one :class:`OrderingCheck` per pair whose rows are both present; ``holds`` when the mean difference
        exceeds the larger standard deviation of the two rows (and is positive).
    """
    if pairs is None:
        pairs = list(zip(PAPER_ORDER[:-1], PAPER_ORDER[1:])) + [("joint", "3d"), ("joint", "2d"), ("joint", "random"),
                                                                   ("3d", "random")]
    by_key = {s.key: s for s in stats}
    checks, seen = [], set()
    for better, worse in pairs:
        if (better, worse) in seen or better not in by_key or worse not in by_key:
            continue
        seen.add((better, worse))
        a, b = by_key[better], by_key[worse]
        diff = a.miou_mean - b.miou_mean
        spread = max(a.miou_std, b.miou_std)
        checks.append(OrderingCheck(better, worse, diff, spread, bool(diff > 0 and diff > spread)))
    return checks


# ---------------------------------------------------------------------------------------------------------------
# writing the table


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def write_results(out: Path, stats: Sequence[RowStats], header: dict | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``results.md`` and ``results.png`` (bar chart, mean ± std over seeds) under ``out``.

    Args:
        out: the ablation folder.
        stats: rows from :func:`aggregate`.
        header: optional facts printed at the top of results.md (``command``, ``data``, ``settings``, ``seconds``).
    Returns:
        {"csv": path, "md": path, "png": path}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header = header or {}
    present = [c for c in range(NUM_CLASSES_20) if any(np.isfinite(s.iou_mean[c]) for s in stats)]

    # results.csv: one line per row, fractions (0..1)
    csv_path = out / "results.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "label", "seeds", "miou_mean", "miou_std", "miou_per_seed", "oa_mean", "oa_std",
                    "paper_miou"] + [f"iou_{SCANNET20_NAMES[c].replace(' ', '_')}" for c in present]
                   + [f"iou_std_{SCANNET20_NAMES[c].replace(' ', '_')}" for c in present])
        for s in stats:
            w.writerow([s.key, s.label, len(s.seeds), f"{s.miou_mean:.6f}", f"{s.miou_std:.6f}",
                        ";".join(f"{m:.6f}" for m in s.miou), f"{s.oa_mean:.6f}", f"{s.oa_std:.6f}",
                        "" if s.paper_miou is None else s.paper_miou]
                       + [f"{s.iou_mean[c]:.6f}" for c in present] + [f"{s.iou_std[c]:.6f}" for c in present])

    # results.md
    lines = ["# Concerto ablation: joint vs single-modality features (linear probe, val mIoU %)", ""]
    if header.get("command"):
        lines += ["Command:", "", "```", header["command"], "```", ""]
    for key in ("data", "machine", "wall_time"):
        if header.get(key):
            lines.append(f"- {key.replace('_', ' ')}: {header[key]}")
    if header.get("settings"):
        lines.append(f"- settings: `{json.dumps(header['settings'], sort_keys=True)}`")
    lines += ["", "| row | mIoU (mean ± std) | per seed | overall acc. | paper (ScanNet) |",
              "| --- | --- | --- | --- | --- |"]
    for s in stats:
        lines.append(f"| {s.label} | {_pct(s.miou_mean)} ± {_pct(s.miou_std)} | "
                     f"{', '.join(_pct(m) for m in s.miou)} (seeds {', '.join(map(str, s.seeds))}) | "
                     f"{_pct(s.oa_mean)} ± {_pct(s.oa_std)} | "
                     f"{'' if s.paper_miou is None else s.paper_miou} |")
    checks = ordering_checks(stats)
    if checks:
        lines += ["", "Ordering (holds = mean difference > the larger std of the two rows):", ""]
        for c in checks:
            lines.append(f"- {c.better} > {c.worse}: {100 * c.difference:+.1f} points (spread "
                         f"{100 * c.spread:.1f}) -> {'holds' if c.holds else 'does NOT hold'}")
    if present:
        lines += ["", "Per-class IoU % (mean over seeds):", "",
                  "| row | " + " | ".join(SCANNET20_NAMES[c] for c in present) + " |",
                  "| --- |" + " --- |" * len(present)]
        for s in stats:
            lines.append(f"| {s.key} | " + " | ".join(_pct(s.iou_mean[c]) for c in present) + " |")
    if header.get("notes"):
        lines += ["", *header["notes"]]
    md_path = out / "results.md"
    md_path.write_text("\n".join(lines) + "\n")

    png_path = out / "results.png"
    _bar_chart(png_path, stats)
    return {"csv": csv_path, "md": md_path, "png": png_path}


def _bar_chart(path: Path, stats: Sequence[RowStats]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(stats))
    means = [100 * s.miou_mean for s in stats]
    stds = [100 * s.miou_std for s in stats]
    ax.bar(x, means, yerr=stds, capsize=4, color=["#999999", "#4c72b0", "#55a868", "#8172b2", "#c44e52"][:len(x)]
           if len(x) <= 5 else None)
    for i, s in enumerate(stats):
        for m in s.miou:
            ax.plot(i, 100 * m, "k.", ms=4)
    ax.set_xticks(x, [s.key for s in stats])
    ax.set_ylabel("val mIoU (%)")
    ax.set_title(f"linear probe, mean ± std over {max((len(s.seeds) for s in stats), default=0)} seed(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_probes(out: Path, rows: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[int, dict]]:
    """The finished probe summaries under ``OUT/probes`` as ``{row: {seed: summary}}``."""
    probes: dict[str, dict[int, dict]] = {}
    for row in rows:
        for seed in seeds:
            path = probe_path_of(out, row, seed)
            if path.is_file():
                probes.setdefault(row, {})[seed] = json.loads(path.read_text())
    return probes


# ---------------------------------------------------------------------------------------------------------------
# the whole ablation


def _settings_file(out: Path, settings: AblationSettings, data: Path) -> None:
    """Write ``OUT/ablation.json``, or check that an existing one describes the same ablation."""
    path = out / "ablation.json"
    current = {"data": str(Path(data).resolve()), **asdict(settings)}
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError:
            saved = None
        if isinstance(saved, dict):
            old = AblationSettings(**{k: v for k, v in saved.items() if k != "data"}).result_fields()
            diffs = [k for k, v in settings.result_fields().items() if old.get(k) != v]
            missing = [k for k in diffs if k.endswith("_sha256") and old.get(k) is None]
            if missing:
                raise InputError(f"holds an ablation run from before {', '.join(missing)} was recorded, so it "
                                 "cannot be checked against this one; use another --out (or delete the folder)",
                                 out)
            if diffs:
                raise InputError(f"holds an ablation run with other settings ({', '.join(diffs)} differ); use "
                                 "another --out or the same settings", out)
    _write_json(path, current)


def run_ablation(data: str | os.PathLike, out: str | os.PathLike, settings: AblationSettings,
                 device=None, progress: bool = True, command: str | None = None,
                 on_unit_done: Callable[[str, int, dict], None] | None = None) -> list[RowStats]:
    """Train, probe and tabulate every (row, seed) that is not done yet, then write the table.

    Args:
        data: a preprocessed dataset (``concerto3d preprocess``) with ``splits/train.txt`` and ``splits/val.txt``;
            the trained rows train on the train split.
        out: the ablation folder (see the module docstring for its layout).
        settings: steps, seeds, overrides and probe settings.
        device: where the linear heads train (the training runs follow ``device=`` in the overrides).
        progress: show the progress bar across the whole ablation and the bars of its training, embedding and
            lifting; False shows none.
        command: the command line, printed in results.md.
        on_unit_done: called as ``on_unit_done(row, seed, summary)`` after each newly probed unit.
    Returns:
        the table's rows (:class:`RowStats`), also written to ``results.{csv,md,png}``.
    """
    from tqdm import tqdm

    from concerto3d.evaluation.features import read_split

    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise InputError("not a folder; expected a preprocessed dataset (concerto3d preprocess OUT)", data)
    read_split(data, "train"), read_split(data, "val")  # fail now, not after an hour of training
    if settings.config is not None:
        config_path = Path(settings.config)
        if not config_path.is_file():
            raise InputError("--config: no such file", config_path)
        settings.config_sha256 = hashlib.sha256(config_path.read_bytes()).hexdigest()
    settings.training_sha256 = training_digest(settings)  # also: a bad override fails before anything runs
    settings.data_sha256 = data_digest(data)
    if settings.image_encoder is not None:
        if not Path(settings.image_encoder).is_dir():
            raise InputError("--image-encoder: no such folder", settings.image_encoder)
        _check_image_encoder(Path(settings.image_encoder), settings)  # now, not after an hour of training
        settings.image_encoder_sha256 = image_encoder_digest(Path(settings.image_encoder))
    out.mkdir(parents=True, exist_ok=True)
    _settings_file(out, settings, data)

    units = [(row, seed) for seed in settings.seeds for row in settings.rows]
    done = {u for u in units if probe_path_of(out, *u).is_file()}
    bar = tqdm(total=len(units), initial=len(done), desc="ablation", unit="run", disable=not progress,
               position=0)
    header = {"command": command, "data": str(data), "settings": {"data": str(data), **asdict(settings)}}
    cache: dict[str, SplitFeatures] = {}  # this seed's 2d and 3d features, for concat
    cache_seed = None
    given: list[SplitFeatures] = []  # the --image-encoder's lifted features: the same for every seed, lifted once

    def lifted(run_dir: Path) -> SplitFeatures:
        if settings.image_encoder is None:
            return _lifted_features(run_dir, data, settings, "lift", progress)
        if not given:
            given.append(_lifted_features(run_dir, data, settings, "lift", progress))
        return given[0]

    try:
        for row, seed in units:
            if (row, seed) in done:
                continue
            if cache_seed != seed:
                cache, cache_seed = {}, seed
            bar.set_description(f"ablation: {row} seed {seed}")
            tic = time.perf_counter()
            train_s = 0.0
            if row == "concat":
                for part in ("2d", "3d"):
                    if part not in cache:
                        run_dir, spent = ensure_trained(data, out, part, seed, settings, progress)
                        train_s += spent
                        cache[part] = (lifted(run_dir) if part == "2d" else
                                       _point_features(run_dir, data, settings, seed, "embed", progress))
                feats = _concat(cache["2d"], cache["3d"])
                run_dir = None
            else:
                run_dir, train_s = ensure_trained(data, out, row, seed, settings, progress)
                feats = (lifted(run_dir) if row == "2d" else
                         _point_features(run_dir, data, settings, seed, "embed", progress))
                if row in ("2d", "3d") and "concat" in settings.rows:
                    cache[row] = feats
            feat_s = time.perf_counter() - tic - train_s
            tic_probe = time.perf_counter()
            summary = probe_features(feats, settings.probe_epochs, settings.probe_lr, seed,
                                     settings.probe_batch_size, device, settings.probe_points)
            summary.update(row=row, seed=seed, label=_ROW[row].label, run=None if run_dir is None else str(run_dir),
                           steps=0 if row == "random" else settings.steps,
                           seconds={"train": round(train_s, 2), "features": round(feat_s, 2),
                                    "probe": round(time.perf_counter() - tic_probe, 2)})
            _write_json(probe_path_of(out, row, seed), summary)
            log.info("%s seed %d: val mIoU %.1f (train %.0f s, features %.0f s)", row, seed,
                     100 * summary["miou"], train_s, feat_s)
            bar.update(1)
            stats = aggregate(load_probes(out, settings.rows, settings.seeds))
            write_results(out, stats, {**header, "wall_time": _wall_time(out, settings)})
            if on_unit_done is not None:
                on_unit_done(row, seed, summary)
    finally:
        bar.close()
    stats = aggregate(load_probes(out, settings.rows, settings.seeds))
    write_results(out, stats, {**header, "wall_time": _wall_time(out, settings)})
    return stats


def _wall_time(out: Path, settings: AblationSettings) -> str:
    """Sum of the per-unit seconds recorded in the probe JSONs (training + features + probe)."""
    total = 0.0
    for row in settings.rows:
        for seed in settings.seeds:
            path = probe_path_of(out, row, seed)
            if path.is_file():
                total += sum(json.loads(path.read_text()).get("seconds", {}).values())
    return f"{total / 60:.1f} min of recorded work (training, features, probes; data preparation not included)"

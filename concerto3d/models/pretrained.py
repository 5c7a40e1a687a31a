"""The trained model folder ``RUN/model/``: written at the end of training, read by probe, visualize and embed.

Layout (docs/architecture.md, "Trained model folder")::

    RUN/model/config.json                 {"format": 1, "point_encoder": {...} | null, "image_encoder": {...} | null,
                                           "proj_dim": 256, "input": {"use_color", "use_normal", "grid_size",
                                           "feature_channels": 9}, "objective": "joint", "weights": "student",
                                           "steps": N}
    RUN/model/point_encoder.safetensors   absent for the 2d objective (no point encoder)
    RUN/model/image_encoder.safetensors   absent for the 3d objective (no image encoder)

The folder is self-describing: :func:`load_model` rebuilds the encoders from ``config.json`` alone, without the
training config. (An image encoder built from a local Hugging Face folder, ``image_encoder.pretrained_path``, needs
that folder again to be rebuilt; its weights then come from ``image_encoder.safetensors``.)

Which weights: the student's by default (``export_weights=student``), because on short runs the EMA teacher, with
its momentum of 0.996 -> 1, has barely moved from the random initialisation; ``export_weights=teacher`` saves the
teacher's point encoder instead (usually the better one after a long run, as in DINO/Sonata).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from concerto3d.errors import FormatError, InputError
from concerto3d.models.image_encoder import ImageEncoder, ImageEncoderConfig
from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig

__all__ = ["MODEL_FORMAT", "save_model", "load_model", "PretrainedModel", "model_dir_of", "spatial_tiles",
           "box_distance"]

MODEL_FORMAT = 1
# embed: most points encoded at once, and the context margin of a tile (metres; the encoder groups within 0.4 m at
# its deepest level, and a margin of a few of those lets the tile borders see their neighbourhood)
DEFAULT_TILE_POINTS = 100_000
DEFAULT_TILE_MARGIN = 1.0


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _config_dict(config) -> dict:
    import dataclasses

    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def model_dir_of(path: str | os.PathLike) -> Path:
    """``RUN/model`` for a run folder, or ``path`` itself when it already is a model folder."""
    path = Path(path)
    return path if (path / "config.json").is_file() and not (path / "model").is_dir() else path / "model"


def save_model(model, cfg, run_dir: str | os.PathLike, weights: str = "student", steps: int | None = None) -> Path:
    """Write the trained encoders of a :class:`concerto3d.models.concerto.ConcertoModel` to ``RUN/model/``.

    The folder is written under a temporary name and renamed, so a reader never sees half of it.

    Args:
        model: the trained model (unwrapped from DDP).
        cfg: its :class:`concerto3d.config.TrainConfig`.
        run_dir: the run folder.
        weights: ``student`` or ``teacher`` (the teacher only holds the distilled encoder; the other one is the
            student's).
        steps: optimiser steps trained, recorded in config.json.
    Returns:
        the model folder.
    """
    from safetensors.torch import save_file

    if weights not in ("student", "teacher"):
        raise ValueError(f"weights must be 'student' or 'teacher', got {weights!r}")
    encoders = {"point_encoder": model.point_encoder, "image_encoder": model.image_encoder}
    if weights == "teacher":
        encoders.update({name: module for name, module in model.teacher.items() if name in encoders})
    meta = {
        "format": MODEL_FORMAT,
        "point_encoder": _config_dict(cfg.point_encoder) if encoders["point_encoder"] is not None else None,
        "image_encoder": _config_dict(cfg.image_encoder) if encoders["image_encoder"] is not None else None,
        "proj_dim": cfg.objective.proj_dim,
        "input": {"use_color": cfg.data.use_color, "use_normal": cfg.data.use_normal,
                  "grid_size": cfg.data.grid_size, "feature_channels": 9},
        "objective": cfg.objective.kind,
        "weights": weights,
        "steps": steps,
    }
    final = Path(run_dir) / "model"
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".model-"))
    try:
        for name, module in encoders.items():
            if module is not None:
                tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
                save_file(tensors, str(tmp / f"{name}.safetensors"))
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


class PretrainedModel(nn.Module):
    """Trained encoders loaded from a model folder, ready to embed point clouds.

    Attributes:
        point_encoder: :class:`PointEncoder` in eval mode (None for a ``2d`` model).
        image_encoder: :class:`ImageEncoder` in eval mode (None for a ``3d`` model).
        config: the folder's ``config.json`` as a dict.
        path: the model folder.
    """

    def __init__(self, point_encoder: PointEncoder | None, image_encoder: ImageEncoder | None, config: dict,
                 path: Path | None = None):
        super().__init__()
        self.point_encoder = point_encoder
        self.image_encoder = image_encoder
        self.config = config
        self.path = path
        self.eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def out_channels(self) -> int:
        """Width C of :meth:`embed`'s features."""
        if self.point_encoder is None:
            raise InputError(f"this model ({self.config.get('objective')} objective) has no point encoder", self.path)
        return self.point_encoder.out_channels

    @torch.no_grad()
    def embed(self, points, colors=None, normals=None, tile_points: int = DEFAULT_TILE_POINTS,
              margin: float = DEFAULT_TILE_MARGIN) -> np.ndarray:
        """Per-point features of one point cloud from the point encoder, in the input's order.

        The cloud is centred on its bounding box (as training crops are); with the model's ``grid_size`` > 0 it
        is encoded at one point per grid cell and every point gets its cell's feature. A cloud of at most
        ``tile_points`` encoded points goes through the encoder at once; a larger one is cut into spatial tiles
        (:func:`spatial_tiles`): each tile is encoded with a context margin of ``margin`` metres around it,
        centred on its own bounding box, and gives the features of the points of its core. Peak memory is then
        that of one ``tile_points`` cloud, plus the (N, C) result.

        Args:
            points: (N, 3) float, metres.
            colors: (N, 3) uint8 0..255 or float in [0, 1], or None (zeros, as a dropped colour in training).
            normals: (N, 3) float unit normals, or None (zeros, as a dropped normal in training).
            tile_points: most points encoded at once (a tile with its margin).
            margin: metres of context around each tile's core (the tile borders see their neighbourhood).
        Returns:
            (N, C) float32 numpy array.
        """
        from concerto3d.data.collate import point_features
        from concerto3d.data.transforms import PointCloud

        if self.point_encoder is None:
            raise InputError(f"this model ({self.config.get('objective')} objective) has no point encoder; lift "
                             "its image features onto points instead", self.path)
        points = np.asarray(points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
            raise ValueError(f"embed: expected points of shape (N, 3) with N > 0, got {points.shape}")
        for name, arr in (("colors", colors), ("normals", normals)):
            if arr is not None and np.shape(arr) != points.shape:
                raise ValueError(f"embed: expected {name} of shape {points.shape}, got {np.shape(arr)}")
        if not np.isfinite(points).all():
            raise ValueError("embed: points contain NaN or inf")
        if int(tile_points) < 16 or not margin >= 0:
            raise ValueError(f"embed: expected tile_points >= 16 and margin >= 0, got {tile_points} and {margin}")
        use = self.config.get("input", {})
        centre = (points.min(axis=0) + points.max(axis=0)) / 2
        cloud = PointCloud.from_arrays(points - centre, colors, normals)
        feat = point_features(cloud, use.get("use_color", True), use.get("use_normal", True))
        del cloud
        coord = feat[:, :3]  # the centred coordinates (the first feature channels)
        inverse = None
        grid = float(use.get("grid_size", 0.0) or 0.0)
        if grid > 0:  # encode one point per cell: the first of each
            cells = np.floor(coord / grid).astype(np.int64)
            _, rows, inverse = np.unique(cells, axis=0, return_index=True, return_inverse=True)
            inverse = inverse.reshape(-1)
            coord, feat = coord[rows], feat[rows]
            del cells
        tiles = spatial_tiles(coord, int(tile_points), float(margin))
        out = np.empty((len(coord), self.point_encoder.out_channels), dtype=np.float32)
        for core, context in tiles:
            tile_coord, tile_feat = coord[context], feat[context]
            if len(tiles) > 1:  # a tile is centred on its own bounding box, as a training crop is
                shift = (tile_coord.min(axis=0) + tile_coord.max(axis=0)) / 2
                tile_coord = tile_coord - shift
                tile_feat[:, :3] = tile_coord
            out[core] = self._encode(tile_coord, tile_feat)[np.searchsorted(context, core)]
        return out if inverse is None else out[inverse]

    def _encode(self, coord: np.ndarray, feat: np.ndarray) -> np.ndarray:
        """One cloud through the point encoder: (M, 3) and (M, 9) float32 -> (M, C) float32 numpy."""
        device = self.device
        out = self.point_encoder(torch.from_numpy(np.ascontiguousarray(coord)).to(device),
                                 torch.from_numpy(np.ascontiguousarray(feat)).to(device), None).point_feat
        return out.float().cpu().numpy()


def box_distance(coord: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Euclidean distance of each point to the axis-aligned box [lo, hi]: (M, 3) -> (M,), 0 inside the box."""
    gap = np.maximum(np.maximum(lo - coord, coord - hi), 0.0)
    return np.sqrt((gap * gap).sum(axis=1))


def spatial_tiles(coord: np.ndarray, max_points: int, margin: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut a cloud into tiles of at most ``max_points`` points, each a core plus a context margin around it.

    The cores partition the cloud: starting from the whole cloud, a core whose context (the points within
    ``margin`` metres of the core's bounding box) holds more than ``max_points`` points is split in two at the
    median of its longest side, until the context fits. A core of at most ``max_points // 2`` points is no longer
    split; when its context still does not fit (a very dense margin), the context keeps the core and the margin
    points nearest the core's box.

    Args:
        coord: (M, 3) float point coordinates.
        max_points: most points in a tile's context (>= 2).
        margin: metres of context around each core's bounding box.
    Returns:
        a list of (core, context) pairs of sorted int64 index arrays into ``coord``, core a subset of context; a
        cloud of at most ``max_points`` points gives the single tile (all, all).
    """
    coord = np.asarray(coord)
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise ValueError(f"spatial_tiles: expected coord of shape (M, 3), got {coord.shape}")
    if max_points < 2:
        raise ValueError(f"spatial_tiles: expected max_points >= 2, got {max_points}")
    everything = np.arange(len(coord))
    if len(coord) <= max_points:
        return [(everything, everything)]
    tiles, todo = [], [everything]
    while todo:
        core = todo.pop()
        lo, hi = coord[core].min(axis=0), coord[core].max(axis=0)
        dist = box_distance(coord, lo, hi)
        context = np.flatnonzero(dist <= margin)
        if len(context) > max_points and len(core) > max_points // 2:
            axis = int(np.argmax(hi - lo))
            order = core[np.argsort(coord[core, axis], kind="stable")]
            half = len(order) // 2
            todo += [np.sort(order[half:]), np.sort(order[:half])]
            continue
        if len(context) > max_points:  # dense margin: the core first, then the margin points nearest its box
            rank = dist[context]
            rank[np.isin(context, core, assume_unique=True)] = -1.0
            context = np.sort(context[np.argsort(rank, kind="stable")[:max_points]])
        tiles.append((core, context))
    return tiles


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> PretrainedModel:
    """Load the encoders of a trained run.

    Args:
        path: the run folder (``RUN``, holding ``model/``) or the model folder itself.
        device: where the encoders go.
    Returns:
        a :class:`PretrainedModel` in eval mode.
    Raises:
        InputError: no model folder there. FormatError: config.json or a weights file is unreadable or does not
        match the encoder it describes.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from concerto3d.config import from_dict

    folder = model_dir_of(path)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise InputError("expected a trained run (RUN/model/config.json from concerto3d train), found none",
                         Path(path))
    try:
        meta = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FormatError(f"expected a JSON model description, could not read it ({err})", config_path) from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise FormatError(f"expected a model folder description of format {MODEL_FORMAT}, got "
                          f"{meta.get('format') if isinstance(meta, dict) else type(meta).__name__}", config_path)

    def build(name: str, cls, config_cls):
        if meta.get(name) is None:
            return None
        config = from_dict(config_cls, meta[name], where=str(config_path))
        module = cls(config)
        weights = folder / f"{name}.safetensors"
        if not weights.is_file():
            raise FormatError(f"config.json describes a {name} but its weights are missing", weights)
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError) as err:
            raise FormatError(f"cannot read the weights ({err})", weights) from None
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise FormatError(f"weights do not match the {name} in config.json ({str(err).splitlines()[0]})",
                              weights) from None
        return module

    point_encoder = build("point_encoder", PointEncoder, PointEncoderConfig)
    image_encoder = build("image_encoder", ImageEncoder, ImageEncoderConfig)
    return PretrainedModel(point_encoder, image_encoder, meta, folder).to(device)

"""The trained model folder ``RUN/model/``: written at the end of training, read by probe, visualize and embed.

Layout (docs/architecture.md, "Trained model folder")::

    RUN/model/config.json                 {"format": 1, "point_encoder": {...} | null, "image_encoder": {...} | null,
                                           "proj_dim": 256, "input": {"use_color", "use_normal", "grid_size",
                                           "feature_channels": 9, "position_feature"}, "objective": "joint",
                                           "weights": "student", "steps": N}
    RUN/model/point_encoder.safetensors   absent for the 2d objective (no point encoder)
    RUN/model/image_encoder.safetensors   absent for the 3d objective (no image encoder)

The folder is self-describing: :func:`load_model` rebuilds the encoders from ``config.json`` alone, without the
training config. (An image encoder built from a local Hugging Face folder, ``image_encoder.pretrained_path``, needs
that folder again to be rebuilt; its weights then come from ``image_encoder.safetensors``.)

This module is the only one that opens a model folder. An image encoder's ``pretrained_path`` may name a concerto3d
run (e.g. of the ``2d`` objective) as well as a Hugging Face folder: :func:`load_image_backbone` gives that run's
backbone to :class:`concerto3d.models.image_encoder.ImageEncoder`, which itself only reads Hugging Face folders.

Which weights: the student's by default (``export_weights=student``), because on short runs the EMA teacher, with
its momentum of 0.996 -> 1, has barely moved from the random initialisation; ``export_weights=teacher`` saves the
teacher's point encoder instead (usually the better one after a long run, as in DINO/Sonata).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from torch import nn

from concerto3d.data.scene import DEFAULT_IMAGE_SIZE
from concerto3d.errors import FormatError, InputError
from concerto3d.inference.embedding import PretrainedModel
from concerto3d.io.atomic import atomic_folder
from concerto3d.models.image_encoder import ImageEncoder, ImageEncoderConfig
from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig

__all__ = ["MODEL_FORMAT", "save_model", "load_model", "model_dir_of", "find_model_folder", "load_image_backbone",
           "load_image_encoder"]

MODEL_FORMAT = 1


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _config_dict(config) -> dict:
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
        "image_encoder": _config_dict(encoders["image_encoder"].config) if encoders["image_encoder"] is not None
        else None,  # the encoder's own config: its image and patch size as filled in from the data
        "proj_dim": cfg.objective.proj_dim,
        "input": {"use_color": cfg.data.use_color, "use_normal": cfg.data.use_normal,
                  "grid_size": cfg.data.grid_size, "feature_channels": 9,
                  "position_feature": cfg.data.position_feature},
        "objective": cfg.objective.kind,
        "weights": weights,
        "steps": steps,
    }
    final = Path(run_dir) / "model"
    with atomic_folder(final) as tmp:
        for name, module in encoders.items():
            if module is not None:
                tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
                save_file(tensors, str(tmp / f"{name}.safetensors"))
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    return final


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
        if cls is ImageEncoder:
            module = ImageEncoder(config, backbone=load_image_backbone(config.pretrained_path))
        else:
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


def find_model_folder(path: str | os.PathLike | None) -> Path | None:
    """``path`` or ``path/model`` when it is a concerto3d model folder (a ``config.json`` with a ``format`` key and
    an ``image_encoder`` entry); None otherwise (e.g. a Hugging Face folder, or nothing)."""
    if path is None:
        return None
    for folder in (Path(path) / "model", Path(path)):
        config = folder / "config.json"
        if config.is_file():
            try:
                meta = json.loads(config.read_text())
            except (OSError, ValueError):
                return None
            return folder if isinstance(meta, dict) and "format" in meta and "image_encoder" in meta else None
    return None


def load_image_backbone(path: str | os.PathLike | None) -> nn.Module | None:
    """The trained image backbone of a concerto3d run or model folder named by ``image_encoder.pretrained_path``,
    to pass as ``ImageEncoder(config, backbone=...)``; None when ``path`` is not a concerto3d model folder (a
    Hugging Face folder, which :class:`ImageEncoder` loads itself)."""
    folder = find_model_folder(path)
    if folder is None:
        return None
    encoder = load_model(folder).image_encoder
    if encoder is None:
        raise InputError("this concerto3d model has no image encoder (a 3d run?)", path)
    return encoder.backbone


def load_image_encoder(path: str | os.PathLike, config: ImageEncoderConfig | None = None) -> ImageEncoder:
    """A frozen image encoder from a concerto3d run or model folder (as it was trained), or from a local Hugging
    Face folder (built with ``config``'s image size and normalisation, ``pretrained_path=path``, frozen; without
    an image size, ``data.scene.DEFAULT_IMAGE_SIZE``).

    Returns:
        the encoder in eval mode without gradients.
    """
    if find_model_folder(path) is not None:
        encoder = load_model(path).image_encoder
        if encoder is None:
            raise InputError("expected a model with an image encoder (a 2d run)", path)
    else:
        config = (config if config is not None else ImageEncoderConfig()).following(DEFAULT_IMAGE_SIZE, None)
        config = dataclasses.replace(config, pretrained_path=str(Path(path).resolve()), freeze=True)
        encoder = ImageEncoder(config)
    return encoder.eval().requires_grad_(False)

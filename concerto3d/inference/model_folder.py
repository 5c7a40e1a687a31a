"""The trained model folder ``RUN/model/``: written at the end of training, read by probe, visualize and embed.

It follows the layout people know from Hugging Face's ``PyTorchModelHubMixin`` (``save_pretrained`` /
``from_pretrained``): one ``config.json``, one ``model.safetensors``, one ``README.md`` model card. Layout
(docs/architecture.md, "Trained model folder")::

    RUN/model/config.json        {"format": 2, "library": "concerto3d", "point_encoder": {...} | null,
                                  "image_encoder": {...} | null, "proj_dim": 256, "input": {"use_color",
                                  "use_normal", "grid_size", "feature_channels": 9, "position_feature"},
                                  "objective": "joint", "weights": "student", "steps": N,
                                  "training": {"data": {"name", "split", "scenes", "sha256", "sha256_splits",
                                               "origin"}, "image_encoder": {"path", "sha256", "frozen"} | null,
                                               "seed", "batch_size", "concerto3d_version"} | null}
    RUN/model/model.safetensors  the state dict of :class:`PretrainedModel`: ``point_encoder.*`` and
                                 ``image_encoder.*`` tensors (either absent with its encoder), metadata format "pt"
    RUN/model/README.md          the model card (:mod:`concerto3d.inference.model_card`); ``concerto3d probe``
                                 fills in its marked probe block, nothing else

The folder is self-contained: :func:`concerto3d.inference.load_model` (or ``PretrainedModel.from_pretrained``) rebuilds the encoders
from ``config.json`` alone, without the training config, wherever the folder was copied. An image encoder that
training loaded from a Hugging Face folder or a concerto3d run (``image_encoder.pretrained_path``) is stored with its
architecture inlined (``backbone_config``, :meth:`ImageEncoder.rebuild_config`) and its weights in
``model.safetensors``; the path it came from and the digest of its files are kept under ``training`` for the card.

Format 1 (concerto3d before the model card) is still read: the same ``config.json`` without ``training``, the weights
in ``point_encoder.safetensors`` and ``image_encoder.safetensors``, and an image encoder's ``pretrained_path`` that
must still exist to rebuild it. ``PretrainedModel.save_pretrained(folder)`` writes a loaded model in format 2.

This module is the only one that opens a model folder. An image encoder's ``pretrained_path`` may name a concerto3d
run (e.g. of the ``2d`` objective) as well as a Hugging Face folder: :func:`load_image_backbone` gives that run's
backbone to :class:`concerto3d.models.image_encoder.ImageEncoder`, which itself only reads Hugging Face folders.

Which weights: the student's by default (``export_weights=student``), because on short runs the EMA teacher, with
its momentum of 0.996 -> 1, has barely moved from the random initialisation; ``export_weights=teacher`` saves the
teacher's point encoder instead (usually the better one after a long run, as in DINO/Sonata).

Why not inherit ``huggingface_hub.PyTorchModelHubMixin``: its ``from_pretrained`` downloads from the Hub whenever the
path is not an existing folder (a mistyped path becomes a network call), its ``_from_pretrained`` loads weights with
``strict=False`` by default (a mismatched file would load silently), it writes in place rather than atomically, and
it builds the model from ``__init__`` arguments, where ours needs its own checks, format 1 and image backbones. The
files and names are the same, so a folder reads like any other ``save_pretrained`` folder.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from concerto3d.data.scene import DEFAULT_IMAGE_SIZE
from concerto3d.errors import FormatError, InputError
from concerto3d.inference.model_card import model_card, probe_row, with_probe_result
from concerto3d.io.atomic import atomic_folder, atomic_write_text
from concerto3d.models.image_encoder import ImageEncoder, ImageEncoderConfig
from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig

__all__ = ["MODEL_FORMAT", "READABLE_FORMATS", "CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "save_model",
           "read_encoders", "save_pretrained", "model_dir_of", "find_model_folder", "load_image_backbone",
           "load_image_encoder", "training_provenance", "image_encoder_digest", "record_probe"]

log = logging.getLogger(__name__)

MODEL_FORMAT = 2
READABLE_FORMATS = (1, 2)
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"  # huggingface_hub's SAFETENSORS_SINGLE_FILE
CARD_NAME = "README.md"
ENCODERS = ("point_encoder", "image_encoder")


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _config_dict(config) -> dict:
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _portable_image_config(encoder: ImageEncoder) -> dict:
    """The encoder's config as JSON, rebuildable without any file: a ``pretrained_path`` becomes the backbone's
    inlined Hugging Face config (the weights are in ``model.safetensors``)."""
    config = encoder.rebuild_config() if encoder.config.pretrained_path else encoder.config
    return _config_dict(config)


def model_dir_of(path: str | os.PathLike) -> Path:
    """``RUN/model`` for a run folder, or ``path`` itself when it already is a model folder."""
    path = Path(path)
    return path if (path / CONFIG_NAME).is_file() and not (path / "model").is_dir() else path / "model"


def _package_version() -> str | None:
    """The installed concerto3d's version (None when run from a source tree that was never installed); read from
    the distribution's metadata, as the package root sits above every layer."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("concerto3d")
    except PackageNotFoundError:
        return None


def training_provenance(cfg, data_root: str | os.PathLike, scenes, image_encoder_used: bool) -> dict:
    """What a run trains on, for ``config.json``'s ``training`` entry and the model card: the data's folder name,
    split, scene count, digest (:func:`concerto3d.data.digest.data_digest` over the train and val lists that exist)
    and origin (:func:`data_origin`), and the image encoder it started from (path and files digest), if any.

    Reads every scene's arrays once (for the digest): the trainer calls it before the first step.

    Args:
        cfg: the run's :class:`concerto3d.config.TrainConfig`.
        data_root: the preprocessed dataset.
        scenes: the names of the scenes trained on.
        image_encoder_used: whether the objective has an image encoder (``pretrained_path`` matters then only).
    """
    from concerto3d.data.digest import data_digest, present_splits

    data = Path(data_root)
    splits = present_splits(data, cfg.split)
    image = None
    path = cfg.image_encoder.pretrained_path
    if image_encoder_used and path:
        image = {"path": str(path), "sha256": image_encoder_digest(path), "frozen": bool(cfg.image_encoder.freeze)}
    return {
        "data": {"name": data.resolve().name, "split": cfg.split, "scenes": len(scenes),
                 "sha256": data_digest(data, splits), "sha256_splits": list(splits),
                 "origin": data_origin(data, scenes)},
        "image_encoder": image,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "concerto3d_version": _package_version(),
    }


def data_origin(data: str | os.PathLike, scenes) -> str | None:
    """Where the scenes came from, as far as their ``meta.json`` tells: ``synthetic`` (ScanNet-layout scans under a
    folder ``concerto3d synth`` made), ``scannet``, ``rgbd``, ``mixed``, or None (not recorded)."""
    from concerto3d.data.scene import read_meta
    from concerto3d.synth.writer import SYNTH_MARKER

    found = set()
    for name in scenes:
        try:
            source = read_meta(Path(data) / name).get("source")
        except (InputError, FormatError):
            continue
        if not isinstance(source, dict) or source.get("kind") not in ("scannet", "rgbd"):
            continue
        kind = source["kind"]
        if kind == "scannet" and source.get("path"):
            scans = Path(str(source["path"])).parent  # SYNTH/scans/<scene>: the marker lies in SYNTH
            if (scans.parent / SYNTH_MARKER).is_file():
                kind = "synthetic"
        found.add(kind)
    return None if not found else found.pop() if len(found) == 1 else "mixed"


def _write_folder(final: Path, meta: dict, tensors: dict, replace: bool = True) -> Path:
    """``config.json``, ``model.safetensors`` and ``README.md`` into ``final``, atomically (a reader never sees
    half a folder)."""
    from safetensors.torch import save_file

    card = model_card(meta)
    with atomic_folder(final, replace=replace) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    return final


def _tensors(modules: dict) -> dict:
    return {f"{name}.{key}": value.detach().cpu().contiguous()
            for name, module in modules.items() if module is not None
            for key, value in module.state_dict().items()}


def save_model(model, cfg, run_dir: str | os.PathLike, weights: str = "student", steps: int | None = None,
               training: dict | None = None) -> Path:
    """Write the trained encoders of a :class:`concerto3d.models.concerto.ConcertoModel` to ``RUN/model/``.

    The folder is written under a temporary name and renamed, so a reader never sees half of it; an earlier
    ``RUN/model`` (a resumed run's) is replaced.

    Args:
        model: the trained model (unwrapped from DDP).
        cfg: its :class:`concerto3d.config.TrainConfig`.
        run_dir: the run folder.
        weights: ``student`` or ``teacher`` (the teacher only holds the distilled encoder; the other one is the
            student's).
        steps: optimiser steps trained, recorded in config.json.
        training: :func:`training_provenance` of the run (None: not recorded; the card says so).
    Returns:
        the model folder.
    """
    if weights not in ("student", "teacher"):
        raise ValueError(f"weights must be 'student' or 'teacher', got {weights!r}")
    encoders = {"point_encoder": model.point_encoder, "image_encoder": model.image_encoder}
    if weights == "teacher":
        encoders.update({name: module for name, module in model.teacher.items() if name in encoders})
    meta = {
        "format": MODEL_FORMAT,
        "library": "concerto3d",
        "point_encoder": _config_dict(cfg.point_encoder) if encoders["point_encoder"] is not None else None,
        # the encoder's own config (its image and patch size as filled in from the data), file-free
        "image_encoder": _portable_image_config(encoders["image_encoder"]) if encoders["image_encoder"] is not None
        else None,
        "proj_dim": cfg.objective.proj_dim,
        "input": {"use_color": cfg.data.use_color, "use_normal": cfg.data.use_normal,
                  "grid_size": cfg.data.grid_size, "feature_channels": 9,
                  "position_feature": cfg.data.position_feature},
        "objective": cfg.objective.kind,
        "weights": weights,
        "steps": steps,
        "training": training,
    }
    return _write_folder(Path(run_dir) / "model", meta, _tensors(encoders))


def save_pretrained(model: PretrainedModel, folder: str | os.PathLike) -> Path:
    """Write a loaded :class:`PretrainedModel` as a format-2 model folder at ``folder`` (a new folder: an existing
    one is refused, never replaced). A format-1 folder loaded and saved again this way becomes format 2.

    Raises:
        InputError: ``folder`` exists.
    """
    meta = copy.deepcopy(model.config)
    meta.update(format=MODEL_FORMAT, library="concerto3d")
    meta.setdefault("training", None)
    if model.image_encoder is not None:
        meta["image_encoder"] = _portable_image_config(model.image_encoder)
    final = Path(folder)
    if final.exists():
        raise InputError("exists; save_pretrained writes a new folder and never replaces one", final)
    try:
        return _write_folder(final, meta, _tensors({name: getattr(model, name) for name in ENCODERS}),
                             replace=False)
    except FileExistsError:
        raise InputError("exists; save_pretrained writes a new folder and never replaces one", final) from None


def _read_meta(path: str | os.PathLike) -> tuple[Path, dict]:
    folder = model_dir_of(path)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise InputError("expected a trained run (RUN/model/config.json from concerto3d train), found none",
                         Path(path))
    try:
        meta = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"expected a JSON model description, could not read it ({err})", config_path) from None
    if not isinstance(meta, dict) or meta.get("format") not in READABLE_FORMATS:
        raise FormatError(f"expected a model folder description of format {' or '.join(map(str, READABLE_FORMATS))}"
                          f", got {meta.get('format') if isinstance(meta, dict) else type(meta).__name__}",
                          config_path)
    return folder, meta


def _read_weights(path: Path, what: str) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise FormatError(f"config.json describes {what} but its weights are missing", path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise FormatError(f"cannot read the weights ({err})", path) from None


def _load_state(module: nn.Module, state: dict, what: str, path: Path) -> None:
    try:
        module.load_state_dict(state)  # strict: every tensor present, none left over
    except RuntimeError as err:
        raise FormatError(f"weights do not match the {what} in config.json ({str(err).splitlines()[0]})",
                          path) from None


def read_encoders(path: str | os.PathLike) -> tuple[dict[str, nn.Module | None], dict, Path]:
    """The encoders of a model folder, rebuilt from its ``config.json`` and loaded with its weights (in train mode,
    on the CPU): what :func:`concerto3d.inference.load_model` wraps into a ``PretrainedModel``.

    Args:
        path: the run folder (``RUN``, holding ``model/``) or the model folder itself, of format 2 or 1.
    Returns:
        ``({"point_encoder": module or None, "image_encoder": module or None}, meta, folder)``, ``meta`` being the
        parsed ``config.json``.
    Raises:
        InputError: no model folder there. FormatError: config.json or a weights file is unreadable or does not
        match the encoder it describes.
    """
    from concerto3d.config import from_dict

    folder, meta = _read_meta(path)
    config_path = folder / CONFIG_NAME

    def build(name: str, cls, config_cls):
        if meta.get(name) is None:
            return None
        config = from_dict(config_cls, meta[name], where=str(config_path))
        if cls is ImageEncoder:
            return ImageEncoder(config, backbone=load_image_backbone(config.pretrained_path))
        return cls(config)

    encoders = {"point_encoder": build("point_encoder", PointEncoder, PointEncoderConfig),
                "image_encoder": build("image_encoder", ImageEncoder, ImageEncoderConfig)}
    present = nn.ModuleDict({name: module for name, module in encoders.items() if module is not None})
    if meta["format"] == 1:  # one weights file per encoder
        for name, module in present.items():
            weights = folder / f"{name}.safetensors"
            _load_state(module, _read_weights(weights, f"a {name}"), name, weights)
    else:  # one state dict, keys "point_encoder.*" and "image_encoder.*", as the model's own
        weights = folder / WEIGHTS_NAME
        described = " and ".join(present.keys()) or "no encoder"
        _load_state(present, _read_weights(weights, described), described, weights)
    return encoders, meta, folder


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
    encoder = read_encoders(folder)[0]["image_encoder"]
    if encoder is None:
        raise InputError("this concerto3d model has no image encoder (a 3d run?)", path)
    return encoder.eval().backbone


def load_image_encoder(path: str | os.PathLike, config: ImageEncoderConfig | None = None) -> ImageEncoder:
    """A frozen image encoder from a concerto3d run or model folder (as it was trained), or from a local Hugging
    Face folder (built with ``config``'s image size and normalisation, ``pretrained_path=path``, frozen; without
    an image size, ``data.scene.DEFAULT_IMAGE_SIZE``).

    Returns:
        the encoder in eval mode without gradients.
    """
    if find_model_folder(path) is not None:
        encoder = read_encoders(path)[0]["image_encoder"]
        if encoder is None:
            raise InputError("expected a model with an image encoder (a 2d run)", path)
    else:
        config = (config if config is not None else ImageEncoderConfig()).following(DEFAULT_IMAGE_SIZE, None)
        config = dataclasses.replace(config, pretrained_path=str(Path(path).resolve()), freeze=True)
        encoder = ImageEncoder(config)
    return encoder.eval().requires_grad_(False)


def image_encoder_digest(path: str | os.PathLike) -> str:
    """sha256 of the files an image encoder is loaded from: the model folder of a concerto3d run (its
    ``config.json`` and weights; not its checkpoints, logs or model card, which ``probe`` edits), or the whole
    folder of a Hugging Face model. ``OUT/ablation.json``'s ``image_encoder_sha256`` and a model card's image
    encoder digest."""
    from concerto3d.data.digest import files_digest

    own = find_model_folder(path)
    return files_digest(own, skip=(CARD_NAME,)) if own is not None else files_digest(Path(path))


def record_probe(path: str | os.PathLike, data: str | os.PathLike, summary: dict) -> bool:
    """Put a probe's result in the model card of the model folder at ``path`` (its marked probe block only; the
    rest of the card, edited or not, stays as it is), atomically.

    Args:
        path: the run or model folder probed.
        data: the preprocessed dataset probed on (its :func:`~concerto3d.data.digest.data_digest` keys the row).
        summary: ``run_probe``'s summary.
    Returns:
        True when the card was updated; False (and a log line saying why) when the folder has no card (format 1)
        or its card no longer has exactly one probe block.
    Raises:
        OSError: the card cannot be read or written.
    """
    from concerto3d.data.digest import data_digest

    card = model_dir_of(path) / CARD_NAME
    if not card.is_file():
        log.info("%s has no model card (a folder written before concerto3d wrote one): probe result not recorded",
                 card.parent)
        return False
    row = probe_row(Path(data).resolve().name, data_digest(data), summary)
    text = with_probe_result(card.read_text(encoding="utf-8"), row)
    if text is None:
        log.warning("%s has no single concerto3d probe block (removed or doubled by an edit): probe result not "
                    "recorded there", card)
        return False
    atomic_write_text(card, text)
    return True

"""Run configuration: dataclasses, YAML files and ``key=value`` overrides.

A training run is described by one :class:`TrainConfig`, a tree of dataclasses. The component configs are defined
next to the code that uses them (``DataConfig`` in ``data/dataset.py``, ``PointEncoderConfig`` and
``ImageEncoderConfig`` in ``models/``, ``ObjectiveConfig`` in ``objectives/config.py``); the one that only the
training loop reads (:class:`OptimConfig`) lives here. A config is built from the defaults, then a YAML file, then ``key=value``
overrides, each layer replacing only the keys it names::

    cfg = load_config("my_run.yaml", ["optim.lr=1e-3", "objective.temperature=0.1", "steps=200"])
    print(to_yaml(cfg))

Values are parsed by the type of the field they land in (``"1e-3"`` becomes a float, ``"[240, 320]"`` a tuple, ``"no"``
a bool, ``"none"`` a None where the field allows it). An unknown key is an :class:`InputError` naming the closest
known keys.

Because this module imports the component configs, those modules must not import ``concerto3d.config``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from concerto3d.data.dataset import DataConfig, with_image_geometry
from concerto3d.errors import FormatError, InputError
from concerto3d.models.image_encoder import ImageEncoderConfig
from concerto3d.models.point_encoder import PointEncoderConfig
from concerto3d.objectives.config import ObjectiveConfig

__all__ = [
    "ObjectiveConfig", "OptimConfig", "TrainConfig", "load_config", "from_dict", "to_dict", "to_yaml",
    "apply_overrides", "config_keys", "with_data_geometry",
]


@dataclass
class OptimConfig:
    """AdamW with linear warmup + cosine decay, gradient clipping, and the EMA teacher's momentum schedule."""

    lr: float = 1e-3                         # peak learning rate, reached after the warmup
    min_lr: float = 1e-6                     # final learning rate of the cosine decay
    warmup_steps: int = 50                   # linear warmup from 0 (clamped to the run's length)
    weight_decay: float = 0.05               # not applied to norms and biases
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 3.0                   # max global gradient norm; 0 disables clipping
    momentum_schedule: Literal["cosine", "fixed"] = "cosine"
    momentum_start: float = 0.996            # cosine: teacher momentum at step 0 ...
    momentum_end: float = 1.0                # ... and at the last step
    momentum_fixed: float = 0.999            # fixed: the momentum at every step

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        if self.lr <= 0 or self.min_lr < 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            raise ValueError(f"optim: expected lr > 0 and min_lr, weight_decay, grad_clip, warmup_steps >= 0, got "
                             f"lr={self.lr}, min_lr={self.min_lr}, weight_decay={self.weight_decay}, "
                             f"grad_clip={self.grad_clip}, warmup_steps={self.warmup_steps}")
        for name in ("momentum_start", "momentum_end", "momentum_fixed"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"optim.{name}: expected in [0, 1], got {getattr(self, name)}")


@dataclass
class TrainConfig:
    """Everything one training run needs; ``to_dict(cfg)`` is stored in every checkpoint and logged at the start."""

    data: DataConfig = field(default_factory=DataConfig)
    point_encoder: PointEncoderConfig = field(default_factory=PointEncoderConfig)
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    split: str = "train"                     # the scenes of DATA/splits/<split>.txt (a missing list is an error)
    steps: int = 1000                        # optimiser steps in the whole run
    batch_size: int = 2                      # crops per step (per process under DDP)
    num_workers: int = 0                     # DataLoader workers; 0 keeps resume exact whatever the transforms do
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True                         # bf16 autocast, on CUDA only
    log_every: int = 1                       # steps between CSV/TensorBoard rows
    checkpoint_every: int = 100              # steps between checkpoints (also written at the end and on SIGINT/SIGTERM)
    keep_checkpoints: int = 2
    export_weights: Literal["student", "teacher"] = "student"   # which encoders RUN/model/ holds

    def __post_init__(self):
        # The data pipeline always gives 9 feature channels (xyz, colour, normal; a cue left out is zeroed), so
        # the point encoder always takes all 9; data.use_color / data.use_normal choose what the channels hold.
        if not (self.point_encoder.use_color and self.point_encoder.use_normal):
            raise ValueError("point_encoder.use_color and point_encoder.use_normal must stay true (the features "
                             "always have 9 channels); turn a cue off with data.use_color=false / "
                             "data.use_normal=false")
        # image and patch size: the data's (data.*, from the preprocessed meta.json unless set); the image encoder
        # follows them unless set too, and then must agree (with_data_geometry fills them in before training)
        data, enc = self.data, self.image_encoder
        if data.image_size is not None and enc.image_size is not None and data.image_size != enc.image_size:
            raise ValueError(f"data.image_size {data.image_size} and image_encoder.image_size {enc.image_size} "
                             "must be equal (set data.image_size only: the image encoder follows it)")
        if (enc.pretrained_path is None and data.patch_size is not None and enc.patch_size is not None
                and data.patch_size != enc.patch_size):
            raise ValueError(f"data.patch_size {data.patch_size} and image_encoder.patch_size {enc.patch_size} "
                             "must be equal (set data.patch_size only: the image encoder follows it)")
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers: expected >= 0, got {self.num_workers}")


# ---------------------------------------------------------------------------------------------------------------
# dict <-> dataclass


def to_dict(cfg: Any) -> dict:
    """A dataclass tree as plain dicts/lists/scalars (tuples become lists), ready for YAML or JSON."""

    def plain(value):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def to_yaml(cfg: Any) -> str:
    """The config as YAML text (what a run logs at its start and what ``--config`` reads back)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def config_keys(cls: type) -> list[str]:
    """Every dotted key of a dataclass type, e.g. ``["data.crop_size", ..., "optim.lr", ..., "steps"]``."""
    keys = []
    for f in dataclasses.fields(cls):
        ftype = _field_types(cls)[f.name]
        if _is_dataclass_type(ftype):
            keys += [f"{f.name}.{k}" for k in config_keys(ftype)]
        else:
            keys.append(f.name)
    return keys


def from_dict(cls: type, data: dict | None, *, base: Any = None, where: str = "config") -> Any:
    """Build (or update) a dataclass tree from a nested dict, checking every key and value.

    Args:
        cls: the dataclass type, e.g. :class:`TrainConfig`.
        data: nested dict as read from YAML/JSON; keys absent keep the value of ``base`` (or the default).
        base: an instance to start from (not modified); ``None`` = the defaults.
        where: the name used in error messages (a file name).
    Returns:
        A new instance, built through the constructor so that each config's own checks run.
    Raises:
        InputError: an unknown key (with the close matches), a value that does not fit the field's type, or a
        combination the config's own checks reject.
    """
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    types_ = _field_types(cls)
    for key in data:
        if key not in types_:
            _unknown_key(key, list(types_), where)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        current = getattr(base, f.name) if base is not None else None
        if f.name in data:
            ftype = types_[f.name]
            if _is_dataclass_type(ftype):
                values[f.name] = from_dict(ftype, data[f.name], base=current, where=f"{where}: {f.name}")
            else:
                values[f.name] = _coerce(data[f.name], ftype, f"{where}: {f.name}")
        elif base is not None:
            values[f.name] = copy.deepcopy(current)
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        raise InputError(f"{where}: {err}") from None


# ---------------------------------------------------------------------------------------------------------------
# overrides and files


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Apply ``key=value`` strings (dotted keys) to a config; returns a new config, the input is not changed.

    >>> cfg = apply_overrides(TrainConfig(), ["optim.lr=1e-3", "objective.kind=3d"])
    """
    known = config_keys(type(cfg))
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise InputError(f"override {item!r}: expected key=value, e.g. optim.lr=1e-3")
        key, text = (s.strip() for s in item.split("=", 1))
        if key not in known:
            _unknown_key(key, known, "override")
        *parents, leaf = key.split(".")
        owner, node = type(cfg), nested
        for p in parents:
            owner = _field_types(owner)[p]
            node = node.setdefault(p, {})
        node[leaf] = _parse_text(text, _field_types(owner)[leaf], f"override {key}")
    return from_dict(type(cfg), nested, base=cfg, where="override")


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                cls: type | None = None) -> Any:
    """Defaults, then the YAML file at ``path`` (if any), then the ``key=value`` overrides.

    Args:
        path: a YAML file holding any subset of the config's keys, nested as in :func:`to_yaml`.
        overrides: ``["optim.lr=1e-3", ...]``.
        cls: the config type (default :class:`TrainConfig`).
    Raises:
        InputError: the file is missing, or a key/value is wrong. FormatError: the file is not YAML.
    """
    cls = TrainConfig if cls is None else cls
    data = None
    if path is not None:
        if not os.path.isfile(path):
            raise InputError("config file not found", path)
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise FormatError(f"not a YAML file ({str(err).splitlines()[0]})", path) from None
        except (UnicodeDecodeError, OSError) as err:  # a binary file, a folder-like or unreadable path
            raise FormatError(f"cannot read the config as UTF-8 text ({type(err).__name__})", path) from None
    cfg = from_dict(cls, data, where=os.fspath(path) if path is not None else "config")
    return apply_overrides(cfg, list(overrides or []))


def with_data_geometry(cfg: "TrainConfig", data_root: str | os.PathLike | None) -> "TrainConfig":
    """The config with every image and patch size that is None filled in: ``data.*`` from the preprocessed data's
    ``meta.json`` (the split's scenes; ``data.scene``'s defaults when none records them, or when ``data_root`` is
    None: a model built without data), then ``image_encoder.*`` from ``data.*``. What a run trains with, logs and
    stores in its model folder.

    Raises:
        InputError: the data's scenes disagree, or the filled-in sizes do not fit each other.
    """
    try:
        data = with_image_geometry(cfg.data, data_root, cfg.split)
        return dataclasses.replace(cfg, data=data,
                                   image_encoder=cfg.image_encoder.following(data.image_size, data.patch_size))
    except InputError:
        raise
    except ValueError as err:  # the sizes filled in from the data do not fit the ones set
        raise InputError(f"{err} (the data's sizes are in {Path(data_root)}/<scene>/meta.json)") from None


# ---------------------------------------------------------------------------------------------------------------
# typed parsing


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_dataclass_type(t: Any) -> bool:
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def _unknown_key(key: str, known: list[str], where: str) -> None:
    """Raise for an unknown key, naming the closest known keys (whole dotted key first, then the last part)."""
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    if not close:  # "lr" or "optim.learning_rate" -> compare the last parts: "optim.lr"
        leaves = {k.rsplit(".", 1)[-1]: k for k in reversed(known)}
        close = [leaves[m] for m in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(leaves), n=3, cutoff=0.6)]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise InputError(f"{where}: unknown key {key!r}{hint}")


def _parse_text(text: str, ftype: Any, where: str) -> Any:
    """Parse the text of an override by the field type: YAML scalars/lists, then the same checks as a file value."""
    allowed = typing.get_args(ftype) if typing.get_origin(ftype) in (Union, types.UnionType) else (ftype,)
    string_literal = typing.get_origin(ftype) is Literal and all(isinstance(a, str) for a in typing.get_args(ftype))
    if string_literal or (str in allowed and text.lower() not in ("none", "null", "~")):
        value = text  # keep "3d", "1e-3", "/a: b" as written for string fields
    else:
        try:
            value = yaml.safe_load(text) if text != "" else None
        except yaml.YAMLError:
            value = text
    return _coerce(value, ftype, where)


def _coerce(value: Any, ftype: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``ftype`` and convert where it is safe (int -> float, list -> tuple)."""
    origin, args = typing.get_origin(ftype), typing.get_args(ftype)
    if ftype is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except InputError as err:
                errors.append(str(err))
        raise InputError(f"{where}: expected {_type_name(ftype)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise InputError(f"{where}: expected one of {', '.join(map(str, args))}, got {value!r}")
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list {_type_name(ftype)}, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise InputError(f"{where}: expected {len(args)} values {_type_name(ftype)}, got {value!r}")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args))
        item = args[0] if args else Any
        items = [_coerce(v, item, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if ftype is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise InputError(f"{where}: expected true or false, got {value!r}")
    if ftype is int:
        if isinstance(value, bool):
            raise InputError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise InputError(f"{where}: expected an integer, got {value!r}")
    if ftype is float:
        if isinstance(value, bool):
            raise InputError(f"{where}: expected a number, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)  # YAML reads "1e-3" as a string
            except ValueError:
                pass
        if number is not None and math.isfinite(number):  # no setting means anything at NaN or infinity
            return number
        raise InputError(f"{where}: expected a finite number, got {value!r}")
    if ftype is str:
        if isinstance(value, str):
            return value
        if value is None:
            raise InputError(f"{where}: expected a string, got nothing")
        return str(value)
    if isinstance(ftype, type):
        if isinstance(value, ftype):
            return value
        raise InputError(f"{where}: expected {_type_name(ftype)}, got {value!r}")
    return value


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")

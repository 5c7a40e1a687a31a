"""What an ablation's numbers came from, as digests, and the ``OUT/ablation.json`` that pins them.

A rerun in the same folder must describe the same ablation: the same training config (package defaults, YAML and
overrides), the same preprocessed data, the same ``--image-encoder`` files and probe settings. Otherwise it is
refused rather than mixed with the rows already there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from concerto3d.data.digest import data_digest, files_digest
from concerto3d.errors import InputError
from concerto3d.evaluation.ablation.settings import AblationSettings
from concerto3d.evaluation.metrics import json_safe
from concerto3d.inference.model_folder import find_model_folder, image_encoder_digest
from concerto3d.io.atomic import atomic_write_json

__all__ = ["training_digest", "data_digest", "files_digest", "image_encoder_digest", "image_encoder_summary",
           "describe_image_encoder", "record_digests", "check_settings_file", "SETTINGS_FILE"]

SETTINGS_FILE = "ablation.json"


def training_digest(settings: AblationSettings, data: Path | None = None) -> str:
    """sha256 of the training config of the joint row at seed 0, as sorted JSON (with the image and patch size
    filled in from ``data``, as training fills them): it changes with any package default, the YAML or an
    override, and is the same for every seed and row of one ablation."""
    from concerto3d.config import to_dict

    cfg = to_dict(settings.train_config("joint", 0, data=data))
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()


def describe_image_encoder(path: str, sha256: str | None, model: dict | None) -> str:
    """The line of results.md that says what the ``--image-encoder`` (the 2d row, and the joint row's frozen
    target) is.

    Args:
        path: the folder given.
        sha256: its :func:`image_encoder_digest`.
        model: the ``config.json`` of its concerto3d model folder, or None for a Hugging Face folder.
    """
    where = f"`{path}` (sha256 {sha256[:12] if sha256 else 'n/a'})"
    if model is None:
        return (f"2D row and joint target: the pre-trained image encoder {where}, frozen, as the paper's DINOv2 "
                "(outside knowledge: whatever it was trained on).")
    objective, steps = model.get("objective"), model.get("steps")
    if objective == "2d-supervised":
        return (f"2D row and joint target: the 2D teacher {where}, an image encoder trained for {steps} steps on "
                "the 2D frame labels of other rooms (`concerto3d train --objective 2d-supervised`), frozen. Those "
                "labels are outside knowledge: the teacher stands in for the paper's DINOv2, which no machine "
                "here can download.")
    return (f"2D row and joint target: the image encoder of a concerto3d `{objective}` run {where} ({steps} steps), "
            "frozen.")


def image_encoder_summary(path: Path, sha256: str | None) -> str:
    """:func:`describe_image_encoder` of the folder at ``path``, which ``run_ablation`` has already loaded (so its
    model description, if it is a concerto3d one, is readable)."""
    own = find_model_folder(path)
    return describe_image_encoder(str(path), sha256,
                                  None if own is None else json.loads((own / "config.json").read_text()))


def record_digests(settings: AblationSettings, data: Path) -> None:
    """Fill in ``config_sha256``, ``training_sha256`` and ``data_sha256`` of ``settings``.

    Raises:
        InputError: ``--config`` names no file, an override is bad, or a split list is missing.
    """
    if settings.config is not None:
        config_path = Path(settings.config)
        if not config_path.is_file():
            raise InputError("--config: no such file", config_path)
        settings.config_sha256 = hashlib.sha256(config_path.read_bytes()).hexdigest()
    settings.training_sha256 = training_digest(settings, data)  # also: a bad override fails before anything runs
    settings.data_sha256 = data_digest(data)


def check_settings_file(out: Path, settings: AblationSettings, data: Path) -> None:
    """Write ``OUT/ablation.json``, or check that an existing one describes the same ablation.

    Raises:
        InputError: the folder holds an ablation whose numbers depend on other settings.
    """
    path = Path(out) / SETTINGS_FILE
    current = {"data": str(Path(data).resolve()), **asdict(settings)}
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError:
            saved = None
        if isinstance(saved, dict):
            old = AblationSettings(**{k: v for k, v in saved.items() if k != "data"}).result_fields()
            diffs = [k for k, v in settings.result_fields().items() if old.get(k) != v]
            if diffs:
                raise InputError(f"holds an ablation run with other settings ({', '.join(diffs)} differ); use "
                                 "another --out or the same settings", out)
    atomic_write_json(path, json_safe(current))

"""Training checkpoints: atomic writes, a checksum sidecar, the last few kept, fallback to an older one on load.

Layout::

    RUN/checkpoints/step_00000100.pt          torch.save of a dict of tensors and plain values
                                              (loads with weights_only=True)
    RUN/checkpoints/step_00000100.pt.sha256   hex SHA-256 of the .pt file

Writing: the checkpoint goes to a temporary file in the same folder, is flushed and fsync'ed, its checksum is written
(atomically too), then ``os.replace`` gives it its final name and the folder is fsync'ed. A crash at any point leaves
either the old set of checkpoints or the new one, never a half-written file under a checkpoint name.

Loading: the newest checkpoint whose checksum matches and that ``torch.load`` reads is used; a bad one is skipped with
a warning and the previous one is tried.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from concerto3d.errors import FormatError
from concerto3d.io.atomic import atomic_write, atomic_write_text
from concerto3d.io.paths import output_write_error

logger = logging.getLogger(__name__)

__all__ = [
    "checkpoint_dir", "checkpoint_path", "list_checkpoints", "save_checkpoint", "load_checkpoint",
    "load_latest_checkpoint", "rng_state", "set_rng_state",
]

_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """``RUN/checkpoints/step_{step:08d}.pt``; ``step`` = number of optimiser steps done when it was written."""
    return checkpoint_dir(run_dir) / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The run's checkpoint files, oldest first (by step)."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(run_dir: str | os.PathLike, state: dict[str, Any], step: int, keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint of ``step`` atomically, then delete all but the newest ``keep`` checkpoints.

    Args:
        run_dir: the run folder; checkpoints go to ``RUN/checkpoints/``.
        state: tensors, state dicts and plain Python values (anything ``torch.load(weights_only=True)`` reads back).
        step: optimiser steps done.
        keep: how many checkpoints to keep, >= 1.
    Returns:
        The path of the new checkpoint.
    Raises:
        InputError: the disk is full (or the file size limit reached); nothing of the new checkpoint is left.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    final = checkpoint_path(run_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(final, lambda fh: torch.save(state, fh),
                     before_rename=lambda tmp: atomic_write_text(final.with_name(final.name + ".sha256"),
                                                                 _sha256(tmp) + "\n"))
    except BaseException as err:
        full = output_write_error(err, final, "checkpoint")  # a full disk: one line, the older checkpoints kept
        if full is not None:
            raise full from None
        raise
    # Retention: the checkpoint just written (verified by its checksum) is always kept, with the keep - 1 newest
    # before it. Checkpoints of later steps belong to a past the run was resumed out of (they could not be read, or
    # the run restarted from an older step) and are removed: by step number they would otherwise count as the
    # newest and push the good ones out.
    for old in list_checkpoints(run_dir):
        if _step_of(old) > step:
            _remove_checkpoint(old)
    for old in list_checkpoints(run_dir)[:-keep]:
        _remove_checkpoint(old)
    return final


def _step_of(path: Path) -> int:
    return int(_NAME.match(path.name).group(1))


def _remove_checkpoint(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)


def remove_stale_temporaries(run_dir: str | os.PathLike) -> list[str]:
    """Remove what an interrupted write leaves in a run folder (``checkpoints/.step_*.tmp`` files and ``.model-*``
    folders of :mod:`concerto3d.io.atomic`); call it before a run starts writing. Returns the names removed."""
    import shutil

    removed = []
    run_dir = Path(run_dir)
    for path in [*checkpoint_dir(run_dir).glob(".*.tmp"), *run_dir.glob(".*.tmp"), *run_dir.glob(".model-*")]:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read one checkpoint after checking its SHA-256 sidecar.

    Raises:
        FormatError: the sidecar is missing or does not match, or ``torch.load`` fails.
    """
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        raise FormatError("checkpoint has no .sha256 sidecar (write interrupted?)", path)
    expected = sidecar.read_text().strip()
    actual = _sha256(path)
    if actual != expected:
        raise FormatError(f"checkpoint checksum mismatch: expected {expected[:12]}..., got {actual[:12]}...", path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise FormatError(f"cannot read checkpoint ({type(err).__name__}: {err})", path) from None
    if not isinstance(state, dict):
        raise FormatError(f"expected a dict in the checkpoint, got {type(state).__name__}", path)
    return state


def load_latest_checkpoint(run_dir: str | os.PathLike,
                           map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint of a run and its path; ``None`` when the run has none.

    A checkpoint that fails verification is skipped with a warning and the previous one is tried.

    Raises:
        FormatError: checkpoints exist but none of them can be read.
    """
    paths = list_checkpoints(run_dir)
    for path in reversed(paths):
        try:
            return load_checkpoint(path, map_location), path
        except FormatError as err:
            logger.warning("skipping a bad checkpoint, trying the previous one: %s", err)
    if paths:
        raise FormatError(f"none of the {len(paths)} checkpoints can be read", checkpoint_dir(run_dir))
    return None


def rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch (and CUDA, when present) random states, as values ``weights_only`` loading accepts."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (the CUDA part only when CUDA is present)."""
    random.setstate(_as_tuple(state["python"]))
    np_state = state["numpy"]
    np.random.set_state({
        "bit_generator": np_state["bit_generator"],
        "state": {"key": np_state["key"].cpu().numpy().astype(np.uint32), "pos": np_state["pos"]},
        "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"],
    })
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _as_tuple(value):
    """``random.setstate`` wants nested tuples; a round trip through some loaders gives lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value

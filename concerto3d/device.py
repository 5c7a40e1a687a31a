"""The one place a device name becomes a ``torch.device`` (chosen once, at the entry point of a command)."""

from __future__ import annotations

import torch

from concerto3d.errors import InputError

__all__ = ["resolve_device"]


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cpu``; ``cuda`` (GPU ``local_rank`` of this node, as DDP wants);
    ``cuda:i``.

    Raises:
        InputError: an unknown name, or CUDA asked for on a machine without it.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"--device: expected auto, cpu, cuda or cuda:i, got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA device is available on this machine (use cpu or auto)")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device

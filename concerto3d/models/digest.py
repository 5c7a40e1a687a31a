"""``state_digest``: one hash of a module's weights, for checking that two copies hold the same numbers."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["state_digest"]


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 over a module's parameters and buffers (names, dtypes, shapes, bytes): equal digests = equal weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()

"""Cached patch features of a frozen image encoder: computed once per frame, reused by every training step.

A frozen image encoder (a pre-trained target such as DINOv2, or a concerto3d ``2d`` run) gives the same patch
features for a frame at every step, so the joint objective need not run it each time. :func:`ensure_feature_cache`
encodes every kept frame of the given scenes once, as the data pipeline feeds the encoder (resized to the training
image size, ImageNet-normalised, no augmentation), into ``<scene>/image_features/<digest>.npy``
(``data.scene.image_features_path``); the dataset then hands each crop the rows of its frames
(``SceneDataset.use_feature_cache``) and the model uses them in place of the encoder's forward pass.

The digest (:func:`encoder_digest`) covers the encoder's weights and buffers, its config and the image size, so a
changed encoder or image size gets a new file and never reads a stale one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from concerto3d.data.image_transforms import Normalize, to_float_image
from concerto3d.data.scene import frame_count, image_features_path, image_path, load_array, read_image
from concerto3d.errors import FormatError
from concerto3d.io.atomic import atomic_write
from concerto3d.models.digest import state_digest

__all__ = ["encoder_digest", "encode_frames", "ensure_feature_cache"]


def encoder_digest(encoder: torch.nn.Module, image_size: tuple[int, int]) -> str:
    """16 hex digits of sha256 over the encoder's weights (:func:`concerto3d.models.digest.state_digest`), its
    config and the image size (H, W) it is fed at."""
    h = hashlib.sha256(state_digest(encoder).encode())
    config = getattr(encoder, "config", None)
    if dataclasses.is_dataclass(config):
        h.update(json.dumps(dataclasses.asdict(config), sort_keys=True, default=str).encode())
    h.update(f"image_size={tuple(int(v) for v in image_size)}".encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_frames(encoder: torch.nn.Module, scene_dir: str | os.PathLike, image_size: tuple[int, int],
                  batch: int = 8) -> np.ndarray:
    """The patch grids of every kept frame of a scene: (F, Hp, Wp, C) float32, frame k in row k.

    The images are read as the dataset reads them (resized to ``image_size``, ImageNet-normalised, no
    augmentation) and encoded in eval mode on the encoder's device.
    """
    scene_dir = Path(scene_dir)
    num_frames = frame_count(scene_dir)
    normalize = Normalize()
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    grids = []
    try:
        for start in range(0, num_frames, batch):
            images = [normalize(to_float_image(read_image(image_path(scene_dir, k), image_size)[0]), None)
                      for k in range(start, min(start + batch, num_frames))]
            grids.append(encoder(torch.stack(images).to(device)).patch_grid.float().cpu())
    finally:
        encoder.train(was_training)
    if not grids:
        raise FormatError("the scene keeps no frames to encode", scene_dir)
    return torch.cat(grids).numpy()


def ensure_feature_cache(encoder: torch.nn.Module, scene_dirs: Sequence[str | os.PathLike],
                         image_size: tuple[int, int], batch: int = 8) -> str:
    """Write the cached features of every scene that lacks them (or holds a damaged file); returns the digest the
    dataset reads them by. Scenes without frames are skipped."""
    digest = encoder_digest(encoder, image_size)
    for scene_dir in scene_dirs:
        path = image_features_path(scene_dir, digest)
        num_frames = frame_count(scene_dir)
        if num_frames == 0:
            continue
        if path.is_file():
            try:
                if load_array(path, mmap=True).shape[0] == num_frames:
                    continue
            except FormatError:
                pass  # damaged: written again below
        grids = encode_frames(encoder, scene_dir, image_size, batch)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh, g=grids: np.save(fh, g))
    return digest

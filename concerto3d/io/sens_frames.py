"""The frames of a ``.sens`` file as a :class:`~concerto3d.io.frames.FrameSource` (:class:`SensFrameSource`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from concerto3d.errors import FormatError
from concerto3d.io.frames import (SKIP_INVALID_POSE, SKIP_UNREADABLE_COLOR, SKIP_UNREADABLE_DEPTH, FrameSkip,
                                  RGBDFrame, is_valid_pose)
from concerto3d.io.images import depth_to_metres
from concerto3d.io.sens import SensReader

log = logging.getLogger(__name__)

__all__ = ["SensFrameSource", "reduced_intrinsics"]


class SensFrameSource:
    """A :class:`~concerto3d.io.frames.FrameSource` over a ``.sens`` file.

    Frames whose pose is not finite are yielded as ``FrameSkip("invalid pose")``; frames whose colour or depth
    payload does not decode as ``FrameSkip("unreadable color" | "unreadable depth")`` (with a logged warning).
    ``num_skipped`` counts the skips of the latest :meth:`iter_frames` pass. A file that ends inside a frame (cut by
    a copy or a full disk) gives the frames before the damage, with a logged warning, and sets ``truncated_at``
    to the index of the damaged frame (None for a whole file).

    Args:
        path: the ``.sens`` file.
        name: scene name; default: the file name without ``.sens``.
    """

    def __init__(self, path: str | os.PathLike, name: str | None = None):
        self.path = Path(path)
        with SensReader(self.path) as reader:  # validates the header now, at the boundary
            self.header = reader.header
        self.name = name or self.path.stem
        self.num_skipped = 0
        self.truncated_at: int | None = None

    def __len__(self) -> int:
        return self.header.num_frames

    def __repr__(self) -> str:
        return f"SensFrameSource({str(self.path)!r}, frames={len(self)})"

    def iter_frames(self, step: int = 1, color_min_size: tuple[int, int] | None = None
                    ) -> Iterator[RGBDFrame | FrameSkip]:
        """Yield ``RGBDFrame`` (depth in metres) or ``FrameSkip`` for frames with ``index % step == 0``.

        Args:
            step: keep every ``step``-th frame.
            color_min_size: (height, width) the colour is going to be downscaled to, or None. When given, JPEG
                colour is decoded at 1/2, 1/4 or 1/8 of its size where both sides stay >= this (much cheaper; the
                pixels are close to, not equal to, a full decode's box reduction:
                :func:`concerto3d.io.images.decode_color_bytes_reduced`), and the frame's ``intrinsic_color``
                is that of the reduced image.
        """
        self.num_skipped = 0
        with SensReader(self.path) as reader:
            h = reader.header
            k_color, k_depth = h.intrinsic_color[:3, :3].copy(), h.intrinsic_depth[:3, :3].copy()
            k_reduced = {1: k_color}
            self.truncated_at, last = None, -1
            try:
                for raw in reader.iter_raw(step):
                    last = raw.index
                    skip = None
                    if not is_valid_pose(raw.camera_to_world):
                        skip = SKIP_INVALID_POSE
                    else:
                        try:
                            color, scale = reader.decode_color_reduced(raw, color_min_size)
                        except FormatError as err:
                            skip = SKIP_UNREADABLE_COLOR
                            log.warning("skipping a frame: %s", err)
                        else:
                            try:
                                depth = depth_to_metres(reader.decode_depth(raw), h.depth_shift)
                            except FormatError as err:
                                skip = SKIP_UNREADABLE_DEPTH
                                log.warning("skipping a frame: %s", err)
                    if skip is not None:
                        self.num_skipped += 1
                        yield FrameSkip(raw.index, skip)
                        continue
                    if scale not in k_reduced:
                        k_reduced[scale] = reduced_intrinsics(k_color, scale)
                    yield RGBDFrame(raw.index, color, depth, raw.camera_to_world, k_reduced[scale].copy(),
                                    k_depth.copy())
            except FormatError as err:  # cut inside a frame: the frames before the damage are good
                self.truncated_at = last + 1
                log.warning("%s: keeping the %d frame(s) read before the damage", err, last + 1)


def reduced_intrinsics(K: np.ndarray, scale: int) -> np.ndarray:
    """(3, 3) intrinsics of an image reduced by ``scale`` in blocks (pixel ``u`` of the result covers full-size
    pixels ``[s u, s u + s)``): with pixel centres at integer coordinates, ``x -> (x + 0.5) / s - 0.5``, so ``fx,
    fy, skew`` divide by ``s`` and ``c -> (c + 0.5) / s - 0.5`` (the convention of
    :func:`concerto3d.data.correspondence.scale_intrinsics_to_size`)."""
    out = np.array(K, dtype=np.float64)
    out[0, :2] /= scale
    out[1, 1] /= scale
    out[:2, 2] = (out[:2, 2] + 0.5) / scale - 0.5
    return out

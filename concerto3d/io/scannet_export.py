"""ScanNet's exported frames as a FrameSource: ``color/<i>.jpg``, ``depth/<i>.png``, ``pose/<i>.txt`` and
``intrinsic/intrinsic_{color,depth}.txt`` in a scene folder.

A frame whose colour, depth or pose file is missing is yielded as ``FrameSkip("missing depth")`` (etc.), one whose
image does not decode as ``FrameSkip("unreadable color" | "unreadable depth")``, one whose pose is not finite as
``FrameSkip("invalid pose")``. Problems of the whole folder (missing intrinsics, 8-bit depth PNGs, no frames at all)
raise FormatError / InputError.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from concerto3d.errors import InputError
from concerto3d.io.frames import (SKIP_MISSING_COLOR, SKIP_MISSING_DEPTH, SKIP_MISSING_POSE, FrameSkip, RGBDFrame,
                                  check_step, load_frame)
from concerto3d.io.geometry_files import read_intrinsics
from concerto3d.io.images import check_depth_scale

log = logging.getLogger(__name__)

_NUMBER_STEM = re.compile(r"^(?:frame-)?0*(\d+)$")


def _numbered_files(folder: Path, suffixes: tuple[str, ...]) -> dict[int, Path]:
    """``<i>.<suffix>`` files of a folder by frame number (``0.jpg``, ``000010.jpg`` and ``frame-000010.jpg``)."""
    files: dict[int, Path] = {}
    if not folder.is_dir():
        return files
    for p in folder.iterdir():
        m = _NUMBER_STEM.match(p.stem)
        if m and p.suffix.lower() in suffixes:
            files.setdefault(int(m.group(1)), p)
    return files


class ScanNetExportSource:
    """A FrameSource over ScanNet's exported frames: ``color/<i>.jpg``, ``depth/<i>.png``, ``pose/<i>.txt`` and
    ``intrinsic/intrinsic_{color,depth}.txt``.

    Frame indices are the file numbers. Colour and depth may have different resolutions; each keeps its own
    intrinsics. Missing or undecodable per-frame files give ``FrameSkip`` (counted in ``num_skipped``).

    Frames without depth (a folder of colour frames and poses only, e.g. beside a mesh): with ``depth_from``, each
    frame's depth is that callable's rendering, at half the colour image's size with the colour camera scaled to it
    (``intrinsic_depth.txt`` is then not needed).

    Args:
        scene_dir: the scene folder holding ``color/``, ``depth/``, ``pose/`` and ``intrinsic/``.
        depth_scale: raw depth units per metre (1000).
        name: scene name (default: the folder name).
        depth_from: ``(camera_to_world (4, 4), K (3, 3), (H, W)) -> (H, W) float32 metres`` for frames without a
            depth file; None: such frames are skipped (missing depth).
    """

    def __init__(self, scene_dir: str | os.PathLike, depth_scale: float = 1000.0, name: str | None = None,
                 depth_from: Callable[[np.ndarray, np.ndarray, tuple[int, int]], np.ndarray] | None = None):
        self.root = Path(scene_dir)
        if not self.root.is_dir():
            raise InputError("scene folder not found", self.root)
        self.name = name or self.root.name
        self.depth_scale = check_depth_scale(depth_scale)
        self._color = _numbered_files(self.root / "color", (".jpg", ".jpeg", ".png"))
        self._depth = _numbered_files(self.root / "depth", (".png",))
        self._pose = _numbered_files(self.root / "pose", (".txt",))
        self.indices = sorted(set(self._color) | set(self._depth) | set(self._pose))
        if not self.indices:
            raise InputError("no exported frames: expected color/<i>.jpg, depth/<i>.png and pose/<i>.txt",
                             self.root)
        self.depth_from = depth_from
        self.intrinsic_color = read_intrinsics(self._intrinsic_path("color"))
        self.intrinsic_depth = (read_intrinsics(self._intrinsic_path("depth")) if depth_from is None or self._depth
                                else None)
        self.num_skipped = 0

    def _intrinsic_path(self, kind: str) -> Path:
        path = self.root / "intrinsic" / f"intrinsic_{kind}.txt"
        if not path.is_file():
            raise InputError(f"exported frames need intrinsic/intrinsic_{kind}.txt", path)
        return path

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"ScanNetExportSource({str(self.root)!r}, frames={len(self)})"

    def iter_frames(self, step: int = 1) -> Iterator[RGBDFrame | FrameSkip]:
        """Yield ``RGBDFrame`` or ``FrameSkip`` for the frames whose file number ``% step == 0``."""
        step = check_step(step)
        self.num_skipped = 0
        for index in self.indices:
            if index % step:
                continue
            item = self._load(index)
            if isinstance(item, FrameSkip):
                self.num_skipped += 1
                log.info("%s: frame %d skipped (%s)", self.name, index, item.reason)
            yield item

    def _load(self, index: int) -> RGBDFrame | FrameSkip:
        if index not in self._depth and self.depth_from is not None and index in self._color and index in self._pose:
            return self._load_rendered(index)
        for files, reason in ((self._color, SKIP_MISSING_COLOR), (self._depth, SKIP_MISSING_DEPTH),
                              (self._pose, SKIP_MISSING_POSE)):
            if index not in files:
                return FrameSkip(index, reason)
        return load_frame(index, self._color[index], self._depth[index], self._pose[index], "matrix",
                          self.depth_scale, self.intrinsic_color, self.intrinsic_depth)

    def _load_rendered(self, index: int) -> RGBDFrame | FrameSkip:
        """A colour frame whose depth ``depth_from`` renders (half the colour size, the colour camera scaled)."""
        from concerto3d.io.frames import load_pose_and_color
        from concerto3d.io.geometry_files import scale_intrinsics

        posed = load_pose_and_color(index, self._color[index], self._pose[index], "matrix")
        if isinstance(posed, FrameSkip):
            return posed
        pose, color = posed
        h, w = color.shape[0] // 2, color.shape[1] // 2
        K_depth = scale_intrinsics(self.intrinsic_color[:3, :3], w / color.shape[1], h / color.shape[0])
        depth = np.asarray(self.depth_from(pose, K_depth, (h, w)), dtype=np.float32)
        return RGBDFrame(index, color, depth, pose, self.intrinsic_color[:3, :3].copy(), K_depth)

"""Generic RGB-D folders (7-Scenes, TUM, Redwood, a phone capture) as a FrameSource.

A folder is described by file patterns with one ``*`` each (the frame key; frames are matched by key and sorted
naturally, so ``frame-2`` comes before ``frame-10``), one intrinsics file, a depth scale and a pose format
(data/README.md §2). Presets:

======== =================================== ===================== ====================== ===== =======
preset   colour                              depth                 pose                   scale pose
======== =================================== ===================== ====================== ===== =======
7scenes  ``frame-*.color.jpg`` (or ``.png``) ``frame-*.depth.png`` ``frame-*.pose.txt``   1000  matrix
tum      ``img_*.png``                       ``dep_*.png``         ``pose_*.txt``         5000  tum
======== =================================== ===================== ====================== ===== =======

Intrinsics: ``camera-intrinsics.txt`` (7scenes) and ``../kinect_params.txt`` (tum), relative to the folder; a
relative intrinsics path that is not found in the folder is looked for in its parent too. The intrinsics describe the
depth image; when the colour image has another size, its intrinsics are scaled per axis.

Per-frame problems (a key with colour but no depth, an image that does not decode, a non-finite pose) are
``FrameSkip`` items counted in ``num_skipped``; folder-wide problems (no frames, no intrinsics, 8-bit depth) raise.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence


from concerto3d.errors import InputError
from concerto3d.io.frames import (SKIP_MISSING_COLOR, SKIP_MISSING_DEPTH, SKIP_MISSING_POSE, FrameSkip, RGBDFrame,
                                  check_step, load_frame)
from concerto3d.io.geometry_files import read_intrinsics, scale_intrinsics
from concerto3d.io.images import check_depth_scale

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RGBDPreset:
    """File layout of a known RGB-D dataset; a pattern may have alternatives (the first that matches wins)."""

    color: tuple[str, ...]
    depth: tuple[str, ...]
    pose: tuple[str, ...]
    intrinsics: str
    depth_scale: float
    pose_format: str


PRESETS: dict[str, RGBDPreset] = {
    "7scenes": RGBDPreset(("frame-*.color.png", "frame-*.color.jpg"), ("frame-*.depth.png",),
                          ("frame-*.pose.txt",), "camera-intrinsics.txt", 1000.0, "matrix"),
    "tum": RGBDPreset(("img_*.png",), ("dep_*.png",), ("pose_*.txt",), "../kinect_params.txt", 5000.0, "tum"),
}


def natural_key(text: str) -> list:
    """Sort key that orders digit runs by value: ``"2" < "10"``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def match_pattern(root: Path, pattern: str) -> dict[str, Path]:
    """Files under ``root`` matching a pattern with exactly one ``*``, by the text the ``*`` stands for.

    Args:
        root: the folder.
        pattern: e.g. ``"frame-*.color.png"`` or ``"rgb/*.png"`` (relative to ``root``).
    Returns:
        key -> path.
    """
    if pattern.count("*") != 1 or any(c in pattern for c in "?[]"):
        raise InputError(f"file pattern must hold exactly one '*' and no other wildcard, got {pattern!r}")
    if "*" not in Path(pattern).name:
        raise InputError(f"the '*' of a file pattern must be in the file name, got {pattern!r}")
    regex = re.compile(re.escape(Path(pattern).name).replace(r"\*", "(.+)") + r"\Z")
    folder = root / Path(pattern).parent
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        m = regex.match(p.name)
        if m and p.is_file():
            out[m.group(1)] = p
    return out


def _first_matching(root: Path, patterns: Sequence[str]) -> tuple[str, dict[str, Path]]:
    for pattern in patterns:
        files = match_pattern(root, pattern)
        if files:
            return pattern, files
    return patterns[0], {}


class RGBDFolderSource:
    """A FrameSource over a generic RGB-D folder.

    Args:
        root: the folder.
        preset: ``"7scenes"``, ``"tum"`` or None; explicit arguments below override the preset's. With no preset
            and no patterns, the preset whose files are in the folder is used.
        color, depth, pose: file patterns with one ``*`` (relative to ``root``).
        intrinsics: the intrinsics file (3x3, 4x4 or ``fx fy cx cy``), relative to ``root`` or absolute.
        depth_scale: raw depth units per metre (metres = value / depth_scale).
        pose_format: ``"matrix"`` (4x4 camera-to-world) or ``"tum"`` (``tx ty tz qx qy qz qw``).
        name: scene name (default: the folder name).

    Frame ``index`` is the position in the naturally sorted list of keys; ``keys[index]`` gives the key.
    """

    def __init__(self, root: str | os.PathLike, preset: str | None = None, color: str | None = None,
                 depth: str | None = None, pose: str | None = None, intrinsics: str | os.PathLike | None = None,
                 depth_scale: float | None = None, pose_format: str | None = None, name: str | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError("RGB-D folder not found", self.root)
        if preset is not None and preset not in PRESETS:
            raise InputError(f"unknown RGB-D preset {preset!r}; known: {sorted(PRESETS)}")
        if preset is None and color is None and depth is None and pose is None:
            preset = looks_like_rgbd_folder(self.root)  # no layout given: recognise a preset's files
        self.preset = preset
        p = PRESETS.get(preset)
        color_patterns = (color,) if color else (p.color if p else None)
        depth_patterns = (depth,) if depth else (p.depth if p else None)
        pose_patterns = (pose,) if pose else (p.pose if p else None)
        intrinsics = intrinsics if intrinsics is not None else (p.intrinsics if p else None)
        missing = [n for n, v in (("color", color_patterns), ("depth", depth_patterns), ("pose", pose_patterns),
                                  ("intrinsics", intrinsics)) if v is None]
        if missing:
            raise InputError(f"RGB-D folder needs a preset or the argument(s) {missing}", self.root)
        self.depth_scale = check_depth_scale(depth_scale if depth_scale is not None
                                             else (p.depth_scale if p else 1000.0))
        self.pose_format = pose_format or (p.pose_format if p else "matrix")
        if self.pose_format not in ("matrix", "tum"):
            raise InputError(f"pose format must be 'matrix' or 'tum', got {self.pose_format!r}")
        self.name = name or self.root.name
        self.color_pattern, self._color = _first_matching(self.root, color_patterns)
        self.depth_pattern, self._depth = _first_matching(self.root, depth_patterns)
        self.pose_pattern, self._pose = _first_matching(self.root, pose_patterns)
        self.keys = sorted(set(self._color) | set(self._depth) | set(self._pose), key=natural_key)
        if not self.keys:
            raise InputError(f"no frames match colour {self.color_pattern!r}, depth {self.depth_pattern!r} or "
                             f"pose {self.pose_pattern!r}", self.root)
        self.intrinsics_path = self._find_intrinsics(Path(intrinsics))
        self.intrinsic_depth = read_intrinsics(self.intrinsics_path)
        self.num_skipped = 0

    def _find_intrinsics(self, path: Path) -> Path:
        candidates = [path] if path.is_absolute() else [self.root / path, self.root.parent / path.name]
        for c in candidates:
            if c.is_file():
                return c
        raise InputError(f"intrinsics file not found (looked for {', '.join(str(c) for c in candidates)})",
                         candidates[0])

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return (f"RGBDFolderSource({str(self.root)!r}, color={self.color_pattern!r}, depth={self.depth_pattern!r}, "
                f"pose={self.pose_pattern!r}, depth_scale={self.depth_scale:g}, pose_format={self.pose_format!r}, "
                f"frames={len(self)})")

    def iter_frames(self, step: int = 1) -> Iterator[RGBDFrame | FrameSkip]:
        """Yield ``RGBDFrame`` or ``FrameSkip`` for the frames whose ``index % step == 0``."""
        step = check_step(step)
        self.num_skipped = 0
        for index, key in enumerate(self.keys):
            if index % step:
                continue
            item = self._load(index, key)
            if isinstance(item, FrameSkip):
                self.num_skipped += 1
                log.info("%s: frame %d (%s) skipped (%s)", self.name, index, key, item.reason)
            yield item

    def _load(self, index: int, key: str) -> RGBDFrame | FrameSkip:
        for files, reason in ((self._color, SKIP_MISSING_COLOR), (self._depth, SKIP_MISSING_DEPTH),
                              (self._pose, SKIP_MISSING_POSE)):
            if key not in files:
                return FrameSkip(index, reason)
        item = load_frame(index, self._color[key], self._depth[key], self._pose[key], self.pose_format,
                          self.depth_scale, self.intrinsic_depth, self.intrinsic_depth)
        if isinstance(item, RGBDFrame) and item.color.shape[:2] != item.depth.shape:
            (hc, wc), (hd, wd) = item.color.shape[:2], item.depth.shape
            item.intrinsic_color = scale_intrinsics(self.intrinsic_depth, wc / wd, hc / hd)
        return item


def looks_like_rgbd_folder(root: str | os.PathLike, preset: str | None = None) -> str | None:
    """The preset whose colour and depth patterns match files in ``root`` (``"7scenes"``, ``"tum"``), else None.

    Args:
        root: a folder.
        preset: check only this preset (None: try them all, in the order of :data:`PRESETS`).
    """
    root = Path(root)
    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown RGB-D preset {preset!r}; known: {sorted(PRESETS)}")
    if not root.is_dir():
        return None
    for name, preset in ((preset, PRESETS[preset]),) if preset else PRESETS.items():
        if _first_matching(root, preset.color)[1] and _first_matching(root, preset.depth)[1]:
            return name
    return None

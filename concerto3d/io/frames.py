"""What every frame reader yields: :class:`RGBDFrame` or :class:`FrameSkip`, and the :class:`FrameSource` protocol.

A frame source streams one frame at a time, so a reader never holds a whole sequence in memory. A frame that cannot
be used (its pose failed tracking, its depth file is missing, its image does not decode) is not dropped silently:
the source yields a :class:`FrameSkip` with a short, stable reason, and the consumer counts and logs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from concerto3d.errors import FormatError
from concerto3d.io.geometry_files import read_pose
from concerto3d.io.images import DepthBitDepthError, read_color, read_depth

log = logging.getLogger(__name__)

# the stable reasons a reader may give; consumers may group skips by them
SKIP_INVALID_POSE = "invalid pose"
SKIP_MISSING_COLOR = "missing color"
SKIP_MISSING_DEPTH = "missing depth"
SKIP_MISSING_POSE = "missing pose"
SKIP_UNREADABLE_COLOR = "unreadable color"
SKIP_UNREADABLE_DEPTH = "unreadable depth"
SKIP_UNREADABLE_POSE = "unreadable pose"
SKIP_BAD_GEOMETRY = "intrinsics do not fit the images"


def geometry_problem(frame: "RGBDFrame", max_aspect_change: float = 0.1) -> str | None:
    """What makes a frame's camera model unusable, or None: each principal point strictly inside its image (a
    point at 0 or past the border is a wrong or swapped intrinsics file), and colour and depth of about one aspect
    (they see the same view; ScanNet's 1296x968 and 640x480 differ by 0.4 %).

    Returns:
        a short description, or None when the geometry is consistent.
    """
    for name, image, K in (("colour", frame.color, frame.intrinsic_color), ("depth", frame.depth,
                                                                             frame.intrinsic_depth)):
        h, w = image.shape[:2]
        if not (0 < K[0, 2] < w and 0 < K[1, 2] < h):
            return f"the {name} principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) is not inside its {w}x{h} image"
    (hc, wc), (hd, wd) = frame.color.shape[:2], frame.depth.shape[:2]
    if abs((wc / hc) / (wd / hd) - 1) > max_aspect_change:
        return f"colour {wc}x{hc} and depth {wd}x{hd} have different aspects"
    return None


@dataclass
class RGBDFrame:
    """One RGB-D frame with its camera.

    Attributes:
        index: position in the source sequence.
        color: (Hc, Wc, 3) uint8 RGB.
        depth: (Hd, Wd) float32 metres, 0 = missing.
        camera_to_world: (4, 4) float64, OpenCV camera axes (x right, y down, z forward).
        intrinsic_color: (3, 3) float64, for ``color`` at its own resolution.
        intrinsic_depth: (3, 3) float64, for ``depth`` at its own resolution.
    """

    index: int
    color: np.ndarray
    depth: np.ndarray
    camera_to_world: np.ndarray
    intrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray


@dataclass
class FrameSkip:
    """A frame the source could not deliver; ``reason`` is one of the ``SKIP_*`` strings of this module."""

    index: int
    reason: str


@runtime_checkable
class FrameSource(Protocol):
    """A streaming sequence of RGB-D frames of one scene."""

    name: str

    def __len__(self) -> int:
        """Number of frames in the sequence, including the ones that will be skipped."""
        ...

    def iter_frames(self, step: int = 1) -> Iterator[RGBDFrame | FrameSkip]:
        """Yield the frames whose ``index % step == 0``, one at a time, in order."""
        ...


def is_valid_pose(camera_to_world: np.ndarray) -> bool:
    """Whether a (4, 4) pose can be used: all finite, last row (0, 0, 0, 1) and a rotation that is not degenerate.

    ScanNet marks frames whose tracking failed with ``-inf`` poses; such frames are skipped.
    """
    pose = np.asarray(camera_to_world, dtype=np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        return False
    if not np.allclose(pose[3], (0.0, 0.0, 0.0, 1.0), atol=1e-6):
        return False
    return abs(np.linalg.det(pose[:3, :3])) > 1e-6


def check_step(step: int) -> int:
    """Validate a frame step (a positive integer) and return it."""
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step must be a positive integer, got {step!r}")
    return int(step)


def load_pose_and_color(index: int, color_path: Path, pose_path: Path, pose_format: str
                        ) -> tuple[np.ndarray, np.ndarray] | FrameSkip:
    """A frame's (camera_to_world, colour) from its pose and colour files, or the ``FrameSkip`` of the first
    problem (unreadable or invalid pose, unreadable colour; logged)."""
    try:
        pose = read_pose(pose_path, pose_format)
    except FormatError as err:
        log.warning("skipping a frame: %s", err)
        return FrameSkip(index, SKIP_UNREADABLE_POSE)
    if not is_valid_pose(pose):
        return FrameSkip(index, SKIP_INVALID_POSE)
    try:
        color = read_color(color_path)
    except FormatError as err:
        log.warning("skipping a frame: %s", err)
        return FrameSkip(index, SKIP_UNREADABLE_COLOR)
    return pose, color


def load_frame(index: int, color_path: Path, depth_path: Path, pose_path: Path, pose_format: str,
               depth_scale: float, intrinsic_color: np.ndarray, intrinsic_depth: np.ndarray
               ) -> RGBDFrame | FrameSkip:
    """Read one frame from its three files; per-frame problems become a ``FrameSkip`` (with a logged warning).

    A file that does not decode is one bad frame: skipped. A depth PNG that decodes but is not 16-bit (8-bit)
    raises :class:`~concerto3d.io.images.DepthBitDepthError` (a FormatError): every frame of such a folder would be
    wrong, so it is not skipped silently.
    """
    posed = load_pose_and_color(index, color_path, pose_path, pose_format)
    if isinstance(posed, FrameSkip):
        return posed
    pose, color = posed
    try:
        depth = read_depth(depth_path, depth_scale)
    except DepthBitDepthError:
        raise
    except FormatError as err:
        log.warning("skipping a frame: %s", err)
        return FrameSkip(index, SKIP_UNREADABLE_DEPTH)
    return RGBDFrame(index, color, depth, pose, intrinsic_color.copy(), intrinsic_depth.copy())

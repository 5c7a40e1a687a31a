"""One scene of Pointcept's layout in, one concerto3d scene folder out (data/README.md §4 into §3).

``concerto3d preprocess ROOT OUT`` recognises Pointcept's layout (:mod:`concerto3d.io.pointcept`) and converts each
scene here, so that ``train``, ``probe``, ``visualize`` and ``ablate`` keep one reader:

1. **Points**: Pointcept's points (every mesh vertex) thinned to one per ``voxel`` (the one nearest the voxel centre,
   as for a ScanNet mesh), with their colour, normal, ``segment20`` and instance; missing or zero normals are
   estimated from the neighbours.
2. **Frames** (one pass, each colour image decoded once, depth never read): every stored frame with a valid pose is
   kept, its colour resized to ``image_size`` and written as ``images/<k>.jpg``, its colour intrinsics scaled to
   that size.
3. **Correspondences**: Pointcept's rows (u, v, point) at the colour resolution are kept, not recomputed: each pixel
   is moved to the resized image's pixel under its centre, rows of points the voxel thinning dropped are left out,
   duplicates merged. A point keeps every pixel Pointcept matched to it.

``--frame-skip`` and the depth-test tolerances do not apply (Pointcept chose the frames and matched the pixels).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from concerto3d.data.correspondence import scale_intrinsics_to_size
from concerto3d.data.fusion import estimate_normals, voxel_representatives
from concerto3d.data.preprocess_options import PreprocessOptions
from concerto3d.data.scene import (image_path, rescale_pixels, write_arrays, write_correspondences, write_meta,
                                   write_scene_folder)
from concerto3d.data.scene_builder import FORMAT_VERSION, FrameStats, ScenePoints, align_up, resize_color
from concerto3d.errors import FormatError, InputError
from concerto3d.io.frames import (SKIP_BAD_GEOMETRY, SKIP_INVALID_POSE, SKIP_MISSING_POSE, SKIP_UNREADABLE_COLOR,
                                  SKIP_UNREADABLE_POSE, is_valid_pose)
from concerto3d.io.images import read_color, write_color_jpeg
from concerto3d.io.pointcept import (PointceptPoints, PointceptScene, color_path, frame_keys, read_correspondence,
                                     read_intrinsic, read_points, read_pose)
from concerto3d.labels import IGNORE_INDEX, scannet20_to_nyu40

__all__ = ["SKIP_MISSING_CORRESPONDENCE", "NOT_APPLIED", "pointcept_points", "frame_rows", "ignored_options",
           "process_pointcept_scene"]

log = logging.getLogger(__name__)

SKIP_MISSING_CORRESPONDENCE = "missing correspondence"
NOT_APPLIED = ("frame_skip", "abs_tol", "rel_tol")  # options with no say over Pointcept's frames and pixels


def ignored_options(options: PreprocessOptions) -> list[str]:
    """The options of :data:`NOT_APPLIED` set away from their defaults (the caller says they are ignored)."""
    default = PreprocessOptions()
    return [name for name in NOT_APPLIED if getattr(options, name) != getattr(default, name)]


def pointcept_points(raw: PointceptPoints, voxel: float, normal_radius: float) -> tuple[ScenePoints, np.ndarray]:
    """Pointcept's points thinned to one per voxel, as concerto3d writes them.

    Args:
        raw: the scene's arrays (N points). voxel: edge, metres. normal_radius: neighbourhood for estimated normals.
    Returns:
        (the kept points (V of them), index_map (N,) int64: the kept index of each input point, -1 if dropped).
    """
    keep = voxel_representatives(raw.coord, voxel)
    index_map = np.full(len(raw.coord), -1, np.int64)
    index_map[keep] = np.arange(len(keep))
    coord = raw.coord[keep].astype(np.float32)
    normal = np.zeros((len(keep), 3), np.float32) if raw.normal is None else raw.normal[keep].astype(np.float64)
    length = np.linalg.norm(normal, axis=1)
    bad = length < 1e-6
    normal[~bad] /= length[~bad, None]
    if bad.any():  # no normal.npy, or vertices of no face: from the neighbours
        normal[bad] = estimate_normals(coord, radius=normal_radius)[bad]
    n = len(keep)
    segment20 = np.full(n, IGNORE_INDEX, np.int64) if raw.segment20 is None else raw.segment20[keep]
    instance = np.full(n, -1, np.int64) if raw.instance is None else raw.instance[keep]
    points = ScenePoints(coord=coord, color=raw.color[keep], normal=normal.astype(np.float32),
                         segment20=segment20.astype(np.int16),
                         segment_nyu40=scannet20_to_nyu40(segment20).astype(np.int16),
                         instance=instance.astype(np.int32))
    return points, index_map


def frame_rows(rows: np.ndarray, index_map: np.ndarray, color_size: tuple[int, int],
               image_size: tuple[int, int]) -> np.ndarray:
    """Pointcept's rows of one frame as concerto3d's, at the resized image.

    Args:
        rows: (M, 3) int (u, v, point) at ``color_size`` = (H0, W0), points indexing Pointcept's points.
        index_map: (N,) the kept index of each Pointcept point, -1 if dropped.
        image_size: (H, W) of the stored image.
    Returns:
        (M', 3) int64 rows (u, v, point) at ``image_size``, kept points only, unique, sorted by point, then v, u.
    """
    point = index_map[rows[:, 2]]
    mine = point >= 0
    u, v = rescale_pixels(rows[mine, 0], rows[mine, 1], color_size, image_size)
    h, w = image_size
    key = np.unique((point[mine] * h + v) * w + u)
    return np.stack([key % w, (key // w) % h, key // (h * w)], axis=1)


class _Frames:
    """The kept frames' ids, poses and intrinsics, filled while their correspondences are streamed."""

    def __init__(self):
        self.frame_ids: list[int] = []
        self.poses: list[np.ndarray] = []
        self.intrinsics: list[np.ndarray] = []


def _pose_or_skip(images_dir: Path, key: int) -> np.ndarray | str:
    try:
        pose = read_pose(images_dir, key)
    except FormatError as err:
        log.warning("skipping a frame: %s", err)
        return SKIP_UNREADABLE_POSE
    except InputError:
        return SKIP_MISSING_POSE
    return pose if is_valid_pose(pose) else SKIP_INVALID_POSE


def _stream_frames(scene: PointceptScene, folder: Path, options: PreprocessOptions, index_map: np.ndarray,
                   kept: _Frames, stats: FrameStats):
    """Yield ``(k, rows (M_k, 3))`` per kept frame, writing its image and recording its camera on the way."""
    if scene.images_dir is None:
        log.warning("%s: no images/%s/%s folder; the scene is converted without frames (enough for --objective 3d, "
                    "probe and visualize)", scene.name, scene.split, scene.name)
        return
    keys = frame_keys(scene.images_dir)
    stats.total = len(keys)
    K = read_intrinsic(scene.images_dir) if keys else None
    size = None  # the colour size of the first kept frame: Pointcept's rows are at that resolution
    for key in keys:
        if options.max_frames is not None and stats.kept >= options.max_frames:
            break
        pose = _pose_or_skip(scene.images_dir, key)
        if isinstance(pose, str):
            stats.skipped[pose] += 1
            continue
        if not (scene.images_dir / "correspondence" / f"{key}.npy").is_file():
            stats.skipped[SKIP_MISSING_CORRESPONDENCE] += 1
            continue
        try:
            color = read_color(color_path(scene.images_dir, key))
        except FormatError as err:
            log.warning("skipping a frame: %s", err)
            stats.skipped[SKIP_UNREADABLE_COLOR] += 1
            continue
        if size is None:
            h0, w0 = color.shape[:2]
            if not (0 < K[0, 2] < w0 and 0 < K[1, 2] < h0):
                raise FormatError(f"the principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) is not inside the {w0}x{h0} "
                                  "colour images: expected the colour camera's intrinsics",
                                  scene.images_dir / "intrinsic" / "intrinsic.npy")
            size = (h0, w0)
        elif color.shape[:2] != size:
            stats.skipped[SKIP_BAD_GEOMETRY] += 1
            continue
        rows = read_correspondence(scene.images_dir, key, len(index_map), size)
        k = stats.kept
        write_color_jpeg(image_path(folder, k), resize_color(color, options.image_size), options.jpeg_quality)
        kept.frame_ids.append(key)
        kept.poses.append(pose)
        kept.intrinsics.append(scale_intrinsics_to_size(K, size, options.image_size))
        stats.kept += 1
        rows = frame_rows(rows, index_map, size, options.image_size)
        stats.corr_per_frame.append(len(rows))
        yield k, rows


def process_pointcept_scene(scene: PointceptScene, out: str | os.PathLike, options: PreprocessOptions) -> dict:
    """Convert one scene of Pointcept's layout into ``out/<name>`` (written under ``out/.tmp-<name>-<pid>``, then
    renamed; layout: data/README.md §3).

    Returns:
        the scene's meta dict (also in ``meta.json``).
    Raises:
        InputError / FormatError: a missing or malformed file of the scene (nothing is left behind).
    """
    return write_scene_folder(out, scene.name, lambda folder: _convert_into(folder, scene, options))


def _convert_into(folder: Path, scene: PointceptScene, options: PreprocessOptions) -> dict:
    raw = read_points(scene.points_dir)
    points, index_map = pointcept_points(raw, options.voxel, options.normal_radius * options.voxel)
    image_path(folder, 0).parent.mkdir()
    stats, kept = FrameStats(), _Frames()
    total = write_correspondences(folder / "correspondences.npy",
                                  _stream_frames(scene, folder, options, index_map, kept, stats))
    if scene.images_dir is not None and stats.kept == 0:
        log.warning("%s: none of its %d frames could be used (%s); converted without frames", scene.name,
                    stats.total, ", ".join(f"{n} {r}" for r, n in sorted(stats.skipped.items())) or "no frames")
    up, poses = align_up(points, kept.poses, options.up, "pointcept")
    write_arrays(folder, asdict(points))
    write_arrays(folder, {
        "frame_ids": np.asarray(kept.frame_ids, np.int32),
        "poses": np.asarray(poses, np.float32).reshape(-1, 4, 4),
        "intrinsics": np.asarray(kept.intrinsics, np.float32).reshape(-1, 3, 3),
    })
    per_frame = np.asarray(stats.corr_per_frame or [0])
    gaps = np.diff(kept.frame_ids)
    meta = {
        "format_version": FORMAT_VERSION,
        "scene": scene.name,
        "source": {"kind": "pointcept", "path": str(scene.points_dir),
                   "images": None if scene.images_dir is None else str(scene.images_dir), "split": scene.split,
                   "points_from": "pointcept", "input_points": int(len(raw.coord))},
        "num_points": int(len(points.coord)),
        "labelled": raw.segment20 is not None,
        "frames": {
            "total": int(stats.total), "frame_skip": None, "kept": int(stats.kept),
            "frame_gap": int(math.gcd(*gaps.tolist())) if len(gaps) else None,  # Pointcept's default: 75
            "skipped": dict(sorted(stats.skipped.items())), "labelled": 0,
        },
        "up": up,
        "image_size": list(options.image_size),
        "patch_size": options.patch_size,
        "voxel": options.voxel,
        "depth_test": {"rule": "Pointcept's, kept: the mesh hit of a pixel's ray within 1 cm of its nearest point"},
        "correspondences": {
            "total": int(total), "per_frame_mean": round(float(per_frame.mean()), 3),
            "per_frame_min": int(per_frame.min()), "per_frame_max": int(per_frame.max()),
        },
        "options": {"max_frames": options.max_frames, "jpeg_quality": options.jpeg_quality,
                    "normal_radius_voxels": options.normal_radius},
    }
    write_meta(folder, meta)  # the last file: a scene folder holding meta.json is complete
    return meta

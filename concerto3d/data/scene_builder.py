"""One scene in, one preprocessed scene folder out: :func:`process_scene` (output layout: data/README.md §3).

1. **Frames** (one streaming pass): every ``frame_skip``-th frame of the sequence; frames the source cannot deliver
   (invalid pose, unreadable image, ...) are skipped and counted by reason. A kept frame's colour image is resized
   to ``image_size`` and written as ``images/<k>.jpg``; its intrinsics are scaled to that size; its depth map is
   resampled onto the resized image's pixels (nearest, through the depth intrinsics) and spilled to a temporary
   file, so memory does not grow with the number of frames. Without a mesh the frame's depth is also fused into
   voxels (:class:`concerto3d.data.fusion.VoxelFusion`).
2. **Points**: from the mesh when there is one (one vertex per voxel, its colour and labels, area-weighted normals),
   else the fused voxels (normals from Open3D, labels -1).
3. **Correspondences**: each point is projected into each kept frame and kept where the depth test passes
   (:func:`concerto3d.data.correspondence.find_correspondences`).

Everything is written under ``OUT/.tmp-<scene>-<pid>`` through :mod:`concerto3d.data.scene` and renamed to
``OUT/<scene>`` at the end, ``meta.json`` last, so a scene folder exists only when complete.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from concerto3d.data.correspondence import (
    depth_lookup, find_correspondences, point_cells, resample_depth, scale_intrinsics_to_size,
)
from concerto3d.data.fusion import VoxelFusion, estimate_normals, mesh_vertex_normals, voxel_representatives
from concerto3d.data.preprocess_options import PreprocessOptions
from concerto3d.data.scene import (FRAME_LABEL_IGNORE, image_path, label_path, resize_nearest, write_arrays,
                                   write_correspondences, write_meta, write_scene_folder)
from concerto3d.errors import InputError
from concerto3d.labels import IGNORE_INDEX, nyu40_to_scannet20

log = logging.getLogger(__name__)

__all__ = ["FORMAT_VERSION", "MeshInput", "ScenePoints", "points_from_mesh", "points_from_fusion", "process_scene",
           "resize_color", "align_up"]

FORMAT_VERSION = 1


@dataclass
class MeshInput:
    """A scene's mesh with per-vertex labels.

    Attributes:
        vertices: (N, 3) float32, colors: (N, 3) uint8, faces: (F, 3) int.
        nyu40: (N,) int NYU40 id per vertex (0 = unannotated), None when the scene has no labels.
        instance: (N,) int32 instance id per vertex (-1 = none), None when unknown.
    """

    vertices: np.ndarray
    colors: np.ndarray
    faces: np.ndarray
    nyu40: np.ndarray | None = None
    instance: np.ndarray | None = None


@dataclass
class ScenePoints:
    """A scene's points, as written: coord (N,3) f32, color (N,3) u8, normal (N,3) f32 unit, segment20 (N,) i16,
    segment_nyu40 (N,) i16, instance (N,) i32."""

    coord: np.ndarray
    color: np.ndarray
    normal: np.ndarray
    segment20: np.ndarray
    segment_nyu40: np.ndarray
    instance: np.ndarray


@dataclass
class FrameStats:
    total: int = 0                      # frames in the source sequence
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    corr_per_frame: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# points


def points_from_mesh(mesh: MeshInput, voxel: float) -> ScenePoints:
    """One representative vertex per voxel (nearest the voxel centre), with its colour, labels and normal.

    Normals are the area-weighted face normals at the vertex; vertices of no face (or only degenerate ones) get a
    normal estimated from their neighbours.
    """
    v = np.asarray(mesh.vertices)
    n = len(v)
    if v.ndim != 2 or v.shape[1] != 3 or n == 0:
        raise ValueError(f"mesh vertices: expected shape (N, 3) with N > 0, got {v.shape}")
    for name in ("colors", "nyu40", "instance"):
        arr = getattr(mesh, name)
        if arr is not None and len(arr) != n:
            raise ValueError(f"mesh {name}: expected {n} rows (one per vertex), got {len(arr)}")
    keep = voxel_representatives(v, voxel)
    normal, valid = mesh_vertex_normals(v, mesh.faces, at=keep)  # summed over all faces, normalised where kept
    bad = ~valid
    if bad.any():
        estimated = estimate_normals(v[keep], radius=4 * voxel)
        normal[bad] = estimated[bad]
    nyu40 = np.zeros(len(keep), np.int64) if mesh.nyu40 is None else np.asarray(mesh.nyu40, np.int64)[keep]
    nyu40 = np.where((nyu40 >= 0) & (nyu40 <= 40), nyu40, 0)
    instance = (np.full(len(keep), -1, np.int32) if mesh.instance is None
                else np.asarray(mesh.instance)[keep].astype(np.int32))
    segment20 = nyu40_to_scannet20(nyu40) if mesh.nyu40 is not None else np.full(len(keep), IGNORE_INDEX)
    return ScenePoints(
        coord=v[keep].astype(np.float32), color=np.asarray(mesh.colors)[keep].astype(np.uint8),
        normal=normal.astype(np.float32), segment20=segment20.astype(np.int16),
        segment_nyu40=nyu40.astype(np.int16), instance=instance)


def points_from_fusion(fusion: VoxelFusion, normal_radius: float) -> ScenePoints:
    """The fused voxels as points: normals from Open3D facing the cameras, no labels."""
    coord, color, towards = fusion.result()
    normal = estimate_normals(coord, radius=normal_radius, towards=towards)
    n = len(coord)
    return ScenePoints(coord=coord, color=color, normal=normal, segment20=np.full(n, IGNORE_INDEX, np.int16),
                       segment_nyu40=np.zeros(n, np.int16), instance=np.full(n, -1, np.int32))


# ---------------------------------------------------------------------------------------------------------------
# frames


def resize_color(color: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 colour resized to ``size`` = (H', W'): a box reduction, then bilinear (as stored in
    ``images/<k>.jpg``); unchanged when already that size."""
    from PIL import Image

    h, w = size
    if color.shape[:2] == (h, w):
        return color
    # reducing_gap=1: a box reduction by the integer part of the scale first (the anti-aliasing), then bilinear for
    # the rest; 3x faster than bilinear over the full image at ScanNet's 1296x968 -> 320x240
    return np.asarray(Image.fromarray(color).resize((w, h), Image.BILINEAR, reducing_gap=1.0))


def _resize_labels(nyu40: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 ScanNet-20 indices (255 = unlabelled) of an NYU40 label image, resized by nearest neighbour."""
    classes = nyu40_to_scannet20(np.asarray(nyu40, dtype=np.int64))
    return resize_nearest(np.where(classes == IGNORE_INDEX, FRAME_LABEL_IGNORE, classes).astype(np.uint8), size)


class _FrameWriter:
    """Writes kept frames (image, camera, resampled depth spilled to disk, 2D labels when given) one at a time.

    Args:
        frame_labels: the NYU40 label image of a source frame index, or None for a frame without one (ScanNet's
            2D labels, ``concerto3d.io.frame_labels``); None: the input has none.
    """

    def __init__(self, folder: Path, options: PreprocessOptions,
                 frame_labels: Callable[[int], np.ndarray | None] | None = None):
        from concerto3d.io.images import write_color_jpeg

        self._write_jpeg = write_color_jpeg
        self.folder = folder
        self.options = options
        image_path(folder, 0).parent.mkdir(parents=True)  # <scene>/images/
        self.depth_path = folder / "depth.spill"
        self._depth_file = open(self.depth_path, "wb")
        self.frame_ids: list[int] = []
        self.poses: list[np.ndarray] = []
        self.intrinsics: list[np.ndarray] = []
        self._lookup_key = None
        self._lookup = None
        self.frame_labels = frame_labels
        self.labelled = 0  # kept frames with 2D labels

    def add(self, frame) -> None:
        size = self.options.image_size
        K = scale_intrinsics_to_size(frame.intrinsic_color, frame.color.shape[:2], size)
        key = (frame.intrinsic_depth.tobytes(), frame.depth.shape, K.tobytes())
        if key != self._lookup_key:  # intrinsics are nearly always constant over a scene: compute once
            self._lookup_key, self._lookup = key, depth_lookup(frame.intrinsic_depth, frame.depth.shape, K, size)
        depth = resample_depth(frame.depth, frame.intrinsic_depth, K, size, lookup=self._lookup)
        k = len(self.frame_ids)
        self._write_jpeg(image_path(self.folder, k), resize_color(frame.color, size), self.options.jpeg_quality)
        self._depth_file.write(depth.astype(np.float32).tobytes())
        labels = self.frame_labels(int(frame.index)) if self.frame_labels is not None else None
        if labels is not None:
            path = label_path(self.folder, k)
            path.parent.mkdir(exist_ok=True)
            from PIL import Image

            Image.fromarray(_resize_labels(labels, size)).save(path)
            self.labelled += 1
        self.frame_ids.append(int(frame.index))
        self.poses.append(np.asarray(frame.camera_to_world, np.float64))
        self.intrinsics.append(K)

    def close(self) -> None:
        self._depth_file.close()

    def depths(self) -> Iterable[np.ndarray]:
        """The spilled depth maps, (H, W) float32 each, in frame order, read one at a time."""
        h, w = self.options.image_size
        with open(self.depth_path, "rb") as f:
            for _ in self.frame_ids:
                yield np.frombuffer(f.read(h * w * 4), dtype=np.float32).reshape(h, w)


def _stream_frames(frames, writer: _FrameWriter, options: PreprocessOptions, fusion: VoxelFusion | None,
                   stats: FrameStats) -> None:
    from concerto3d.io.frames import SKIP_BAD_GEOMETRY, SKIP_INVALID_POSE, FrameSkip, geometry_problem, is_valid_pose
    from concerto3d.io.sens_frames import SensFrameSource

    stats.total = len(frames)
    reduce = options.reduced_decode and fusion is None and isinstance(frames, SensFrameSource)
    extra = {"color_min_size": options.image_size} if reduce else {}
    sizes = None  # (colour, depth) shapes of the first kept frame: a sequence keeps its sizes
    for item in frames.iter_frames(step=options.frame_skip, **extra):
        if options.max_frames is not None and stats.kept >= options.max_frames:
            break
        if isinstance(item, FrameSkip):
            stats.skipped[item.reason] += 1
            continue
        if not is_valid_pose(item.camera_to_world):
            stats.skipped[SKIP_INVALID_POSE] += 1
            continue
        if not np.any(item.depth > 0):
            stats.skipped["no valid depth"] += 1
            continue
        problem = geometry_problem(item)
        if problem is None and sizes is not None and (item.color.shape, item.depth.shape) != sizes:
            problem = (f"its colour {item.color.shape[1]}x{item.color.shape[0]} / depth {item.depth.shape[1]}x"
                       f"{item.depth.shape[0]} differ from the sequence's first frame")
        if problem is not None:  # counted by reason in meta.json; the first one is logged with its numbers
            if not stats.skipped[SKIP_BAD_GEOMETRY]:
                log.warning("skipping frame %d and any like it: %s", item.index, problem)
            stats.skipped[SKIP_BAD_GEOMETRY] += 1
            continue
        sizes = sizes or (item.color.shape, item.depth.shape)
        writer.add(item)
        if fusion is not None:
            fusion.add_frame(item.depth, item.intrinsic_depth, item.color, item.intrinsic_color,
                             item.camera_to_world)
        stats.kept += 1


def _write_correspondences(path: Path, points: ScenePoints, writer: _FrameWriter, options: PreprocessOptions,
                           stats: FrameStats) -> int:
    """Correspondences of every kept frame, streamed to ``path`` as an (M, 4) int32 .npy; returns M."""
    # float64 once, not per frame; column-major, so that each coordinate is a contiguous column (world_to_camera's
    # per-row products then read contiguous memory: same numbers, 1.4x faster than strided columns)
    coord = np.asfortranarray(points.coord, dtype=np.float64)
    cells = point_cells(coord)  # a frame projects only the points of the half-metre cubes it may see

    def frames():
        for k, depth in enumerate(writer.depths()):
            corr = find_correspondences(coord, depth, writer.poses[k], writer.intrinsics[k],
                                        options.image_size, options.abs_tol, options.rel_tol, cells=cells)
            stats.corr_per_frame.append(len(corr))
            yield k, corr

    return write_correspondences(path, frames())


# ---------------------------------------------------------------------------------------------------------------
# one scene


def align_up(points: ScenePoints, poses: list[np.ndarray], mode: str, source_kind: str | None
             ) -> tuple[dict, list[np.ndarray]]:
    """Rotate the scene (points and normals in place, camera poses (4, 4) camera-to-world) so that its up direction
    is +z (``data/up_axis.py``); returns (what ``meta.json`` records, the rotated poses). ``auto`` estimates the up
    of RGB-D folders and keeps the other sources (ScanNet, Pointcept's layout: z-up); an axis name (``y``, ``-y``,
    ...) says which axis of the input world is up."""
    from concerto3d.data.up_axis import axis_vector, estimate_up, rotation_to_z

    if mode == "auto" and source_kind != "rgbd":
        return {"mode": mode, "from": "the source (z up)", "rotation": np.eye(3).tolist()}, poses
    if mode == "auto":
        up, how = estimate_up(np.asarray(poses), points.normal), "cameras' up, refined by level surfaces"
    else:
        up, how = axis_vector(mode), "given"
    rotation = rotation_to_z(up)
    points.coord = (points.coord.astype(np.float64) @ rotation.T).astype(np.float32)
    points.normal = (points.normal.astype(np.float64) @ rotation.T).astype(np.float32)
    world = np.eye(4)
    world[:3, :3] = rotation
    poses = [world @ pose for pose in poses]
    tilt = float(np.degrees(np.arccos(np.clip(up[2], -1.0, 1.0))))
    if tilt > 1.0:
        log.info("up axis: %s %s, %.1f degrees from the input's z; the scene is stored z-up", how,
                 np.round(up, 3).tolist(), tilt)
    return {"mode": mode, "from": how, "up_in_input": np.round(up, 6).tolist(), "tilt_degrees": round(tilt, 3),
            "rotation": rotation.round(9).tolist()}, poses


def process_scene(name: str, frames, mesh: MeshInput | None, out: str | os.PathLike, options: PreprocessOptions,
                  source: dict | None = None, frame_labels: Callable[[int], np.ndarray | None] | None = None) -> dict:
    """Preprocess one scene into ``out/<name>`` (written under ``out/.tmp-<name>-<pid>``, then renamed).

    Args:
        name: scene name (the output folder's name).
        frames: a :class:`concerto3d.io.frames.FrameSource` of the scene's RGB-D frames.
        mesh: the scene's mesh and labels, or None to fuse the frames instead.
        out: the output root.
        options: see :class:`PreprocessOptions`.
        source: a description of the input, stored in ``meta.json``.
        frame_labels: the NYU40 2D label image of a source frame index (None for a frame without one); kept frames
            that have one get ``labels/<k>.png``.
    Returns:
        the scene's meta dict (also in ``meta.json``).
    Raises:
        InputError: the scene has no usable frames or no points (nothing is left behind).
    """
    return write_scene_folder(out, name, lambda folder: _process_into(folder, name, frames, mesh, options,
                                                                      source or {}, frame_labels))


def _process_into(folder: Path, name: str, frames, mesh: MeshInput | None, options: PreprocessOptions,
                  source: dict, frame_labels=None) -> dict:
    stats = FrameStats()
    points = points_from_mesh(mesh, options.voxel) if mesh is not None else None
    fusion = None if mesh is not None else VoxelFusion(options.voxel, max_depth=options.fusion_max_depth)
    writer = _FrameWriter(folder, options, frame_labels)
    try:
        _stream_frames(frames, writer, options, fusion, stats)
    finally:
        writer.close()
    if stats.kept == 0:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(stats.skipped.items())) or "the sequence is empty"
        raise InputError(f"no usable frames ({reasons})")
    if points is None:
        points = points_from_fusion(fusion, options.normal_radius * options.voxel)
    if len(points.coord) == 0:
        raise InputError("no points: the frames' depth fused to nothing")
    up, writer.poses = align_up(points, writer.poses, options.up, source.get("kind"))

    write_arrays(folder, asdict(points))
    write_arrays(folder, {
        "frame_ids": np.asarray(writer.frame_ids, np.int32),
        "poses": np.asarray(writer.poses, np.float32).reshape(-1, 4, 4),
        "intrinsics": np.asarray(writer.intrinsics, np.float32).reshape(-1, 3, 3),
    })
    num_corr = _write_correspondences(folder / "correspondences.npy", points, writer, options, stats)
    writer.depth_path.unlink()

    per_frame = np.asarray(stats.corr_per_frame)
    meta = {
        "format_version": FORMAT_VERSION,
        "scene": name,
        "source": dict(source, points_from="mesh" if mesh is not None else "fusion"),
        "num_points": int(len(points.coord)),
        "labelled": bool(mesh is not None and mesh.nyu40 is not None),
        "frames": {
            "total": int(stats.total), "frame_skip": options.frame_skip, "kept": int(stats.kept),
            "skipped": dict(sorted(stats.skipped.items())),
            "labelled": int(writer.labelled),  # kept frames with 2D labels (labels/<k>.png)
        },
        "up": up,
        "image_size": list(options.image_size),
        "patch_size": options.patch_size,
        "voxel": options.voxel,
        "depth_test": {"abs_tol": options.abs_tol, "rel_tol": options.rel_tol,
                       "rule": "|z_point - z_depth| <= abs_tol + rel_tol * z_depth; missing depth matches nothing"},
        "correspondences": {
            "total": int(num_corr), "per_frame_mean": round(float(per_frame.mean()), 3),
            "per_frame_min": int(per_frame.min()), "per_frame_max": int(per_frame.max()),
        },
        "options": {"max_frames": options.max_frames, "jpeg_quality": options.jpeg_quality,
                    "reduced_decode": options.reduced_decode,
                    "fusion_max_depth": options.fusion_max_depth, "normal_radius_voxels": options.normal_radius},
    }
    write_meta(folder, meta)  # the last file: a scene folder holding meta.json is complete
    return meta

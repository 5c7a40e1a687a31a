"""Scans in, training data out: ``concerto3d preprocess`` (output layout: data/README.md §3).

For each scene:

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

Everything is written under ``OUT/.tmp-<scene>-<pid>`` and renamed to ``OUT/<scene>`` at the end, so a scene folder
exists only when complete; a rerun skips scenes whose folder holds ``meta.json``. Scenes run in parallel over
``workers`` processes (spawn-safe); outputs are byte-identical whatever the number of workers.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import shutil
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from concerto3d.data.correspondence import (
    DEFAULT_ABS_TOL, DEFAULT_REL_TOL, depth_lookup, find_correspondences, resample_depth, scale_intrinsics_to_size,
)
from concerto3d.data.fusion import VoxelFusion, estimate_normals, mesh_vertex_normals, voxel_representatives
from concerto3d.errors import Concerto3DError, FormatError, InputError
from concerto3d.io.paths import ensure_output_dir, output_write_error
from concerto3d.labels import IGNORE_INDEX, nyu40_to_scannet20

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SOURCES = ("auto", "scannet", "rgbd")
SKIP_NO_DEPTH_OVERLAP = "depth does not cover the image"  # our own frame-skip reason, next to the io ones


@dataclass(frozen=True)
class PreprocessOptions:
    """What ``preprocess`` does to every scene (all of it recorded in each scene's ``meta.json``).

    Attributes:
        frame_skip: keep frames whose index is a multiple of this.
        voxel: voxel edge in metres for mesh down-sampling and fusion.
        image_size: (height, width) of the written images.
        patch_size: the image encoder's patch side; must divide both image sides.
        max_frames: keep at most this many frames per scene (the first ones), None = all.
        abs_tol, rel_tol: depth test ``|z_point - z_depth| <= abs_tol + rel_tol * z_depth``.
        jpeg_quality: quality of the written images.
        fusion_max_depth: fusion ignores depth readings beyond this, metres.
        normal_radius: neighbourhood radius for estimated normals, in voxels.
        reduced_decode: decode JPEG colour of ``.sens`` files at 1/2, 1/4 or 1/8 scale when the image is that much
            larger than ``image_size`` (libjpeg's DCT scaling, about 5x cheaper than a full decode at ScanNet's
            1296x968 -> 320x240), then resize; False: full decode, then resize. The written images differ by at most
            a few levels of 255 (:func:`concerto3d.io.images.decode_color_bytes_reduced`); used only for scenes
            with a mesh (fusion takes its colours from the frames as decoded in full).
    """

    frame_skip: int = 10
    voxel: float = 0.02
    image_size: tuple[int, int] = (240, 320)
    patch_size: int = 16
    max_frames: int | None = None
    abs_tol: float = DEFAULT_ABS_TOL
    rel_tol: float = DEFAULT_REL_TOL
    jpeg_quality: int = 90
    fusion_max_depth: float = 8.0
    normal_radius: float = 4.0
    reduced_decode: bool = True

    def check(self) -> "PreprocessOptions":
        """Raise InputError on an option that cannot work; return self."""
        h, w = self.image_size
        if not (isinstance(self.frame_skip, int) and self.frame_skip >= 1):
            raise InputError(f"frame skip must be an integer >= 1, got {self.frame_skip!r}")
        if not (np.isfinite(self.voxel) and self.voxel > 0):
            raise InputError(f"voxel must be a positive size in metres, got {self.voxel!r}")
        if h <= 0 or w <= 0:
            raise InputError(f"image size must be positive HxW, got {h}x{w}")
        if self.patch_size <= 0 or h % self.patch_size or w % self.patch_size:
            raise InputError(f"patch size must divide the image size {h}x{w}, got {self.patch_size}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"max frames must be >= 1, got {self.max_frames}")
        if self.abs_tol < 0 or self.rel_tol < 0:
            raise InputError(f"depth tolerances must be >= 0, got {self.abs_tol}, {self.rel_tol}")
        if not 1 <= self.jpeg_quality <= 100:
            raise InputError(f"JPEG quality must be in 1..100, got {self.jpeg_quality}")
        return self


@dataclass(frozen=True)
class SceneJob:
    """Where one scene comes from (picklable: the worker process opens the files itself)."""

    name: str
    kind: str  # "scannet" or "rgbd"
    path: str
    rgbd_preset: str | None = None
    depth_scale: float | None = None


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
    normals, valid = mesh_vertex_normals(v, mesh.faces)
    normal = normals[keep]
    bad = ~valid[keep]
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


def _resize_color(color: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = size
    if color.shape[:2] == (h, w):
        return color
    # reducing_gap=1: a box reduction by the integer part of the scale first (the anti-aliasing), then bilinear for
    # the rest; 3x faster than bilinear over the full image at ScanNet's 1296x968 -> 320x240
    return np.asarray(Image.fromarray(color).resize((w, h), Image.BILINEAR, reducing_gap=1.0))


class _FrameWriter:
    """Writes kept frames (image, camera, resampled depth spilled to disk) one at a time."""

    def __init__(self, folder: Path, options: PreprocessOptions):
        from concerto3d.io.images import write_color_jpeg

        self._write_jpeg = write_color_jpeg
        self.folder = folder
        self.options = options
        (folder / "images").mkdir(parents=True)
        self.depth_path = folder / "depth.spill"
        self._depth_file = open(self.depth_path, "wb")
        self.frame_ids: list[int] = []
        self.poses: list[np.ndarray] = []
        self.intrinsics: list[np.ndarray] = []
        self._lookup_key = None
        self._lookup = None

    def add(self, frame) -> None:
        size = self.options.image_size
        K = scale_intrinsics_to_size(frame.intrinsic_color, frame.color.shape[:2], size)
        key = (frame.intrinsic_depth.tobytes(), frame.depth.shape, K.tobytes())
        if key != self._lookup_key:  # intrinsics are nearly always constant over a scene: compute once
            self._lookup_key, self._lookup = key, depth_lookup(frame.intrinsic_depth, frame.depth.shape, K, size)
        depth = resample_depth(frame.depth, frame.intrinsic_depth, K, size, lookup=self._lookup)
        k = len(self.frame_ids)
        self._write_jpeg(self.folder / "images" / f"{k:06d}.jpg", _resize_color(frame.color, size),
                         self.options.jpeg_quality)
        self._depth_file.write(depth.astype(np.float32).tobytes())
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
    from concerto3d.io.frames import SKIP_INVALID_POSE, FrameSkip, is_valid_pose
    from concerto3d.io.sens import SensFrameSource

    stats.total = len(frames)
    reduce = options.reduced_decode and fusion is None and isinstance(frames, SensFrameSource)
    extra = {"color_min_size": options.image_size} if reduce else {}
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
        writer.add(item)
        if fusion is not None:
            fusion.add_frame(item.depth, item.intrinsic_depth, item.color, item.intrinsic_color,
                             item.camera_to_world)
        stats.kept += 1


def _write_correspondences(path: Path, points: ScenePoints, writer: _FrameWriter, options: PreprocessOptions,
                           stats: FrameStats) -> int:
    """Correspondences of every kept frame, streamed to ``path`` as an (M, 4) int32 .npy; returns M."""
    raw_path = path.with_suffix(".spill")
    total = 0
    # float64 once, not per frame; column-major, so that each coordinate is a contiguous column (world_to_camera's
    # per-row products then read contiguous memory: same numbers, 1.4x faster than strided columns)
    coord = np.asfortranarray(points.coord, dtype=np.float64)
    with open(raw_path, "wb") as raw:
        for k, depth in enumerate(writer.depths()):
            corr = find_correspondences(coord, depth, writer.poses[k], writer.intrinsics[k],
                                        options.image_size, options.abs_tol, options.rel_tol)
            rows = np.empty((len(corr), 4), np.int32)
            rows[:, 0] = k
            rows[:, 1:] = corr
            raw.write(rows.tobytes())
            stats.corr_per_frame.append(len(corr))
            total += len(corr)
    with open(path, "wb") as f, open(raw_path, "rb") as raw:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.dtype(np.int32).str, "fortran_order": False, "shape": (total, 4)})
        shutil.copyfileobj(raw, f, length=1 << 22)
    raw_path.unlink()
    return total


# ---------------------------------------------------------------------------------------------------------------
# one scene


def process_scene(name: str, frames, mesh: MeshInput | None, out: str | os.PathLike, options: PreprocessOptions,
                  source: dict | None = None) -> dict:
    """Preprocess one scene into ``out/<name>`` (written under ``out/.tmp-<name>-<pid>``, then renamed).

    Args:
        name: scene name (the output folder's name).
        frames: a :class:`concerto3d.io.frames.FrameSource` of the scene's RGB-D frames.
        mesh: the scene's mesh and labels, or None to fuse the frames instead.
        out: the output root.
        options: see :class:`PreprocessOptions`.
        source: a description of the input, stored in ``meta.json``.
    Returns:
        the scene's meta dict (also in ``meta.json``).
    Raises:
        InputError: the scene has no usable frames or no points (nothing is left behind).
    """
    out = Path(out)
    final = out / name
    tmp = out / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        meta = _process_into(tmp, name, frames, mesh, options, source or {})
        try:
            os.rename(tmp, final)  # atomic; fails when ``final`` exists and is not empty
        except OSError:
            if not (final / "meta.json").is_file():
                raise
            shutil.rmtree(tmp)  # another process finished the same scene meanwhile: same content, keep theirs
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _process_into(folder: Path, name: str, frames, mesh: MeshInput | None, options: PreprocessOptions,
                  source: dict) -> dict:
    stats = FrameStats()
    points = points_from_mesh(mesh, options.voxel) if mesh is not None else None
    fusion = None if mesh is not None else VoxelFusion(options.voxel, max_depth=options.fusion_max_depth)
    writer = _FrameWriter(folder, options)
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

    for key, arr in asdict(points).items():
        np.save(folder / f"{key}.npy", arr)
    np.save(folder / "frame_ids.npy", np.asarray(writer.frame_ids, np.int32))
    np.save(folder / "poses.npy", np.asarray(writer.poses, np.float32).reshape(-1, 4, 4))
    np.save(folder / "intrinsics.npy", np.asarray(writer.intrinsics, np.float32).reshape(-1, 3, 3))
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
        },
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
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


# ---------------------------------------------------------------------------------------------------------------
# finding scenes and opening them


def find_scenes(scans: str | os.PathLike, source: str = "auto", rgbd_preset: str | None = None,
                depth_scale: float | None = None) -> list[SceneJob]:
    """The scenes under ``scans``: a ScanNet root (with ``scans/``), one ScanNet scene folder, one generic RGB-D
    folder, or a folder of RGB-D folders.

    Returns:
        jobs sorted by scene name.
    Raises:
        InputError: ``scans`` is not a folder, nothing usable is found, or two scenes share a name.
    """
    from concerto3d.io import rgbd_folder, scannet

    root = Path(scans)
    if source not in SOURCES:
        raise InputError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if not root.is_dir():
        raise InputError("expected a folder of scans (ScanNet root, scene folder or RGB-D folder)", root)
    jobs: list[SceneJob] = []
    if source in ("auto", "scannet"):
        dirs = [Path(d) for d in scannet.find_scannet_scenes(root)]
        jobs = [SceneJob(d.name, "scannet", str(d.resolve())) for d in dirs]
    if not jobs and source in ("auto", "rgbd"):
        if rgbd_folder.looks_like_rgbd_folder(root, preset=rgbd_preset):
            dirs = [root]
        else:
            dirs = sorted(d for d in root.iterdir()
                          if d.is_dir() and rgbd_folder.looks_like_rgbd_folder(d, preset=rgbd_preset))
        jobs = [SceneJob(d.resolve().name, "rgbd", str(d.resolve()), rgbd_preset, depth_scale) for d in dirs]
    if not jobs:
        kind = {"auto": "ScanNet scenes or RGB-D folders", "scannet": "ScanNet scenes", "rgbd": "RGB-D folders"}
        raise InputError(f"no {kind[source]} found", root)
    names = Counter(j.name for j in jobs)
    dup = sorted(n for n, c in names.items() if c > 1)
    if dup:
        raise InputError(f"several scenes are named {dup[0]!r}; preprocess them into separate outputs", root)
    return sorted(jobs, key=lambda j: j.name)


def open_scene(job: SceneJob):
    """(frames, mesh or None, source description) for a job, through ``concerto3d.io``."""
    if job.kind == "rgbd":
        from concerto3d.io.rgbd_folder import RGBDFolderSource

        kwargs = {} if job.depth_scale is None else {"depth_scale": job.depth_scale}
        frames = RGBDFolderSource(job.path, preset=job.rgbd_preset, **kwargs)
        return frames, None, {"kind": "rgbd", "path": job.path, "preset": job.rgbd_preset,
                              "depth_scale": job.depth_scale}
    from concerto3d.io import ply, scannet

    scene = scannet.ScanNetScene(job.path)
    frames = scene.frame_source()
    mesh = None
    if scene.has_mesh:
        m = ply.read_mesh_ply(scene.mesh_path)
        mesh = MeshInput(m.vertices, m.colors, m.faces)
        if scene.has_labels:
            mesh.nyu40 = ply.read_vertex_labels_ply(scene.labels_path)
            if len(mesh.nyu40) != len(mesh.vertices):
                raise FormatError(f"expected {len(mesh.vertices)} labels (one per mesh vertex), "
                                  f"got {len(mesh.nyu40)}", scene.labels_path)
        if scene.segs_path.is_file() and scene.aggregation_path.is_file():
            segs = scannet.read_segs_json(scene.segs_path)
            if len(segs) != len(mesh.vertices):
                raise FormatError(f"expected {len(mesh.vertices)} segment ids (one per mesh vertex), "
                                  f"got {len(segs)}", scene.segs_path)
            mesh.instance = scannet.instance_ids(segs, scannet.read_aggregation_json(scene.aggregation_path))
    return frames, mesh, {"kind": "scannet", "path": job.path}


# errors that mean "this scene's input is bad": the scene is skipped, the others go on
_SCENE_ERRORS = (Concerto3DError, OSError, EOFError, zlib.error, ValueError)


def run_job(job: SceneJob, out: str, options: PreprocessOptions) -> dict:
    """Process one scene in this process; never raises for a bad scene (spawn-safe pool target).

    A full disk (or read-only file system) under ``out`` is not a bad scene: it raises InputError naming ``out``.

    Returns:
        ``{"scene", "status": "done" | "exists" | "skipped", "reason"?, "meta"?, "seconds"}``.
    """
    start = time.perf_counter()
    final = Path(out) / job.name
    result = {"scene": job.name}
    if (final / "meta.json").is_file():
        result.update(status="exists", meta=json.loads((final / "meta.json").read_text(encoding="utf-8")))
    elif final.exists():
        result.update(status="skipped", reason=f"{final} exists without meta.json; remove it to redo the scene")
    else:
        try:
            frames, mesh, source = open_scene(job)
            meta = process_scene(job.name, frames, mesh, out, options, source)
            result.update(status="done", meta=meta)
        except _SCENE_ERRORS as err:
            full = output_write_error(err, out, "output folder")
            if full is not None:  # a full disk is no fault of the scene: every later scene would fail the same way
                raise full from None
            result.update(status="skipped", reason=_one_line(err))
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, Concerto3DError) else f"{type(err).__name__}: {text}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_tmp(out: Path) -> list[str]:
    """Remove ``out/.tmp-<scene>-<pid>`` folders whose process is gone; returns their names."""
    removed = []
    for d in sorted(out.glob(".tmp-*")):
        m = re.fullmatch(r"\.tmp-.*-(\d+)", d.name)
        if d.is_dir() and (m is None or not _pid_alive(int(m.group(1)))):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed


# ---------------------------------------------------------------------------------------------------------------
# the whole run


def preprocess(scans: str | os.PathLike, out: str | os.PathLike, frame_skip: int = 10, voxel: float = 0.02,
               workers: int = 1, image_size: tuple[int, int] = (240, 320), source: str = "auto",
               patch_size: int = 16, rgbd_preset: str | None = None, depth_scale: float | None = None,
               max_frames: int | None = None, abs_tol: float = DEFAULT_ABS_TOL, rel_tol: float = DEFAULT_REL_TOL,
               progress: bool = True, reduced_decode: bool = True) -> dict:
    """Preprocess every scene under ``scans`` into ``out`` (layout: data/README.md §3).

    Args:
        scans: a ScanNet root (with ``scans/``), one scene folder, an RGB-D folder or a folder of them.
        out: output root; created if needed. Finished scenes in it are kept and skipped.
        frame_skip, voxel, image_size, patch_size, max_frames, abs_tol, rel_tol, reduced_decode: see
            :class:`PreprocessOptions`.
        workers: scenes processed in parallel (processes).
        source: ``"auto"``, ``"scannet"`` or ``"rgbd"``; rgbd_preset, depth_scale: for RGB-D folders.
        progress: show a progress bar over scenes.
    Returns:
        the summary (also written to ``out/summary.json``): scenes done/skipped with reasons, points, frames kept
        and skipped by reason, correspondences per frame; plus ``"this_run"`` (scenes processed now, found
        finished, seconds), which is not written to the file.
    Raises:
        InputError: bad options, no scenes found, or every scene was skipped.
    """
    options = PreprocessOptions(
        frame_skip=frame_skip, voxel=float(voxel), image_size=tuple(int(s) for s in image_size),
        patch_size=patch_size, max_frames=max_frames, abs_tol=abs_tol, rel_tol=rel_tol,
        reduced_decode=bool(reduced_decode)).check()
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    jobs = find_scenes(scans, source, rgbd_preset, depth_scale)
    out = ensure_output_dir(out)  # a read-only, full or impossible folder fails now, not after the first scene
    for name in clean_stale_tmp(out):
        log.info("removed the unfinished %s of an earlier run", name)
    log.info("preprocess: %d scene(s) from %s into %s; options %s", len(jobs), scans, out, options)

    start = time.perf_counter()
    results = []
    pool = None
    bar = _progress_bar(len(jobs), progress)
    try:
        if workers == 1 or len(jobs) == 1:
            outcomes = (run_job(job, str(out), options) for job in jobs)
        else:
            pool = multiprocessing.get_context("spawn").Pool(min(workers, len(jobs)))
            outcomes = pool.imap_unordered(_run_job_star, [(job, str(out), options) for job in jobs])
        for result in outcomes:
            results.append(result)
            if result["status"] == "skipped":
                log.warning("skipped scene %s: %s", result["scene"], result["reason"])
            elif result["status"] == "exists" and _meta_options(result["meta"]) != _meta_options(options):
                log.warning("scene %s was preprocessed earlier with other options (%s); kept as it is: remove "
                            "%s to redo it", result["scene"], _meta_options(result["meta"]), out / result["scene"])
            bar.update(1)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()

    summary = summarize(sorted(results, key=lambda r: r["scene"]), options)
    _write_splits(Path(scans), out, [r["scene"] for r in results if r["status"] != "skipped"])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    summary["this_run"] = {
        "processed": sum(r["status"] == "done" for r in results),
        "already_done": sum(r["status"] == "exists" for r in results),
        "seconds": round(time.perf_counter() - start, 3),
    }
    print(format_summary(summary))
    if summary["scenes"]["done"] == 0:
        first = summary["skipped"][next(iter(summary["skipped"]))]
        raise InputError(f"no scene could be preprocessed (first reason: {first})", scans)
    return summary


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    """A tqdm bar over scenes; without one, tqdm is not imported at all (its import takes about 0.1 s)."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="scene", desc="preprocess")


def _meta_options(meta_or_options) -> dict:
    """The options that change a scene's content, from a meta dict or from PreprocessOptions (to compare them)."""
    if isinstance(meta_or_options, PreprocessOptions):
        o = meta_or_options
        return {"frame_skip": o.frame_skip, "voxel": o.voxel, "image_size": list(o.image_size),
                "abs_tol": o.abs_tol, "rel_tol": o.rel_tol, "max_frames": o.max_frames}
    m = meta_or_options
    return {"frame_skip": m["frames"]["frame_skip"], "voxel": m["voxel"], "image_size": m["image_size"],
            "abs_tol": m["depth_test"]["abs_tol"], "rel_tol": m["depth_test"]["rel_tol"],
            "max_frames": m["options"]["max_frames"]}


def _run_job_star(args) -> dict:
    return run_job(*args)


def summarize(results: list[dict], options: PreprocessOptions) -> dict:
    """The run's summary from the per-scene results (sorted by scene); depends only on the scenes' meta files."""
    metas = [r["meta"] for r in results if r["status"] in ("done", "exists")]
    skipped_frames: Counter = Counter()
    for m in metas:
        skipped_frames.update(m["frames"]["skipped"])
    kept = sum(m["frames"]["kept"] for m in metas)
    corr = sum(m["correspondences"]["total"] for m in metas)
    return {
        "scenes": {"total": len(results), "done": len(metas), "skipped": len(results) - len(metas)},
        "skipped": {r["scene"]: r["reason"] for r in results if r["status"] == "skipped"},
        "points": sum(m["num_points"] for m in metas),
        "frames": {"kept": kept, "skipped": dict(sorted(skipped_frames.items()))},
        "correspondences": {
            "total": corr, "per_frame_mean": round(corr / kept, 3) if kept else 0.0,
            "per_frame_min": min((m["correspondences"]["per_frame_min"] for m in metas), default=0),
            "per_frame_max": max((m["correspondences"]["per_frame_max"] for m in metas), default=0),
        },
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
    }


def format_summary(summary: dict) -> str:
    """A few human-readable lines of a summary."""
    s, f, c = summary["scenes"], summary["frames"], summary["correspondences"]
    skipped = ", ".join(f"{n} {r}" for r, n in f["skipped"].items()) or "none"
    lines = [
        f"scenes: {s['done']} done, {s['skipped']} skipped (of {s['total']})",
        f"points: {summary['points']}",
        f"frames: {f['kept']} kept; skipped: {skipped}",
        f"correspondences: {c['total']} ({c['per_frame_mean']:.1f} per frame, min {c['per_frame_min']}, "
        f"max {c['per_frame_max']})",
    ]
    lines += [f"  skipped scene {name}: {reason}" for name, reason in summary["skipped"].items()]
    if "this_run" in summary:
        t = summary["this_run"]
        lines.append(f"this run: {t['processed']} processed, {t['already_done']} already done, {t['seconds']:.1f} s")
    return "\n".join(lines)


def _write_splits(scans: Path, out: Path, done: list[str]) -> None:
    """Copy ScanNet split lists (``scannetv2_<split>.txt``) to ``out/splits/<split>.txt``, keeping done scenes."""
    done_set = set(done)
    for path in sorted(scans.glob("scannetv2_*.txt")):
        split = path.stem[len("scannetv2_"):]
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        (out / "splits").mkdir(exist_ok=True)
        (out / "splits" / f"{split}.txt").write_text(
            "".join(f"{n}\n" for n in names if n in done_set), encoding="utf-8")

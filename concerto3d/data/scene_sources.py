"""The scenes of a ``concerto3d preprocess`` input: :func:`find_scenes` lists them as picklable :class:`SceneJob`
records, :func:`open_scene` opens one (in the worker process) as frames plus an optional mesh, through
:mod:`concerto3d.io`. Scenes of Pointcept's layout are converted instead (:func:`pointcept_job_scene`,
:mod:`concerto3d.data.pointcept_scene`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from concerto3d.data.scene_builder import MeshInput
from concerto3d.errors import FormatError, InputError

__all__ = ["SOURCES", "SceneJob", "find_scenes", "open_scene", "pointcept_job_scene"]

log = logging.getLogger(__name__)

SOURCES = ("auto", "scannet", "pointcept", "rgbd")


@dataclass(frozen=True)
class SceneJob:
    """Where one scene comes from (picklable: the worker process opens the files itself)."""

    name: str
    kind: str  # "scannet", "pointcept" or "rgbd"
    path: str  # the scene's folder; for "pointcept", the layout's root
    rgbd_preset: str | None = None
    depth_scale: float | None = None
    split: str | None = None  # "pointcept": the split folder the scene sits in


def find_scenes(scans: str | os.PathLike, source: str = "auto", rgbd_preset: str | None = None,
                depth_scale: float | None = None) -> list[SceneJob]:
    """The scenes under ``scans``: a ScanNet root (with ``scans/``), one ScanNet scene folder, the root of Pointcept's
    preprocessed layout (``<split>/<scene>/coord.npy``, ``images/<split>/<scene>/``), one generic RGB-D folder, or a
    folder of RGB-D folders. ``auto`` tries them in that order.

    Returns:
        jobs sorted by scene name.
    Raises:
        InputError: ``scans`` is not a folder, nothing usable is found, two scenes share a name, or a scene's
            name has a space.
    """
    from concerto3d.io import rgbd_folder, scannet  # pointcept's reader only when it is needed (3 ms of imports)

    root = Path(scans)
    if source not in SOURCES:
        raise InputError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if not root.is_dir():
        raise InputError("expected a folder of scans (ScanNet root, scene folder, Pointcept's layout or RGB-D folder)",
                         root)
    jobs: list[SceneJob] = []
    if source in ("auto", "scannet"):
        dirs = [Path(d) for d in scannet.find_scannet_scenes(root)]
        jobs = [SceneJob(d.name, "scannet", str(d.resolve())) for d in dirs]
    if not jobs and source in ("auto", "pointcept"):
        from concerto3d.io import pointcept

        if source == "pointcept" or pointcept.looks_like_pointcept(root):
            jobs = [SceneJob(s.name, "pointcept", str(root.resolve()), split=s.split)
                    for s in pointcept.find_pointcept_scenes(root)]
    if not jobs and source in ("auto", "rgbd"):
        if rgbd_folder.looks_like_rgbd_folder(root, preset=rgbd_preset):
            dirs = [root]
        else:
            dirs = sorted(d for d in root.iterdir()
                          if d.is_dir() and rgbd_folder.looks_like_rgbd_folder(d, preset=rgbd_preset))
        jobs = [SceneJob(d.resolve().name, "rgbd", str(d.resolve()), rgbd_preset, depth_scale) for d in dirs]
    if not jobs:
        kind = {"auto": "ScanNet scenes, Pointcept's layout or RGB-D folders", "scannet": "ScanNet scenes",
                "pointcept": "scenes of Pointcept's layout (<split>/<scene>/coord.npy, images/<split>/<scene>/)",
                "rgbd": "RGB-D folders"}
        raise InputError(f"no {kind[source]} found", root)
    names = Counter(j.name for j in jobs)
    dup = sorted(n for n, c in names.items() if c > 1)
    if dup:
        raise InputError(f"several scenes are named {dup[0]!r}; preprocess them into separate outputs", root)
    unlistable = [j for j in jobs if any(c.isspace() for c in j.name)]
    if unlistable:  # split lists hold one name a line, and a scene is reached only through them
        raise InputError("expected a scene folder name without spaces (split lists hold one name a line); rename "
                         "it", unlistable[0].path)
    return sorted(jobs, key=lambda j: j.name)


def _frame_labels(scene_dir: Path, name: str):
    """The NYU40 2D label image of a source frame index (None for a frame without one), from ScanNet's
    ``<scene>_2d-label-filt.zip`` (or ``label-filt/``) mapped through the label table beside the scans; None when
    the scene has no label images or no table is found (then logged: ScanNet ids cannot be read without it)."""
    from concerto3d.io.frame_labels import FrameLabels
    from concerto3d.io.label_table import LABEL_TABLE_NAME, read_label_table

    labels = FrameLabels(scene_dir, name)
    if not labels.available:
        return None
    table = next((p / LABEL_TABLE_NAME for p in list(scene_dir.parents)[:2] if (p / LABEL_TABLE_NAME).is_file()),
                 None)
    if table is None:
        log.warning("%s: 2D labels found but no %s beside the scans; the frames' labels are left out", name,
                    LABEL_TABLE_NAME)
        return None
    table = read_label_table(table)
    if not table.id_to_nyu40:
        log.warning("%s: the label table has no id column; the frames' labels are left out", name)
        return None

    def read(index: int):
        ids = labels.read(index)
        return None if ids is None else table.ids_to_nyu40(ids)

    return read


def pointcept_job_scene(job: SceneJob):
    """The :class:`concerto3d.io.pointcept.PointceptScene` of a ``"pointcept"`` job."""
    from concerto3d.io.pointcept import pointcept_scene

    return pointcept_scene(job.path, job.split, job.name)


def open_scene(job: SceneJob):
    """(frames, mesh or None, source description, frame labels or None) for a job, through ``concerto3d.io``.
    The frame labels are a callable: source frame index -> NYU40 label image, or None for a frame without one."""
    if job.kind == "rgbd":
        from concerto3d.io.rgbd_folder import RGBDFolderSource

        kwargs = {} if job.depth_scale is None else {"depth_scale": job.depth_scale}
        frames = RGBDFolderSource(job.path, preset=job.rgbd_preset, **kwargs)
        # the preset used: the one asked for, or the one recognised from the folder's files
        return frames, None, {"kind": "rgbd", "path": job.path, "preset": frames.preset,
                              "preset_recognised": job.rgbd_preset is None and frames.preset is not None,
                              "depth_scale": job.depth_scale}, None
    from concerto3d.io import ply, scannet

    scene = scannet.ScanNetScene(job.path)
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
    source = {"kind": "scannet", "path": job.path}
    if not scene.has_sens and not scene.has_export and scene.has_color_frames and mesh is not None:
        # colour frames without depth: the mesh gives them depth (rendered), so they get correspondences through
        # the same depth test
        from concerto3d.data.mesh_depth import MeshDepth

        frames = scene.frame_source(depth_from=MeshDepth(mesh.vertices, mesh.faces))
        source["depth"] = "rendered from the mesh"
    else:
        frames = scene.frame_source()
    return frames, mesh, source, _frame_labels(Path(job.path), job.name)


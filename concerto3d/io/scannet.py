"""ScanNet's scene folders and their annotation files besides the ``.sens`` and the label table.

- ``<scene>_vh_clean_2.0.010000.segs.json``: ``segIndices``, the over-segment id of each mesh vertex.
- ``<scene>.aggregation.json``: ``segGroups``, the annotated objects, each a set of segments with a raw label.
- ``<scene>.txt``: the scene meta (``key = value`` lines, ``axisAlignment``).
- A scene folder (:class:`ScanNetScene`) with its mesh, labels, ``.sens`` and/or exported frames
  (``color/<i>.jpg``, ``depth/<i>.png``, ``pose/<i>.txt``, ``intrinsic/``), read as a FrameSource.

Elsewhere: the label table in :mod:`.label_table`, split lists in :mod:`.split_lists`, exported frames in
:mod:`.scannet_export`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from concerto3d.errors import FormatError, InputError
from concerto3d.io.label_table import LabelTable
from concerto3d.io.paths import read_text_file
from concerto3d.io.scannet_export import ScanNetExportSource


# -- segments and aggregation -----------------------------------------------------------------------------
@dataclass
class SegGroup:
    """One annotated object of an aggregation file: its id, object id, raw label and the segments it covers."""

    id: int
    object_id: int
    label: str
    segments: list[int]


def _read_json(path: str | os.PathLike, what: str):
    path = Path(path)
    text = read_text_file(path, what)
    if not text.strip():
        raise FormatError(f"{what} file is empty", path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(f"{what} file is not valid JSON ({err.msg} at line {err.lineno})", path) from None


def read_segs_json(path: str | os.PathLike) -> np.ndarray:
    """Read ``*.segs.json``. Returns (N,) int64 segment id of each mesh vertex."""
    data = _read_json(path, "segments")
    seg = data.get("segIndices") if isinstance(data, dict) else None
    if not isinstance(seg, list):
        raise FormatError("segments file has no 'segIndices' list", path)
    try:
        return np.asarray(seg, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise FormatError("'segIndices' must be a list of integers", path) from None


def write_segs_json(path: str | os.PathLike, scene_id: str, seg_indices: np.ndarray) -> None:
    """Write ``*.segs.json``: ``{"params": {...}, "sceneId", "segIndices"}`` with one segment id per vertex."""
    seg = np.asarray(seg_indices)
    if seg.ndim != 1 or not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(f"seg_indices: expected (N,) integers, got {seg.shape} {seg.dtype}")
    data = {"params": {"kThresh": "0.01", "segMinVerts": "20", "minPoints": "750", "maxPoints": "5000",
                       "thinThresh": "0.05", "flatThresh": "0.001", "minLength": "0.02", "maxLength": "1"},
            "sceneId": scene_id, "segIndices": seg.astype(np.int64).tolist()}
    Path(path).write_text(json.dumps(data), encoding="utf-8")


def read_aggregation_json(path: str | os.PathLike) -> list[SegGroup]:
    """Read ``*.aggregation.json``. Returns its ``segGroups`` as :class:`SegGroup` objects."""
    data = _read_json(path, "aggregation")
    groups = data.get("segGroups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        raise FormatError("aggregation file has no 'segGroups' list", path)
    out = []
    for i, g in enumerate(groups):
        try:
            gid = int(g["id"])
            out.append(SegGroup(gid, int(g.get("objectId", gid)), str(g["label"]),
                                [int(s) for s in g["segments"]]))
        except (KeyError, TypeError, ValueError) as err:
            raise FormatError(f"segGroups[{i}] needs integer 'id', 'label' and a list of integer 'segments' "
                              f"({type(err).__name__}: {err})", path) from None
    return out


def write_aggregation_json(path: str | os.PathLike, scene_id: str, groups: Sequence[SegGroup | Mapping],
                           segs_file: str | None = None) -> None:
    """Write ``*.aggregation.json`` in ScanNet's layout.

    Args:
        groups: :class:`SegGroup` objects or mappings with ``id``, ``label``, ``segments`` (and ``objectId``).
        segs_file: the ``segmentsFile`` entry; default ``scannet.<scene>_vh_clean_2.0.010000.segs.json``.
    """
    seg_groups = []
    for g in groups:
        if isinstance(g, SegGroup):
            g = {"id": g.id, "objectId": g.object_id, "label": g.label, "segments": g.segments}
        seg_groups.append({"id": int(g["id"]), "objectId": int(g.get("objectId", g["id"])),
                           "segments": [int(s) for s in g["segments"]], "label": str(g["label"])})
    data = {"sceneId": f"scannet.{scene_id}", "appId": "concerto3d", "segGroups": seg_groups,
            "segmentsFile": segs_file or f"scannet.{scene_id}_vh_clean_2.0.010000.segs.json"}
    Path(path).write_text(json.dumps(data), encoding="utf-8")


def instance_ids(segs: np.ndarray, aggregation: Sequence[SegGroup]) -> np.ndarray:
    """Instance id of each vertex from its segment and the annotated groups.

    Args:
        segs: (N,) segment id per vertex.
        aggregation: the groups; a vertex takes the ``object_id`` of the group that lists its segment.
    Returns:
        (N,) int32 object id, -1 for vertices in no group. A segment listed by two groups keeps the first.
    """
    segs = np.asarray(segs)
    out = np.full(segs.shape, -1, dtype=np.int32)
    for g in aggregation:
        hit = np.isin(segs, np.asarray(g.segments, dtype=segs.dtype)) & (out == -1)
        out[hit] = g.object_id
    return out


def vertex_nyu40_from_aggregation(segs: np.ndarray, aggregation: Sequence[SegGroup],
                                  table: LabelTable) -> np.ndarray:
    """NYU40 id of each vertex from the groups' raw labels (the label table maps them). (N,) int64, 0 = none."""
    segs = np.asarray(segs)
    out = np.zeros(segs.shape, dtype=np.int64)
    done = np.zeros(segs.shape, dtype=bool)
    for g in aggregation:
        hit = np.isin(segs, np.asarray(g.segments, dtype=segs.dtype)) & ~done
        out[hit] = table.to_nyu40(g.label)
        done |= hit
    return out



# -- scene meta -------------------------------------------------------------------------------------------
def read_scene_meta(path: str | os.PathLike) -> dict[str, str]:
    """Read ``<scene>.txt`` (``key = value`` lines) into a dict of strings; see :func:`axis_alignment`."""
    path = Path(path)
    if not path.is_file():
        raise InputError("scene meta file not found", path)
    meta = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            meta[key.strip()] = value.strip()
    return meta


def axis_alignment(meta: Mapping[str, str]) -> np.ndarray:
    """(4, 4) float64 ``axisAlignment`` of a scene meta dict (identity when absent)."""
    if "axisAlignment" not in meta:
        return np.eye(4)
    values = meta["axisAlignment"].split()
    if len(values) != 16:
        raise FormatError(f"axisAlignment needs 16 numbers, got {len(values)}")
    return np.asarray([float(v) for v in values], dtype=np.float64).reshape(4, 4)



# -- scene folders ----------------------------------------------------------------------------------------
class ScanNetScene:
    """The files of one ScanNet scene folder ``scans/<scene>/``.

    Attributes:
        name, root; paths (which may not exist): ``sens_path``, ``mesh_path``, ``labels_path``, ``segs_path``,
        ``aggregation_path``, ``meta_path``; ``has_sens``, ``has_export``, ``has_mesh``, ``has_labels``.
    """

    def __init__(self, scene_dir: str | os.PathLike):
        self.root = Path(scene_dir)
        if not self.root.is_dir():
            raise InputError("scene folder not found", self.root)
        self.name = self.root.name
        n = self.name
        self.sens_path = self.root / f"{n}.sens"
        self.mesh_path = self.root / f"{n}_vh_clean_2.ply"
        self.labels_path = self.root / f"{n}_vh_clean_2.labels.ply"
        self.segs_path = self.root / f"{n}_vh_clean_2.0.010000.segs.json"
        self.aggregation_path = self.root / f"{n}.aggregation.json"
        self.meta_path = self.root / f"{n}.txt"

    @property
    def has_sens(self) -> bool:
        return self.sens_path.is_file()

    @property
    def has_export(self) -> bool:
        return (self.root / "color").is_dir() and (self.root / "depth").is_dir()

    @property
    def has_color_frames(self) -> bool:
        """Exported colour frames and poses without a depth folder (depth must come from elsewhere, e.g. the
        mesh)."""
        return (self.root / "color").is_dir() and (self.root / "pose").is_dir() and not (self.root / "depth").is_dir()

    @property
    def has_mesh(self) -> bool:
        return self.mesh_path.is_file()

    @property
    def has_labels(self) -> bool:
        return self.labels_path.is_file()

    def __repr__(self) -> str:
        return f"ScanNetScene({str(self.root)!r})"

    def frame_source(self, prefer: str = "auto", depth_from=None):
        """The scene's frames as a FrameSource.

        Args:
            prefer: ``"auto"`` (the ``.sens`` when present, else the exported folders), ``"sens"`` or ``"export"``.
            depth_from: renders the depth of exported colour frames that have none (see
                :class:`ScanNetExportSource`); used when the scene has colour frames without a depth folder.
        """
        from concerto3d.io.sens_frames import SensFrameSource

        if prefer not in ("auto", "sens", "export"):
            raise InputError(f"frame source must be 'auto', 'sens' or 'export', got {prefer!r}")
        if prefer in ("auto", "sens") and self.has_sens:
            return SensFrameSource(self.sens_path, name=self.name)
        if prefer in ("auto", "export") and self.has_export:
            return ScanNetExportSource(self.root, name=self.name)
        if prefer in ("auto", "export") and self.has_color_frames and depth_from is not None:
            return ScanNetExportSource(self.root, name=self.name, depth_from=depth_from)
        wanted = {"auto": f"{self.name}.sens or color/ and depth/ folders", "sens": f"{self.name}.sens",
                  "export": "color/ and depth/ folders"}[prefer]
        raise InputError(f"scene has no frames: expected {wanted}", self.root)


def is_scannet_scene(path: str | os.PathLike) -> bool:
    """Whether a folder looks like a ScanNet scene (a ``<name>.sens``, ``<name>_vh_clean_2.ply`` or exported
    ``color/`` + ``depth/`` folders)."""
    path = Path(path)
    if not path.is_dir():
        return False
    scene = ScanNetScene(path)
    return scene.has_sens or scene.has_mesh or scene.has_export


def find_scannet_scenes(root: str | os.PathLike) -> list[Path]:
    """Scene folders under ``root``, sorted by name.

    ``root`` may be a ScanNet root (with ``scans/``), a ``scans/`` folder, or one scene folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("scans folder not found", root)
    if is_scannet_scene(root):
        return [root]
    base = root / "scans" if (root / "scans").is_dir() else root
    return sorted((p for p in base.iterdir() if is_scannet_scene(p)), key=lambda p: p.name)

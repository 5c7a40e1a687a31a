"""ScanNet's files besides the ``.sens``: label table, segments, aggregation, split lists, scene folders.

- ``scannetv2-labels.combined.tsv``: one row per raw category, mapping it to an NYU40 id (and other vocabularies).
- ``<scene>_vh_clean_2.0.010000.segs.json``: ``segIndices``, the over-segment id of each mesh vertex.
- ``<scene>.aggregation.json``: ``segGroups``, the annotated objects, each a set of segments with a raw label.
- ``scannetv2_{train,val}.txt``: one scene name a line.
- A scene folder (:class:`ScanNetScene`) with its mesh, labels, ``.sens`` and/or exported frames
  (``color/<i>.jpg``, ``depth/<i>.png``, ``pose/<i>.txt``, ``intrinsic/``), read as a FrameSource.

Exported frames: a frame whose colour, depth or pose file is missing is yielded as ``FrameSkip("missing depth")``
(etc.), one whose image does not decode as ``FrameSkip("unreadable color" | "unreadable depth")``, one whose pose is
not finite as ``FrameSkip("invalid pose")``. Problems of the whole folder (missing intrinsics, 8-bit depth PNGs, no
frames at all) raise FormatError / InputError.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from concerto3d.errors import FormatError, InputError
from concerto3d.io.frames import (SKIP_MISSING_COLOR, SKIP_MISSING_DEPTH, SKIP_MISSING_POSE, FrameSkip, RGBDFrame,
                                  check_step, load_frame)
from concerto3d.io.geometry_files import read_intrinsics
from concerto3d.io.images import check_depth_scale
from concerto3d.io.paths import read_text_file
from concerto3d.labels import NYU40_NAMES, nyu40_to_scannet20

log = logging.getLogger(__name__)

# the columns of ScanNet v2's scannetv2-labels.combined.tsv, in order
LABEL_TABLE_COLUMNS: tuple[str, ...] = (
    "id", "raw_category", "category", "count", "nyu40id", "eigen13id", "nyuClass", "nyu40class", "eigen13class",
    "ModelNet40", "ModelNet10", "ShapeNetCore55", "synsetoffset", "wnsynsetid", "wnsynsetkey", "mpcat40",
    "mpcat40index",
)
LABEL_TABLE_NAME = "scannetv2-labels.combined.tsv"


# -- label table ------------------------------------------------------------------------------------------
@dataclass
class LabelTable:
    """Raw category -> NYU40 id, from ScanNet's label table.

    ``to_nyu40`` maps an unknown raw category to 0 (unannotated), logs one warning per category and counts every
    such lookup in ``num_unknown``.
    """

    raw_to_nyu40: dict[str, int]
    path: str | None = None
    num_unknown: int = 0
    unknown_categories: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.raw_to_nyu40)

    def __contains__(self, raw: str) -> bool:
        return raw in self.raw_to_nyu40

    def to_nyu40(self, raw: str) -> int:
        """NYU40 id of a raw category; 0 (with a warning, counted) when the table does not list it."""
        nyu40 = self.raw_to_nyu40.get(raw)
        if nyu40 is None:
            self.num_unknown += 1
            if raw not in self.unknown_categories:
                self.unknown_categories.add(raw)
                log.warning("%s: raw category %r is not in the label table; labelled 0 (unannotated)",
                            self.path or "label table", raw)
            return 0
        return nyu40

    def to_scannet20(self, raw: str) -> int:
        """ScanNet-20 index (0..19) of a raw category, -1 when outside the 20 classes or unknown."""
        return int(nyu40_to_scannet20(np.array([self.to_nyu40(raw)]))[0])


def read_label_table(path: str | os.PathLike) -> LabelTable:
    """Read ``scannetv2-labels.combined.tsv`` (tab-separated, header row; needs ``raw_category`` and ``nyu40id``).

    Raises:
        FormatError: empty file, missing columns, or an nyu40id that is not an integer in 0..40 (line named).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("label table not found", path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise FormatError(f"cannot read the label table ({type(err).__name__}: {err})", path) from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise FormatError("label table is empty, expected a tab-separated header row", path)
    header = [cell.strip() for cell in rows[0]]
    missing = [c for c in ("raw_category", "nyu40id") if c not in header]
    if missing:
        raise FormatError(f"label table lacks the column(s) {missing}; header is {header[:8]}", path)
    raw_col, nyu_col = header.index("raw_category"), header.index("nyu40id")
    table: dict[str, int] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(raw_col, nyu_col):
            raise FormatError(f"line {line_no} has {len(row)} columns, expected {len(header)}", path)
        raw, value = row[raw_col].strip(), row[nyu_col].strip()
        try:
            nyu40 = int(value)
        except ValueError:
            raise FormatError(f"line {line_no}: nyu40id {value[:20]!r} is not an integer", path) from None
        if not 0 <= nyu40 <= 40:
            raise FormatError(f"line {line_no}: nyu40id {nyu40} outside 0..40", path)
        table.setdefault(raw, nyu40)
    return LabelTable(table, str(path))


def write_label_table(path: str | os.PathLike, rows: Iterable[Mapping[str, object]]) -> None:
    """Write a label table with ScanNet v2's 17 columns (:data:`LABEL_TABLE_COLUMNS`).

    Args:
        rows: mappings with at least ``raw_category`` and ``nyu40id``; missing columns are filled: ``id`` = row
            number from 1, ``category`` = raw_category, ``count`` = 1, ``nyu40class`` = the NYU40 name, the rest
            empty.
    """
    lines = ["\t".join(LABEL_TABLE_COLUMNS)]
    for i, row in enumerate(rows, start=1):
        unknown = set(row) - set(LABEL_TABLE_COLUMNS)
        if unknown:
            raise ValueError(f"unknown label table columns {sorted(unknown)}")
        if "raw_category" not in row or "nyu40id" not in row:
            raise ValueError(f"row {i}: raw_category and nyu40id are required, got {sorted(row)}")
        nyu40 = int(row["nyu40id"])
        if not 0 <= nyu40 <= 40:
            raise ValueError(f"row {i}: nyu40id must be in 0..40, got {nyu40}")
        filled = {"id": i, "category": row["raw_category"], "count": 1,
                  "nyu40class": NYU40_NAMES[nyu40 - 1] if nyu40 else "unannotated", **row}
        cells = [str(filled.get(c, "")) for c in LABEL_TABLE_COLUMNS]
        if any(("\t" in c or "\n" in c) for c in cells):
            raise ValueError(f"row {i}: values must not contain tabs or newlines: {cells}")
        lines.append("\t".join(cells))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


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


# -- split lists ------------------------------------------------------------------------------------------
def read_split(path: str | os.PathLike) -> list[str]:
    """Read a split list: one scene name a line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("split list not found", path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"cannot read the split list ({type(err).__name__})", path) from None
    names = [line.split("#", 1)[0].strip() for line in lines]
    names = [n for n in names if n]
    bad = [n for n in names if any(c.isspace() for c in n) or "/" in n]
    if bad:
        raise FormatError(f"split list lines must be single scene names, got {bad[0][:40]!r}", path)
    return names


def write_split(path: str | os.PathLike, names: Iterable[str]) -> None:
    """Write a split list, one scene name a line."""
    names = list(names)
    for n in names:
        if not n or any(c.isspace() for c in n) or "/" in n:
            raise ValueError(f"scene names must be non-empty without spaces or '/', got {n!r}")
    Path(path).write_text("".join(n + "\n" for n in names), encoding="utf-8")


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


# -- exported frames --------------------------------------------------------------------------------------
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

    Args:
        scene_dir: the scene folder holding ``color/``, ``depth/``, ``pose/`` and ``intrinsic/``.
        depth_scale: raw depth units per metre (1000).
        name: scene name (default: the folder name).
    """

    def __init__(self, scene_dir: str | os.PathLike, depth_scale: float = 1000.0, name: str | None = None):
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
        self.intrinsic_color = read_intrinsics(self._intrinsic_path("color"))
        self.intrinsic_depth = read_intrinsics(self._intrinsic_path("depth"))
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
        for files, reason in ((self._color, SKIP_MISSING_COLOR), (self._depth, SKIP_MISSING_DEPTH),
                              (self._pose, SKIP_MISSING_POSE)):
            if index not in files:
                return FrameSkip(index, reason)
        return load_frame(index, self._color[index], self._depth[index], self._pose[index], "matrix",
                          self.depth_scale, self.intrinsic_color, self.intrinsic_depth)


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
    def has_mesh(self) -> bool:
        return self.mesh_path.is_file()

    @property
    def has_labels(self) -> bool:
        return self.labels_path.is_file()

    def __repr__(self) -> str:
        return f"ScanNetScene({str(self.root)!r})"

    def frame_source(self, prefer: str = "auto"):
        """The scene's frames as a FrameSource.

        Args:
            prefer: ``"auto"`` (the ``.sens`` when present, else the exported folders), ``"sens"`` or ``"export"``.
        """
        from concerto3d.io.sens import SensFrameSource

        if prefer not in ("auto", "sens", "export"):
            raise InputError(f"frame source must be 'auto', 'sens' or 'export', got {prefer!r}")
        if prefer in ("auto", "sens") and self.has_sens:
            return SensFrameSource(self.sens_path, name=self.name)
        if prefer in ("auto", "export") and self.has_export:
            return ScanNetExportSource(self.root, name=self.name)
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

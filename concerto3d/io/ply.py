"""PLY meshes and point clouds: ScanNet's ``*_vh_clean_2.ply`` / ``.labels.ply`` and user point clouds.

The writers produce ScanNet's layout: binary little-endian, ``x y z`` float, ``red green blue alpha`` uchar per
vertex, and faces as ``vertex_indices`` (a uchar-counted list of int). The labels file has the same vertices and
faces plus a ushort ``label`` per vertex (the NYU40 id). The readers go through plyfile, so ASCII and big-endian
files and other property orders are read too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from concerto3d.errors import FormatError, InputError


@dataclass
class Mesh:
    """A triangle mesh with per-vertex colours.

    Attributes:
        vertices: (N, 3) float32, metres.
        colors: (N, 3) uint8 RGB.
        faces: (F, 3) int32 vertex indices (F may be 0: a point cloud).
    """

    vertices: np.ndarray
    colors: np.ndarray
    faces: np.ndarray

    def __post_init__(self):
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        n = len(self.vertices)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices: expected (N, 3), got shape {self.vertices.shape}")
        colors = np.asarray(self.colors)
        if colors.shape != (n, 3) or colors.dtype != np.uint8:
            raise ValueError(f"colors: expected ({n}, 3) uint8, got {colors.shape} {colors.dtype}")
        self.colors = np.ascontiguousarray(colors)
        faces = np.asarray(self.faces)
        if faces.size == 0:
            faces = np.zeros((0, 3), dtype=np.int32)
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f"faces: expected (F, 3) integers, got shape {faces.shape} dtype {faces.dtype}")
        if faces.size and (faces.min() < 0 or faces.max() >= n):
            raise ValueError(f"faces: indices must be in 0..{n - 1}, got {faces.min()}..{faces.max()}")
        self.faces = np.ascontiguousarray(faces, dtype=np.int32)

    def __repr__(self) -> str:
        return f"Mesh(vertices={len(self.vertices)}, faces={len(self.faces)})"


# -- writing ------------------------------------------------------------------------------------------------
def _write_ply(path: str | os.PathLike, mesh: Mesh, labels: np.ndarray | None) -> None:
    n, f = len(mesh.vertices), len(mesh.faces)
    vertex_fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                     ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    if labels is not None:
        vertex_fields.append(("label", "<u2"))
    vertex = np.empty(n, dtype=vertex_fields)
    vertex["x"], vertex["y"], vertex["z"] = mesh.vertices.T
    vertex["red"], vertex["green"], vertex["blue"] = mesh.colors.T
    vertex["alpha"] = 255
    if labels is not None:
        vertex["label"] = labels
    face = np.empty(f, dtype=[("count", "u1"), ("vertex_indices", "<i4", (3,))])
    face["count"] = 3
    face["vertex_indices"] = mesh.faces
    header = ["ply", "format binary_little_endian 1.0", "comment written by concerto3d",
              f"element vertex {n}", "property float x", "property float y", "property float z",
              "property uchar red", "property uchar green", "property uchar blue", "property uchar alpha"]
    if labels is not None:
        header.append("property ushort label")
    header += [f"element face {f}", "property list uchar int vertex_indices", "end_header"]
    with open(path, "wb") as out:
        out.write(("\n".join(header) + "\n").encode("ascii"))
        out.write(vertex.tobytes())
        out.write(face.tobytes())


def write_mesh_ply(path: str | os.PathLike, mesh: Mesh) -> None:
    """Write a mesh in ScanNet's ``vh_clean_2.ply`` layout (binary little-endian, RGBA uchar colours, faces)."""
    _write_ply(path, mesh, None)


def write_labels_ply(path: str | os.PathLike, mesh: Mesh, nyu40: np.ndarray) -> None:
    """Write ScanNet's ``vh_clean_2.labels.ply``: the mesh plus a ushort ``label`` (NYU40 id) per vertex.

    Args:
        mesh: the mesh (its colours are written too, as ScanNet does).
        nyu40: (N,) integer NYU40 ids, 0 = unannotated.
    """
    labels = np.asarray(nyu40)
    if labels.shape != (len(mesh.vertices),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"nyu40: expected ({len(mesh.vertices)},) integers, got {labels.shape} {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise ValueError(f"nyu40: ids must fit a ushort, got {labels.min()}..{labels.max()}")
    _write_ply(path, mesh, labels.astype(np.uint16))


# -- reading ------------------------------------------------------------------------------------------------
_TRIANGLES = {"face": {"vertex_indices": 3, "vertex_index": 3}}

def _read_plydata(path: str | os.PathLike, what: str):
    from plyfile import PlyData, PlyHeaderParseError, PlyElementParseError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", path)
    if path.stat().st_size == 0:
        raise FormatError(f"{what} file is empty", path)
    try:
        try:  # fast path: triangles read as one memory-mapped array, not face by face
            data = PlyData.read(str(path), known_list_len=_TRIANGLES)
        except PlyElementParseError:  # polygons of other sizes (or a damaged file): the general reader decides
            data = PlyData.read(str(path))
    except (PlyHeaderParseError, PlyElementParseError, ValueError, EOFError, OSError, IndexError, KeyError,
            UnicodeDecodeError, TypeError) as err:
        message = " ".join(str(err).split())[:200]
        raise FormatError(f"not a readable PLY file ({type(err).__name__}: {message})", path) from None
    if "vertex" not in data:
        raise FormatError("PLY file has no 'vertex' element", path)
    return data


def _vertex_xyz(vertex, path) -> np.ndarray:
    names = vertex.data.dtype.names
    if not all(k in names for k in "xyz"):
        raise FormatError(f"PLY vertices lack x/y/z, found properties {list(names)}", path)
    xyz = np.stack([np.asarray(vertex[k], dtype=np.float32) for k in "xyz"], axis=1)
    if not np.all(np.isfinite(xyz)):
        raise FormatError(f"PLY has {int((~np.isfinite(xyz)).any(axis=1).sum())} vertices with inf/NaN "
                          f"coordinates", path)
    return xyz


def _vertex_colors(vertex) -> np.ndarray | None:
    names = vertex.data.dtype.names
    for keys in (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue")):
        if all(k in names for k in keys):
            values = np.stack([np.asarray(vertex[k]) for k in keys], axis=1)
            return _colors_to_uint8(values)
    return None


def _colors_to_uint8(values: np.ndarray) -> np.ndarray:
    """Colours stored as integers 0..255 or floats 0..1 -> (N, 3) uint8 (a NaN channel reads as 0)."""
    if values.dtype == np.uint8:  # ScanNet's uchar colours: nothing to convert
        return np.ascontiguousarray(values)
    is_float = np.issubdtype(values.dtype, np.floating)
    values = np.nan_to_num(values.astype(np.float64), nan=0.0)
    if is_float and (values.size == 0 or values.max() <= 1.0):
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _vertex_normals(vertex) -> np.ndarray | None:
    names = vertex.data.dtype.names
    if all(k in names for k in ("nx", "ny", "nz")):
        return np.stack([np.asarray(vertex[k], dtype=np.float32) for k in ("nx", "ny", "nz")], axis=1)
    return None


def _faces(data, num_vertices: int, path) -> np.ndarray:
    if "face" not in data or data["face"].count == 0:
        return np.zeros((0, 3), dtype=np.int32)
    face = data["face"]
    key = next((k for k in ("vertex_indices", "vertex_index") if k in face.data.dtype.names), None)
    if key is None:
        raise FormatError(f"PLY faces lack 'vertex_indices', found {list(face.data.dtype.names)}", path)
    column = face[key]
    try:
        faces = np.asarray(np.stack(column), dtype=np.int64) if column.dtype == object else np.asarray(column)
    except ValueError:  # polygons of different sizes: fan-triangulate
        faces = np.asarray([(p[0], p[i], p[i + 1]) for p in column for i in range(1, len(p) - 1)], dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] < 3:
        raise FormatError(f"PLY faces must have at least 3 vertices, got shape {faces.shape}", path)
    if faces.shape[1] > 3:  # fan-triangulate quads and larger polygons
        faces = np.concatenate([faces[:, [0, i, i + 1]] for i in range(1, faces.shape[1] - 1)])
    # checked in the file's own integer type (a uint32 or int64 index must not wrap), on a contiguous copy: the
    # memory-mapped triangles are 13-byte records, whose unaligned reads make min/max 4x slower than the copy
    faces = np.ascontiguousarray(faces)
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise FormatError(f"PLY face indices {faces.min()}..{faces.max()} outside 0..{num_vertices - 1}", path)
    return faces.astype(np.int32, copy=False)


def read_mesh_ply(path: str | os.PathLike) -> Mesh:
    """Read a PLY mesh (or a point cloud: zero faces). Vertices without colours get grey (128).

    Returns:
        :class:`Mesh`; polygons with more than three corners are fan-triangulated.
    """
    data = _read_plydata(path, "mesh")
    vertex = data["vertex"]
    xyz = _vertex_xyz(vertex, path)
    colors = _vertex_colors(vertex)
    if colors is None:
        colors = np.full((len(xyz), 3), 128, dtype=np.uint8)
    return Mesh(xyz, colors, _faces(data, len(xyz), path))


def read_vertex_labels_ply(path: str | os.PathLike) -> np.ndarray:
    """Read the per-vertex ``label`` of a ScanNet ``.labels.ply``.

    Returns:
        (N,) int64 NYU40 ids, 0 = unannotated.
    """
    data = _read_plydata(path, "labels")
    vertex = data["vertex"]
    if "label" not in vertex.data.dtype.names:
        raise FormatError(f"PLY vertices have no 'label' property, found {list(vertex.data.dtype.names)}", path)
    labels = np.asarray(vertex["label"])
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise FormatError("PLY 'label' values are not integers", path)
    return labels.astype(np.int64)


def read_point_cloud(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read a user's point cloud.

    Formats, by extension:
        ``.ply``: vertices ``x y z``, optional ``red green blue`` (uchar, or float 0..1) and ``nx ny nz``.
        ``.pcd``: through Open3D (imported here).
        ``.xyz``, ``.txt``, ``.pts``: whitespace-separated columns, one point a line: 3 = xyz, 4 = xyz + intensity
        (ignored), 6 = xyz + rgb (0..255 or 0..1), 9 = xyz + rgb + normal. ``.xyzn``: xyz + normal; ``.xyzrgb``:
        xyz + rgb.
    Returns:
        xyz (N, 3) float32, colors (N, 3) uint8 or None, normals (N, 3) float32 or None.
    Raises:
        InputError: missing file or unknown extension. FormatError: unreadable, empty, or inf/NaN coordinates.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError("point cloud file not found", path)
    if suffix == ".ply":
        data = _read_plydata(path, "point cloud")
        vertex = data["vertex"]
        xyz = _vertex_xyz(vertex, path)
        colors, normals = _vertex_colors(vertex), _vertex_normals(vertex)
    elif suffix == ".pcd":
        xyz, colors, normals = _read_pcd(path)
    elif suffix in (".xyz", ".txt", ".pts", ".xyzn", ".xyzrgb"):
        xyz, colors, normals = _read_xyz_text(path, suffix)
    else:
        raise InputError(f"unknown point cloud extension {suffix!r}; expected .ply, .pcd, .xyz, .xyzn, .xyzrgb, "
                         f".txt or .pts", path)
    if len(xyz) == 0:
        raise FormatError("point cloud has no points", path)
    if normals is not None and not np.all(np.isfinite(normals)):
        raise FormatError("point cloud normals contain inf/NaN", path)
    return xyz, colors, normals


def _read_pcd(path: Path):
    try:
        import open3d as o3d
    except ImportError as err:
        raise InputError(f"reading .pcd files needs Open3D (pip install open3d-cpu): {err}", path) from None
    if path.stat().st_size == 0:
        raise FormatError("point cloud file is empty", path)
    cloud = o3d.io.read_point_cloud(str(path), format="pcd")
    xyz = np.asarray(cloud.points, dtype=np.float32)
    if len(xyz) == 0:
        raise FormatError("Open3D read no points from this .pcd file (empty or not a PCD file)", path)
    if not np.all(np.isfinite(xyz)):
        raise FormatError("point cloud has inf/NaN coordinates", path)
    colors = _colors_to_uint8(np.asarray(cloud.colors)) if cloud.has_colors() else None
    normals = np.asarray(cloud.normals, dtype=np.float32) if cloud.has_normals() else None
    return xyz, colors, normals


def _read_xyz_text(path: Path, suffix: str):
    try:
        with open(path, encoding="utf-8") as f:
            rows = [line.replace(",", " ").split() for line in f
                    if line.strip() and not line.lstrip().startswith(("#", "//"))]
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"cannot read point cloud text ({type(err).__name__})", path) from None
    if not rows:
        raise FormatError("point cloud file holds no points", path)
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise FormatError(f"point cloud lines have different numbers of columns {sorted(widths)}", path)
    try:
        table = np.asarray(rows, dtype=np.float64)
    except ValueError:
        raise FormatError("point cloud text holds a non-number", path) from None
    width = table.shape[1]
    layouts = {".xyzn": {6: "n"}, ".xyzrgb": {6: "c"}}.get(suffix, {3: "", 4: "", 6: "c", 9: "cn"})
    if width not in layouts:
        raise FormatError(f"point cloud text has {width} columns; expected one of {sorted(layouts)} "
                          f"for {suffix}", path)
    layout = layouts[width]
    xyz = table[:, :3]
    if not np.all(np.isfinite(xyz)):
        raise FormatError("point cloud has inf/NaN coordinates", path)
    colors = normals = None
    if layout == "n":
        normals = table[:, 3:6].astype(np.float32)
    elif "c" in layout:
        rgb = table[:, 3:6]
        colors = _colors_to_uint8(rgb if rgb.max() > 1.0 else rgb.astype(np.float32))
        if "n" in layout:
            normals = table[:, 6:9].astype(np.float32)
    return xyz.astype(np.float32), colors, normals

"""Pointcept's preprocessed ScanNet (what Concerto and Utonia train on), read and checked (data/README.md §4).

Pointcept's scripts (``pointcept/datasets/preprocessing/scannet/preprocess_scannet.py`` for the points,
``preprocessing/concerto/scannet/preprocess_scannet.py`` for the frames) write::

    ROOT/<split>/<scene>/coord.npy color.npy normal.npy segment20.npy [segment200.npy instance.npy]
    ROOT/images/<split>/<scene>/color/<f>.png         colour at its full resolution (ScanNet: 1296x968)
                               depth/<f>.png          optional, uint16 millimetres at the depth resolution (unused)
                               pose/<f>.npy           (4, 4) camera-to-world
                               intrinsic/intrinsic.npy (4, 4) colour intrinsics, one per scene
                               correspondence/<f>.npy (M, 3) rows (u, v, point) at the colour resolution
    ROOT/splits/<split>.json                          chunks of 4 frames with paths under "data/scannet" (unused)

``<split>`` is ``train``, ``val`` or ``test``; ``<f>`` is the frame's index in the ``.sens`` sequence (every 75th
by default). This module only reads files; :mod:`concerto3d.data.pointcept_scene` turns a scene into concerto3d's
own layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from concerto3d.errors import FormatError, InputError
from concerto3d.io.geometry_files import check_intrinsics

__all__ = ["POINTCEPT_SPLITS", "PointceptScene", "PointceptPoints", "looks_like_pointcept", "pointcept_scene",
           "find_pointcept_scenes",
           "read_points", "frame_keys", "color_path", "read_intrinsic", "read_pose", "read_correspondence"]

POINTCEPT_SPLITS = ("train", "val", "test")
NUM_CLASSES_20 = 20  # segment20 holds 0..19, -1 = ignore


@dataclass(frozen=True)
class PointceptScene:
    """Where one scene of Pointcept's layout lies.

    Attributes:
        name: the scene folder's name (``scene0000_00``).
        split: ``train``, ``val`` or ``test`` (the folder it sits in).
        points_dir: ``ROOT/<split>/<scene>`` (holds ``coord.npy``, ...).
        images_dir: ``ROOT/images/<split>/<scene>``, or None when the scene has no frames.
    """

    name: str
    split: str
    points_dir: Path
    images_dir: Path | None


@dataclass
class PointceptPoints:
    """A scene's per-point arrays as Pointcept stores them, checked.

    Attributes:
        coord: (N, 3) float32, metres. color: (N, 3) uint8.
        normal: (N, 3) float32, or None without ``normal.npy``.
        segment20: (N,) int64, 0..19 or -1 = ignore, or None without ``segment20.npy`` (the test split).
        instance: (N,) int64, -1 = none, or None without ``instance.npy``.
    """

    coord: np.ndarray
    color: np.ndarray
    normal: np.ndarray | None
    segment20: np.ndarray | None
    instance: np.ndarray | None


def looks_like_pointcept(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds Pointcept's layout: ``images/<split>/`` or a ``<split>/<scene>/coord.npy``."""
    root = Path(root)
    for split in POINTCEPT_SPLITS:
        if (root / "images" / split).is_dir():
            return True
        if (root / split).is_dir() and any((d / "coord.npy").is_file() for d in (root / split).iterdir()):
            return True
    return False


def pointcept_scene(root: str | os.PathLike, split: str, name: str) -> PointceptScene:
    """The folders of scene ``name`` of ``split`` under ``root`` (``images_dir`` None when it has no frames)."""
    root = Path(root)
    images = root / "images" / split / name
    return PointceptScene(name, split, root / split / name, images if images.is_dir() else None)


def find_pointcept_scenes(root: str | os.PathLike) -> list[PointceptScene]:
    """Every scene of Pointcept's layout under ``root``: a folder of ``<split>/`` or of ``images/<split>/``.

    A scene with frames but no point folder is listed too (reading it fails with an error naming the missing
    ``coord.npy``), so that a broken layout is reported, not silently shrunk.

    Returns:
        scenes sorted by name.
    Raises:
        InputError: a scene name sits in two splits.
    """
    root = Path(root)
    found: dict[str, PointceptScene] = {}
    for split in POINTCEPT_SPLITS:
        names = set()
        for base in (root / split, root / "images" / split):
            if base.is_dir():
                names |= {d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")}
        for name in sorted(names):
            if name in found:
                raise InputError(f"scene {name!r} is in two splits ({found[name].split}, {split}); keep one",
                                 root / split / name)
            found[name] = pointcept_scene(root, split, name)
    return [found[n] for n in sorted(found)]


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError("missing file; expected Pointcept's layout (data/README.md section 4)", path) from None
    except (ValueError, OSError, EOFError) as err:
        raise FormatError(f"expected a .npy array, could not read it ({err})", path) from None


def _per_point(path: Path, n: int, columns: int | None) -> np.ndarray:
    """A per-point array: (N,) (or (N, 1)) when ``columns`` is None, else (N, columns)."""
    arr = _load(path)
    if columns is None and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    want = (n,) if columns is None else (n, columns)
    if arr.shape != want:
        raise FormatError(f"expected shape {want} (one row per point of coord.npy), got {arr.shape}", path)
    if arr.dtype.kind not in "iuf":
        raise FormatError(f"expected numbers, got dtype {arr.dtype}", path)
    if not np.all(np.isfinite(arr)):
        raise FormatError("contains NaN or inf", path)
    return arr


def _integers(arr: np.ndarray, path: Path, lo: int, hi: int | None) -> np.ndarray:
    """``arr`` as int64, every value an integer in ``lo..hi`` (hi None: no bound)."""
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise FormatError("expected whole numbers, found fractions", path)
    out = arr.astype(np.int64)
    if out.size and (out.min() < lo or (hi is not None and out.max() > hi)):
        raise FormatError(f"expected values in {lo}..{'' if hi is None else hi}, found {out.min()}..{out.max()}",
                          path)
    return out


def read_points(points_dir: str | os.PathLike) -> PointceptPoints:
    """Read and check ``coord.npy``, ``color.npy`` and the optional ``normal.npy``, ``segment20.npy``,
    ``instance.npy`` of one Pointcept scene folder (``segment200.npy`` is not read).

    Raises:
        InputError: the folder or ``coord.npy`` is missing.
        FormatError: an array has the wrong shape or values (colours outside 0..255, labels outside -1..19).
    """
    points_dir = Path(points_dir)
    if not (points_dir / "coord.npy").is_file():
        raise InputError("missing coord.npy; expected Pointcept's layout ROOT/<split>/<scene>/coord.npy, color.npy, "
                         "... beside ROOT/images/<split>/<scene>/", points_dir / "coord.npy")
    coord = _load(points_dir / "coord.npy")
    if coord.ndim != 2 or coord.shape[1] != 3 or len(coord) == 0 or coord.dtype.kind != "f":
        raise FormatError(f"expected (N, 3) float coordinates with N > 0, got shape {coord.shape} dtype "
                          f"{coord.dtype}", points_dir / "coord.npy")
    if not np.all(np.isfinite(coord)):
        raise FormatError("coordinates contain NaN or inf", points_dir / "coord.npy")
    n = len(coord)
    path = points_dir / "color.npy"
    color = _integers(_per_point(path, n, 3), path, 0, 255).astype(np.uint8)

    def optional(name: str, columns: int | None) -> np.ndarray | None:
        return _per_point(points_dir / name, n, columns) if (points_dir / name).is_file() else None

    normal = optional("normal.npy", 3)
    segment20 = optional("segment20.npy", None)
    if segment20 is not None:
        segment20 = _integers(segment20, points_dir / "segment20.npy", -1, NUM_CLASSES_20 - 1)
    instance = optional("instance.npy", None)
    if instance is not None:
        instance = _integers(instance, points_dir / "instance.npy", -1, 2 ** 31 - 1)
    return PointceptPoints(coord.astype(np.float32), color, None if normal is None else normal.astype(np.float32),
                           segment20, instance)


def frame_keys(images_dir: str | os.PathLike) -> list[int]:
    """The frame indices of a scene's ``color/<f>.png`` files, ascending.

    Raises:
        InputError: no ``color/`` folder. FormatError: a file whose name is not a frame index.
    """
    folder = Path(images_dir) / "color"
    if not folder.is_dir():
        raise InputError("missing color/ folder; expected Pointcept's images/<split>/<scene>/color/<f>.png", folder)
    keys = []
    for path in folder.iterdir():
        if path.name.startswith("."):
            continue
        if path.suffix.lower() not in (".png", ".jpg") or not path.stem.isdigit():
            raise FormatError("expected frame images named <frame index>.png", path)
        keys.append(int(path.stem))
    if len(set(keys)) != len(keys):
        raise FormatError("two images share a frame index", folder)
    return sorted(keys)


def color_path(images_dir: str | os.PathLike, key: int) -> Path:
    """``color/<f>.png`` (``.jpg`` when that is what is there)."""
    png = Path(images_dir) / "color" / f"{key}.png"
    jpg = png.with_suffix(".jpg")
    return jpg if not png.is_file() and jpg.is_file() else png


def read_intrinsic(images_dir: str | os.PathLike) -> np.ndarray:
    """``intrinsic/intrinsic.npy``: the colour camera's (4, 4) (or (3, 3)) matrix, as (3, 3) float64."""
    path = Path(images_dir) / "intrinsic" / "intrinsic.npy"
    return check_intrinsics(_load(path), path)


def read_pose(images_dir: str | os.PathLike, key: int) -> np.ndarray:
    """``pose/<f>.npy``: (4, 4) float64 camera-to-world (non-finite values kept: a failed pose is the caller's
    to skip). Raises InputError when missing, FormatError for another shape."""
    path = Path(images_dir) / "pose" / f"{key}.npy"
    pose = _load(path)
    if pose.shape != (4, 4) or pose.dtype.kind not in "iuf":
        raise FormatError(f"expected a (4, 4) camera-to-world matrix, got shape {pose.shape} dtype {pose.dtype}",
                          path)
    return pose.astype(np.float64)


def read_correspondence(images_dir: str | os.PathLike, key: int, num_points: int,
                        color_size: tuple[int, int]) -> np.ndarray:
    """``correspondence/<f>.npy``: the pixels of frame ``f`` and the point each one sees.

    Pointcept stores float rows (u = column, v = row, point) at the colour image's resolution; a frame it could
    not use (failed pose) holds the single row (-1, -1, -1).

    Args:
        num_points: N of ``coord.npy``. color_size: (H, W) of the frame's colour image.
    Returns:
        (M, 3) int64 rows (u, v, point); (0, 3) for the (-1, -1, -1) marker.
    Raises:
        InputError: the file is missing. FormatError: wrong shape, fractions, or values outside the image or the
            points.
    """
    path = Path(images_dir) / "correspondence" / f"{key}.npy"
    rows = _load(path)
    if rows.ndim != 2 or rows.shape[1] != 3 or rows.dtype.kind not in "iuf":
        raise FormatError(f"expected (M, 3) rows (u, v, point), got shape {rows.shape} dtype {rows.dtype}", path)
    if len(rows) == 1 and np.all(rows == -1):
        return np.zeros((0, 3), np.int64)
    if not np.all(np.isfinite(rows)):
        raise FormatError("contains NaN or inf", path)
    rows = _integers(rows, path, 0, None)
    h, w = color_size
    if len(rows) and (rows[:, 0].max() >= w or rows[:, 1].max() >= h):
        raise FormatError(f"expected pixels of the {w}x{h} colour image, found u up to {rows[:, 0].max()}, v up "
                          f"to {rows[:, 1].max()}", path)
    if len(rows) and rows[:, 2].max() >= num_points:
        raise FormatError(f"expected point indices below {num_points} (the points of coord.npy), found "
                          f"{rows[:, 2].max()}", path)
    return rows

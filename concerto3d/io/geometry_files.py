"""Small text files of numbers: matrices, intrinsics, poses (4x4 matrix or TUM line).

Conventions: poses are camera-to-world, OpenCV camera axes (x right, y down, z forward). Intrinsics are
``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels for an image at its own resolution.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from concerto3d.errors import FormatError, InputError
from concerto3d.io.paths import read_text_file


def _read_numbers(path: str | os.PathLike, what: str) -> np.ndarray:
    """All whitespace- or comma-separated numbers of a text file, in order, as float64 (inf/nan allowed)."""
    path = Path(path)
    text = read_text_file(path, what)
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    tokens = " ".join(lines).replace(",", " ").split()
    if not tokens:
        raise FormatError(f"{what} file is empty, expected numbers", path)
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise FormatError(f"{what} file holds a non-number {bad[:40]!r}", path) from None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_matrix(path: str | os.PathLike, shape: tuple[int, ...] = (4, 4)) -> np.ndarray:
    """Read a matrix written as whitespace-separated numbers (any line layout).

    Args:
        path: text file.
        shape: the expected shape; the file must hold exactly ``prod(shape)`` numbers.
    Returns:
        float64 array of ``shape``. Non-finite values (ScanNet's ``-inf`` for failed poses) are kept.
    """
    values = _read_numbers(path, "matrix")
    expected = int(np.prod(shape))
    if values.size != expected:
        raise FormatError(f"expected a {'x'.join(map(str, shape))} matrix ({expected} numbers), "
                          f"found {values.size} numbers", path)
    return values.reshape(shape)


def check_intrinsics(K: np.ndarray, source: str | os.PathLike | None = None) -> np.ndarray:
    """Validate a pinhole matrix and return it as (3, 3) float64 (a 4x4 gives its top-left 3x3).

    Raises FormatError (naming ``source`` when given) unless fx, fy > 0, the values are finite and the last row is
    (0, 0, 1).
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape == (4, 4):
        K = K[:3, :3]
    if K.shape != (3, 3):
        raise FormatError(f"expected a 3x3 or 4x4 intrinsic matrix, got shape {K.shape}", source)
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], (0, 0, 1)):
        raise FormatError(f"not a pinhole intrinsic matrix (need fx, fy > 0 and last row 0 0 1): "
                          f"{np.array2string(K, separator=',').replace(chr(10), '')}", source)
    return K.copy()


def intrinsics_from_values(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(3, 3) float64 pinhole matrix from its four numbers."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def read_intrinsics(path: str | os.PathLike) -> np.ndarray:
    """Read camera intrinsics: a 3x3 matrix, a 4x4 matrix (ScanNet) or one line ``fx fy cx cy``.

    Returns:
        (3, 3) float64.
    Raises:
        FormatError: any other number of values, or not a pinhole matrix.
    """
    values = _read_numbers(path, "intrinsics")
    if values.size == 4:
        K = intrinsics_from_values(*values)
    elif values.size == 9:
        K = values.reshape(3, 3)
    elif values.size == 16:
        K = values.reshape(4, 4)
    else:
        raise FormatError(f"expected intrinsics as a 3x3 or 4x4 matrix or 'fx fy cx cy', "
                          f"found {values.size} numbers", path)
    return check_intrinsics(K, path)


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics of the same camera after resizing its image by ``sx`` in width and ``sy`` in height.

    ``fx, cx`` scale with ``sx`` (new width / old width), ``fy, cy`` with ``sy`` (data/README.md §1).

    Args:
        K: (3, 3) or (4, 4) intrinsic matrix.
        sx, sy: positive scale factors.
    Returns:
        a scaled copy of the same shape, float64.
    """
    K = np.array(K, dtype=np.float64)
    if K.shape not in ((3, 3), (4, 4)):
        raise ValueError(f"expected a (3, 3) or (4, 4) intrinsic matrix, got shape {K.shape}")
    if not (np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy > 0):
        raise ValueError(f"scale factors must be finite and > 0, got sx={sx}, sy={sy}")
    K[0, :3] *= sx
    K[1, :3] *= sy
    return K


def tum_to_matrix(values) -> np.ndarray:
    """A TUM pose line -> (4, 4) camera-to-world matrix.

    Args:
        values: 7 numbers ``tx ty tz qx qy qz qw`` (Hamilton quaternion, scalar last), or 8 with a leading
            timestamp, which is ignored. The quaternion is normalised.
    Returns:
        (4, 4) float64.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 8:
        v = v[1:]
    if v.size != 7:
        raise ValueError(f"expected a TUM pose 'tx ty tz qx qy qz qw' (7 numbers, or 8 with a timestamp), "
                         f"got {v.size} numbers")
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_rotation(v[3:7])
    pose[:3, 3] = v[:3]
    return pose


def quaternion_to_rotation(q_xyzw) -> np.ndarray:
    """Hamilton unit quaternion ``(qx, qy, qz, qw)`` -> (3, 3) rotation matrix (normalised first)."""
    x, y, z, w = np.asarray(q_xyzw, dtype=np.float64)
    norm = np.sqrt(x * x + y * y + z * z + w * w)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"quaternion must be finite and non-zero, got {(x, y, z, w)}")
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def read_pose(path: str | os.PathLike, fmt: str = "matrix") -> np.ndarray:
    """Read one camera-to-world pose.

    Args:
        path: text file.
        fmt: ``"matrix"`` (16 numbers, a 4x4 matrix) or ``"tum"`` (``tx ty tz qx qy qz qw``, optionally led by a
            timestamp).
    Returns:
        (4, 4) float64; non-finite entries are kept (a failed pose; callers skip such frames).
    """
    if fmt == "matrix":
        return read_matrix(path, (4, 4))
    if fmt == "tum":
        values = _read_numbers(path, "pose")
        if not np.all(np.isfinite(values)):
            return np.full((4, 4), np.nan)
        try:
            return tum_to_matrix(values)
        except ValueError as err:
            raise FormatError(str(err), path) from None
    raise InputError(f"pose format must be 'matrix' or 'tum', got {fmt!r}")


def format_matrix(M: np.ndarray) -> str:
    """Text of a 2D matrix, one row a line, each number in the shortest form that reads back exactly."""
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2:
        raise ValueError(f"expected a 2D matrix, got shape {M.shape}")
    return "".join(" ".join(repr(float(x)) for x in row) + "\n" for row in M)


def write_matrix(path: str | os.PathLike, M: np.ndarray) -> None:
    """Write a 2D matrix as text (ScanNet's pose/intrinsic file layout); :func:`read_matrix` reads it back exactly."""
    Path(path).write_text(format_matrix(M), encoding="utf-8")

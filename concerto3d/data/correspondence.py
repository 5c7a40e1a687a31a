"""Point-pixel correspondences by projection with a depth test (pure numpy).

Conventions, shared by every function here and by ``data/README.md`` §3:

- ``camera_to_world`` is a (4, 4) matrix mapping camera coordinates to world coordinates; camera axes are OpenCV's
  (x right, y down, z forward). A world point ``p`` is at ``inv(camera_to_world) @ p`` in the camera.
- ``K`` is the (3, 3) pinhole matrix of the image the pixels belong to. Pixel centres sit at integer coordinates
  (pixel column ``u`` covers ``[u - 0.5, u + 0.5)``), so a point at continuous image coordinate ``x`` falls in
  column ``floor(x + 0.5)``. This is the convention back-projection ``X = (u - cx) z / fx`` of a pixel index uses.
- Sizes are ``(height, width)``; pixels are ``(u, v)`` = (column, row).
- A point matches pixel ``(u, v)`` when it projects there, lies in front of the camera and passes the depth test
  ``|z_point - z_depth| <= abs_tol + rel_tol * z_depth`` against the depth map at that pixel; a pixel with missing
  depth (0) matches nothing. Every point that passes is kept, so several points may share a pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_ABS_TOL = 0.05  # metres
DEFAULT_REL_TOL = 0.02  # fraction of the measured depth


def _check_matrix(name: str, m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name}: expected finite values, got inf/NaN")
    return m


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size: expected (height, width), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"size: expected positive (height, width), got {size!r}")
    return h, w


def world_to_camera(coord: np.ndarray, camera_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points from world to camera coordinates.

    Args:
        coord: (N, 3) world points (float64 avoids a conversion on every call).
        camera_to_world: (4, 4) pose.
    Returns:
        x, y, z: (N,) float64 each, the camera coordinates.
    """
    coord = np.asarray(coord, dtype=np.float64)
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise ValueError(f"coord: expected shape (N, 3), got {coord.shape}")
    m = np.linalg.inv(_check_matrix("camera_to_world", camera_to_world, (4, 4)))
    # one row of the matrix at a time: much faster than an (N, 3) @ (3, 3) product, whose inner size is 3
    return tuple(_camera_row(m, i, coord[:, 0], coord[:, 1], coord[:, 2]) for i in range(3))


def _pixels(x: np.ndarray, y: np.ndarray, z: np.ndarray, K: np.ndarray,
            size) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel column and row (int64) of camera points with ``z > 0``, and whether they are inside the image."""
    h, w = size
    xn, yn = x / z, y / z
    cols = K[0, 0] * xn + K[0, 1] * yn + K[0, 2]
    rows = K[1, 1] * yn + K[1, 2]
    # floor(x + 0.5) after clipping in float: points near the image plane must not overflow int64
    u = np.floor(np.clip(cols, -1.0, w) + 0.5).astype(np.int64)
    v = np.floor(np.clip(rows, -1.0, h) + 0.5).astype(np.int64)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    return u, v, inside


_MIN_Z = 1e-6  # metres: points closer to the camera plane than this count as behind it


def project_points(coord: np.ndarray, camera_to_world: np.ndarray, K: np.ndarray, size) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """Project world points into an image.

    Args:
        coord: (N, 3) world points, metres.
        camera_to_world: (4, 4) camera pose.
        K: (3, 3) intrinsics of the image.
        size: (height, width) of the image.
    Returns:
        uv: (N, 2) int64 pixel (column, row) each point falls in (meaningless where ``inside`` is False).
        z: (N,) float64 depth of each point along the camera's z axis (negative behind the camera).
        inside: (N,) bool, the point is in front of the camera and its pixel is inside the image.
    """
    K = _check_matrix("K", K, (3, 3))
    size = _check_size(size)
    x, y, z = world_to_camera(coord, camera_to_world)
    in_front = z > _MIN_Z
    u, v, inside = _pixels(x, y, np.where(in_front, z, 1.0), K, size)
    return np.stack([u, v], axis=1), z, inside & in_front


def find_correspondences(coord: np.ndarray, depth: np.ndarray, camera_to_world: np.ndarray, K: np.ndarray,
                         image_size, abs_tol: float = DEFAULT_ABS_TOL,
                         rel_tol: float = DEFAULT_REL_TOL, cells: PointCells | None = None) -> np.ndarray:
    """Points visible in one image: projection plus a depth test.

    Args:
        coord: (N, 3) world points, metres (float64 avoids a conversion on every call).
        depth: (H, W) float depth in metres for the image's pixels (same size and intrinsics as the image; use
            :func:`resample_depth` to bring a depth map from the depth camera), 0 = missing.
        camera_to_world: (4, 4) camera pose.
        K: (3, 3) intrinsics of the image.
        image_size: (H, W) of the image; must equal ``depth.shape``.
        abs_tol, rel_tol: the depth test ``|z_point - z_depth| <= abs_tol + rel_tol * z_depth``.
        cells: :func:`point_cells` of ``coord``, to project only the points of cells the camera may see (the same
            result, less work when a frame sees a small part of the scene); None: project every point.
    Returns:
        (M, 3) int64 rows (u, v, point index), ordered by point index.
    """
    h, w = _check_size(image_size)
    K = _check_matrix("K", K, (3, 3))
    depth = np.asarray(depth)
    if depth.shape != (h, w):
        raise ValueError(f"depth: expected shape {(h, w)} (the image size), got {depth.shape}")
    if abs_tol < 0 or rel_tol < 0:
        raise ValueError(f"tolerances: expected abs_tol >= 0 and rel_tol >= 0, got {abs_tol}, {rel_tol}")
    coord = np.asarray(coord, dtype=np.float64)
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise ValueError(f"coord: expected shape (N, 3), got {coord.shape}")
    m = np.linalg.inv(_check_matrix("camera_to_world", camera_to_world, (4, 4)))
    # The arithmetic of world_to_camera and _pixels, one coordinate at a time on the points still in the running:
    # z for all, y and the row for those in front, x and the column for those on a row of the image. A frame sees a
    # tenth of a room's points, so this does about half the work, with the same numbers for every point kept.
    xyz = coord[:, 0], coord[:, 1], coord[:, 2]  # contiguous columns when the caller passes column-major points
    if cells is not None:
        if len(cells.cell) != len(coord):
            raise ValueError(f"cells: expected the cells of these {len(coord)} points, got {len(cells.cell)}")
        seen = np.flatnonzero(cells_in_view(cells, camera_to_world, K, (h, w))[cells.cell])
        xyz = [c[seen] for c in xyz]
    z = _camera_row(m, 2, *xyz)
    idx = np.flatnonzero(z > _MIN_Z)  # the same test as project_points
    xyz, z = [c[idx] for c in xyz], z[idx]
    if cells is not None:
        idx = seen[idx]
    yn = _camera_row(m, 1, *xyz) / z
    v = np.floor(np.clip(K[1, 1] * yn + K[1, 2], -1.0, h) + 0.5).astype(np.int64)
    on_row = np.flatnonzero((v >= 0) & (v < h))
    idx, xyz, z, yn, v = idx[on_row], [c[on_row] for c in xyz], z[on_row], yn[on_row], v[on_row]
    xn = _camera_row(m, 0, *xyz) / z
    u = np.floor(np.clip(K[0, 0] * xn + K[0, 1] * yn + K[0, 2], -1.0, w) + 0.5).astype(np.int64)
    inside = (u >= 0) & (u < w)
    idx, z, u, v = idx[inside], z[inside], u[inside], v[inside]
    z_depth = depth[v, u].astype(np.float64)
    ok = (z_depth > 0) & (np.abs(z - z_depth) <= abs_tol + rel_tol * z_depth)
    return np.stack([u[ok], v[ok], idx[ok]], axis=1)


def _camera_row(m: np.ndarray, i: int, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """Camera coordinate ``i`` (0 = x, 1 = y, 2 = z) of world points (float64 columns) by the (4, 4) world-to-camera
    ``m`` (one source for :func:`world_to_camera` and :func:`find_correspondences`: the same numbers in both)."""
    return m[i, 0] * px + m[i, 1] * py + m[i, 2] * pz + m[i, 3]


@dataclass(frozen=True)
class PointCells:
    """Points binned into a coarse grid of cubes, for :func:`find_correspondences` to skip the cubes a camera cannot
    see (:func:`cells_in_view`). Made once per scene by :func:`point_cells`.

    Attributes:
        cell: (N,) intp, the cube of each point. centres: (C, 3) float64, the cubes' centres, metres.
        radius: the cubes' circumscribed radius, metres.
    """

    cell: np.ndarray
    centres: np.ndarray
    radius: float


def point_cells(coord: np.ndarray, size: float = 0.5, max_cells: int = 4096) -> PointCells:
    """:class:`PointCells` of (N, 3) points with cubes of ``size`` metres, larger where the grid over the points'
    bounding box would have more than ``max_cells`` cubes."""
    coord = np.asarray(coord, dtype=np.float64)
    if coord.ndim != 2 or coord.shape[1] != 3 or len(coord) == 0:
        raise ValueError(f"coord: expected shape (N, 3) with N > 0, got {coord.shape}")
    if not size > 0 or max_cells < 1:
        raise ValueError(f"expected size > 0 and max_cells >= 1, got {size}, {max_cells}")
    lo = coord.min(axis=0)
    span = coord.max(axis=0) - lo
    if not np.all(np.isfinite(span)):
        raise ValueError("coord: expected finite values, got inf/NaN")
    shape = np.floor(span / size).astype(np.int64) + 1
    while np.prod(shape) > max_cells:
        size *= 1.25
        shape = np.floor(span / size).astype(np.int64) + 1
    cell = np.zeros(len(coord), np.intp)
    for axis in range(3):
        index = np.minimum(np.floor((coord[:, axis] - lo[axis]) / size).astype(np.intp), shape[axis] - 1)
        cell *= shape[axis]
        cell += index
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).reshape(-1, 3)
    return PointCells(cell, lo + (grid + 0.5) * size, float(size * np.sqrt(3) / 2))


def cells_in_view(cells: PointCells, camera_to_world: np.ndarray, K: np.ndarray, image_size) -> np.ndarray:
    """(C,) bool: the cubes that may hold a point inside the image, in front of the camera.

    Conservative: a cube is dropped only when its circumscribed sphere (its radius widened a little) lies wholly
    behind the camera plane or outside one of the four planes through the camera centre that bound the image
    widened by a pixel on every side, so rounding cannot drop a point that projects into the image.
    """
    h, w = _check_size(image_size)
    K = _check_matrix("K", K, (3, 3))
    m = np.linalg.inv(_check_matrix("camera_to_world", camera_to_world, (4, 4)))
    centres = cells.centres @ m[:3, :3].T + m[:3, 3]
    fx, skew, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
    # column u >= -1.5, u <= w + 0.5, row v >= -1.5, v <= h + 0.5, multiplied by z > 0: n . p >= 0 for each n
    planes = np.array([[fx, skew, cx + 1.5], [-fx, -skew, w + 0.5 - cx], [0.0, fy, cy + 1.5], [0.0, -fy, h + 0.5 - cy]])
    reach = cells.radius * (1 + 1e-6) + 1e-9
    inside = np.all(centres @ planes.T + reach * np.linalg.norm(planes, axis=1) >= 0, axis=1)
    return inside & (centres[:, 2] + reach > _MIN_Z)


def scale_intrinsics_to_size(K: np.ndarray, src_size, dst_size) -> np.ndarray:
    """Intrinsics of an image resized from ``src_size`` to ``dst_size`` (both (height, width)).

    With pixel centres at integer coordinates, resizing by ``s = dst / src`` per axis maps ``x`` to
    ``(x + 0.5) * s - 0.5``: ``fx, skew`` scale by ``sx``, ``fy`` by ``sy``, ``cx -> (cx + 0.5) * sx - 0.5`` and
    ``cy -> (cy + 0.5) * sy - 0.5``. This is the mapping image resamplers (PIL, OpenCV) use.

    Returns:
        (3, 3) float64.
    """
    K = _check_matrix("K", K, (3, 3))
    sh, sw = _check_size(src_size)
    dh, dw = _check_size(dst_size)
    sx, sy = dw / sw, dh / sh
    out = K.copy()
    out[0, 0] *= sx
    out[0, 1] *= sx
    out[1, 1] *= sy
    out[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    out[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return out


def depth_lookup(K_depth: np.ndarray, depth_size, K_target: np.ndarray, target_size) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of a target image, the depth-map pixel on the same viewing ray (nearest neighbour).

    Depth and colour cameras are taken to share their centre and axes (as in ScanNet's ``.sens`` and exports), so
    only the intrinsics and sizes differ; the ray through a target pixel hits the depth map at
    ``K_depth @ inv(K_target) @ (u, v, 1)``.

    Args:
        K_depth: (3, 3) intrinsics of the depth map; depth_size: its (Hd, Wd).
        K_target: (3, 3) intrinsics of the target image; target_size: its (H, W).
    Returns:
        flat_index: (H, W) int64 index into the flattened depth map (0 where ``valid`` is False).
        valid: (H, W) bool, the ray hits a depth-map pixel.
    """
    K_depth = _check_matrix("K_depth", K_depth, (3, 3))
    K_target = _check_matrix("K_target", K_target, (3, 3))
    hd, wd = _check_size(depth_size)
    h, w = _check_size(target_size)
    vv, uu = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    pix = np.stack([uu, vv, np.ones_like(uu)], axis=-1) @ (K_depth @ np.linalg.inv(K_target)).T
    ud = np.floor(pix[..., 0] / pix[..., 2] + 0.5)
    vd = np.floor(pix[..., 1] / pix[..., 2] + 0.5)
    valid = (ud >= 0) & (ud < wd) & (vd >= 0) & (vd < hd)
    flat = np.where(valid, vd * wd + ud, 0).astype(np.int64)
    return flat, valid


def resample_depth(depth: np.ndarray, K_depth: np.ndarray, K_target: np.ndarray, target_size,
                   lookup: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A depth map seen through another camera's intrinsics and size (nearest neighbour, no interpolation).

    Args:
        depth: (Hd, Wd) depth in metres, 0 = missing.
        K_depth: (3, 3) intrinsics of ``depth``.
        K_target: (3, 3) intrinsics of the target image, target_size its (H, W).
        lookup: the result of :func:`depth_lookup` for these arguments, to reuse across frames.
    Returns:
        (H, W) float32 depth in metres, 0 where missing or outside the depth map.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected shape (H, W), got {depth.shape}")
    if lookup is None:
        lookup = depth_lookup(K_depth, depth.shape, K_target, target_size)
    flat, valid = lookup
    if flat.shape != tuple(_check_size(target_size)):
        raise ValueError(f"lookup: expected shape {tuple(target_size)}, got {flat.shape}")
    out = depth.reshape(-1)[flat].astype(np.float32)
    out[~valid] = 0.0
    return out


def pixel_to_patch(u, v, width: int, patch_size: int):
    """Index of the ViT patch holding pixel (u, v): ``(v // p) * (width // p) + u // p``.

    Patches are numbered row by row over a grid of ``width // patch_size`` columns (the image encoder's patch
    token ``1 + index`` when a class token comes first).

    Args:
        u, v: pixel column and row, ints or integer arrays of the same shape.
        width: image width in pixels, a multiple of ``patch_size``.
        patch_size: patch side in pixels.
    Returns:
        patch index, same shape as ``u``.
    """
    if patch_size <= 0 or width % patch_size:
        raise ValueError(f"patch_size: expected a positive divisor of the width {width}, got {patch_size}")
    u = np.asarray(u)
    v = np.asarray(v)
    out = (v // patch_size) * (width // patch_size) + u // patch_size
    return out if out.ndim else int(out)

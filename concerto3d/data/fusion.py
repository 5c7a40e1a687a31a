"""Points for a scene: voxel down-sampling of a mesh, or fusion of RGB-D frames (numpy; Open3D for normals).

Two ways a scene gets its points:

- with a mesh: :func:`voxel_representatives` keeps one vertex per voxel (the one nearest the voxel centre, lowest
  index on ties), so coordinates, colours and labels are those of a real vertex; normals are the area-weighted
  face normals of :func:`mesh_vertex_normals`.
- without one: :class:`VoxelFusion` back-projects each frame's depth, samples colour from the colour image through
  the colour intrinsics, and averages position and colour per voxel. This is chosen over Open3D's TSDF
  (``VoxelBlockGrid``) because it is exact for few frames (no truncation distance or weight threshold to tune), runs
  in plain numpy with a fixed summation order (byte-identical outputs on every run), and its memory grows with the
  number of occupied voxels, not with the number of frames. Normals then come from Open3D
  (:func:`estimate_normals`), turned to face the cameras that saw each voxel.
"""

from __future__ import annotations

import numpy as np

from concerto3d.data.correspondence import project_points


def voxel_keys(coord: np.ndarray, voxel: float) -> np.ndarray:
    """Integer voxel coordinates ``floor(coord / voxel)``.

    Args:
        coord: (N, 3) points, metres. voxel: edge length, metres.
    Returns:
        (N, 3) int64.
    """
    if not voxel > 0:
        raise ValueError(f"voxel: expected a positive size in metres, got {voxel}")
    return np.floor(np.asarray(coord, dtype=np.float64) / voxel).astype(np.int64)


def _offset_keys(keys: np.ndarray) -> np.ndarray:
    """int64 voxel keys of one or more axes shifted to 0..2**21 - 1, the 21 bits each axis has in a packed key."""
    off = keys + (1 << 20)
    if off.size and (off.min() < 0 or off.max() >= (1 << 21)):
        raise ValueError("voxel keys out of range: the scene spans more than 2**20 voxels on one axis")
    return off


def _pack_keys(keys: np.ndarray) -> np.ndarray:
    """(N, 3) int64 voxel keys -> (N,) int64 with the same order and equality (21 bits per axis, ±10 km at 1 cm)."""
    off = _offset_keys(keys)
    return (off[:, 0] << 42) | (off[:, 1] << 21) | off[:, 2]


def voxel_representatives(coord: np.ndarray, voxel: float) -> np.ndarray:
    """One point per occupied voxel: the one nearest the voxel centre (lowest index on ties).

    Args:
        coord: (N, 3) points, metres. voxel: edge length, metres.
    Returns:
        (V,) int64 indices into ``coord``, ascending (the input order is kept).
    """
    coord = np.asarray(coord)
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise ValueError(f"coord: expected shape (N, 3), got {coord.shape}")
    n = len(coord)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if not voxel > 0:
        raise ValueError(f"voxel: expected a positive size in metres, got {voxel}")
    # the keys of voxel_keys/_pack_keys and the squared distance to the voxel centre, one contiguous float64
    # column at a time (the same float64 numbers as on (N, 3) arrays, without their temporaries)
    dist = np.zeros(n)
    packed = np.zeros(n, np.int64)
    for x in np.array(coord.T, dtype=np.float64, order="C"):
        key = np.floor(x / voxel).astype(np.int64)
        offset = x - (key + 0.5) * voxel
        dist += offset * offset
        packed <<= 21
        packed |= _offset_keys(key)
    # group by voxel (one sort of the keys; a mesh's vertex order is spatially coherent, which the stable sort
    # exploits), then per voxel the smallest distance and, among its points at that distance, the smallest index:
    # the choice of a lexsort by (voxel, distance, index), 3x cheaper
    order = np.argsort(packed, kind="stable")
    sorted_keys = packed[order]
    start = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    sorted_dist = dist[order]
    nearest = np.minimum.reduceat(sorted_dist, start)
    candidates = np.where(sorted_dist == np.repeat(nearest, np.diff(np.append(start, n))), order, n)
    chosen = np.zeros(n, bool)
    chosen[np.minimum.reduceat(candidates, start)] = True
    return np.flatnonzero(chosen).astype(np.int64, copy=False)


_FACE_BLOCK = 8192  # faces a step of mesh_vertex_normals: its temporaries stay small, in cache and in reused memory


def mesh_vertex_normals(vertices: np.ndarray, faces: np.ndarray, at: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted vertex normals of a triangle mesh.

    Each face adds its normal times its area (the un-normalised cross product of two edges, in float64) to its
    three vertices.

    Args:
        vertices: (N, 3) float. faces: (F, 3) int vertex indices, counter-clockwise seen from the front.
        at: (K,) optional vertex indices: return the normals of these vertices only (the sums still run over every
            face); None: of all N.
    Returns:
        normals: (N, 3) float32 (or (K, 3) with ``at``), unit length where ``valid``, zero elsewhere.
        valid: (N,) bool (or (K,)), the vertex belongs to a face of non-zero area.
    """
    vertices = np.asarray(vertices)
    n = len(vertices)
    rows = n if at is None else len(at)
    faces = np.asarray(faces)
    if faces.size == 0:
        return np.zeros((rows, 3), np.float32), np.zeros(rows, bool)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces: expected shape (F, 3), got {faces.shape}")
    if faces.min() < 0 or faces.max() >= n:
        raise ValueError(f"faces: expected vertex indices in 0..{n - 1}, got {faces.min()}..{faces.max()}")
    # A block of faces at a time, one coordinate at a time: 1-D gathers (in the vertices' dtype) and products (in
    # float64: exact edges of float32 vertices, rounded products), added in place to the per-vertex sums. Whole-mesh
    # (F, 3) temporaries cost more in fresh memory (page faults) than in arithmetic: 2x slower in a new process.
    # np.add.at has its fast 1-D path since numpy 1.25; numpy 1.24 gives the same sums, slower (not measured here).
    coords = np.array(vertices.T, dtype=vertices.dtype if vertices.dtype == np.float32 else np.float64, order="C")
    sums = np.zeros((3, n))
    for begin in range(0, len(faces), _FACE_BLOCK):
        block = faces[begin:begin + _FACE_BLOCK]
        corners = [block[:, i].astype(np.intp) for i in range(3)]
        x, y, z = ([coord[i].astype(np.float64) for i in corners] for coord in coords)  # x, y, z of the 3 corners
        ux, uy, uz = x[1] - x[0], y[1] - y[0], z[1] - z[0]  # edge from corner 0 to corner 1
        vx, vy, vz = x[2] - x[0], y[2] - y[0], z[2] - z[0]  # edge from corner 0 to corner 2
        face_normal = (uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx)  # length = twice the area
        for total, component in zip(sums, face_normal):
            for i in corners:
                np.add.at(total, i, component)
    if at is not None:
        sums = sums[:, at]
    norm = np.sqrt(sums[0] * sums[0] + sums[1] * sums[1] + sums[2] * sums[2])
    valid = norm > 1e-12
    sums /= np.where(valid, norm, 1.0)
    sums[:, ~valid] = 0.0
    return np.ascontiguousarray(sums.T, dtype=np.float32), valid


def estimate_normals(coord: np.ndarray, radius: float, max_nn: int = 30,
                     towards: np.ndarray | None = None) -> np.ndarray:
    """Unit normals of a point cloud from local PCA (Open3D's hybrid radius/k-NN search).

    Args:
        coord: (N, 3) points, metres.
        radius: neighbourhood radius, metres; max_nn: at most this many neighbours.
        towards: (N, 3) optional directions each normal should face (e.g. from the point to the cameras); normals
            with a negative dot product are flipped. Without it the sign is whatever the local PCA gives.
    Returns:
        (N, 3) float32, unit length (points without enough neighbours get (0, 0, 1) or their ``towards`` direction).
    """
    import open3d as o3d

    coord = np.asarray(coord, dtype=np.float64)
    if len(coord) == 0:
        return np.zeros((0, 3), np.float32)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(coord))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=max_nn))
    normals = np.asarray(pcd.normals, dtype=np.float64)
    norm = np.linalg.norm(normals, axis=1)
    bad = ~np.isfinite(norm) | (norm < 1e-6)
    fallback = np.tile([0.0, 0.0, 1.0], (len(coord), 1))
    if towards is not None:
        towards = np.asarray(towards, dtype=np.float64)
        t_norm = np.linalg.norm(towards, axis=1)
        has_dir = t_norm > 1e-9
        fallback[has_dir] = towards[has_dir] / t_norm[has_dir, None]
        flip = np.sum(normals * towards, axis=1) < 0
        normals[flip] *= -1.0
    normals[bad] = fallback[bad]
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return normals.astype(np.float32)


def backproject_depth(depth: np.ndarray, K_depth: np.ndarray, camera_to_world: np.ndarray, stride: int = 1,
                      max_depth: float = np.inf) -> np.ndarray:
    """World points of the valid pixels of a depth map (pixel centres at integer coordinates).

    Args:
        depth: (H, W) metres, 0 = missing. K_depth: (3, 3) its intrinsics. camera_to_world: (4, 4).
        stride: use every ``stride``-th pixel along each axis. max_depth: ignore depth beyond this, metres.
    Returns:
        (P, 3) float64 world points, in row-major pixel order.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected shape (H, W), got {depth.shape}")
    K = np.asarray(K_depth, dtype=np.float64)
    pose = np.asarray(camera_to_world, dtype=np.float64)
    vv, uu = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride]
    z = depth[vv, uu].astype(np.float64)
    ok = (z > 0) & (z <= max_depth) & np.isfinite(z)
    z, u, v = z[ok], uu[ok].astype(np.float64), vv[ok].astype(np.float64)
    y = (v - K[1, 2]) * z / K[1, 1]
    x = ((u - K[0, 2]) * z - K[0, 1] * y) / K[0, 0]
    cam = np.stack([x, y, z], axis=1)
    return cam @ pose[:3, :3].T + pose[:3, 3]


class VoxelFusion:
    """Streaming fusion of RGB-D frames into one point per voxel (mean position, mean colour).

    Memory grows with the number of occupied voxels only: each frame is reduced to its voxels at once and merged
    into the running sums in batches. Frames must be added in a fixed order for byte-identical results.

    Args:
        voxel: voxel edge, metres.
        stride: back-project every ``stride``-th depth pixel along each axis (1 = all).
        max_depth: ignore depth readings beyond this, metres.
        min_count: a voxel needs this many depth readings to become a point.
    """

    _MERGE_ROWS = 1 << 21  # pending per-frame rows before they are merged into the running sums

    def __init__(self, voxel: float, stride: int = 1, max_depth: float = 8.0, min_count: int = 1):
        if not voxel > 0:
            raise ValueError(f"voxel: expected a positive size in metres, got {voxel}")
        if stride < 1 or min_count < 1:
            raise ValueError(f"stride and min_count: expected >= 1, got {stride}, {min_count}")
        self.voxel = float(voxel)
        self.stride = int(stride)
        self.max_depth = float(max_depth)
        self.min_count = int(min_count)
        self.frames = 0
        # running sums, one row per voxel, sorted by packed key: key, count, xyz, rgb, direction towards cameras
        self._keys = np.zeros(0, np.int64)
        self._sums = np.zeros((0, 10), np.float64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_rows = 0

    def add_frame(self, depth: np.ndarray, K_depth: np.ndarray, color: np.ndarray, K_color: np.ndarray,
                  camera_to_world: np.ndarray) -> int:
        """Fuse one frame.

        Args:
            depth: (Hd, Wd) metres, 0 = missing; K_depth: (3, 3) its intrinsics.
            color: (Hc, Wc, 3) uint8; K_color: (3, 3) its intrinsics (same camera centre and axes as the depth).
            camera_to_world: (4, 4) pose.
        Returns:
            number of depth readings fused.
        """
        pts = backproject_depth(depth, K_depth, camera_to_world, self.stride, self.max_depth)
        if len(pts) == 0:
            self.frames += 1
            return 0
        uv, _, inside = project_points(pts, camera_to_world, K_color, color.shape[:2])
        rgb = np.zeros((len(pts), 3), np.float64)
        rgb[inside] = color[uv[inside, 1], uv[inside, 0]]
        pts, rgb = pts[inside], rgb[inside]  # a reading outside the colour image has no colour: drop it
        centre = np.asarray(camera_to_world, dtype=np.float64)[:3, 3]
        to_cam = centre - pts
        to_cam /= np.maximum(np.linalg.norm(to_cam, axis=1, keepdims=True), 1e-12)
        rows = np.concatenate([np.ones((len(pts), 1)), pts, rgb, to_cam], axis=1)
        keys, sums = _reduce(_pack_keys(voxel_keys(pts, self.voxel)), rows)
        self._pending.append((keys, sums))
        self._pending_rows += len(keys)
        if self._pending_rows >= self._MERGE_ROWS:
            self._merge()
        self.frames += 1
        return len(pts)

    def _merge(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self._keys] + [k for k, _ in self._pending])
        sums = np.concatenate([self._sums] + [s for _, s in self._pending])
        self._keys, self._sums = _reduce(keys, sums)
        self._pending, self._pending_rows = [], 0

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fused points, ordered by voxel.

        Returns:
            coord: (V, 3) float32 mean position per voxel.
            color: (V, 3) uint8 mean colour.
            towards_camera: (V, 3) float64 mean unit direction from the points to the cameras that saw them.
        """
        self._merge()
        keep = self._sums[:, 0] >= self.min_count
        sums = self._sums[keep]
        count = sums[:, :1]
        coord = (sums[:, 1:4] / count).astype(np.float32)
        color = np.clip(np.round(sums[:, 4:7] / count), 0, 255).astype(np.uint8)
        return coord, color, sums[:, 7:10] / count


def _reduce(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``rows`` (N, C) over equal ``keys`` (N,); returns sorted unique keys and their sums (stable order)."""
    order = np.argsort(keys, kind="stable")
    keys, rows = keys[order], rows[order]
    start = np.ones(len(keys), dtype=bool)
    start[1:] = keys[1:] != keys[:-1]
    idx = np.flatnonzero(start)
    return keys[idx], np.add.reduceat(rows, idx, axis=0) if len(idx) else rows[:0]

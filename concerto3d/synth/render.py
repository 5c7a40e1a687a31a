"""Rendering box scenes into ScanNet-like colour and depth frames with Open3D's ray caster.

The ray caster sees the scene's visible box faces as two triangles each (a few thousand triangles: fast to build and
to cast). Each hit is mapped back to its part's local frame, where the procedural texture is evaluated at the
pixel's own footprint, so images get full-resolution texture detail that the 2 cm mesh colours lack. Depth gets
Kinect-like faults: noise growing with the square of the distance, nothing beyond the sensor's range, holes at
grazing angles and random dropouts along depth edges.

Cameras follow OpenCV's axes (x right, y down, z forward); poses are camera-to-world; the world has z up.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from concerto3d.synth.boxes import FACE_AXIS, FACE_NORMALS_LOCAL
from concerto3d.synth.materials import evaluate_albedo, lambert, surface_coords
from concerto3d.synth.mesh import face_grid, material_table
from concerto3d.synth.scene import Scene

# ScanNet's typical intrinsics at its native sizes: (fx, fy, cx, cy, width, height)
SCANNET_COLOR = (1169.6, 1167.1, 646.3, 489.9, 1296, 968)
SCANNET_DEPTH = (577.9, 577.9, 319.5, 239.5, 640, 480)
MISS_COLOR = np.array([40, 40, 40], dtype=np.uint8)  # what a ray that hits nothing shows (never, in a closed room)
CHUNK_ROWS = 64      # colour shading works on blocks of this many image rows ...
SHADING_THREADS = 2  # ... this many at a time


def scannet_intrinsics(size: tuple[int, int], kind: str) -> np.ndarray:
    """ScanNet-like pinhole intrinsics scaled to an image size.

    Args:
        size: (width, height) in pixels.
        kind: "color" (fx ~ 1170 at 1296x968) or "depth" (fx ~ 578 at 640x480).
    Returns:
        (3, 3) float64 K; fx, cx scale with the width ratio and fy, cy with the height ratio.
    """
    if kind not in ("color", "depth"):
        raise ValueError(f"kind must be 'color' or 'depth', got {kind!r}")
    fx, fy, cx, cy, w0, h0 = SCANNET_COLOR if kind == "color" else SCANNET_DEPTH
    w, h = size
    sx, sy = w / w0, h / h0
    return np.array([[fx * sx, 0.0, cx * sx], [0.0, fy * sy, cy * sy], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world pose (4, 4) of a camera at ``eye`` looking at ``target`` (OpenCV axes, world z up)."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    x, y = c * x + s * y, -s * x + c * y
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, y, z], axis=1)
    pose[:3, 3] = eye
    return pose


def camera_path(scene: Scene, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth walk around the room at eye height, looking across the room at the furniture.

    The camera moves along an ellipse about a metre inside the walls (so it stays clear of the tall furniture,
    which stands against the walls), at 1.3-1.7 m, and looks at a point that sweeps along the opposite side of the
    room at 0.2-1.0 m height, so yaw and pitch vary smoothly.

    Returns:
        (num_frames, 4, 4) float64 camera-to-world poses.
    """
    lx, ly, height = scene.size
    center = np.array([lx / 2, ly / 2])
    ax, ay = max(lx / 2 - 1.1, 0.3), max(ly / 2 - 1.1, 0.3)
    theta0, direction = rng.uniform(0, 2 * np.pi), rng.choice([-1.0, 1.0])
    span = rng.uniform(1.2, 2.0) * np.pi
    ph = rng.uniform(0, 2 * np.pi, size=5)
    tall = [o.body.grown(0.3) for o in scene.objects if not o.structure and o.body.z_range[1] > 1.0]
    poses = []
    for t in np.linspace(0.0, 1.0, max(num_frames, 1), endpoint=num_frames > 1):
        theta = theta0 + direction * span * t
        radius = 1.0 + 0.12 * np.sin(3 * theta + ph[0])
        eye_z = float(np.clip(1.5 + 0.15 * np.sin(2 * np.pi * 1.3 * t + ph[1]), 1.3, 1.7))
        for shrink in np.linspace(1.0, 0.0, 11):  # pull the camera towards the centre until it is clear
            xy = center + shrink * radius * np.array([ax * np.cos(theta), ay * np.sin(theta)])
            eye = np.array([xy[0], xy[1], eye_z])
            if not any(_inside(box, eye) for box in tall):
                break
        look = theta + np.pi + 1.2 * np.sin(2 * np.pi * 0.8 * t + ph[2])
        reach = np.array([lx / 2 - 0.5, ly / 2 - 0.5])
        target_xy = center + reach * np.array([np.cos(look), np.sin(look)])
        target = np.array([target_xy[0], target_xy[1], 0.6 + 0.4 * np.sin(2 * np.pi * 1.1 * t + ph[3])])
        poses.append(look_at(eye, target, roll=0.04 * np.sin(2 * np.pi * t + ph[4])))
    return np.stack(poses[:num_frames]) if num_frames > 0 else np.zeros((0, 4, 4))


def _inside(box, point: np.ndarray) -> bool:
    local = box.to_local(point[None])[0]
    return bool(np.all(np.abs(local) <= box.size / 2))


@dataclass(frozen=True)
class DepthNoise:
    """Kinect-like depth faults.

    Attributes:
        sigma_quadratic: noise standard deviation = sigma_quadratic * z^2 (metres).
        min_range, max_range: no depth outside this range (metres).
        grazing_cos: no depth where |cos(angle between ray and surface normal)| is below this.
        edge_jump: a depth jump larger than edge_jump * z between neighbours is an edge.
        edge_dropout: probability that a pixel next to an edge is lost.
        random_dropout: probability that any pixel is lost.
    """

    sigma_quadratic: float = 1.5e-3
    min_range: float = 0.4
    max_range: float = 5.0
    grazing_cos: float = 0.12
    edge_jump: float = 0.04
    edge_dropout: float = 0.5
    random_dropout: float = 0.003


class Renderer:
    """Casts rays into one scene; holds Open3D's ray-casting scene and the part tables.

    Args:
        scene: the scene to render.
    """

    def __init__(self, scene: Scene):
        try:
            import open3d as o3d
        except ImportError as err:  # pragma: no cover - open3d is a dependency
            raise ImportError("rendering needs open3d: pip install open3d-cpu (Linux x86-64) or open3d") from err
        self.scene = scene
        parts = [p for _, p in scene.parts()]
        self.table = material_table(scene)
        self.part_center = np.array([p.box.center for p in parts], dtype=np.float32)
        yaw = np.array([p.box.yaw for p in parts])
        self.part_cos, self.part_sin = np.cos(yaw).astype(np.float32), np.sin(yaw).astype(np.float32)
        self.part_object = np.array([i for i, _ in scene.parts()], dtype=np.int32)
        verts, tris, tri_part, tri_axis, tri_normal = [], [], [], [], []
        offset = 0
        for k, part in enumerate(parts):
            rot = part.box.rotation
            for face in range(6):
                if not part.visible[face]:
                    continue
                local, tri = face_grid(part.box.size, face, step=1e9)  # one quad = two triangles
                verts.append(local @ rot.T + part.box.center)
                tris.append(tri + offset)
                offset += len(local)
                tri_part += [k] * len(tri)
                tri_axis += [FACE_AXIS[face]] * len(tri)
                tri_normal += [rot @ FACE_NORMALS_LOCAL[face]] * len(tri)
        self.tri_part = np.array(tri_part, dtype=np.int64)
        self.tri_axis = np.array(tri_axis, dtype=np.int64)
        self.tri_normal = np.array(tri_normal, dtype=np.float32)
        self._rc = o3d.t.geometry.RaycastingScene()
        self._rc.add_triangles(o3d.core.Tensor(np.concatenate(verts).astype(np.float32)),
                               o3d.core.Tensor(np.concatenate(tris).astype(np.uint32)))
        self._o3d = o3d

    def cast(self, camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int]):
        """Cast one ray per pixel centre.

        Args:
            camera_to_world: (4, 4) pose; K: (3, 3) intrinsics; size: (width, height).
        Returns:
            z: (H, W) float32 depth along the optical axis, inf where nothing was hit;
            tri: (H, W) int64 triangle index, -1 where nothing was hit;
            dirs: (H*W, 3) float32 ray directions in world (camera-z component 1).
        """
        w, h = size
        u = (np.arange(w, dtype=np.float32) - K[0, 2]) / K[0, 0]
        v = (np.arange(h, dtype=np.float32) - K[1, 2]) / K[1, 1]
        rot = camera_to_world[:3, :3].astype(np.float32)
        rays = np.empty((h, w, 6), dtype=np.float32)
        rays[..., :3] = camera_to_world[:3, 3]
        dirs = rays[..., 3:]  # dir = R @ (u, v, 1), built in place as a sum of broadcast rows
        dirs[:] = rot[:, 2]
        dirs += rot[:, 0] * u[None, :, None]
        dirs += rot[:, 1] * v[:, None, None]
        hit = self._rc.cast_rays(self._o3d.core.Tensor(rays))
        z = hit["t_hit"].numpy()
        ids = hit["primitive_ids"].numpy().astype(np.int64)
        ids[~np.isfinite(z)] = -1
        return z, ids, dirs.reshape(-1, 3)

    def render_color(self, camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int],
                     return_objects: bool = False):
        """A colour image with full-resolution procedural texture and Lambertian shading.

        Args:
            camera_to_world: (4, 4); K: (3, 3) for this size; size: (width, height).
            return_objects: also return the (H, W) int32 object index per pixel (-1 = nothing hit).
        Returns:
            (H, W, 3) uint8 RGB [, (H, W) int32 object index].
        """
        w, h = size
        z, tri, dirs = self.cast(camera_to_world, K, size)
        z, tri = z.reshape(-1), tri.reshape(-1)
        image = np.empty((h * w, 3), dtype=np.uint8)
        origin = camera_to_world[:3, 3].astype(np.float32)
        metres_per_pixel = np.float32(1.0 / K[0, 0])
        # Shade in blocks of rows, two at a time: numpy releases the GIL, and small blocks stay in the cache.
        block = CHUNK_ROWS * w
        chunks = [slice(k, min(k + block, h * w)) for k in range(0, h * w, block)]
        with ThreadPoolExecutor(max_workers=SHADING_THREADS) as pool:
            list(pool.map(lambda sl: self._shade(image[sl], z[sl], tri[sl], dirs[sl], origin, metres_per_pixel),
                          chunks))
        image = image.reshape(h, w, 3)
        if not return_objects:
            return image
        objects = np.where(tri >= 0, self.part_object[self.tri_part[np.maximum(tri, 0)]], -1).astype(np.int32)
        return image, objects.reshape(h, w)

    def _shade(self, out: np.ndarray, z: np.ndarray, tri: np.ndarray, dirs: np.ndarray, origin: np.ndarray,
               metres_per_pixel: np.float32) -> None:
        """Colour a block of pixels into ``out`` (n, 3) uint8 from their hits (z (n,), tri (n,), dirs (n, 3))."""
        out[:] = MISS_COLOR
        ok = np.flatnonzero(tri >= 0)
        everything = len(ok) == len(tri)  # the usual case in a closed room: skip the gathers
        t = tri if everything else tri[ok]
        zt = z if everything else z[ok]
        part = self.tri_part[t]
        points = (dirs if everything else dirs[ok]) * zt[:, None]
        points += origin
        local = points - self.part_center[part]
        c, s = self.part_cos[part], self.part_sin[part]
        x, y = local[:, 0].copy(), local[:, 1].copy()
        local[:, 0] = c * x + s * y
        local[:, 1] = c * y - s * x
        along, across = surface_coords(local, self.tri_axis[t], self.table.grain_axis[part])
        normal = self.tri_normal[t]
        d = dirs if everything else dirs[ok]
        # a pixel covers z / fx metres across the ray, stretched by 1 / cos on a slanted surface (less moire)
        cos = np.abs(np.einsum("ij,ij->i", normal, d)) / np.sqrt(np.einsum("ij,ij->i", d, d))
        footprint = zt * metres_per_pixel / np.maximum(cos, np.float32(0.2))
        albedo = evaluate_albedo(self.table, part, along, across, footprint)
        rgb = lambert(albedo, normal, points, self.scene.light)
        if everything:
            out[:] = rgb
        else:
            out[ok] = rgb

    def render_depth(self, camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int],
                     rng: np.random.Generator | None, noise: DepthNoise = DepthNoise()) -> np.ndarray:
        """A Kinect-like depth image.

        Args:
            camera_to_world: (4, 4); K: (3, 3) for this size; size: (width, height).
            rng: draws the noise and dropouts; None gives the exact depth (still cut to the sensor's range).
            noise: the fault model.
        Returns:
            (H, W) uint16 millimetres, 0 = missing.
        """
        z, tri, dirs = self.cast(camera_to_world, K, size)
        valid = (tri >= 0) & (z >= noise.min_range) & (z <= noise.max_range)
        if rng is not None:
            normal = self.tri_normal[np.maximum(tri, 0)].reshape(-1, 3)
            cos = np.abs(np.einsum("ij,ij->i", normal, dirs)) / np.linalg.norm(dirs, axis=1)
            valid &= cos.reshape(z.shape) >= noise.grazing_cos
            valid &= ~(_depth_edges(z, noise.edge_jump) & (rng.random(z.shape) < noise.edge_dropout))
            valid &= rng.random(z.shape) >= noise.random_dropout
            z = z + rng.standard_normal(z.shape).astype(np.float32) * noise.sigma_quadratic * np.minimum(z, 10.0) ** 2
        depth = np.where(valid, np.round(np.where(valid, z, 0.0) * 1000.0), 0.0)
        return np.clip(depth, 0, 65535).astype(np.uint16)


def _depth_edges(z: np.ndarray, jump: float) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour whose depth differs by more than ``jump`` times their depth."""
    zf = np.where(np.isfinite(z), z, 1e3)
    edge = np.zeros(z.shape, dtype=bool)
    dx = np.abs(np.diff(zf, axis=1)) > jump * np.minimum(zf[:, 1:], zf[:, :-1])
    dy = np.abs(np.diff(zf, axis=0)) > jump * np.minimum(zf[1:], zf[:-1])
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:] |= dy
    edge[:-1] |= dy
    return edge

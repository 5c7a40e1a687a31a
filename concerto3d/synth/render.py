"""Rendering box scenes into ScanNet-like colour and depth frames with Open3D's ray caster.

The ray caster sees the scene's visible box faces as two triangles each (a few thousand triangles: fast to build and
to cast). Each hit is mapped to texture coordinates in its part's local frame, where the procedural texture is
evaluated at the pixel's own footprint, so images get full-resolution texture detail that the 2 cm mesh colours
lack. Colour frames cast a quarter of the rays and fill in the rest exactly where a face is known
(:meth:`Renderer.cast_sparse`). Depth gets Kinect-like faults: noise growing with the square of the distance, nothing
beyond the sensor's range, holes at grazing angles and random dropouts along depth edges.

Cameras follow OpenCV's axes (x right, y down, z forward); poses are camera-to-world; the world has z up.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from concerto3d.synth.boxes import FACE_AXIS, FACE_NORMALS_LOCAL
from concerto3d.synth.materials import evaluate_albedo, light_intensity, texture_axes, to_rgb8
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
    """A smooth walk around the room at eye height, looking at the furniture across the room and at the near walls.

    The camera moves along an ellipse about a metre inside the walls (so it stays clear of the tall furniture,
    which stands against the walls), at 1.3-1.7 m. Its target blends smoothly between a point sweeping along the
    opposite side of the room at 0.2-1.0 m height (room-scale views of the furniture) and the near wall straight
    ahead at 0.85-1.15 m (close views, 1-1.5 m away, where fine textures are resolved), so yaw and pitch vary
    smoothly and always look level or down.

    Returns:
        (num_frames, 4, 4) float64 camera-to-world poses.
    """
    lx, ly, height = scene.size
    center = np.array([lx / 2, ly / 2])
    ax, ay = max(lx / 2 - 1.1, 0.3), max(ly / 2 - 1.1, 0.3)
    theta0, direction = rng.uniform(0, 2 * np.pi), rng.choice([-1.0, 1.0])
    span = rng.uniform(1.2, 2.0) * np.pi
    ph = rng.uniform(0, 2 * np.pi, size=7)
    tall = [o.body.grown(0.3) for o in scene.objects if not o.structure and o.body.z_range[1] > 1.0]
    poses = []
    for t in np.linspace(0.0, 1.0, max(num_frames, 1), endpoint=num_frames > 1):
        theta = theta0 + direction * span * t
        radius = 1.0 + 0.12 * np.sin(3 * theta + ph[0])
        eye_z = float(np.clip(1.5 + 0.15 * np.sin(2 * np.pi * 1.3 * t + ph[1]), 1.3, 1.7))
        outward = np.array([ax * np.cos(theta), ay * np.sin(theta)])
        for shrink in np.linspace(1.0, 0.0, 11):  # pull the camera towards the centre until it is clear
            xy = center + shrink * radius * outward
            eye = np.array([xy[0], xy[1], eye_z])
            if not any(_inside(box, eye) for box in tall):
                break
        # far target: across the room, on an ellipse half a metre inside the walls
        look = theta + np.pi + 1.2 * np.sin(2 * np.pi * 0.8 * t + ph[2])
        far_xy = center + np.array([lx / 2 - 0.5, ly / 2 - 0.5]) * np.array([np.cos(look), np.sin(look)])
        far = np.array([far_xy[0], far_xy[1], 0.6 + 0.4 * np.sin(2 * np.pi * 1.1 * t + ph[3])])
        # near target: the wall straight ahead when walking outwards, turned a little along the wall
        out = outward / np.linalg.norm(outward)
        turn = 0.5 * np.sin(2 * np.pi * 0.9 * t + ph[5])
        out = np.array([np.cos(turn) * out[0] - np.sin(turn) * out[1], np.sin(turn) * out[0] + np.cos(turn) * out[1]])
        near_xy = xy + out * _distance_to_wall(xy, out, (lx, ly))
        near = np.array([near_xy[0], near_xy[1], 1.0 + 0.15 * np.sin(2 * np.pi * 0.7 * t + ph[6])])
        w = 0.5 + 0.5 * np.sin(2 * np.pi * 1.0 * t + ph[4])
        w = w * w * (3 - 2 * w)  # smoothstep: dwell longer at either end
        poses.append(look_at(eye, (1 - w) * far + w * near, roll=0.04 * np.sin(2 * np.pi * t + ph[4])))
    return np.stack(poses[:num_frames]) if num_frames > 0 else np.zeros((0, 4, 4))


def _distance_to_wall(xy: np.ndarray, direction: np.ndarray, room: tuple[float, float]) -> float:
    """Distance from ``xy`` (inside the room) along the unit ``direction`` to the first wall."""
    steps = []
    for k in range(2):
        if direction[k] > 1e-9:
            steps.append((room[k] - xy[k]) / direction[k])
        elif direction[k] < -1e-9:
            steps.append(-xy[k] / direction[k])
    return float(min(steps))


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
    """Casts rays into one scene; holds Open3D's ray-casting scene and per-face tables.

    Every visible box face is one quad (two triangles) for the ray caster and one row in the face tables: its part,
    object, outward normal, plane offset, and the affine maps from a world point to its texture coordinates.

    Args:
        scene: the scene to render.
    """

    def __init__(self, scene: Scene):
        try:
            import open3d as o3d
        except ImportError as err:  # pragma: no cover - open3d is a dependency
            raise ImportError("rendering needs open3d: pip install open3d-cpu (Linux x86-64) or open3d") from err
        self.scene = scene
        self.table = material_table(scene)
        verts, tris, face_part, face_object, face_normal, face_offset, face_tex = [], [], [], [], [], [], []
        for k, (obj_index, part) in enumerate(scene.parts()):
            box = part.box
            rot = box.rotation
            for face in range(6):
                if not part.visible[face]:
                    continue
                local, tri = face_grid(box.size, face, step=1e9)  # one quad = two triangles
                world = local @ rot.T + box.center
                tris.append(tri + 4 * len(face_part))
                verts.append(world)
                normal = rot @ FACE_NORMALS_LOCAL[face]
                along, across = texture_axes(FACE_AXIS[face], part.grain_axis)
                # local coordinate i of a world point X is rot[:, i] . (X - centre): affine in X
                tex = [*rot[:, along], -rot[:, along] @ box.center, *rot[:, across], -rot[:, across] @ box.center]
                face_part.append(k)
                face_object.append(obj_index)
                face_normal.append(normal)
                face_offset.append(normal @ world[0])
                face_tex.append(tex)
        self.face_part = np.array(face_part, dtype=np.int64)
        self.face_object = np.array(face_object, dtype=np.int32)
        self.face_normal = np.array(face_normal, dtype=np.float32)
        self.face_offset = np.array(face_offset, dtype=np.float32)
        self.face_tex = np.array(face_tex, dtype=np.float32)  # (F, 8): along = [:3] . X + [3], across likewise
        self._rc = o3d.t.geometry.RaycastingScene()
        self._rc.add_triangles(o3d.core.Tensor(np.concatenate(verts).astype(np.float32)),
                               o3d.core.Tensor(np.concatenate(tris).astype(np.uint32)))
        self._o3d = o3d

    @staticmethod
    def _image_coords(K: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Normalised image coordinates of the pixel centres: u (W,) = (column - cx) / fx, v (H,) = (row - cy) / fy."""
        w, h = size
        u = (np.arange(w, dtype=np.float32) - np.float32(K[0, 2])) / np.float32(K[0, 0])
        v = (np.arange(h, dtype=np.float32) - np.float32(K[1, 2])) / np.float32(K[1, 1])
        return u, v

    @staticmethod
    def _directions(camera_to_world: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """World ray directions R (u, v, 1) for image coordinates u (W,), v (H,): (H, W, 3) float32."""
        rot = camera_to_world[:3, :3].astype(np.float32)
        dirs = np.empty((len(v), len(u), 3), dtype=np.float32)  # a sum of broadcast rows, built in place
        dirs[:] = rot[:, 2]
        dirs += rot[:, 0] * u[None, :, None]
        dirs += rot[:, 1] * v[:, None, None]
        return dirs

    def _cast_rays(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays from one origin: (z (n,) float32, inf on a miss; face (n,) int64, -1 on a miss)."""
        rays = np.empty((len(dirs), 6), dtype=np.float32)
        rays[:, :3] = origin
        rays[:, 3:] = dirs
        hit = self._rc.cast_rays(self._o3d.core.Tensor(rays))
        z = hit["t_hit"].numpy()
        face = hit["primitive_ids"].numpy().astype(np.int64) // 2
        face[~np.isfinite(z)] = -1
        return z, face

    def cast(self, camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int]):
        """Cast one ray per pixel centre.

        Args:
            camera_to_world: (4, 4) pose; K: (3, 3) intrinsics; size: (width, height).
        Returns:
            z: (H, W) float32 depth along the optical axis, inf where nothing was hit;
            face: (H, W) int64 face index (row of the face tables), -1 where nothing was hit;
            dirs: (H*W, 3) float32 ray directions in world (camera-z component 1).
        """
        w, h = size
        dirs = self._directions(camera_to_world, *self._image_coords(K, size)).reshape(-1, 3)
        z, face = self._cast_rays(camera_to_world[:3, 3], dirs)
        return z.reshape(h, w), face.reshape(h, w), dirs

    def cast_sparse(self, camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int]):
        """Same (z, face) as :meth:`cast` for about a third of the rays.

        Rays go through every other pixel of every other row. Where the four samples around a pixel hit the same
        face, the pixel's ray hits it too (a face is convex), and the hit is found by intersecting the ray with that
        face's plane; the other pixels (near face borders) get their own ray. Only a feature thinner than two pixels
        that no sample touches can be missed.
        """
        w, h = size
        u, v = self._image_coords(K, size)
        origin = camera_to_world[:3, 3].astype(np.float32)
        rot = camera_to_world[:3, :3].astype(np.float32)
        zs, fs = self._cast_rays(origin, self._directions(camera_to_world, u[::2], v[::2]).reshape(-1, 3))
        hs, ws = (h + 1) // 2, (w + 1) // 2
        zs, fs = zs.reshape(hs, ws), fs.reshape(hs, ws)
        # a cell = the square between four neighbouring samples; a pixel belongs to the cell at (v // 2, u // 2)
        cell = np.full((hs, ws), -1, dtype=np.int64)
        same = (fs[:-1, :-1] == fs[1:, :-1]) & (fs[:-1, :-1] == fs[:-1, 1:]) & (fs[:-1, :-1] == fs[1:, 1:])
        cell[:-1, :-1] = np.where(same, fs[:-1, :-1], -1)
        face = np.repeat(np.repeat(cell, 2, axis=0), 2, axis=1)[:h, :w]
        # ray o + z dir meets the plane n . X = offset at z = (offset - n . o) / (n . dir), n . dir = m . (u, v, 1)
        fz = np.maximum(face, 0)
        m = (self.face_normal @ rot).T
        with np.errstate(divide="ignore", invalid="ignore"):  # misses and rays parallel to a face: cast below
            z = (self.face_offset - self.face_normal @ origin)[fz] / (m[0][fz] * u + m[1][fz] * v[:, None] + m[2][fz])
        face[::2, ::2], z[::2, ::2] = fs, zs  # the samples themselves
        rest = np.nonzero(face < 0)  # near face borders (and misses): one ray each
        dirs = rot[:, 2] + rot[:, 0] * u[rest[1], None] + rot[:, 1] * v[rest[0], None]
        z[rest], face[rest] = self._cast_rays(origin, dirs)
        return z, face

    def _frame_coefficients(self, camera_to_world: np.ndarray) -> np.ndarray:
        """Per-face numbers that make shading a pixel scalar arithmetic on (u, v, z).

        A pixel's ray is dir = R (u, v, 1), its point X = o + z dir. Every quantity the shading needs is affine in
        (u, v, 1) once z is factored out, with coefficients fixed per face and frame:

            n . dir                 = c0 u + c1 v + c2              (c0..2 = R^T n)
            along  = t_a . X + t_a' = c3 + z (c4 u + c5 v + c6)     (c3 = t_a . o + t_a', c4..6 = R^T t_a)
            across                  = c7 + z (c8 u + c9 v + c10)
            n . (light - X)         = c11 - z (n . dir)             (c11 = n . (light - o))
            normal z                = c12

        Returns:
            (F, 13) float32.
        """
        rot = camera_to_world[:3, :3]
        origin = camera_to_world[:3, 3]
        n = self.face_normal.astype(np.float64)
        ta, tc = self.face_tex[:, :3].astype(np.float64), self.face_tex[:, 4:7].astype(np.float64)
        to_light = np.asarray(self.scene.light.position) - origin
        return np.concatenate([
            n @ rot, (ta @ origin + self.face_tex[:, 3])[:, None], ta @ rot,
            (tc @ origin + self.face_tex[:, 7])[:, None], tc @ rot, (n @ to_light)[:, None], n[:, 2:3],
        ], axis=1).astype(np.float32)

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
        z, face = self.cast_sparse(camera_to_world, K, size)
        u, v = self._image_coords(K, size)
        coef = np.ascontiguousarray(self._frame_coefficients(camera_to_world).T)
        to_light = np.asarray(self.scene.light.position) - camera_to_world[:3, 3]
        light_dir = (to_light @ camera_to_world[:3, :3]).astype(np.float32)  # (light - o) . dir = g0 u + g1 v + g2
        frame = (coef, light_dir, np.float32(to_light @ to_light), np.float32(1.0 / K[0, 0]))
        image = np.empty((h, w, 3), dtype=np.uint8)

        def shade_rows(r: slice) -> None:
            n = r.stop - r.start
            self._shade(image[r].reshape(-1, 3), z[r].reshape(-1), face[r].reshape(-1), np.tile(u, n),
                        np.repeat(v[r], w), *frame)

        # Shade in blocks of rows, two at a time: numpy releases the GIL, and small blocks stay in the cache.
        with ThreadPoolExecutor(max_workers=SHADING_THREADS) as pool:
            list(pool.map(shade_rows, [slice(k, min(k + CHUNK_ROWS, h)) for k in range(0, h, CHUNK_ROWS)]))
        if not return_objects:
            return image
        return image, np.where(face >= 0, self.face_object[np.maximum(face, 0)], -1).astype(np.int32)

    def _shade(self, out: np.ndarray, z: np.ndarray, face: np.ndarray, u: np.ndarray, v: np.ndarray,
               coef: np.ndarray, light_dir: np.ndarray, light_dist2: np.float32, metres_per_pixel: np.float32):
        """Colour a block of pixels into ``out`` (n, 3) uint8.

        Args:
            z, face, u, v: (n,) depth, face index, normalised image coordinates of the pixels.
            coef: (13, F), the transpose of :meth:`_frame_coefficients`; light_dir: (3,) R^T (light - o);
            light_dist2: |light - o|^2; metres_per_pixel: 1 / fx.
        """
        out[:] = MISS_COLOR
        ok = np.flatnonzero(face >= 0)
        if len(ok) < len(face):  # never in a closed room; then skip the gathers
            z, face, u, v = z[ok], face[ok], u[ok], v[ok]
        c = coef[:, face]  # (13, n), one contiguous row per coefficient
        n_dot_dir = c[0] * u + c[1] * v + c[2]
        along = c[3] + z * (c[4] * u + c[5] * v + c[6])
        across = c[7] + z * (c[8] * u + c[9] * v + c[10])
        dir2 = u * u + v * v + 1.0  # |dir|^2 (R is a rotation)
        # a pixel covers z / fx metres across the ray, stretched by 1 / cos on a slanted surface (less moire)
        cos_view = np.abs(n_dot_dir) / np.sqrt(dir2)
        footprint = z * metres_per_pixel / np.maximum(cos_view, np.float32(0.2))
        albedo = evaluate_albedo(self.table, self.face_part[face], along, across, footprint)
        # |light - X|^2 with X = o + z dir
        dist2 = light_dist2 - 2.0 * z * (light_dir[0] * u + light_dir[1] * v + light_dir[2]) + z * z * dir2
        rgb = to_rgb8(albedo, light_intensity(c[11] - z * n_dot_dir, dist2, c[12], self.scene.light))
        if len(ok) == len(out):
            out[:] = rgb
        else:
            out[ok] = rgb

    def render_depth(self, camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int],
                     rng: np.random.Generator | None, noise: DepthNoise = DepthNoise()) -> np.ndarray:
        """A Kinect-like depth image (every pixel gets its own ray).

        Args:
            camera_to_world: (4, 4); K: (3, 3) for this size; size: (width, height).
            rng: draws the noise and dropouts; None gives the exact depth (still cut to the sensor's range).
            noise: the fault model.
        Returns:
            (H, W) uint16 millimetres, 0 = missing.
        """
        return self.render_depth_and_objects(camera_to_world, K, size, rng, noise)[0]

    def render_depth_and_objects(self, camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int],
                                 rng: np.random.Generator | None, noise: DepthNoise = DepthNoise()):
        """:meth:`render_depth` and, from the same rays, the (H, W) int64 index into ``scene.objects`` of the
        object each pixel sees (-1 where nothing is hit; depth dropouts keep their object, as a label image of the
        annotated mesh would)."""
        z, face, dirs = self.cast(camera_to_world, K, size)
        objects = np.where(face >= 0, self.face_object[np.maximum(face, 0)], -1).astype(np.int64)
        valid = (face >= 0) & (z >= noise.min_range) & (z <= noise.max_range)
        if rng is not None:
            normal = self.face_normal[np.maximum(face, 0)].reshape(-1, 3)
            cos = np.abs(np.einsum("ij,ij->i", normal, dirs)) / np.linalg.norm(dirs, axis=1)
            valid &= cos.reshape(z.shape) >= noise.grazing_cos
            valid &= ~(_depth_edges(z, noise.edge_jump) & (rng.random(z.shape) < noise.edge_dropout))
            valid &= rng.random(z.shape) >= noise.random_dropout
            z = z + rng.standard_normal(z.shape).astype(np.float32) * noise.sigma_quadratic * np.minimum(z, 10.0) ** 2
        depth = np.where(valid, np.round(np.where(valid, z, 0.0) * 1000.0), 0.0)
        return np.clip(depth, 0, 65535).astype(np.uint16), objects


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

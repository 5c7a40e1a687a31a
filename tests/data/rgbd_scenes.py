"""Tiny hand-made RGB-D scenes for the preprocessing tests: a box room, an optional box occluder, exact ray casting.

The room is the inside of the axis-aligned box ``ROOM_LO..ROOM_HI`` (z up). Colour is a smooth function of the
world position (so that resizing and JPEG barely change it), depth is exact z-depth. Everything is numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROOM_LO = np.array([0.0, 0.0, 0.0])
ROOM_HI = np.array([4.0, 3.0, 2.5])


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) camera-to-world with OpenCV axes (x right, y down, z forward) at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(-up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose


def intrinsics(width: int, height: int, fov_x_deg: float = 70.0) -> np.ndarray:
    """(3, 3) pinhole with square pixels and the principal point at the image centre."""
    f = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def color_of(points: np.ndarray) -> np.ndarray:
    """(N, 3) world points -> (N, 3) uint8 colour, smooth (period 2 m) so that resampling barely changes it."""
    p = np.asarray(points, dtype=np.float64)
    rgb = 128 + 90 * np.stack([np.sin(np.pi * p[:, 0]), np.cos(np.pi * p[:, 1]), np.sin(np.pi * (p[:, 2] + 0.3))], 1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


@dataclass
class Occluder:
    lo: np.ndarray
    hi: np.ndarray


def render(pose: np.ndarray, K: np.ndarray, size, occluder: Occluder | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact ray casting of the room (and occluder) from a camera inside it.

    Returns:
        depth: (H, W) float32 z-depth in metres. color: (H, W, 3) uint8 from :func:`color_of` at the hit point.
    """
    h, w = size
    vv, uu = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    d_cam = np.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1], np.ones_like(uu)], -1).reshape(-1, 3)
    d = d_cam @ pose[:3, :3].T  # world direction whose camera z component is 1: the ray parameter is the z-depth
    o = pose[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_room = np.min(np.where(d > 0, (ROOM_HI - o) / d, np.where(d < 0, (ROOM_LO - o) / d, np.inf)), axis=1)
        t = t_room
        if occluder is not None:
            t1, t2 = (occluder.lo - o) / d, (occluder.hi - o) / d
            near = np.max(np.minimum(t1, t2), axis=1)
            far = np.min(np.maximum(t1, t2), axis=1)
            hit = (near <= far) & (near > 0)
            t = np.where(hit & (near < t_room), near, t_room)
    hit_points = o + d * t[:, None]
    return t.reshape(h, w).astype(np.float32), color_of(hit_points).reshape(h, w, 3)


def grid_box_mesh(lo, hi, step: float, inward: bool) -> tuple[np.ndarray, np.ndarray]:
    """Triangulated surface of an axis-aligned box, each face a grid of about ``step`` metres.

    Returns:
        vertices (V, 3) float32, faces (F, 3) int32 whose normals point into the box (``inward``) or out of it.
    """
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    verts, faces = [], []
    for axis in range(3):
        a1, a2 = [a for a in range(3) if a != axis]
        n1 = max(1, int(round((hi[a1] - lo[a1]) / step)))
        n2 = max(1, int(round((hi[a2] - lo[a2]) / step)))
        s1, s2 = np.linspace(lo[a1], hi[a1], n1 + 1), np.linspace(lo[a2], hi[a2], n2 + 1)
        g1, g2 = np.meshgrid(s1, s2, indexing="ij")
        for side, value in ((0, lo[axis]), (1, hi[axis])):
            p = np.zeros((g1.size, 3))
            p[:, axis], p[:, a1], p[:, a2] = value, g1.ravel(), g2.ravel()
            base = sum(len(v) for v in verts)
            idx = np.arange(g1.size).reshape(n1 + 1, n2 + 1) + base
            q = np.stack([idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()], 1)
            tri = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])
            # orient every triangle numerically rather than reasoning about the handedness of (a1, a2, axis)
            e = p[tri[:, 1] - base] - p[tri[:, 0] - base], p[tri[:, 2] - base] - p[tri[:, 0] - base]
            normal_axis = np.cross(e[0], e[1])[:, axis]
            outward_sign = 1.0 if side == 1 else -1.0
            want = -outward_sign if inward else outward_sign
            flip = np.sign(normal_axis) != want
            tri[flip] = tri[flip][:, [0, 2, 1]]
            verts.append(p)
            faces.append(tri)
    return np.concatenate(verts).astype(np.float32), np.concatenate(faces).astype(np.int32)


class FakeFrameSource:
    """A FrameSource over rendered frames of the room, rendered lazily (one frame in memory at a time).

    Args:
        poses: list of (4, 4) camera-to-world (an entry may be non-finite: an invalid pose).
        color_size, depth_size: (H, W) of the colour and depth images (different cameras, same centre and axes).
        occluder: optional box in the room.
    """

    def __init__(self, poses, color_size=(96, 128), depth_size=(48, 64), occluder: Occluder | None = None,
                 name: str = "scene0000_00"):
        from concerto3d.io.frames import FrameSkip, RGBDFrame

        self._frame, self._skip = RGBDFrame, FrameSkip
        self.name = name
        self.poses = [np.asarray(p, dtype=np.float64) for p in poses]
        self.color_size, self.depth_size = color_size, depth_size
        self.K_color = intrinsics(color_size[1], color_size[0])
        self.K_depth = intrinsics(depth_size[1], depth_size[0], fov_x_deg=66.0)  # a narrower depth camera
        self.occluder = occluder

    def __len__(self) -> int:
        return len(self.poses)

    def iter_frames(self, step: int = 1):
        for i in range(0, len(self.poses), step):
            pose = self.poses[i]
            if not np.all(np.isfinite(pose)):
                yield self._skip(i, "invalid pose")
                continue
            _, color = render(pose, self.K_color, self.color_size, self.occluder)
            depth, _ = render(pose, self.K_depth, self.depth_size, self.occluder)
            yield self._frame(i, color, depth, pose, self.K_color.copy(), self.K_depth.copy())


def room_poses(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` cameras inside the room looking at various walls."""
    rng = np.random.default_rng(seed)
    poses = []
    for i in range(n):
        eye = np.array([1.2 + 1.6 * rng.random(), 0.9 + 1.2 * rng.random(), 1.0 + 0.6 * rng.random()])
        angle = 2 * np.pi * i / max(n, 1) + 0.3 * rng.random()
        target = eye + np.array([np.cos(angle), np.sin(angle), -0.25 + 0.2 * rng.random()])
        poses.append(look_at(eye, target))
    return poses


# -- on-disk inputs ------------------------------------------------------------------------------------------
OCCLUDER = Occluder(np.array([1.7, 1.8, 0.0]), np.array([2.3, 2.2, 0.8]))  # a box standing on the floor


def room_mesh(step: float = 0.1, occluder: Occluder | None = OCCLUDER):
    """The room (and occluder) as one mesh with labels.

    Returns:
        vertices (V, 3) f32, colors (V, 3) u8, faces (F, 3) i32, nyu40 (V,) int (wall 1, floor 2, ceiling 22,
        occluder 5 = chair), segment (V,) int (0 room, 1 occluder).
    """
    v, f = grid_box_mesh(ROOM_LO, ROOM_HI, step, inward=True)
    nyu40 = np.where(v[:, 2] <= 1e-6, 2, np.where(v[:, 2] >= ROOM_HI[2] - 1e-6, 22, 1))
    segment = np.zeros(len(v), int)
    if occluder is not None:
        ov, of = grid_box_mesh(occluder.lo, occluder.hi, step / 2, inward=False)
        f = np.concatenate([f, of + len(v)])
        v = np.concatenate([v, ov])
        nyu40 = np.concatenate([nyu40, np.full(len(ov), 5)])
        segment = np.concatenate([segment, np.ones(len(ov), int)])
    return v, color_of(v), f.astype(np.int32), nyu40, segment


def write_scannet_scene(root, name: str, poses, color_size=(96, 128), depth_size=(48, 64),
                        occluder: Occluder | None = OCCLUDER, mesh: bool = True):
    """A ScanNet-layout scene ``root/scans/<name>/``: ``.sens`` (JPEG colour, mm depth), mesh, labels, instances.

    Returns:
        the scene folder.
    """
    from pathlib import Path

    from concerto3d.io import ply, scannet
    from concerto3d.io.sens import SensWriter

    src = FakeFrameSource(poses, color_size, depth_size, occluder, name)
    folder = Path(root) / "scans" / name
    folder.mkdir(parents=True, exist_ok=True)
    header = dict(intrinsic_color=src.K_color, intrinsic_depth=src.K_depth, color_width=color_size[1],
                  color_height=color_size[0], depth_width=depth_size[1], depth_height=depth_size[0])
    with SensWriter(folder / f"{name}.sens", header) as writer:
        for i, pose in enumerate(src.poses):
            if not np.all(np.isfinite(pose)):
                writer.add_frame(pose, np.zeros((*color_size, 3), np.uint8), np.zeros(depth_size, np.uint16))
                continue
            _, color = render(pose, src.K_color, color_size, occluder)
            depth, _ = render(pose, src.K_depth, depth_size, occluder)
            writer.add_frame(pose, color, np.round(depth * 1000).astype(np.uint16))
    if mesh:
        v, c, f, nyu40, segment = room_mesh(occluder=occluder)
        m = ply.Mesh(v, c, f)
        ply.write_mesh_ply(folder / f"{name}_vh_clean_2.ply", m)
        ply.write_labels_ply(folder / f"{name}_vh_clean_2.labels.ply", m, nyu40)
        scannet.write_segs_json(folder / f"{name}_vh_clean_2.0.010000.segs.json", name, segment)
        scannet.write_aggregation_json(folder / f"{name}.aggregation.json", name,
                                       [{"id": 0, "objectId": 7, "segments": [1], "label": "chair"}])
    return folder


def write_7scenes_folder(folder, poses, size=(48, 64), occluder: Occluder | None = None):
    """A generic RGB-D folder in the 7-Scenes layout: PNG colour and depth (mm), 4x4 pose files, intrinsics."""
    from pathlib import Path

    from concerto3d.io.geometry_files import write_matrix
    from concerto3d.io.images import write_color_png, write_depth_png

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    K = intrinsics(size[1], size[0])
    write_matrix(folder / "camera-intrinsics.txt", K)
    for i, pose in enumerate(poses):
        depth, color = render(pose, K, size, occluder)
        write_color_png(folder / f"frame-{i:06d}.color.png", color)
        write_depth_png(folder / f"frame-{i:06d}.depth.png", np.round(depth * 1000).astype(np.uint16))
        write_matrix(folder / f"frame-{i:06d}.pose.txt", pose)
    return folder

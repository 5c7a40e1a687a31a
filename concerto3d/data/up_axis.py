"""Which way is up in a scan, and the rotation that makes it +z.

Everything downstream assumes a z-up world: the rotation augmentation turns about z, the height input is measured
along z, ``visualize`` looks down z. ScanNet's worlds are z-up; a generic RGB-D folder's world is whatever its first
camera was (7-Scenes: about -y). ``preprocess --up auto`` (the default) estimates the up direction of such scans in
two steps:

1. the cameras' mean up vector (a hand-held or robot camera is held roughly upright: the mean of each camera's
   image-up direction, ``-y`` of OpenCV's camera axes, points up once the horizontal parts average out);
2. refined by the surfaces: the normals within 25 degrees of that guess (floor, table tops, ceiling, which gravity
   makes level) are averaged, sign-aligned, into the up direction; then again within 10 and 5 degrees of the new
   one, so that the normals of corners and edges, tilted towards the walls, drop out.

``--up z`` (or ``x``, ``-y``, ...) names the axis instead; a ScanNet scene is kept as it is under ``auto``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["UP_CHOICES", "camera_up", "refine_up", "estimate_up", "rotation_to_z", "axis_vector"]

UP_CHOICES = ("auto", "x", "-x", "y", "-y", "z", "-z")
LEVEL_DEGREES = (25.0, 10.0, 5.0)  # normals within these angles of the running estimate count as level surfaces


def axis_vector(name: str) -> np.ndarray:
    """The unit vector of an axis name: ``x``, ``-x``, ``y``, ``-y``, ``z``, ``-z``."""
    if name not in UP_CHOICES[1:]:
        raise ValueError(f"expected one of {UP_CHOICES[1:]}, got {name!r}")
    vector = np.zeros(3)
    vector["xyz".index(name[-1])] = -1.0 if name.startswith("-") else 1.0
    return vector


def camera_up(camera_to_world: np.ndarray) -> np.ndarray:
    """Unit mean of the cameras' image-up directions in the world: ``-R[:, 1]`` of each (F, 4, 4) OpenCV pose."""
    poses = np.asarray(camera_to_world, dtype=np.float64).reshape(-1, 4, 4)
    if len(poses) == 0:
        raise ValueError("camera_up: no camera poses")
    up = -poses[:, :3, 1].mean(axis=0)
    norm = np.linalg.norm(up)
    if norm < 1e-6:
        raise ValueError("camera_up: the cameras' up directions cancel out (no consistent up)")
    return up / norm


def refine_up(up: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """``up`` refined by the unit ``normals`` (N, 3) within each of :data:`LEVEL_DEGREES` of the running estimate
    (either sign); a step is skipped when fewer than 100 normals are that level."""
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    normals = np.asarray(normals, dtype=np.float64)
    for degrees in LEVEL_DEGREES:
        dots = normals @ up
        level = np.abs(dots) >= np.cos(np.radians(degrees))
        if level.sum() < 100:
            break
        aligned = normals[level] * np.sign(dots[level])[:, None]
        mean = aligned.mean(axis=0)
        up = mean / np.linalg.norm(mean)
    return up


def estimate_up(camera_to_world: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
    """The scan's up direction: :func:`camera_up`, refined by the surface normals when given."""
    up = camera_up(camera_to_world)
    return refine_up(up, normals) if normals is not None and len(normals) else up


def rotation_to_z(up: np.ndarray) -> np.ndarray:
    """The smallest (3, 3) rotation taking the unit vector ``up`` to +z (Rodrigues; a half turn about x for -z)."""
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(up, z)
    sin, cos = np.linalg.norm(axis), float(up @ z)
    if sin < 1e-12:
        return np.eye(3) if cos > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / sin
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sin * skew + (1 - cos) * skew @ skew

"""Oriented boxes: the one primitive every synthetic room is built from.

A box turns only about the world z axis (furniture stands upright), so its footprint is an oriented rectangle and two
boxes intersect exactly when their footprints overlap (separating-axis test on two rectangles) and their height
intervals overlap. Everything here is pure numpy maths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Local face order of a box: the face whose outward normal is +x, -x, +y, -y, +z, -z.
FACE_NORMALS_LOCAL = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
FACE_AXIS = np.array([0, 0, 1, 1, 2, 2])      # local axis the face is normal to
FACE_SIGN = np.array([1, -1, 1, -1, 1, -1])   # +1: the face at +size/2 along that axis


def rotation_z(yaw: float) -> np.ndarray:
    """(3, 3) float64 rotation by ``yaw`` radians about +z (counter-clockwise seen from above)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class OrientedBox:
    """A box turned about z.

    Attributes:
        center: (3,) float64, world metres.
        size: (3,) float64, full extents along the box's local x, y, z axes, metres.
        yaw: rotation of the local axes about world z, radians.
    """

    center: np.ndarray
    size: np.ndarray
    yaw: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "center", np.asarray(self.center, dtype=np.float64).reshape(3))
        object.__setattr__(self, "size", np.asarray(self.size, dtype=np.float64).reshape(3))
        if np.any(self.size < 0):
            raise ValueError(f"box size must be non-negative, got {self.size}")

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) local-to-world rotation."""
        return rotation_z(self.yaw)

    @property
    def z_range(self) -> tuple[float, float]:
        return float(self.center[2] - self.size[2] / 2), float(self.center[2] + self.size[2] / 2)

    def footprint(self) -> np.ndarray:
        """(4, 2) corners of the footprint rectangle in world xy, counter-clockwise."""
        hx, hy = self.size[0] / 2, self.size[1] / 2
        local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
        return local @ self.rotation[:2, :2].T + self.center[:2]

    def corners(self) -> np.ndarray:
        """(8, 3) world corners; index bits (x, y, z) = (i & 1, i >> 1 & 1, i >> 2 & 1) pick the +half side."""
        bits = np.array([[(i >> k) & 1 for k in range(3)] for i in range(8)], dtype=np.float64)
        local = (bits - 0.5) * self.size
        return local @ self.rotation.T + self.center

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> the box's local frame (N, 3), origin at the box centre."""
        return (np.asarray(points) - self.center) @ self.rotation

    def moved(self, offset: np.ndarray, yaw: float = 0.0) -> "OrientedBox":
        """This box (given in a parent frame) placed by the parent's ``yaw`` and world ``offset`` (3,)."""
        rot = rotation_z(yaw)
        return OrientedBox(rot @ self.center + np.asarray(offset, dtype=np.float64), self.size, self.yaw + yaw)

    def grown(self, margin: float) -> "OrientedBox":
        """The box grown by ``margin`` metres on every side (negative shrinks, not below zero)."""
        return OrientedBox(self.center, np.maximum(self.size + 2 * margin, 0.0), self.yaw)


def rectangles_overlap(a: np.ndarray, b: np.ndarray, eps: float = 1e-9) -> bool:
    """Separating-axis test for two convex quadrilaterals.

    Args:
        a, b: (4, 2) corners in order (either winding).
        eps: overlaps thinner than this count as touching, not overlapping.
    Returns:
        True when the interiors overlap by more than ``eps`` along every candidate axis.
    """
    for poly in (a, b):
        edges = np.roll(poly, -1, axis=0) - poly
        axes = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
        axes /= np.linalg.norm(axes, axis=1, keepdims=True)
        pa, pb = a @ axes.T, b @ axes.T  # (4, 4): projections of every corner on every axis
        if np.any((pa.max(0) <= pb.min(0) + eps) | (pb.max(0) <= pa.min(0) + eps)):
            return False
    return True


def boxes_overlap(a: OrientedBox, b: OrientedBox, eps: float = 1e-6) -> bool:
    """True when two z-turned boxes share interior volume (touching faces do not count)."""
    (a0, a1), (b0, b1) = a.z_range, b.z_range
    if a1 <= b0 + eps or b1 <= a0 + eps:
        return False
    reach = np.hypot(*a.size[:2]) / 2 + np.hypot(*b.size[:2]) / 2  # footprints' circumscribed circles
    if np.hypot(*(a.center[:2] - b.center[:2])) >= reach:
        return False
    return rectangles_overlap(a.footprint(), b.footprint(), eps)


def bounding_box(boxes: list[OrientedBox], yaw: float) -> OrientedBox:
    """The smallest box with the given ``yaw`` that holds all ``boxes``."""
    pts = np.concatenate([b.corners() for b in boxes])
    rot = rotation_z(yaw)
    local = pts @ rot
    lo, hi = local.min(0), local.max(0)
    return OrientedBox(rot @ ((lo + hi) / 2), hi - lo, yaw)

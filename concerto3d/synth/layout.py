"""Placing furniture in a room: free-space checks and the candidate poses tried by rejection sampling.

An object is placed at the first candidate pose where its bounding box lies inside the room and overlaps neither the
body nor the keep-out zone (the space in front of a door, a window, a cabinet) of anything placed before.
"""

from __future__ import annotations

import numpy as np

from concerto3d.synth.boxes import OrientedBox, boxes_overlap, bounding_box
from concerto3d.synth.furniture import Group, build_chair
from concerto3d.synth.materials import Material
from concerto3d.synth.scene import Part, SceneObject


class Layout:
    """The placed objects and the free-space checks."""

    def __init__(self, size: tuple[float, float, float]):
        self.size = size
        self.bodies: list[OrientedBox] = []
        self.keepouts: list[tuple[OrientedBox, int]] = []  # (zone, owner index into bodies)
        self.objects: list[SceneObject] = []

    def wall_frame(self, wall: int) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(start xy, direction xy, length, yaw) of wall ``wall``: along-wall coordinate s runs from its start."""
        lx, ly, _ = self.size
        start = [(0, 0), (lx, 0), (lx, ly), (0, ly)][wall]
        yaw = wall * np.pi / 2
        return np.array(start, float), np.array([np.cos(yaw), np.sin(yaw)]), (lx, ly)[wall % 2], yaw

    def inside(self, box: OrientedBox, eps: float = 1e-6) -> bool:
        c = box.corners()
        return bool(np.all(c >= -eps) and np.all(c <= np.asarray(self.size) + eps))

    def fits(self, bodies: list[OrientedBox], keepouts: list[OrientedBox], ignore_keepout_of: set[int]) -> bool:
        for b in bodies:
            if not self.inside(b):
                return False
            if any(boxes_overlap(b, other) for other in self.bodies):
                return False
            if any(boxes_overlap(b, zone) for zone, owner in self.keepouts if owner not in ignore_keepout_of):
                return False
        return not any(boxes_overlap(k, other) for k in keepouts for other in self.bodies)

    def add(self, groups: list[Group], offset: np.ndarray, yaw: float, keepout: OrientedBox | None) -> list[int]:
        """Place ``groups`` (local frame) at ``offset``/``yaw``; returns the indices of the new bodies."""
        start = len(self.bodies)
        group = self.objects[-1].group + 1 if self.objects else 0
        for category, local_parts in groups:
            parts = [Part(b.moved(offset, yaw), m, g) for b, m, g in local_parts]
            body = bounding_box([p.box for p in parts], yaw)
            self.objects.append(SceneObject(category, parts, body, False, group))
            self.bodies.append(body)
        if keepout is not None:
            self.keepouts.append((keepout.moved(offset, yaw), start))
        return list(range(start, len(self.bodies)))

    def try_place(self, groups: list[Group], poses, keepout: OrientedBox | None = None,
                  ignore_keepout_of: set[int] = frozenset()) -> list[int] | None:
        """Try candidate poses ``(offset (3,), yaw)`` in turn; place at the first that fits."""
        for offset, yaw in poses:
            bodies = [bounding_box([b.moved(offset, yaw) for b, _, _ in parts], yaw) for _, parts in groups]
            zones = [] if keepout is None else [keepout.moved(offset, yaw)]
            if self.fits(bodies, zones, set(ignore_keepout_of)):
                return self.add(groups, offset, yaw, keepout)
        return None


def _local_extent(groups: list[Group]) -> OrientedBox:
    return bounding_box([b for _, parts in groups for b, _, _ in parts], 0.0)


def wall_poses(layout: Layout, rng: np.random.Generator, groups: list[Group], tries: int = 40,
                wall_gap: tuple[float, float] = (0.004, 0.03)):
    """Candidate poses with the object's back (-y) against a random wall, front towards the room."""
    ext = _local_extent(groups)
    lengths = np.array([layout.wall_frame(w)[2] for w in range(4)])
    for _ in range(tries):
        wall = int(rng.choice(4, p=lengths / lengths.sum()))
        start, direction, length, yaw = layout.wall_frame(wall)
        half = ext.size[0] / 2
        if length < 2 * half + 0.02:
            continue
        s = rng.uniform(half + 0.01, length - half - 0.01)
        normal = np.array([-direction[1], direction[0]])
        back = ext.center[1] - ext.size[1] / 2  # local y of the object's back
        gap = rng.uniform(*wall_gap)
        xy = start + s * direction + normal * (gap - back) - direction * ext.center[0]
        yield np.array([xy[0], xy[1], 0.0]), yaw


def free_poses(layout: Layout, rng: np.random.Generator, margin: float, tries: int = 40):
    """Candidate poses anywhere in the room at least ``margin`` from the walls; axis-aligned-ish or any yaw."""
    lx, ly, _ = layout.size
    for _ in range(tries):
        if lx <= 2 * margin or ly <= 2 * margin:
            return
        xy = rng.uniform([margin, margin], [lx - margin, ly - margin])
        yaw = rng.uniform(0, 2 * np.pi) if rng.random() < 0.4 else rng.integers(4) * np.pi / 2 + rng.normal(0, 0.2)
        yield np.array([xy[0], xy[1], 0.0]), float(yaw)


def keepout_front(groups: list[Group], depth: float, z_range: tuple[float, float] | None = None) -> OrientedBox:
    """A keep-out zone of ``depth`` metres in front (+y) of the object's extent, over ``z_range``."""
    ext = _local_extent(groups)
    z0, z1 = z_range if z_range is not None else ext.z_range
    front = ext.center[1] + ext.size[1] / 2
    return OrientedBox((ext.center[0], front + depth / 2, (z0 + z1) / 2), (ext.size[0], depth, z1 - z0))


def place_chairs_around(layout: Layout, rng: np.random.Generator, target: SceneObject, owner: set[int],
                         count: int, materials: tuple[Material, Material], sides: tuple[int, ...]) -> int:
    """Put up to ``count`` chairs facing ``target`` from the given sides (0: -y, 1: +x, 2: +y, 3: -x of its body)."""
    body = target.body
    placed = 0
    for _ in range(count * 4):
        if placed >= count:
            break
        side = int(rng.choice(sides))
        chair = build_chair(rng, *materials)
        half = body.size[0] / 2 if side in (1, 3) else body.size[1] / 2
        along = body.size[1] / 2 if side in (1, 3) else body.size[0] / 2
        dist = half + rng.uniform(0.05, 0.2) + 0.25
        angle = body.yaw + [-np.pi / 2, 0.0, np.pi / 2, np.pi][side]  # direction from the target to the chair
        offset_along = rng.uniform(-0.6, 0.6) * max(along - 0.25, 0.0)
        d = np.array([np.cos(angle), np.sin(angle)])
        t = np.array([-d[1], d[0]])
        xy = body.center[:2] + d * dist + t * offset_along
        yaw = angle + np.pi / 2 + rng.normal(0, 0.15)  # chair's +y (front) points back at the target
        if layout.try_place(chair, [(np.array([xy[0], xy[1], 0.0]), float(yaw))], ignore_keepout_of=owner):
            placed += 1
    return placed

"""Procedural room layouts: a box-shaped room with furniture built from oriented boxes.

:func:`sample_scene` draws a room (floor, four walls, ceiling), flat panels on the walls (doors, windows with
curtains, pictures, wall patches) and furniture (tables with chairs, desks, counters on kitchen cabinets, cabinets,
bookshelves, beds with pillows, sofas, refrigerators). Every object is placed by rejection sampling: its bounding box
must lie inside the room and overlap neither the body nor the keep-out zone (the space in front of a door, a window,
a cabinet) of anything placed before. Sizes, positions, orientations and materials vary per scene.

Frames: the world has z up, the room spans ``[0, Lx] x [0, Ly] x [0, H]``. An object's local frame has its origin at
the centre of its footprint on the floor, x along its width, +y towards its front, z up; an object's ``yaw`` turns
that frame about z. Wall ``w`` (0: y = 0, 1: x = Lx, 2: y = Ly, 3: x = 0) has yaw ``w * pi / 2``, so an object with
the wall's yaw has its front towards the room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from concerto3d.synth.boxes import FACE_AXIS, FACE_NORMALS_LOCAL, FACE_SIGN, OrientedBox, boxes_overlap, bounding_box
from concerto3d.synth.materials import Light, Material, sample_material

log = logging.getLogger(__name__)

# raw category (as in ScanNet's label table) -> NYU40 id
CATEGORY_NYU40: dict[str, int] = {
    "wall": 1, "floor": 2, "cabinet": 3, "kitchen cabinet": 3, "bed": 4, "chair": 5, "sofa": 6, "table": 7,
    "door": 8, "window": 9, "bookshelf": 10, "picture": 11, "counter": 12, "desk": 14, "curtain": 16,
    "pillow": 18, "ceiling": 22, "books": 23, "refrigerator": 24,
}


@dataclass(frozen=True)
class Part:
    """One box of an object.

    Attributes:
        box: the box in world coordinates.
        material: its appearance.
        grain_axis: the box's local axis its texture runs along (0, 1, 2).
        visible: six booleans, one per face in :data:`boxes.FACE_NORMALS_LOCAL` order; hidden faces (resting on the
            floor, against a wall, outside the room) are left out of the mesh and of the rendering.
    """

    box: OrientedBox
    material: Material
    grain_axis: int = 0
    visible: tuple[bool, ...] = (True,) * 6


@dataclass
class SceneObject:
    """One annotated instance: a category, its parts and the boxes used for placement.

    Attributes:
        category: raw category, a key of :data:`CATEGORY_NYU40`.
        parts: its boxes, world coordinates.
        body: the tight bounding box of the parts (world), used for the no-interpenetration checks.
        structure: True for the floor, the four walls and the ceiling.
        group: objects placed together share it (a bed and its pillows, a window and its curtains, a counter and
            its kitchen cabinet): their bodies may nest, their parts never overlap. -1 for the structure.
    """

    category: str
    parts: list[Part]
    body: OrientedBox
    structure: bool = False  # floor, walls, ceiling: the room itself rather than what stands in it
    group: int = -1

    @property
    def nyu40(self) -> int:
        return CATEGORY_NYU40[self.category]


@dataclass
class Scene:
    """A sampled room.

    Attributes:
        size: (Lx, Ly, H) metres.
        objects: structure first (floor, 4 walls, ceiling), then everything placed in the room.
        light: the point light that shades it.
        scene_type: a ScanNet-like scene type for the meta file ("Bedroom / Hotel", ...).
    """

    size: tuple[float, float, float]
    objects: list[SceneObject]
    light: Light
    scene_type: str
    dropped: list[str] = field(default_factory=list)  # categories that found no free spot

    def parts(self) -> list[tuple[int, Part]]:
        """(object index, part) for every part of every object, in a fixed order."""
        return [(i, p) for i, obj in enumerate(self.objects) for p in obj.parts]


# ---------------------------------------------------------------------------------------------------------------
# Builders: each returns [(category, [(local box, material, grain axis)])] in the object's local frame.

LocalPart = tuple[OrientedBox, Material, int]
Group = tuple[str, list[LocalPart]]


def _slab(x: float, y: float, z0: float, sx: float, sy: float, sz: float) -> OrientedBox:
    """A local box given by its footprint centre (x, y), bottom height z0 and size."""
    return OrientedBox((x, y, z0 + sz / 2), (sx, sy, sz))


def build_table(rng: np.random.Generator, wood: Material) -> list[Group]:
    """Four legs under a top, 0.70-0.77 m high, free-standing."""
    w, d = rng.uniform(0.9, 1.8), rng.uniform(0.7, 1.0)
    h, t = rng.uniform(0.70, 0.77), rng.uniform(0.03, 0.05)
    leg, inset = rng.uniform(0.045, 0.07), rng.uniform(0.03, 0.08)
    parts = [(_slab(0, 0, h - t, w, d, t), wood, 0)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((_slab(sx * (w / 2 - inset - leg / 2), sy * (d / 2 - inset - leg / 2), 0, leg, leg, h - t),
                          wood, 2))
    return [("table", parts)]


def build_desk(rng: np.random.Generator, wood: Material) -> list[Group]:
    """A top on a drawer pedestal and a panel leg, with a modesty panel; same height as a table, against a wall."""
    w, d = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.75)
    h, t = rng.uniform(0.72, 0.77), rng.uniform(0.025, 0.04)
    side = rng.choice([-1, 1])
    ped_w, panel_t, front = rng.uniform(0.38, 0.46), rng.uniform(0.02, 0.03), 0.015
    body_d = d - 0.03 - front
    parts = [(_slab(0, 0, h - t, w, d, t), wood, 0)]
    px = side * (w / 2 - ped_w / 2)
    parts.append((_slab(px, -d / 2 + body_d / 2, 0, ped_w, body_d, h - t), wood, 2))  # pedestal carcass
    n_drawers, gap = int(rng.integers(2, 4)), 0.004
    dh = (h - t - 0.05 - gap * n_drawers) / n_drawers
    for k in range(n_drawers):
        z0 = 0.05 + k * (dh + gap)
        parts.append((_slab(px, -d / 2 + body_d + front / 2, z0, ped_w - 2 * gap, front, dh), wood, 0))
    parts.append((_slab(-side * (w / 2 - panel_t / 2), -d / 2 + body_d / 2, 0, panel_t, body_d, h - t), wood, 2))
    inner = w - ped_w - panel_t
    parts.append((_slab(-side * (w / 2 - panel_t - inner / 2), -d / 2 + 0.04, h - t - 0.35, inner, 0.018, 0.35),
                  wood, 0))
    return [("desk", parts)]


def build_counter(rng: np.random.Generator, wood: Material, base: Material) -> list[Group]:
    """A kitchen counter: a top slab 0.88-0.95 m high on a closed kitchen-cabinet base, against a wall."""
    w, d = rng.uniform(1.2, 2.6), rng.uniform(0.58, 0.66)
    h, t, over = rng.uniform(0.88, 0.95), rng.uniform(0.03, 0.045), rng.uniform(0.02, 0.035)
    body_d, kick, front = d - over - 0.015, 0.1, 0.015
    cab = [(_slab(0, -d / 2 + (body_d - 0.06) / 2, 0, w, body_d - 0.06, kick), base, 0),  # recessed toe kick
           (_slab(0, -d / 2 + body_d / 2, kick, w, body_d, h - t - kick), base, 2)]
    n_doors, gap = max(1, int(round(w / 0.55))), 0.004
    dw = (w - gap * (n_doors + 1)) / n_doors
    for k in range(n_doors):
        x = -w / 2 + gap + dw / 2 + k * (dw + gap)
        cab.append((_slab(x, -d / 2 + body_d + front / 2, kick + 0.01, dw, front, h - t - kick - 0.02), base, 2))
    return [("kitchen cabinet", cab), ("counter", [(_slab(0, 0, h - t, w, d, t), wood, 0)])]


def build_cabinet(rng: np.random.Generator, wood: Material, handle: Material) -> list[Group]:
    """A closed box with door fronts and handles; low (0.7-1.0 m) or tall (1.4-2.1 m)."""
    w, d = rng.uniform(0.5, 1.4), rng.uniform(0.4, 0.6)
    h = rng.uniform(0.7, 1.0) if rng.random() < 0.5 else rng.uniform(1.4, 2.1)
    front, gap, plinth = 0.018, 0.004, rng.uniform(0.04, 0.08)
    body_d = d - front - 0.02
    parts = [(_slab(0, -d / 2 + body_d / 2, 0, w, body_d, h), wood, 2)]
    n_doors = 2 if w > 0.75 else 1
    dw = (w - gap * (n_doors + 1)) / n_doors
    for k in range(n_doors):
        x = -w / 2 + gap + dw / 2 + k * (dw + gap)
        y = -d / 2 + body_d + front / 2
        parts.append((_slab(x, y, plinth, dw, front, h - plinth - gap), wood, 2))
        hx = x + (dw / 2 - 0.05) * (1 if (k == 0 and n_doors == 2) else -1)
        parts.append((_slab(hx, y + front / 2 + 0.01, min(h * 0.5, 1.0), 0.02, 0.02, 0.12), handle, 2))
    return [("cabinet", parts)]


def build_bookshelf(rng: np.random.Generator, wood: Material, with_books: bool = False) -> list[Group]:
    """An open frame: sides, top, plinth, back and shelf boards; 0.9-2.1 m high, same wood as cabinets. With
    ``with_books``, rows of books in fabric colours (one instance, NYU40 "books", outside ScanNet-20) on the shelves."""
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.40), rng.uniform(0.9, 2.1)
    t, back, plinth = rng.uniform(0.018, 0.025), 0.01, rng.uniform(0.05, 0.08)
    inner = w - 2 * t
    parts = [(_slab(-w / 2 + t / 2, 0, 0, t, d, h), wood, 2), (_slab(w / 2 - t / 2, 0, 0, t, d, h), wood, 2),
             (_slab(0, 0, h - t, inner, d, t), wood, 0), (_slab(0, 0, 0, inner, d, plinth), wood, 0),
             (_slab(0, -d / 2 + back / 2, plinth, inner, back, h - t - plinth), wood, 2)]
    n_shelves = max(1, int(round((h - plinth) / 0.36)) - 1)
    pitch = (h - t - plinth) / (n_shelves + 1)  # from one board's middle to the next
    for k in range(1, n_shelves + 1):
        parts.append((_slab(0, back / 2, plinth + k * pitch - t / 2, inner, d - back, t), wood, 0))
    groups: list[Group] = [("bookshelf", parts)]
    if with_books:
        rows = []
        for k in range(n_shelves + 1):  # on the plinth and on every board
            floor = plinth + (k * pitch + t / 2 if k else 0.0)
            clear = pitch - t - 0.02
            x = -inner / 2 + rng.uniform(0.0, 0.1)
            while clear > 0.12 and rng.random() < 0.8:
                bw = rng.uniform(0.08, 0.35)
                if x + bw > inner / 2 - 0.005:
                    break
                bd = rng.uniform(0.15, min(0.26, d - back - 0.02))
                rows.append((_slab(x + bw / 2, -d / 2 + back + bd / 2 + 0.005, floor, bw, bd,
                                   rng.uniform(0.6, 1.0) * clear), sample_material("fabric", rng), 0))
                x += bw + rng.uniform(0.0, 0.15)
        if rows:
            groups.append(("books", rows))
    return groups


def build_bed(rng: np.random.Generator, wood: Material, fabric: Material, pillow: Material) -> list[Group]:
    """A wooden base, a mattress, a headboard at the back (-y) and one or two pillows (their own instances)."""
    w = float(rng.choice([0.95, 1.4, 1.6, 1.8])) + rng.uniform(0, 0.05)
    length, base_h, mat_h = rng.uniform(1.95, 2.1), rng.uniform(0.22, 0.32), rng.uniform(0.18, 0.25)
    head_t, head_h = rng.uniform(0.04, 0.07), rng.uniform(0.85, 1.1)
    y0 = -length / 2 + head_t
    body = length - head_t
    bed = [(_slab(0, -length / 2 + head_t / 2, 0, w, head_t, head_h), wood, 0),
           (_slab(0, y0 + body / 2, 0, w, body, base_h), wood, 0),
           (_slab(0, y0 + body / 2, base_h, w - 0.04, body - 0.03, mat_h), fabric, 0)]
    groups: list[Group] = [("bed", bed)]
    n_pillows = 1 if w < 1.2 else 2
    pw = min(0.6, (w - 0.12) / n_pillows - 0.04)
    for k in range(n_pillows):
        x = (k - (n_pillows - 1) / 2) * (pw + 0.05)
        groups.append(("pillow", [(_slab(x, y0 + 0.05 + 0.19, base_h + mat_h, pw, 0.38, 0.12), pillow, 0)]))
    return groups


def build_sofa(rng: np.random.Generator, fabric: Material) -> list[Group]:
    """Seat block, back and two arms, all upholstered."""
    w, d = rng.uniform(1.5, 2.4), rng.uniform(0.8, 0.95)
    seat_h, back_h, back_t = rng.uniform(0.40, 0.46), rng.uniform(0.75, 0.9), rng.uniform(0.15, 0.25)
    arm_w, arm_h = rng.uniform(0.12, 0.2), rng.uniform(0.55, 0.65)
    seat_d = d - back_t
    parts = [(_slab(0, -d / 2 + back_t / 2, 0, w, back_t, back_h), fabric, 0),
             (_slab(0, -d / 2 + back_t + seat_d / 2, 0, w - 2 * arm_w, seat_d, seat_h), fabric, 0)]
    for sx in (-1, 1):
        parts.append((_slab(sx * (w / 2 - arm_w / 2), -d / 2 + back_t + seat_d / 2, 0, arm_w, seat_d, arm_h),
                      fabric, 1))
    return [("sofa", parts)]


def build_chair(rng: np.random.Generator, frame: Material, seat: Material) -> list[Group]:
    """Four legs, a seat and a back panel at the rear (-y); it faces +y."""
    w, d = rng.uniform(0.40, 0.50), rng.uniform(0.40, 0.48)
    seat_h, seat_t, leg = rng.uniform(0.43, 0.48), rng.uniform(0.03, 0.05), rng.uniform(0.03, 0.04)
    back_h, back_t = rng.uniform(0.32, 0.48), rng.uniform(0.02, 0.03)
    parts = [(_slab(0, 0, seat_h - seat_t, w, d, seat_t), seat, 0),
             (_slab(0, -d / 2 + back_t / 2, seat_h, w, back_t, back_h), frame, 0)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((_slab(sx * (w / 2 - leg / 2), sy * (d / 2 - leg / 2), 0, leg, leg, seat_h - seat_t),
                          frame, 2))
    return [("chair", parts)]


def build_refrigerator(rng: np.random.Generator, metal: Material, handle: Material) -> list[Group]:
    """A tall box with freezer and fridge doors and a handle bar."""
    w, d, h = rng.uniform(0.6, 0.8), rng.uniform(0.6, 0.72), rng.uniform(1.6, 1.9)
    front, gap = 0.03, 0.005
    body_d = d - front - 0.03
    split = h * rng.uniform(0.3, 0.4)
    y = -d / 2 + body_d + front / 2
    parts = [(_slab(0, -d / 2 + body_d / 2, 0, w, body_d, h), metal, 2),
             (_slab(0, y, 0.03, w - 0.01, front, h - split - 0.03 - gap), metal, 2),
             (_slab(0, y, h - split, w - 0.01, front, split - 0.005), metal, 2),
             (_slab(w / 2 - 0.06, y + front / 2 + 0.02, h - split - 0.5, 0.025, 0.025, 0.4), handle, 2)]
    return [("refrigerator", parts)]


def _panel_size(rng: np.random.Generator, height: float, tall: bool) -> tuple[float, float, float]:
    """(width, height, bottom) of a flat wall panel. Pictures, windows and wall patches draw from one distribution
    (``tall=False``), doors and tall wall patches from another (``tall=True``): shape alone cannot tell them apart."""
    if tall:
        w, h = rng.uniform(0.75, 1.0), rng.uniform(1.95, 2.1)
        return w, min(h, height - 0.1), 0.0
    w, h = rng.uniform(0.4, 1.4), rng.uniform(0.4, 1.2)
    h = min(h, height - 0.9)
    center = min(rng.uniform(1.15, 1.7), height - 0.15 - h / 2)
    return w, h, center - h / 2


# ---------------------------------------------------------------------------------------------------------------
# Layout

class _Layout:
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


def _wall_poses(layout: _Layout, rng: np.random.Generator, groups: list[Group], tries: int = 40,
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


def _free_poses(layout: _Layout, rng: np.random.Generator, margin: float, tries: int = 40):
    """Candidate poses anywhere in the room at least ``margin`` from the walls; axis-aligned-ish or any yaw."""
    lx, ly, _ = layout.size
    for _ in range(tries):
        if lx <= 2 * margin or ly <= 2 * margin:
            return
        xy = rng.uniform([margin, margin], [lx - margin, ly - margin])
        yaw = rng.uniform(0, 2 * np.pi) if rng.random() < 0.4 else rng.integers(4) * np.pi / 2 + rng.normal(0, 0.2)
        yield np.array([xy[0], xy[1], 0.0]), float(yaw)


def _keepout_front(groups: list[Group], depth: float, z_range: tuple[float, float] | None = None) -> OrientedBox:
    """A keep-out zone of ``depth`` metres in front (+y) of the object's extent, over ``z_range``."""
    ext = _local_extent(groups)
    z0, z1 = z_range if z_range is not None else ext.z_range
    front = ext.center[1] + ext.size[1] / 2
    return OrientedBox((ext.center[0], front + depth / 2, (z0 + z1) / 2), (ext.size[0], depth, z1 - z0))


def _place_chairs_around(layout: _Layout, rng: np.random.Generator, target: SceneObject, owner: set[int],
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


SCENE_TYPES = ("Bedroom / Hotel", "Living room / Lounge", "Kitchen", "Office", "Apartment")


def _structure(size: tuple[float, float, float], rng: np.random.Generator) -> tuple[list[SceneObject], Material]:
    """Floor, four walls and ceiling; only their room-facing faces are visible."""
    lx, ly, h = size
    t = 0.1
    wall_mat = sample_material("wall", rng)
    only = lambda face: tuple(k == face for k in range(6))  # noqa: E731
    objs = [SceneObject("floor", [Part(OrientedBox((lx / 2, ly / 2, -t / 2), (lx, ly, t)),
                                       sample_material("floor", rng), 0, only(4))],
                        OrientedBox((lx / 2, ly / 2, -t / 2), (lx, ly, t)), True)]
    walls = [OrientedBox((lx / 2, -t / 2, h / 2), (lx, t, h)), OrientedBox((lx + t / 2, ly / 2, h / 2), (t, ly, h)),
             OrientedBox((lx / 2, ly + t / 2, h / 2), (lx, t, h)), OrientedBox((-t / 2, ly / 2, h / 2), (t, ly, h))]
    inner_face = [2, 1, 3, 0]  # +y, -x, -y, +x
    for box, face in zip(walls, inner_face):
        objs.append(SceneObject("wall", [Part(box, wall_mat, 0 if face >= 2 else 1, only(face))], box, True))
    ceiling = OrientedBox((lx / 2, ly / 2, h + t / 2), (lx, ly, t))
    objs.append(SceneObject("ceiling", [Part(ceiling, sample_material("ceiling", rng), 0, only(5))], ceiling, True))
    return objs, wall_mat


def _hide_contact_faces(part: Part, size: tuple[float, float, float], tol: float = 1e-4,
                        wall_tol: float = 0.035) -> Part:
    """Hide the faces of a furniture part that rest on the floor or face a wall from closer than ``wall_tol``."""
    lx, ly, _ = size
    box = part.box
    rot = box.rotation
    visible = list(part.visible)
    for f in range(6):
        n = rot @ FACE_NORMALS_LOCAL[f]
        c = box.center + rot[:, FACE_AXIS[f]] * FACE_SIGN[f] * box.size[FACE_AXIS[f]] / 2
        on_floor = n[2] < -0.999 and abs(c[2]) < tol
        on_wall = ((n[1] < -0.999 and c[1] < wall_tol) or (n[0] > 0.999 and c[0] > lx - wall_tol) or
                   (n[1] > 0.999 and c[1] > ly - wall_tol) or (n[0] < -0.999 and c[0] < wall_tol))
        if on_floor or on_wall:
            visible[f] = False
    return Part(box, part.material, part.grain_axis, tuple(visible))


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw one furnished room.

    Args:
        rng: the scene's generator (seed it from (dataset seed, scene index) for reproducible datasets).
    Returns:
        a :class:`Scene` whose furniture bodies do not overlap each other and lie inside the room.
    """
    size = (float(rng.uniform(4.5, 7.0)), float(rng.uniform(4.0, 6.0)), float(rng.uniform(2.5, 3.0)))
    lx, ly, height = size
    structure, wall_mat = _structure(size, rng)
    layout = _Layout(size)
    dropped: list[str] = []

    def wall_panel(category: str, material: Material, tall: bool, depth: float, thickness: float,
                   extra: Callable[[float, float, float, float], list[Group]] | None = None) -> list[int] | None:
        """Place a flat panel on a wall, with ``extra(width, height, bottom, thickness)`` groups beside it."""
        w, h, z0 = _panel_size(rng, height, tall)
        groups: list[Group] = [(category, [(_slab(0, thickness / 2, z0, w, thickness, h), material, 2)])]
        if extra:
            groups += extra(w, h, z0, thickness)
        keepout = _keepout_front(groups, depth, (max(z0 - 0.05, 0.0), z0 + h))
        placed = layout.try_place(groups, _wall_poses(layout, rng, groups, wall_gap=(0.0, 0.0)), keepout)
        if placed is None:
            dropped.append(category)
        return placed

    def curtains(w: float, h: float, z0: float, thickness: float) -> list[Group]:
        mat = sample_material("curtain", rng)
        top = min(z0 + h + rng.uniform(0.08, 0.2), height - 0.03)
        bottom = 0.02 if rng.random() < 0.6 else max(z0 - 0.15, 0.02)
        groups = []
        for sx in (-1, 1):
            cw = rng.uniform(0.25, 0.45)
            x = sx * (w / 2 + cw / 2 - rng.uniform(0.05, 0.12))
            groups.append(("curtain", [(_slab(x, thickness + 0.03, bottom, cw, 0.02, top - bottom), mat, 2)]))
        return groups

    # 1. Flat panels on the walls: doors, windows (most with curtains), pictures, wall patches.
    wall_panel("door", sample_material("door", rng), True, 0.9, rng.uniform(0.02, 0.035))
    for _ in range(int(rng.integers(1, 3))):
        wall_panel("window", sample_material("window", rng), False, 0.35, rng.uniform(0.015, 0.03),
                   curtains if rng.random() < 0.7 else None)
    for _ in range(int(rng.integers(1, 4))):
        wall_panel("picture", sample_material("picture", rng), False, 0.2, rng.uniform(0.015, 0.03))
    for _ in range(int(rng.integers(1, 3))):
        tall = rng.random() < 0.4
        wall_panel("wall", sample_material("wall", rng, avoid=wall_mat.color), tall, 0.2 if not tall else 0.5,
                   rng.uniform(0.015, 0.03))
    if rng.random() < 0.3:
        wall_panel("door", sample_material("door", rng), True, 0.9, rng.uniform(0.02, 0.035))

    # 2. Furniture against the walls, largest first. One wood palette for all case furniture.
    def wood() -> Material:
        return sample_material("wood", rng)

    def against_wall(groups: list[Group], front: float) -> list[int] | None:
        placed = layout.try_place(groups, _wall_poses(layout, rng, groups), _keepout_front(groups, front))
        if placed is None:
            dropped.append(groups[0][0])
        return placed

    scene_type = str(rng.choice(SCENE_TYPES))
    handle = sample_material("appliance", rng)
    if rng.random() < 0.75:
        bed_groups = build_bed(rng, wood(), sample_material("fabric", rng), sample_material("fabric", rng))
        against_wall(bed_groups, 0.5)
    if rng.random() < 0.7:
        against_wall(build_counter(rng, wood(), wood()), 0.7)
    desk = against_wall(build_desk(rng, wood()), 0.7)  # early: table / desk / counter are a shape-only trio
    if rng.random() < 0.6:
        against_wall(build_sofa(rng, sample_material("fabric", rng)), 0.6)
    for _ in range(int(rng.integers(1, 3))):
        against_wall(build_cabinet(rng, wood(), handle), 0.5)
    for _ in range(int(rng.integers(1, 3))):
        against_wall(build_bookshelf(rng, wood(), with_books=rng.random() < 0.7), 0.4)
    if rng.random() < 0.4:
        against_wall(build_refrigerator(rng, sample_material("appliance", rng), handle), 0.6)
    chair_mats = (wood(), sample_material("fabric", rng) if rng.random() < 0.5 else wood())
    if desk is not None:
        _place_chairs_around(layout, rng, layout.objects[desk[0]], set(desk), 1, chair_mats, (2,))

    # 3. Free-standing: a table with chairs in the middle of the room.
    table = layout.try_place(build_table(rng, wood()), _free_poses(layout, rng, 1.0))
    if table is None:
        dropped.append("table")
    else:
        _place_chairs_around(layout, rng, layout.objects[table[0]], set(table), int(rng.integers(2, 5)),
                             chair_mats, (0, 1, 2, 3))

    furniture = [SceneObject(o.category, [_hide_contact_faces(p, size) for p in o.parts], o.body, False, o.group)
                 for o in layout.objects]
    light = Light(position=(float(rng.uniform(0.35, 0.65) * lx), float(rng.uniform(0.35, 0.65) * ly), height - 0.15),
                  ambient=float(rng.uniform(0.38, 0.48)), diffuse=float(rng.uniform(0.6, 0.8)))
    if dropped:
        log.debug("no room for %s", ", ".join(dropped))
    return Scene(size, structure + furniture, light, scene_type, dropped)

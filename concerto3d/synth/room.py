"""Room sampling: :func:`sample_scene` draws one furnished room.

It draws a room (floor, four walls, ceiling), flat panels on the walls (doors, windows with curtains, pictures, wall
patches) and furniture (tables with chairs, desks, counters on kitchen cabinets, cabinets, bookshelves, beds with
pillows, sofas, refrigerators; :mod:`.furniture`). Every object is placed by rejection sampling (:mod:`.layout`): its
bounding box must lie inside the room and overlap neither the body nor the keep-out zone (the space in front of a
door, a window, a cabinet) of anything placed before. Sizes, positions, orientations and materials vary per scene.
Frames as in :mod:`.scene`.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from concerto3d.synth.boxes import FACE_AXIS, FACE_NORMALS_LOCAL, FACE_SIGN, OrientedBox
from concerto3d.synth.furniture import (Group, build_bed, build_bookshelf, build_cabinet, build_counter, build_desk,
                                        build_refrigerator, build_sofa, build_table, slab)
from concerto3d.synth.layout import Layout, free_poses, keepout_front, place_chairs_around, wall_poses
from concerto3d.synth.materials import Light, Material, sample_material
from concerto3d.synth.scene import Part, Scene, SceneObject

log = logging.getLogger(__name__)

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
    layout = Layout(size)
    dropped: list[str] = []

    def wall_panel(category: str, material: Material, tall: bool, depth: float, thickness: float,
                   extra: Callable[[float, float, float, float], list[Group]] | None = None) -> list[int] | None:
        """Place a flat panel on a wall, with ``extra(width, height, bottom, thickness)`` groups beside it."""
        w, h, z0 = _panel_size(rng, height, tall)
        groups: list[Group] = [(category, [(slab(0, thickness / 2, z0, w, thickness, h), material, 2)])]
        if extra:
            groups += extra(w, h, z0, thickness)
        keepout = keepout_front(groups, depth, (max(z0 - 0.05, 0.0), z0 + h))
        placed = layout.try_place(groups, wall_poses(layout, rng, groups, wall_gap=(0.0, 0.0)), keepout)
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
            groups.append(("curtain", [(slab(x, thickness + 0.03, bottom, cw, 0.02, top - bottom), mat, 2)]))
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
        placed = layout.try_place(groups, wall_poses(layout, rng, groups), keepout_front(groups, front))
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
        place_chairs_around(layout, rng, layout.objects[desk[0]], set(desk), 1, chair_mats, (2,))

    # 3. Free-standing: a table with chairs in the middle of the room.
    table = layout.try_place(build_table(rng, wood()), free_poses(layout, rng, 1.0))
    if table is None:
        dropped.append("table")
    else:
        place_chairs_around(layout, rng, layout.objects[table[0]], set(table), int(rng.integers(2, 5)),
                             chair_mats, (0, 1, 2, 3))

    furniture = [SceneObject(o.category, [_hide_contact_faces(p, size) for p in o.parts], o.body, False, o.group)
                 for o in layout.objects]
    light = Light(position=(float(rng.uniform(0.35, 0.65) * lx), float(rng.uniform(0.35, 0.65) * ly), height - 0.15),
                  ambient=float(rng.uniform(0.38, 0.48)), diffuse=float(rng.uniform(0.6, 0.8)))
    if dropped:
        log.debug("no room for %s", ", ".join(dropped))
    return Scene(size, structure + furniture, light, scene_type, dropped)

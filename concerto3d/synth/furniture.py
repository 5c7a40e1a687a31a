"""Furniture builders: each returns the object's groups of boxes in its local frame.

A builder returns ``[(category, [(local box, material, grain axis)])]``: one group per annotated instance (a bed
and its pillows, a counter and its kitchen cabinet), in the object's local frame of :mod:`.scene` (origin at the
centre of its footprint on the floor, +y towards its front, z up). :mod:`.layout` places the groups in the room.
"""

from __future__ import annotations

import numpy as np

from concerto3d.synth.boxes import OrientedBox
from concerto3d.synth.materials import Material, sample_material

LocalPart = tuple[OrientedBox, Material, int]  # (local box, material, grain axis)
Group = tuple[str, list[LocalPart]]


def slab(x: float, y: float, z0: float, sx: float, sy: float, sz: float) -> OrientedBox:
    """A local box given by its footprint centre (x, y), bottom height z0 and size."""
    return OrientedBox((x, y, z0 + sz / 2), (sx, sy, sz))


def build_table(rng: np.random.Generator, wood: Material) -> list[Group]:
    """Four legs under a top, 0.70-0.77 m high, free-standing."""
    w, d = rng.uniform(0.9, 1.8), rng.uniform(0.7, 1.0)
    h, t = rng.uniform(0.70, 0.77), rng.uniform(0.03, 0.05)
    leg, inset = rng.uniform(0.045, 0.07), rng.uniform(0.03, 0.08)
    parts = [(slab(0, 0, h - t, w, d, t), wood, 0)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((slab(sx * (w / 2 - inset - leg / 2), sy * (d / 2 - inset - leg / 2), 0, leg, leg, h - t),
                          wood, 2))
    return [("table", parts)]


def build_desk(rng: np.random.Generator, wood: Material) -> list[Group]:
    """A top on a drawer pedestal and a panel leg, with a modesty panel; same height as a table, against a wall."""
    w, d = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.75)
    h, t = rng.uniform(0.72, 0.77), rng.uniform(0.025, 0.04)
    side = rng.choice([-1, 1])
    ped_w, panel_t, front = rng.uniform(0.38, 0.46), rng.uniform(0.02, 0.03), 0.015
    body_d = d - 0.03 - front
    parts = [(slab(0, 0, h - t, w, d, t), wood, 0)]
    px = side * (w / 2 - ped_w / 2)
    parts.append((slab(px, -d / 2 + body_d / 2, 0, ped_w, body_d, h - t), wood, 2))  # pedestal carcass
    n_drawers, gap = int(rng.integers(2, 4)), 0.004
    dh = (h - t - 0.05 - gap * n_drawers) / n_drawers
    for k in range(n_drawers):
        z0 = 0.05 + k * (dh + gap)
        parts.append((slab(px, -d / 2 + body_d + front / 2, z0, ped_w - 2 * gap, front, dh), wood, 0))
    parts.append((slab(-side * (w / 2 - panel_t / 2), -d / 2 + body_d / 2, 0, panel_t, body_d, h - t), wood, 2))
    inner = w - ped_w - panel_t
    parts.append((slab(-side * (w / 2 - panel_t - inner / 2), -d / 2 + 0.04, h - t - 0.35, inner, 0.018, 0.35),
                  wood, 0))
    return [("desk", parts)]


def build_counter(rng: np.random.Generator, wood: Material, base: Material) -> list[Group]:
    """A kitchen counter: a top slab 0.88-0.95 m high on a closed kitchen-cabinet base, against a wall."""
    w, d = rng.uniform(1.2, 2.6), rng.uniform(0.58, 0.66)
    h, t, over = rng.uniform(0.88, 0.95), rng.uniform(0.03, 0.045), rng.uniform(0.02, 0.035)
    body_d, kick, front = d - over - 0.015, 0.1, 0.015
    cab = [(slab(0, -d / 2 + (body_d - 0.06) / 2, 0, w, body_d - 0.06, kick), base, 0),  # recessed toe kick
           (slab(0, -d / 2 + body_d / 2, kick, w, body_d, h - t - kick), base, 2)]
    n_doors, gap = max(1, int(round(w / 0.55))), 0.004
    dw = (w - gap * (n_doors + 1)) / n_doors
    for k in range(n_doors):
        x = -w / 2 + gap + dw / 2 + k * (dw + gap)
        cab.append((slab(x, -d / 2 + body_d + front / 2, kick + 0.01, dw, front, h - t - kick - 0.02), base, 2))
    return [("kitchen cabinet", cab), ("counter", [(slab(0, 0, h - t, w, d, t), wood, 0)])]


def build_cabinet(rng: np.random.Generator, wood: Material, handle: Material) -> list[Group]:
    """A closed box with door fronts and handles; low (0.7-1.0 m) or tall (1.4-2.1 m)."""
    w, d = rng.uniform(0.5, 1.4), rng.uniform(0.4, 0.6)
    h = rng.uniform(0.7, 1.0) if rng.random() < 0.5 else rng.uniform(1.4, 2.1)
    front, gap, plinth = 0.018, 0.004, rng.uniform(0.04, 0.08)
    body_d = d - front - 0.02
    parts = [(slab(0, -d / 2 + body_d / 2, 0, w, body_d, h), wood, 2)]
    n_doors = 2 if w > 0.75 else 1
    dw = (w - gap * (n_doors + 1)) / n_doors
    for k in range(n_doors):
        x = -w / 2 + gap + dw / 2 + k * (dw + gap)
        y = -d / 2 + body_d + front / 2
        parts.append((slab(x, y, plinth, dw, front, h - plinth - gap), wood, 2))
        hx = x + (dw / 2 - 0.05) * (1 if (k == 0 and n_doors == 2) else -1)
        parts.append((slab(hx, y + front / 2 + 0.01, min(h * 0.5, 1.0), 0.02, 0.02, 0.12), handle, 2))
    return [("cabinet", parts)]


def build_bookshelf(rng: np.random.Generator, wood: Material, with_books: bool = False) -> list[Group]:
    """An open frame: sides, top, plinth, back and shelf boards; 0.9-2.1 m high, same wood as cabinets. With
    ``with_books``, rows of books in fabric colours (one instance, NYU40 "books", outside ScanNet-20) on the shelves."""
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.40), rng.uniform(0.9, 2.1)
    t, back, plinth = rng.uniform(0.018, 0.025), 0.01, rng.uniform(0.05, 0.08)
    inner = w - 2 * t
    parts = [(slab(-w / 2 + t / 2, 0, 0, t, d, h), wood, 2), (slab(w / 2 - t / 2, 0, 0, t, d, h), wood, 2),
             (slab(0, 0, h - t, inner, d, t), wood, 0), (slab(0, 0, 0, inner, d, plinth), wood, 0),
             (slab(0, -d / 2 + back / 2, plinth, inner, back, h - t - plinth), wood, 2)]
    n_shelves = max(1, int(round((h - plinth) / 0.36)) - 1)
    pitch = (h - t - plinth) / (n_shelves + 1)  # from one board's middle to the next
    for k in range(1, n_shelves + 1):
        parts.append((slab(0, back / 2, plinth + k * pitch - t / 2, inner, d - back, t), wood, 0))
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
                rows.append((slab(x + bw / 2, -d / 2 + back + bd / 2 + 0.005, floor, bw, bd,
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
    bed = [(slab(0, -length / 2 + head_t / 2, 0, w, head_t, head_h), wood, 0),
           (slab(0, y0 + body / 2, 0, w, body, base_h), wood, 0),
           (slab(0, y0 + body / 2, base_h, w - 0.04, body - 0.03, mat_h), fabric, 0)]
    groups: list[Group] = [("bed", bed)]
    n_pillows = 1 if w < 1.2 else 2
    pw = min(0.6, (w - 0.12) / n_pillows - 0.04)
    for k in range(n_pillows):
        x = (k - (n_pillows - 1) / 2) * (pw + 0.05)
        groups.append(("pillow", [(slab(x, y0 + 0.05 + 0.19, base_h + mat_h, pw, 0.38, 0.12), pillow, 0)]))
    return groups


def build_sofa(rng: np.random.Generator, fabric: Material) -> list[Group]:
    """Seat block, back and two arms, all upholstered."""
    w, d = rng.uniform(1.5, 2.4), rng.uniform(0.8, 0.95)
    seat_h, back_h, back_t = rng.uniform(0.40, 0.46), rng.uniform(0.75, 0.9), rng.uniform(0.15, 0.25)
    arm_w, arm_h = rng.uniform(0.12, 0.2), rng.uniform(0.55, 0.65)
    seat_d = d - back_t
    parts = [(slab(0, -d / 2 + back_t / 2, 0, w, back_t, back_h), fabric, 0),
             (slab(0, -d / 2 + back_t + seat_d / 2, 0, w - 2 * arm_w, seat_d, seat_h), fabric, 0)]
    for sx in (-1, 1):
        parts.append((slab(sx * (w / 2 - arm_w / 2), -d / 2 + back_t + seat_d / 2, 0, arm_w, seat_d, arm_h),
                      fabric, 1))
    return [("sofa", parts)]


def build_chair(rng: np.random.Generator, frame: Material, seat: Material) -> list[Group]:
    """Four legs, a seat and a back panel at the rear (-y); it faces +y."""
    w, d = rng.uniform(0.40, 0.50), rng.uniform(0.40, 0.48)
    seat_h, seat_t, leg = rng.uniform(0.43, 0.48), rng.uniform(0.03, 0.05), rng.uniform(0.03, 0.04)
    back_h, back_t = rng.uniform(0.32, 0.48), rng.uniform(0.02, 0.03)
    parts = [(slab(0, 0, seat_h - seat_t, w, d, seat_t), seat, 0),
             (slab(0, -d / 2 + back_t / 2, seat_h, w, back_t, back_h), frame, 0)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append((slab(sx * (w / 2 - leg / 2), sy * (d / 2 - leg / 2), 0, leg, leg, seat_h - seat_t),
                          frame, 2))
    return [("chair", parts)]


def build_refrigerator(rng: np.random.Generator, metal: Material, handle: Material) -> list[Group]:
    """A tall box with freezer and fridge doors and a handle bar."""
    w, d, h = rng.uniform(0.6, 0.8), rng.uniform(0.6, 0.72), rng.uniform(1.6, 1.9)
    front, gap = 0.03, 0.005
    body_d = d - front - 0.03
    split = h * rng.uniform(0.3, 0.4)
    y = -d / 2 + body_d + front / 2
    parts = [(slab(0, -d / 2 + body_d / 2, 0, w, body_d, h), metal, 2),
             (slab(0, y, 0.03, w - 0.01, front, h - split - 0.03 - gap), metal, 2),
             (slab(0, y, h - split, w - 0.01, front, split - 0.005), metal, 2),
             (slab(w / 2 - 0.06, y + front / 2 + 0.02, h - split - 0.5, 0.025, 0.025, 0.4), handle, 2)]
    return [("refrigerator", parts)]

"""The synthetic scene's data model: a box-shaped room and the annotated objects in it, each built from boxes.

:func:`concerto3d.synth.room.sample_scene` draws a :class:`Scene`; :mod:`.mesh` and :mod:`.render` turn it into a
mesh and frames.

Frames: the world has z up, the room spans ``[0, Lx] x [0, Ly] x [0, H]``. An object's local frame has its origin at
the centre of its footprint on the floor, x along its width, +y towards its front, z up; an object's ``yaw`` turns
that frame about z. Wall ``w`` (0: y = 0, 1: x = Lx, 2: y = Ly, 3: x = 0) has yaw ``w * pi / 2``, so an object with
the wall's yaw has its front towards the room.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from concerto3d.synth.boxes import OrientedBox
from concerto3d.synth.materials import Light, Material

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


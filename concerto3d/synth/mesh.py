"""Dense meshes from box scenes: every visible box face cut into a grid of small squares, as a reconstruction would be.

A ScanNet mesh has a vertex every 1-2 cm; a box has 8. :func:`build_mesh` subdivides each visible face into a grid
whose spacing is at most ``step`` and colours each vertex with its material, evaluated at the 2 cm footprint of a
fused reconstruction (:data:`materials.MESH_COLOR_FOOTPRINT`: the fine texture averages out), shaded by the scene's
light. Segments (for ``*.segs.json``) are face tiles of about half a metre, each inside one object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from concerto3d.synth.boxes import FACE_AXIS, FACE_NORMALS_LOCAL, FACE_SIGN
from concerto3d.synth.materials import MESH_COLOR_FOOTPRINT, MaterialTable, evaluate_albedo, lambert, surface_coords
from concerto3d.synth.scene import Scene

DEFAULT_STEP = 0.018  # metres between neighbouring vertices (at most)
SEGMENT_SIZE = 0.5    # metres: side of the face tiles that become segments


@dataclass
class DenseMesh:
    """A scene's mesh with per-vertex annotations.

    Attributes (N vertices, F triangles):
        vertices: (N, 3) float32 world metres.
        normals: (N, 3) float32 unit outward normals.
        colors: (N, 3) uint8 RGB (texture at a 2 cm footprint, shaded).
        faces: (F, 3) int32, counter-clockwise seen from outside.
        object_index: (N,) int32 index into ``scene.objects``.
        segment: (N,) int32 segment id, 0..S-1; a segment never spans two objects.
    """

    vertices: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    faces: np.ndarray
    object_index: np.ndarray
    segment: np.ndarray

    def observed(self, seen: np.ndarray) -> "DenseMesh":
        """The part of the mesh a scan of it would hold: the triangles whose three vertices are ``seen`` (N,) bool,
        and the vertices they use, renumbered in their order; segment ids are renumbered densely too."""
        seen = np.asarray(seen, dtype=bool)
        if seen.shape != (len(self.vertices),):
            raise ValueError(f"observed: expected ({len(self.vertices)},) bool, got shape {seen.shape}")
        faces = self.faces[seen[self.faces].all(axis=1)]
        keep = np.zeros(len(self.vertices), dtype=bool)
        keep[faces.reshape(-1)] = True
        new_index = np.cumsum(keep) - 1
        _, segment = np.unique(self.segment[keep], return_inverse=True)
        return DenseMesh(vertices=self.vertices[keep], normals=self.normals[keep], colors=self.colors[keep],
                         faces=new_index[faces].astype(np.int32), object_index=self.object_index[keep],
                         segment=segment.reshape(-1).astype(np.int32))


def seen_by_depth(vertices: np.ndarray, camera_to_world: np.ndarray, K: np.ndarray, depth_mm: np.ndarray,
                  abs_tol: float = 0.05, rel_tol: float = 0.02) -> np.ndarray:
    """Which vertices a depth frame sees: in front of the camera, inside the image, and within
    ``abs_tol + rel_tol * depth`` of the depth measured at their pixel (missing depth sees nothing), the depth test
    of preprocessing's correspondences.

    Args:
        vertices: (N, 3) world metres; camera_to_world: (4, 4), OpenCV camera axes; K: (3, 3) for the depth image;
        depth_mm: (H, W) uint16 millimetres, 0 = missing.
    Returns:
        (N,) bool.
    """
    world_to_camera = np.linalg.inv(camera_to_world)
    cam = vertices.astype(np.float64) @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    front = z > 1e-6
    u = np.floor(K[0, 0] * cam[:, 0] / np.where(front, z, 1.0) + K[0, 2] + 0.5).astype(np.int64)
    v = np.floor(K[1, 1] * cam[:, 1] / np.where(front, z, 1.0) + K[1, 2] + 0.5).astype(np.int64)
    h, w = depth_mm.shape
    inside = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    measured = np.zeros(len(vertices))
    measured[inside] = depth_mm[v[inside], u[inside]] / 1000.0
    return inside & (measured > 0) & (np.abs(z - measured) <= abs_tol + rel_tol * measured)


def material_table(scene: Scene) -> MaterialTable:
    """The materials of ``scene.parts()`` as arrays (part index = position in that list)."""
    parts = [p for _, p in scene.parts()]
    return MaterialTable.from_materials([p.material for p in parts], [p.grain_axis for p in parts])


def face_grid(size: np.ndarray, face: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    """A grid over one face of a box, in the box's local frame.

    Args:
        size: (3,) box extents; face: 0..5 (see :data:`boxes.FACE_NORMALS_LOCAL`); step: maximal spacing, metres.
    Returns:
        points: (V, 3) local coordinates; triangles: (T, 3) int indices into ``points``, wound so that their
        normal is the face's outward normal.
    """
    a, s = FACE_AXIS[face], FACE_SIGN[face]
    i, j = (a + 1) % 3, (a + 2) % 3
    ni = max(1, int(np.ceil(size[i] / step - 1e-9)))
    nj = max(1, int(np.ceil(size[j] / step - 1e-9)))
    gi = np.linspace(-size[i] / 2, size[i] / 2, ni + 1)
    gj = np.linspace(-size[j] / 2, size[j] / 2, nj + 1)
    points = np.empty(((ni + 1) * (nj + 1), 3))
    points[:, a] = s * size[a] / 2
    points[:, i] = np.repeat(gi, nj + 1)
    points[:, j] = np.tile(gj, ni + 1)
    k, l = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    v00 = (k * (nj + 1) + l).ravel()
    v10, v01 = v00 + nj + 1, v00 + 1
    v11 = v10 + 1
    # e_i x e_j = e_a, so (v00, v10, v11) faces +a; flip the winding for the face at -a.
    tri = np.concatenate([np.stack([v00, v10, v11], 1), np.stack([v00, v11, v01], 1)])
    if s < 0:
        tri = tri[:, ::-1]
    return points, tri


def build_mesh(scene: Scene, step: float = DEFAULT_STEP) -> DenseMesh:
    """Subdivide, colour and annotate every visible face of the scene.

    Args:
        scene: a sampled scene.
        step: largest distance between grid neighbours, metres (ScanNet: 1-2 cm).
    Returns:
        the :class:`DenseMesh`; vertices on face borders are not shared between faces.
    """
    if not 0.002 <= step <= 0.2:
        raise ValueError(f"step must be in 0.002..0.2 m, got {step}")
    table = material_table(scene)
    chunks = {k: [] for k in ("local", "world", "normal", "tri", "part", "axis", "object", "tile")}
    offset, face_id = 0, 0
    for part_index, (obj_index, part) in enumerate(scene.parts()):
        box = part.box
        rot = box.rotation
        for face in range(6):
            if not part.visible[face]:
                continue
            local, tri = face_grid(box.size, face, step)
            n = len(local)
            chunks["local"].append(local)
            chunks["world"].append(local @ rot.T + box.center)
            chunks["normal"].append(np.broadcast_to(rot @ FACE_NORMALS_LOCAL[face], (n, 3)))
            chunks["tri"].append(tri + offset)
            chunks["part"].append(np.full(n, part_index))
            chunks["axis"].append(np.full(n, FACE_AXIS[face]))
            chunks["object"].append(np.full(n, obj_index))
            a = FACE_AXIS[face]
            ti = np.floor((local[:, (a + 1) % 3] + box.size[(a + 1) % 3] / 2) / SEGMENT_SIZE)
            tj = np.floor((local[:, (a + 2) % 3] + box.size[(a + 2) % 3] / 2) / SEGMENT_SIZE)
            chunks["tile"].append((face_id * 1024 + ti.astype(np.int64)) * 1024 + tj.astype(np.int64))
            offset += n
            face_id += 1
    cat = {k: np.concatenate(v) for k, v in chunks.items()}
    part = cat["part"].astype(np.int64)
    along, across = surface_coords(cat["local"], cat["axis"], table.grain_axis[part])
    albedo = evaluate_albedo(table, part, along, across, MESH_COLOR_FOOTPRINT)
    normals = cat["normal"].astype(np.float32)
    colors = lambert(albedo, normals, cat["world"], scene.light)
    _, segment = np.unique(cat["tile"], return_inverse=True)  # tiles numbered in (face, row, column) order
    return DenseMesh(vertices=cat["world"].astype(np.float32), normals=normals, colors=colors,
                     faces=cat["tri"].astype(np.int32), object_index=cat["object"].astype(np.int32),
                     segment=segment.reshape(-1).astype(np.int32))

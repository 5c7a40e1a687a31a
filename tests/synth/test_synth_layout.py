"""Room layouts, materials and dense meshes of the synthetic generator (numpy only, no rendering)."""

import itertools

import numpy as np
import pytest

from concerto3d.labels import nyu40_to_scannet20
from concerto3d.synth.boxes import OrientedBox, boxes_overlap, rectangles_overlap
from concerto3d.synth.materials import (MESH_COLOR_FOOTPRINT, PANEL_PALETTE, Material, MaterialTable, Pattern,
                                        evaluate_albedo, sample_material)
from concerto3d.synth.mesh import build_mesh, face_grid
from concerto3d.synth.room import sample_scene


@pytest.fixture(scope="module")
def scenes():
    return [sample_scene(np.random.default_rng([7, k])) for k in range(4)]


def _overlap_by_sampling(a: OrientedBox, b: OrientedBox, n: int = 4000, seed: int = 0) -> bool:
    """Reference: is any of n points spread through box a strictly inside box b?"""
    rng = np.random.default_rng(seed)
    local = (rng.random((n, 3)) - 0.5) * a.size * 0.999
    pts = local @ a.rotation.T + a.center
    inside_b = np.all(np.abs(b.to_local(pts)) < b.size / 2 - 1e-9, axis=1)
    return bool(inside_b.any())


def test_box_overlap_matches_point_sampling():
    rng = np.random.default_rng(1)
    agree = 0
    for _ in range(200):
        a = OrientedBox(rng.uniform(-1, 1, 3), rng.uniform(0.2, 1.5, 3), rng.uniform(0, np.pi))
        b = OrientedBox(rng.uniform(-1, 1, 3), rng.uniform(0.2, 1.5, 3), rng.uniform(0, np.pi))
        exact = boxes_overlap(a, b)
        sampled = _overlap_by_sampling(a, b) or _overlap_by_sampling(b, a)
        if sampled:  # sampling can miss a thin overlap, never invent one
            assert exact
        agree += exact == sampled
    assert agree >= 190


def test_touching_boxes_do_not_overlap_and_rotated_corner_does():
    a = OrientedBox((0, 0, 0.5), (1, 1, 1))
    assert not boxes_overlap(a, OrientedBox((1, 0, 0.5), (1, 1, 1)))          # side by side
    assert not boxes_overlap(a, OrientedBox((0, 0, 1.5), (1, 1, 1)))          # stacked
    # a diamond whose corner pokes 5 cm into a's side
    poke = OrientedBox((0.5 + np.sqrt(0.5) - 0.05, 0, 0.5), (1, 1, 1), np.pi / 4)
    assert boxes_overlap(a, poke)
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    assert not rectangles_overlap(square, square + [1.0, 0.0])


def test_furniture_does_not_interpenetrate_and_stays_in_the_room(scenes):
    for scene in scenes:
        size = np.asarray(scene.size)
        placed = [o for o in scene.objects if not o.structure]
        assert len(placed) >= 10
        for obj in placed:
            corners = obj.body.corners()
            assert np.all(corners >= -1e-6) and np.all(corners <= size + 1e-6), obj.category
        for a, b in itertools.combinations(placed, 2):
            if a.group != b.group:  # a bed's body holds its pillows; different placements never nest
                assert not boxes_overlap(a.body, b.body, eps=1e-4), (a.category, b.category)
            for pa in a.parts:  # the parts themselves never overlap
                for pb in b.parts:
                    assert not boxes_overlap(pa.box, pb.box, eps=1e-4), (a.category, b.category)


def test_scenes_cover_at_least_ten_scannet20_classes(scenes):
    classes = set()
    for scene in scenes:
        seg20 = nyu40_to_scannet20(np.array([o.nyu40 for o in scene.objects]))
        classes |= set(seg20[seg20 >= 0].tolist())
    assert len(classes) >= 10, sorted(classes)


def test_layouts_vary_and_repeat_for_a_seed(scenes):
    again = sample_scene(np.random.default_rng([7, 0]))
    assert again.size == scenes[0].size
    assert [o.category for o in again.objects] == [o.category for o in scenes[0].objects]
    assert all(np.array_equal(a.body.center, b.body.center) for a, b in zip(again.objects, scenes[0].objects))
    assert len({s.size for s in scenes}) == len(scenes)


def test_face_grid_spacing_and_winding():
    size = np.array([0.5, 0.3, 0.05])
    for face in range(6):
        pts, tri = face_grid(size, face, 0.018)
        e1, e2 = pts[tri[:, 1]] - pts[tri[:, 0]], pts[tri[:, 2]] - pts[tri[:, 0]]
        normal = np.cross(e1, e2)
        axis, sign = face // 2, 1 if face % 2 == 0 else -1
        assert np.all(normal[:, axis] * sign > 0)
        assert np.allclose(np.delete(normal, axis, axis=1), 0)


def test_mesh_is_dense_and_annotated(scenes):
    scene = scenes[0]
    mesh = build_mesh(scene)
    assert 3e5 <= len(mesh.vertices) <= 1.5e6
    tri = mesh.vertices[mesh.faces]
    edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
    # every triangle is half a grid cell: two legs no longer than 2 cm, and the diagonal
    assert np.sort(edges, axis=1)[:, :2].max() <= 0.02 + 1e-6
    # on the floor, the nearest other vertex is within 2 cm
    floor = mesh.vertices[mesh.object_index == 0]
    rng = np.random.default_rng(0)
    for probe in floor[rng.choice(len(floor), 50, replace=False)]:
        near = floor[np.all(np.abs(floor - probe) < 0.03, axis=1)]
        d = np.linalg.norm(near - probe, axis=1)
        assert np.sort(d)[1] <= 0.02  # [0] is the probe itself
    # segments never cross objects
    seg_obj = {}
    for s, o in zip(mesh.segment[::97], mesh.object_index[::97]):
        assert seg_obj.setdefault(int(s), int(o)) == int(o)
    assert set(np.unique(mesh.object_index)) == set(range(len(scene.objects)))


def test_fine_texture_is_finer_than_the_voxel():
    rng = np.random.default_rng(0)
    n = 5000
    along, across = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    for pattern in (Pattern.WOOD, Pattern.WEAVE, Pattern.HALFTONE, Pattern.SCREEN, Pattern.BRUSHED):
        m = Material(pattern, (0.5, 0.4, 0.3), period=0.008, contrast=0.3, phase=1.0)
        table = MaterialTable.from_materials([m], [0])
        part = np.zeros(n, dtype=np.int64)
        sharp = evaluate_albedo(table, part, along, across, 0.0005)
        voxel = evaluate_albedo(table, part, along, across, MESH_COLOR_FOOTPRINT)
        assert sharp.std(axis=0).max() > 0.03, pattern.name        # a camera close up sees the pattern
        assert np.allclose(voxel, m.color, atol=1e-6), pattern.name  # a 2 cm sample sees the base colour only
        assert np.allclose(sharp.mean(axis=0), m.color, atol=0.01), pattern.name  # zero-mean modulation


def test_confusable_panels_share_one_palette():
    rng = np.random.default_rng(3)

    def palette_hits(kind):
        colors = np.array([sample_material(kind, rng).color for _ in range(300)])
        nearest = np.argmin(np.linalg.norm(colors[:, None] - PANEL_PALETTE[None], axis=2), axis=1)
        return set(nearest.tolist())

    hits = {kind: palette_hits(kind) for kind in ("wall", "door", "picture", "window", "curtain")}
    for kind, used in hits.items():
        assert used == set(range(len(PANEL_PALETTE))), kind
    patterns = {kind: sample_material(kind, rng).pattern for kind in hits}
    assert len(set(patterns.values())) == len(patterns)  # ... and differ in fine pattern

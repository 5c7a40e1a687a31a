"""Mesh down-sampling, normals and RGB-D fusion of concerto3d.data.fusion."""

import numpy as np
import pytest

from concerto3d.data.correspondence import project_points
from concerto3d.data.fusion import (
    VoxelFusion, backproject_depth, estimate_normals, mesh_vertex_normals, voxel_representatives,
)
from rgbd_scenes import ROOM_HI, ROOM_LO, FakeFrameSource, color_of, grid_box_mesh, room_poses


def _distance_to_room_surface(p: np.ndarray) -> np.ndarray:
    """Distance of points inside the room to its nearest wall/floor/ceiling."""
    return np.min(np.concatenate([p - ROOM_LO, ROOM_HI - p], axis=1), axis=1)


def test_voxel_representatives_pick_the_vertex_nearest_the_centre():
    voxel = 1.0
    points = np.array([
        [0.1, 0.1, 0.1],   # voxel (0,0,0), far from the centre
        [0.5, 0.5, 0.75],  # voxel (0,0,0), nearest the centre -> kept
        [1.5, 0.5, 0.5],   # voxel (1,0,0), alone -> kept
        [0.5, 0.5, 0.25],  # voxel (0,0,0), tie with index 1 -> index 1 wins
        [-0.5, 0.5, 0.5],  # voxel (-1,0,0) -> kept
    ])
    assert voxel_representatives(points, voxel).tolist() == [1, 2, 4]


def test_voxel_representatives_one_per_voxel_and_deterministic():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (5000, 3))
    keep = voxel_representatives(points, 0.2)
    keys = np.floor(points / 0.2).astype(int)
    assert len(np.unique(keys[keep], axis=0)) == len(keep) == len(np.unique(keys, axis=0))
    shuffled = rng.permutation(len(points))
    # the same set of points in another order gives the same representatives
    again = shuffled[voxel_representatives(points[shuffled], 0.2)]
    assert sorted(again.tolist()) == keep.tolist()


def test_mesh_vertex_normals_are_area_weighted_and_unit():
    # vertex 0 is shared by a big triangle in the z=0 plane (normal +z) and a small one in the x=0 plane (+x)
    vertices = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 0.1], [0, 0.1, 0], [5, 5, 5]], np.float64)
    faces = np.array([[0, 1, 2], [0, 4, 3]])
    normals, valid = mesh_vertex_normals(vertices, faces)
    assert valid.tolist() == [True, True, True, True, True, False]
    assert np.allclose(np.linalg.norm(normals[valid], axis=1), 1)
    area_z, area_x = 2.0, 0.005
    expected = np.array([area_x, 0, area_z]) / np.hypot(area_x, area_z)
    assert np.allclose(normals[0], expected, atol=1e-6)
    assert np.allclose(normals[1], [0, 0, 1]) and np.allclose(normals[3], [1, 0, 0])


def test_room_mesh_normals_point_inwards():
    vertices, faces = grid_box_mesh(ROOM_LO, ROOM_HI, 0.5, inward=True)
    normals, valid = mesh_vertex_normals(vertices, faces)
    assert valid.all()
    centre = (ROOM_LO + ROOM_HI) / 2
    assert (np.sum(normals * (centre - vertices), axis=1) > 0).all()


def test_backprojected_depth_projects_back_to_its_pixels():
    src = FakeFrameSource(room_poses(1), depth_size=(24, 32))
    frame = next(src.iter_frames())
    pts = backproject_depth(frame.depth, frame.intrinsic_depth, frame.camera_to_world)
    assert len(pts) == 24 * 32
    uv, z, inside = project_points(pts, frame.camera_to_world, frame.intrinsic_depth, (24, 32))
    v, u = np.mgrid[0:24, 0:32]
    assert inside.all() and np.array_equal(uv, np.stack([u.ravel(), v.ravel()], 1))
    assert np.allclose(z, frame.depth.ravel(), atol=1e-5)
    assert _distance_to_room_surface(pts).max() < 1e-4
    assert len(backproject_depth(frame.depth, frame.intrinsic_depth, frame.camera_to_world, stride=2)) == 12 * 16


def test_fusion_points_lie_on_the_surface_with_its_colour_and_normals():
    src = FakeFrameSource(room_poses(6), color_size=(60, 80), depth_size=(48, 64))
    voxel = 0.05
    fusion = VoxelFusion(voxel)
    readings = []
    for frame in src.iter_frames():
        fusion.add_frame(frame.depth, frame.intrinsic_depth, frame.color, frame.intrinsic_color,
                         frame.camera_to_world)
        readings.append(backproject_depth(frame.depth, frame.intrinsic_depth, frame.camera_to_world))
    coord, color, towards = fusion.result()
    assert coord.dtype == np.float32 and color.dtype == np.uint8 and len(coord) > 1000
    # one point per voxel holding readings (the colour camera sees all the depth camera sees), each the mean of
    # readings on the surface: on it, or within a voxel of it at corners and edges
    assert len(coord) == len(np.unique(np.floor(np.concatenate(readings) / voxel).astype(int), axis=0))
    dist = _distance_to_room_surface(coord.astype(np.float64))
    assert np.median(dist) < 1e-3 and dist.max() < voxel
    # the colour is the texture at that place (up to the texture's variation inside a voxel)
    diff = np.abs(color.astype(int) - color_of(coord).astype(int))
    assert np.median(diff) < 5
    normals = estimate_normals(coord, radius=3 * voxel, towards=towards)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-5)
    centre = (ROOM_LO + ROOM_HI) / 2
    facing_in = np.sum(normals * (centre - coord), axis=1) > 0
    assert facing_in.mean() > 0.98


def test_fusion_memory_is_per_voxel_and_result_is_deterministic():
    poses = room_poses(3)
    results = []
    for _ in range(2):
        fusion = VoxelFusion(0.1)
        fusion._MERGE_ROWS = 10  # force a merge after every frame
        for frame in FakeFrameSource(poses * 4).iter_frames():  # the same views again: no new voxels
            fusion.add_frame(frame.depth, frame.intrinsic_depth, frame.color, frame.intrinsic_color,
                             frame.camera_to_world)
            assert len(fusion._keys) <= 4000
        results.append(fusion.result())
    fusion = VoxelFusion(0.1)
    for frame in FakeFrameSource(poses).iter_frames():
        fusion.add_frame(frame.depth, frame.intrinsic_depth, frame.color, frame.intrinsic_color,
                         frame.camera_to_world)
    once = fusion.result()
    for a, b in zip(results[0], results[1]):
        assert a.tobytes() == b.tobytes()
    assert len(once[0]) == len(results[0][0])
    assert np.allclose(once[0], results[0][0], atol=1e-5)


def test_fusion_drops_readings_beyond_max_depth_and_checks_arguments():
    frame = next(FakeFrameSource(room_poses(1)).iter_frames())
    near = VoxelFusion(0.05, max_depth=1.0)
    near.add_frame(frame.depth, frame.intrinsic_depth, frame.color, frame.intrinsic_color, frame.camera_to_world)
    cam = frame.camera_to_world[:3, 3]
    coord, _, _ = near.result()
    assert len(coord) == 0 or np.linalg.norm(coord - cam, axis=1).max() < 1.0 * np.sqrt(3) + 0.1
    with pytest.raises(ValueError, match="voxel"):
        VoxelFusion(0.0)


def test_voxel_representatives_match_a_dictionary_reference():
    rng = np.random.default_rng(3)
    points = np.round(rng.uniform(-0.5, 0.5, (800, 3)), 2)  # rounded: many exact ties
    voxel = 0.125
    best = {}
    for i, p in enumerate(points):
        key = tuple(np.floor(p / voxel).astype(int))
        d = float(np.sum((p - (np.array(key) + 0.5) * voxel) ** 2))
        if key not in best or d < best[key][0]:
            best[key] = (d, i)
    assert voxel_representatives(points, voxel).tolist() == sorted(i for _, i in best.values())


# -- the fast paths against the plain references they replaced --------------------------------------------------
def _lexsort_voxel_representatives(coord: np.ndarray, voxel: float) -> np.ndarray:
    """The earlier voxel_representatives: one lexsort of the points by (voxel, distance to its centre, index)."""
    coord = np.asarray(coord, dtype=np.float64)
    keys = np.floor(coord / voxel).astype(np.int64)
    dist = np.sum((coord - (keys + 0.5) * voxel) ** 2, axis=1)
    off = keys + (1 << 20)
    packed = (off[:, 0] << 42) | (off[:, 1] << 21) | off[:, 2]
    order = np.lexsort((np.arange(len(coord)), dist, packed))
    first = np.ones(len(order), dtype=bool)
    first[1:] = packed[order[1:]] != packed[order[:-1]]
    return np.sort(order[first])


def _float64_vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The earlier mesh_vertex_normals: (F, 3) float64 face normals, repeated onto the corners, one bincount an axis."""
    vertices = np.asarray(vertices, dtype=np.float64)
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    face_normal = np.cross(b - a, c - a)
    acc = np.zeros_like(vertices)
    for axis in range(3):
        acc[:, axis] = np.bincount(faces.reshape(-1), weights=np.repeat(face_normal[:, axis], 3),
                                   minlength=len(vertices))
    norm = np.linalg.norm(acc, axis=1)
    valid = norm > 1e-12
    normals = np.zeros_like(acc)
    normals[valid] = acc[valid] / norm[valid, None]
    return normals.astype(np.float32), valid


def _bumpy_scan_mesh(rng, step=0.02, size=(120, 90), offset=(3.0, -2.0, 1.0)):
    """A height field at scan resolution (jittered 2 cm grid, away from the origin) with some vertices in no face,
    duplicated vertices (zero-area faces) and shuffled vertex order: float32 vertices, int32 faces."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] * step
    zz = 0.05 * np.sin(xx * 7) * np.cos(yy * 5) + rng.normal(0, 0.002, xx.shape)
    v = np.stack([xx, yy, zz], axis=-1).reshape(-1, 3) + rng.normal(0, 0.003, (h * w, 3)) + offset
    idx = np.arange(h * w).reshape(h, w)
    quads = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], axis=-1).reshape(-1, 4)
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    faces = faces[rng.random(len(faces)) > 0.02]             # holes; some vertices end up in no face
    faces[:50, 2] = faces[:50, 1]                            # degenerate faces
    perm = rng.permutation(len(v))                           # vertex order of a real file, not the grid's
    inverse = np.argsort(perm)
    return v[perm].astype(np.float32), inverse[faces].astype(np.int32)


def test_voxel_representatives_equal_the_lexsort_reference():
    rng = np.random.default_rng(5)
    clouds = [
        (rng.uniform(-2, 3, (20000, 3)).astype(np.float32), 0.05),
        (np.round(rng.uniform(-1, 1, (5000, 3)), 2), 0.1),          # exact ties on voxel faces and distances
        (_bumpy_scan_mesh(rng)[0], 0.02),
        (grid_box_mesh(ROOM_LO, ROOM_HI, 0.02, inward=True)[0], 0.02),
        (rng.uniform(0, 1, (1, 3)), 0.5),
    ]
    for coord, voxel in clouds:
        got = voxel_representatives(coord, voxel)
        assert got.dtype == np.int64
        assert np.array_equal(got, _lexsort_voxel_representatives(coord, voxel))


def test_mesh_vertex_normals_match_the_float64_reference():
    rng = np.random.default_rng(6)
    bumpy = _bumpy_scan_mesh(rng)  # has vertices in no face or only in degenerate ones
    room = grid_box_mesh(ROOM_LO, ROOM_HI, 0.05, inward=True)
    for (vertices, faces), some_invalid in [(bumpy, True), (room, False)]:
        vertices, faces = np.asarray(vertices, np.float32), np.asarray(faces)
        ref, ref_valid = _float64_vertex_normals(vertices, faces)
        normals, valid = mesh_vertex_normals(vertices, faces)
        assert normals.dtype == np.float32 and np.array_equal(valid, ref_valid)
        assert (not valid.all()) == some_invalid
        assert np.abs(normals - ref).max() < 1e-5
        assert np.all(normals[~valid] == 0)
        normals64, _ = mesh_vertex_normals(vertices.astype(np.float64), faces)
        assert np.abs(normals64 - ref).max() < 1e-6 and normals.flags.c_contiguous
        # only some vertices: the same rows
        at = np.sort(rng.choice(len(vertices), len(vertices) // 3, replace=False))
        normals_at, valid_at = mesh_vertex_normals(vertices, faces, at=at)
        assert np.array_equal(normals_at, normals[at]) and np.array_equal(valid_at, valid[at])


def test_mesh_vertex_normals_without_faces_and_bad_faces():
    vertices = np.zeros((4, 3), np.float32)
    normals, valid = mesh_vertex_normals(vertices, np.zeros((0, 3), np.int32), at=np.array([1, 2]))
    assert normals.shape == (2, 3) and not valid.any()
    with pytest.raises(ValueError, match="vertex indices"):
        mesh_vertex_normals(vertices, np.array([[0, 1, 4]]))

"""Projection, depth test, intrinsics scaling and patch indices of concerto3d.data.correspondence."""

import numpy as np
import pytest
from PIL import Image

from concerto3d.data.correspondence import (
    cells_in_view, depth_lookup, find_correspondences, pixel_to_patch, point_cells, project_points, resample_depth,
    scale_intrinsics_to_size,
)
from rgbd_scenes import Occluder, color_of, intrinsics, look_at, render

K = np.array([[100.0, 0.0, 32.0], [0.0, 100.0, 24.0], [0.0, 0.0, 1.0]])
SIZE = (48, 64)


def _camera_b() -> np.ndarray:
    """A camera at (3.3, 0, 3) looking along world -x: camera x = world +z, y = world +y, z = world -x."""
    pose = np.eye(4)
    pose[:3, 0] = (0, 0, 1)
    pose[:3, 1] = (0, 1, 0)
    pose[:3, 2] = (-1, 0, 0)
    pose[:3, 3] = (3.3, 0, 3)
    return pose


def test_pose_convention_one_point_two_cameras():
    # worked by hand: in camera A (identity) the point is at (0.3, -0.6, 3) -> u = 100*0.1+32, v = 100*-0.2+24;
    # in camera B it is at x = 0, y = -0.6, z = 3.3 - 0.3 = 3 -> u = 32, v = 4
    point = np.array([[0.3, -0.6, 3.0]])
    uv, z, inside = project_points(point, np.eye(4), K, SIZE)
    assert uv.tolist() == [[42, 4]] and z.tolist() == pytest.approx([3.0]) and inside.all()
    uv, z, inside = project_points(point, _camera_b(), K, SIZE)
    assert uv.tolist() == [[32, 4]] and z.tolist() == pytest.approx([3.0]) and inside.all()


def test_rendered_pixel_projects_back_to_itself_in_two_frames():
    # render the room from two poses; the surface point seen at a pixel of frame 1, when visible in frame 2,
    # projects to the frame-2 pixel whose ray hits the same point
    size = (60, 80)
    Kc = intrinsics(80, 60)
    pose1 = look_at([2.0, 1.0, 1.2], [2.2, 3.0, 1.0])
    pose2 = look_at([1.5, 1.2, 1.4], [2.5, 3.0, 0.9])
    depth1, _ = render(pose1, Kc, size)
    depth2, _ = render(pose2, Kc, size)
    v, u = np.mgrid[0:60:7, 0:80:9]
    z = depth1[v, u]
    cam = np.stack([(u - Kc[0, 2]) * z / Kc[0, 0], (v - Kc[1, 2]) * z / Kc[1, 1], z], -1).reshape(-1, 3)
    world = cam @ pose1[:3, :3].T + pose1[:3, 3]
    uv1, _, inside1 = project_points(world, pose1, Kc, size)
    assert inside1.all() and (uv1 == np.stack([u.ravel(), v.ravel()], 1)).all()
    corr = find_correspondences(world, depth2, pose2, Kc, size)
    assert len(corr) > 0.5 * len(world)  # most of the wall is seen by both
    for cu, cv, p in corr:  # the frame-2 ray through (cu, cv) reaches the point within a pixel's footprint
        ray = np.linalg.inv(Kc) @ [cu, cv, 1.0]
        hit = pose2[:3, :3] @ (ray * depth2[cv, cu]) + pose2[:3, 3]
        assert np.linalg.norm(hit - world[p]) < 2 * depth2[cv, cu] / Kc[0, 0] + 1e-3


def test_behind_camera_and_outside_image_are_not_inside():
    points = np.array([[0.0, 0.0, -1.0], [10.0, 0.0, 1.0], [0.0, 0.0, 1e-9], [0.0, 0.0, 2.0]])
    _, _, inside = project_points(points, np.eye(4), K, SIZE)
    assert inside.tolist() == [False, False, False, True]


def test_pixel_edges_follow_the_centre_convention():
    # pixel u covers [u - 0.5, u + 0.5): x = -0.4 -> 0, x = -0.6 -> outside, x = 63.4 -> 63, x = 63.6 -> outside
    xs = np.array([-0.4, -0.6, 63.4, 63.6])
    points = np.stack([(xs - 32.0) / 100.0, np.zeros(4), np.ones(4)], 1)
    uv, _, inside = project_points(points, np.eye(4), K, SIZE)
    assert inside.tolist() == [True, False, True, False]
    assert uv[inside, 0].tolist() == [0, 63]


def test_hidden_points_behind_an_occluder_get_no_correspondence():
    # a wall grid at y = 3 seen from y = 0.5; a box in front hides part of it
    pose = look_at([2.0, 0.5, 1.25], [2.0, 3.0, 1.25])
    size = (60, 80)
    Kc = intrinsics(80, 60, fov_x_deg=60)
    occ = Occluder(np.array([1.6, 1.5, 0.9]), np.array([2.4, 1.8, 1.6]))
    depth, _ = render(pose, Kc, size, occ)
    xs, zs = np.meshgrid(np.linspace(1.0, 3.0, 41), np.linspace(0.5, 2.0, 31))
    wall = np.stack([xs.ravel(), np.full(xs.size, 3.0), zs.ravel()], 1)
    front = np.stack([xs.ravel() * 0.3 + 1.4, np.full(xs.size, 1.5), zs.ravel() * 0.4 + 0.75], 1)
    in_front = (front[:, 0] > 1.62) & (front[:, 0] < 2.38) & (front[:, 2] > 0.92) & (front[:, 2] < 1.58)
    front = front[in_front]  # points on the occluder's face towards the camera
    points = np.concatenate([wall, front])
    corr = find_correspondences(points, depth, pose, Kc, size)
    matched = np.zeros(len(points), bool)
    matched[corr[:, 2]] = True
    # which wall points the box hides: the segment from the camera crosses the occluder's front plane inside it
    t = (1.5 - 0.5) / (wall[:, 1] - 0.5)
    cross = pose[:3, 3] + t[:, None] * (wall - pose[:3, 3])
    hidden = (cross[:, 0] > 1.6) & (cross[:, 0] < 2.4) & (cross[:, 2] > 0.9) & (cross[:, 2] < 1.6)
    margin = ((np.abs(cross[:, 0] - 1.6) < 0.03) | (np.abs(cross[:, 0] - 2.4) < 0.03)
              | (np.abs(cross[:, 2] - 0.9) < 0.03) | (np.abs(cross[:, 2] - 1.6) < 0.03))  # silhouette pixels
    _, _, inside = project_points(wall, pose, Kc, size)
    assert hidden.sum() > 20
    assert not matched[:len(wall)][hidden & ~margin].any()
    assert matched[:len(wall)][inside & ~hidden & ~margin].all()
    assert matched[len(wall):].all()


def test_missing_depth_matches_nothing_and_tolerance_is_respected():
    point = np.array([[0.3, -0.6, 3.0]])  # pixel (42, 4), z = 3
    depth = np.zeros(SIZE, np.float32)
    assert len(find_correspondences(point, depth, np.eye(4), K, SIZE)) == 0
    depth[4, 42] = 3.0 + 0.05 + 0.02 * 3.0 - 1e-4  # just inside abs_tol + rel_tol * z_depth
    assert find_correspondences(point, depth, np.eye(4), K, SIZE).tolist() == [[42, 4, 0]]
    depth[4, 42] = 3.0 + 0.05 + 0.02 * 3.2 + 1e-3  # just outside
    assert len(find_correspondences(point, depth, np.eye(4), K, SIZE)) == 0


def test_several_points_on_one_pixel_are_all_kept():
    points = np.array([[0.0, 0.0, 2.0], [0.001, 0.0, 2.01], [0.0, 0.0, 2.5]])
    depth = np.full(SIZE, 2.0, np.float32)
    corr = find_correspondences(points, depth, np.eye(4), K, SIZE)
    assert corr.tolist() == [[32, 24, 0], [32, 24, 1]]


def test_depth_must_match_the_image_size():
    with pytest.raises(ValueError, match="image size"):
        find_correspondences(np.zeros((1, 3)), np.zeros((10, 10)), np.eye(4), K, SIZE)


def test_scaled_intrinsics_follow_the_resized_image():
    # continuous coordinate x at full size lands at (x + 0.5) * s - 0.5 after resizing
    K_full = np.array([[500.0, 0.0, 319.5], [0.0, 480.0, 239.5], [0.0, 0.0, 1.0]])
    K_small = scale_intrinsics_to_size(K_full, (480, 640), (120, 160))
    assert K_small[0, 0] == 125.0 and K_small[1, 1] == 120.0
    assert K_small[0, 2] == pytest.approx(79.5) and K_small[1, 2] == pytest.approx(59.5)
    # a textured image rendered at full size, resized with PIL, matches a rendering at the small size
    pose = look_at([2.0, 0.8, 1.2], [2.2, 3.0, 1.0])
    K_big = intrinsics(320, 240)
    _, big = render(pose, K_big, (240, 320))
    resized = np.asarray(Image.fromarray(big).resize((80, 60), Image.BILINEAR)).astype(int)
    _, small = render(pose, scale_intrinsics_to_size(K_big, (240, 320), (60, 80)), (60, 80))
    assert np.abs(resized - small.astype(int))[2:-2, 2:-2].mean() < 3
    # the plain scaling (cx * s) is off by (1 - s) / 2 = 3/8 pixel here: measurably worse
    K_plain = K_big.copy()
    K_plain[:2] *= 0.25
    _, plain = render(pose, K_plain, (60, 80))
    error_exact = np.abs(resized - small.astype(int))[2:-2, 2:-2].mean()
    assert np.abs(resized - plain.astype(int))[2:-2, 2:-2].mean() > error_exact


def test_resample_depth_through_another_camera():
    pose = look_at([2.0, 0.8, 1.2], [2.2, 3.0, 1.0])
    K_depth = intrinsics(64, 48, fov_x_deg=60)
    K_color = intrinsics(80, 60, fov_x_deg=75)  # wider than the depth camera: its border has no depth
    depth, _ = render(pose, K_depth, (48, 64))
    truth, _ = render(pose, K_color, (60, 80))
    out = resample_depth(depth, K_depth, K_color, (60, 80))
    assert out.shape == (60, 80) and out.dtype == np.float32
    assert (out[:, 0] == 0).all() and (out[:, -1] == 0).all()  # outside the depth camera's view
    covered = out > 0
    assert covered[20:40, 25:55].all()
    # nearest neighbour: within one depth pixel's footprint of the exact depth
    assert np.abs(out[covered] - truth[covered]).max() < 0.05 * truth.max()
    flat, valid = depth_lookup(K_depth, (48, 64), K_color, (60, 80))
    assert np.array_equal(resample_depth(depth, K_depth, K_color, (60, 80), lookup=(flat, valid)), out)


def test_pixel_to_patch():
    assert pixel_to_patch(0, 0, 320, 16) == 0
    assert pixel_to_patch(15, 15, 320, 16) == 0
    assert pixel_to_patch(16, 0, 320, 16) == 1
    assert pixel_to_patch(0, 16, 320, 16) == 20
    assert pixel_to_patch(319, 239, 320, 16) == 14 * 20 + 19  # the last of 15 x 20 patches
    u, v = np.array([3, 40]), np.array([17, 0])
    assert pixel_to_patch(u, v, 64, 16).tolist() == [4, 2]
    with pytest.raises(ValueError, match="divisor"):
        pixel_to_patch(0, 0, 100, 16)


def test_colour_of_projected_points_matches_the_rendered_image():
    pose = look_at([1.0, 1.0, 1.5], [3.0, 2.5, 0.5])
    Kc = intrinsics(80, 60)
    depth, color = render(pose, Kc, (60, 80))
    rng = np.random.default_rng(0)
    points = np.concatenate([
        np.stack([rng.uniform(0, 4, 300), np.full(300, 3.0), rng.uniform(0, 2.5, 300)], 1),  # back wall
        np.stack([rng.uniform(0, 4, 300), rng.uniform(0, 3, 300), np.zeros(300)], 1),  # floor
    ])
    corr = find_correspondences(points, depth, pose, Kc, (60, 80))
    assert len(corr) > 50
    diff = np.abs(color[corr[:, 1], corr[:, 0]].astype(int) - color_of(points[corr[:, 2]]).astype(int))
    assert np.median(diff) < 6 and diff.max() < 40


def _reference_correspondences(coord, depth, pose, K, abs_tol=0.05, rel_tol=0.02):
    """One point at a time, straight from the definition (slow reference)."""
    h, w = depth.shape
    world_to_cam = np.linalg.inv(pose)
    rows = []
    for i, p in enumerate(coord):
        x, y, z = world_to_cam[:3, :3] @ p + world_to_cam[:3, 3]
        if z <= 1e-6:
            continue
        u = int(np.floor(K[0, 0] * x / z + K[0, 1] * y / z + K[0, 2] + 0.5))
        v = int(np.floor(K[1, 1] * y / z + K[1, 2] + 0.5))
        if 0 <= u < w and 0 <= v < h and depth[v, u] > 0 and abs(z - depth[v, u]) <= abs_tol + rel_tol * depth[v, u]:
            rows.append((u, v, i))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


@pytest.mark.parametrize("seed", range(5))
def test_find_correspondences_matches_the_slow_reference(seed):
    rng = np.random.default_rng(seed)
    pose = look_at(rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3) + [0, 0, 3], up=rng.normal(size=3))
    Kr = intrinsics(40, 30, fov_x_deg=rng.uniform(40, 100))
    cam = rng.uniform(-1, 1, (400, 3)) * [3, 3, 5]  # mostly in front, some behind, some outside the view
    coord = cam @ pose[:3, :3].T + pose[:3, 3]
    depth = rng.uniform(0, 4, (30, 40)).astype(np.float32)
    depth[rng.random((30, 40)) < 0.2] = 0
    # make about half the points that land in the image agree with the depth map
    uv, z, inside = project_points(coord, pose, Kr, (30, 40))
    agree = np.flatnonzero(inside)[::2]
    depth[uv[agree, 1], uv[agree, 0]] = z[agree] + rng.uniform(-0.08, 0.08, len(agree))
    fast = find_correspondences(coord, depth, pose, Kr, (30, 40))
    assert np.array_equal(fast, _reference_correspondences(coord, depth, pose, Kr))
    assert len(fast) > 5  # not a vacuous comparison


@pytest.mark.parametrize("seed", range(3))
def test_find_correspondences_equals_project_points_and_the_depth_test(seed):
    """The staged arithmetic of find_correspondences (z, then the row, then the column, each on the points still in
    the running) gives exactly the rows of project_points' all-points arithmetic plus the depth test."""
    rng = np.random.default_rng(seed)
    pose = look_at(rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3) + [0, 0, 3], up=rng.normal(size=3))
    K = intrinsics(64, 48, fov_x_deg=rng.uniform(40, 100))
    K[0, 1] = rng.uniform(-2, 2)  # a skewed camera: the column depends on y too
    cam = rng.uniform(-1, 1, (20000, 3)) * [4, 4, 6]
    coord = np.asfortranarray(cam @ pose[:3, :3].T + pose[:3, 3])
    uv, z, inside = project_points(coord, pose, K, (48, 64))
    depth = np.zeros((48, 64), np.float32)
    hit = np.flatnonzero(inside)
    depth[uv[hit, 1], uv[hit, 0]] = z[hit] + rng.uniform(-0.1, 0.1, len(hit))  # some pass the test, some do not
    depth[rng.random((48, 64)) < 0.1] = 0
    z_depth = depth[uv[hit, 1], uv[hit, 0]].astype(np.float64)
    ok = (z_depth > 0) & (np.abs(z[hit] - z_depth) <= 0.05 + 0.02 * z_depth)
    expected = np.stack([uv[hit[ok], 0], uv[hit[ok], 1], hit[ok]], axis=1)
    got = find_correspondences(coord, depth, pose, K, (48, 64))
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert len(got) > 100


def _room_cloud_and_cameras(rng, n=30000, frames=6):
    """Points on the walls of a 6 x 4 x 3 m room and cameras inside it looking about (some tilted, one skewed)."""
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array([6.0, 4.0, 3.0])
    points = rng.uniform(lo, hi, (n, 3))
    wall = rng.integers(0, 6, n)
    points[np.arange(n), wall % 3] = np.where(wall < 3, lo[wall % 3], hi[wall % 3])
    cameras = []
    for i in range(frames):
        eye = rng.uniform([1, 1, 0.5], [5, 3, 2.5])
        pose = look_at(eye, eye + rng.normal(size=3) * [1, 1, 0.3], up=(0, 0, 1))
        K = intrinsics(64, 48, fov_x_deg=rng.uniform(50, 100))
        if i == 0:
            K[0, 1] = 3.0
        cameras.append((pose, K))
    return points, cameras


@pytest.mark.parametrize("size, max_cells", [(0.5, 4096), (0.1, 4096), (2.0, 4096), (0.5, 6)])
def test_cells_never_drop_a_point_that_projects_into_the_image(size, max_cells):
    rng = np.random.default_rng(11)
    points, cameras = _room_cloud_and_cameras(rng)
    cells = point_cells(points, size=size, max_cells=max_cells)
    assert len(cells.centres) <= max_cells and cells.cell.max() < len(cells.centres)
    dropped = 0
    for pose, K in cameras:
        seen = cells_in_view(cells, pose, K, (48, 64))
        _, _, inside = project_points(points, pose, K, (48, 64))
        assert seen[cells.cell[inside]].all()
        dropped += (~seen[cells.cell]).mean()
        depth = np.full((48, 64), 3.0, np.float32)
        depth[::3] = 0
        plain = find_correspondences(points, depth, pose, K, (48, 64), abs_tol=2.0, rel_tol=0.5)
        culled = find_correspondences(points, depth, pose, K, (48, 64), abs_tol=2.0, rel_tol=0.5, cells=cells)
        assert len(plain) > 50 and np.array_equal(plain, culled)
    if size <= 0.5 and max_cells > 6:
        assert dropped / len(cameras) > 0.3  # the cull does cut work


def test_cells_of_other_points_are_refused():
    cells = point_cells(np.zeros((5, 3)))
    assert len(cells.centres) == 1
    with pytest.raises(ValueError, match="cells"):
        find_correspondences(np.zeros((4, 3)), np.zeros(SIZE), np.eye(4), K, SIZE, cells=cells)

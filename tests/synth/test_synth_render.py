"""Rendering of synthetic scenes: depth agrees with the mesh, colour with its vertex colours, holes exist."""

import numpy as np
import pytest

pytest.importorskip("open3d")

from concerto3d.synth.mesh import build_mesh  # noqa: E402
from concerto3d.synth.render import DepthNoise, Renderer, camera_path, look_at, scannet_intrinsics  # noqa: E402
from concerto3d.synth.room import sample_scene  # noqa: E402

COLOR_SIZE, DEPTH_SIZE = (160, 120), (80, 60)


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng([3, 1])
    scene = sample_scene(rng)
    mesh = build_mesh(scene)
    renderer = Renderer(scene)
    poses = camera_path(scene, 3, rng)
    return scene, mesh, renderer, poses


def _nearest(points: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of the nearest of ``points`` to each query, through Open3D's kd-tree."""
    import open3d as o3d

    nns = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(points.astype(np.float32)))
    nns.knn_index()
    idx, d2 = nns.knn_search(o3d.core.Tensor(queries.astype(np.float32)), 1)
    return np.sqrt(d2.numpy()[:, 0]), idx.numpy()[:, 0]


def _back_project(depth_m: np.ndarray, K: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.nonzero(depth_m > 0)
    z = depth_m[v, u]
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
    return cam @ pose[:3, :3].T + pose[:3, 3], np.stack([v, u], axis=1)


def test_intrinsics_scale_with_the_image():
    K = scannet_intrinsics((1296, 968), "color")
    assert abs(K[0, 0] - 1170) < 5 and abs(K[0, 2] - 648) < 5
    Kd = scannet_intrinsics((320, 240), "depth")
    assert abs(Kd[0, 0] - 577.9 / 2) < 1e-9 and abs(Kd[1, 2] - 239.5 / 2) < 1e-9


def test_camera_path_is_at_eye_height_and_smooth(world):
    scene, _, _, _ = world
    poses = camera_path(scene, 20, np.random.default_rng(0))
    assert poses.shape == (20, 4, 4)
    for pose in poses:
        R = pose[:3, :3]
        assert np.allclose(R.T @ R, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(R), 1.0)
        assert 1.3 <= pose[2, 3] <= 1.7
        assert R[2, 2] < 0.05  # looking level or down (z forward has no upward part)
        assert R[2, 1] < 0     # image y (down) points down in the world
    steps = np.linalg.norm(np.diff(poses[:, :2, 3], axis=0), axis=1)
    assert steps.max() < 1.0
    lx, ly, _ = scene.size
    xy = poses[:, :2, 3]
    assert np.all((xy > 0.3) & (xy < np.array([lx, ly]) - 0.3))


def test_depth_agrees_with_the_mesh(world):
    _, mesh, renderer, poses = world
    K = scannet_intrinsics(DEPTH_SIZE, "depth")
    for i, pose in enumerate(poses):
        exact = renderer.render_depth(pose, K, DEPTH_SIZE, None).astype(np.float64) / 1000.0
        assert (exact > 0).mean() > 0.5
        pts, _ = _back_project(exact, K, pose)
        dist, _ = _nearest(mesh.vertices, pts)
        assert np.quantile(dist, 0.99) < 0.02  # 1.8 cm grid: at most ~1.3 cm to a vertex, plus mm rounding
        noisy = renderer.render_depth(pose, K, DEPTH_SIZE, np.random.default_rng(i)).astype(np.float64) / 1000.0
        both = (noisy > 0) & (exact > 0)
        err = (noisy - exact)[both]
        sigma = 1.5e-3 * exact[both] ** 2
        assert np.abs(err).max() > 0                  # there is noise ...
        assert np.mean(np.abs(err) < 4 * sigma + 1e-3) > 0.99  # ... of the Kinect size


def test_depth_has_holes(world):
    scene, _, renderer, poses = world
    K = scannet_intrinsics(DEPTH_SIZE, "depth")
    holes = [(renderer.render_depth(p, K, DEPTH_SIZE, np.random.default_rng(k)) == 0).mean()
             for k, p in enumerate(poses)]
    assert min(holes) > 0.0
    # too far: a camera in a corner looking at the opposite corner of the room (> 4.5 m away) sees nothing there
    lx, ly, h = scene.size
    far = look_at(np.array([0.3, 0.3, 1.5]), np.array([lx, ly, 1.0]))
    depth = renderer.render_depth(far, K, DEPTH_SIZE, None, DepthNoise(max_range=2.0))
    assert depth[DEPTH_SIZE[1] // 2, DEPTH_SIZE[0] // 2] == 0
    # grazing: from 10 cm under the ceiling, looking level, the rows that see the ceiling 4 degrees up (1.4 m away,
    # 4 degrees between ray and surface) have depth without faults and lose it with them
    eye = np.array([lx / 2, ly / 2, h - 0.1])
    level = look_at(eye, eye + [1.0, 0.0, 0.0])
    row = int(round(K[1, 2] - K[1, 1] * np.tan(np.radians(4.0))))
    centre = slice(DEPTH_SIZE[0] // 2 - 5, DEPTH_SIZE[0] // 2 + 5)
    exact = renderer.render_depth(level, K, DEPTH_SIZE, None)
    noisy = renderer.render_depth(level, K, DEPTH_SIZE, np.random.default_rng(0))
    assert np.all(exact[row, centre] > 0) and np.all(noisy[row, centre] == 0)


def test_colour_pixels_match_the_vertex_colours_of_their_object(world):
    scene, mesh, renderer, poses = world
    K = scannet_intrinsics(COLOR_SIZE, "color")
    matched = 0
    for pose in poses:
        image, objects = renderer.render_color(pose, K, COLOR_SIZE, return_objects=True)
        assert image.shape == (COLOR_SIZE[1], COLOR_SIZE[0], 3) and image.dtype == np.uint8
        z, _, _ = renderer.cast(pose, K, COLOR_SIZE)
        depth = np.where(np.isfinite(z), z, 0.0)
        pts, vu = _back_project(depth, K, pose)
        dist, idx = _nearest(mesh.vertices, pts)
        labelled = objects[vu[:, 0], vu[:, 1]]
        assert np.mean(mesh.object_index[idx] == labelled) > 0.97  # the pixel's object owns the nearest vertex
        diff = np.abs(image[vu[:, 0], vu[:, 1]].astype(int) - mesh.colors[idx].astype(int)).mean(axis=1)
        assert np.median(diff) < 8 and np.quantile(diff, 0.9) < 30
        matched += len(pts)
    assert matched > 0.9 * 3 * COLOR_SIZE[0] * COLOR_SIZE[1]


def test_images_carry_texture_the_mesh_colours_lose(world):
    scene, mesh, renderer, _ = world
    # a close, frontal look at a picture: high-resolution pixels vary, its vertex colours hardly do
    k = next(i for i, o in enumerate(scene.objects) if o.category == "picture")
    box = scene.objects[k].parts[0].box
    normal = box.rotation @ np.array([0.0, 1.0, 0.0])
    pose = look_at(box.center + 0.18 * normal, box.center)  # inside the picture's keep-out zone: nothing between
    size = (320, 240)
    image, objects = renderer.render_color(pose, scannet_intrinsics((1296, 968), "color") * [[0.25], [0.25], [1]],
                                           size, return_objects=True)
    window = (slice(size[1] // 2 - 32, size[1] // 2 + 32), slice(size[0] // 2 - 32, size[0] // 2 + 32))  # ~4 cm
    assert np.all(objects[window] == k)
    pixels = image[window].reshape(-1, 3).astype(float)
    front = (mesh.object_index == k) & (np.abs(mesh.normals @ normal - 1) < 1e-6)
    near = front & (np.linalg.norm(mesh.vertices - box.center - normal * box.size[1] / 2, axis=1) < 0.02)
    vertices = mesh.colors[near].astype(float)
    assert len(vertices) >= 4
    assert pixels.std(axis=0).mean() > 8 and vertices.std(axis=0).mean() < 2
    assert np.abs(pixels.mean(axis=0) - vertices.mean(axis=0)).max() < 12


def test_sparse_cast_matches_one_ray_per_pixel(world):
    _, _, renderer, poses = world
    size = (331, 247)  # odd sizes: the last row and column have no sample cell
    K = scannet_intrinsics(size, "color")
    for pose in poses:
        z, face, dirs = renderer.cast(pose, K, size)
        zs, fs = renderer.cast_sparse(pose, K, size)
        assert np.mean(face == fs) > 0.998
        same = face == fs
        assert np.allclose(zs[same], z[same], rtol=1e-4, atol=1e-4)

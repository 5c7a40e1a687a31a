import numpy as np
import pytest

from concerto3d.visualization import render
from concerto3d.visualization.render import fit_camera, project, render_point_cloud, render_views

SIZE = (160, 120)


def two_blocks():
    """A red block on the left (x < 0) and a blue block on the right, on a grey floor."""
    g = np.linspace(-1, 1, 30)
    xx, yy = np.meshgrid(g, g)
    floor = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size)], axis=1)
    rng = np.random.default_rng(0)
    left = rng.uniform([-0.8, -0.3, 0], [-0.3, 0.3, 0.5], (400, 3))
    right = rng.uniform([0.3, -0.3, 0], [0.8, 0.3, 0.5], (400, 3))
    coord = np.concatenate([floor, left, right])
    colors = np.concatenate([np.full((len(floor), 3), 0.6), np.tile([1.0, 0, 0], (400, 1)),
                             np.tile([0, 0, 1.0], (400, 1))])
    return coord, colors


def check_image(image, coord, colors):
    assert image.shape == (SIZE[1], SIZE[0], 3) and image.dtype == np.uint8
    assert image.reshape(-1, 3).std(axis=0).sum() > 10  # not blank
    red = (image[..., 0] > 180) & (image[..., 1] < 80) & (image[..., 2] < 80)
    blue = (image[..., 2] > 180) & (image[..., 0] < 80) & (image[..., 1] < 80)
    assert red.sum() > 20 and blue.sum() > 20
    # the camera looks from -y (azimuth -60 deg), z up: the red block (x < 0) is on the left of the image
    assert np.argwhere(red)[:, 1].mean() < np.argwhere(blue)[:, 1].mean()
    # ... where the pinhole projection of the same camera puts it
    px, _ = project(coord[colors[:, 0] == 1.0], fit_camera(coord), SIZE)
    assert abs(np.argwhere(red)[:, 1].mean() - px[:, 0].mean()) < 0.1 * SIZE[0]


def test_open3d_offscreen_render():
    if render.renderer_backend(SIZE) != "open3d":
        pytest.skip(f"Open3D's offscreen renderer cannot start here: {render._OPEN3D_FAILED}")
    coord, colors = two_blocks()
    image = render_point_cloud(coord, colors, size=SIZE, point_size=4)
    check_image(image, coord, colors)


def test_matplotlib_fallback_uses_the_same_camera(monkeypatch):
    monkeypatch.setenv("CONCERTO3D_RENDERER", "matplotlib")
    coord, colors = two_blocks()
    images = render_views(coord, [colors, colors[:, ::-1]], size=SIZE, point_size=3)
    check_image(images[0], coord, colors)
    assert not np.array_equal(images[0], images[1])


def test_camera_sees_the_whole_cloud_from_45_degrees():
    coord, _ = two_blocks()
    cam = fit_camera(coord)
    view = np.subtract(cam.center, cam.eye)
    assert np.degrees(np.arcsin(-view[2] / np.linalg.norm(view))) == pytest.approx(45.0)
    px, depth = project(coord, cam, SIZE)
    assert (depth > 0).all()
    assert (px >= 0).all() and (px[:, 0] < SIZE[0]).all() and (px[:, 1] < SIZE[1]).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        render_point_cloud(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="colours"):
        render_views(np.zeros((4, 3)), [np.zeros((3, 3))])


def test_dollhouse_culling_hides_the_ceiling_and_near_wall_seen_from_outside():
    g = np.linspace(0, 4, 9)
    xx, yy = np.meshgrid(g, g)
    flat = np.stack([xx.ravel(), yy.ravel()], axis=1)
    floor = np.column_stack([flat, np.zeros(len(flat))])
    ceiling = np.column_stack([flat, np.full(len(flat), 2.5)])
    near_wall = np.column_stack([flat[:, 0], np.zeros(len(flat)), flat[:, 1] * 2.5 / 4])  # y = 0, camera at -y
    far_wall = near_wall + [0, 4, 0]
    coord = np.concatenate([floor, ceiling, near_wall, far_wall])
    # normals point into the room
    normal = np.concatenate([np.tile([0, 0, 1.0], (81, 1)), np.tile([0, 0, -1.0], (81, 1)),
                             np.tile([0, 1.0, 0], (81, 1)), np.tile([0, -1.0, 0], (81, 1))])
    shown = render.facing_camera(coord, normal, fit_camera(coord))
    assert shown[:81].all() and not shown[81:162].any() and not shown[162:243].any() and shown[243:].all()
    assert render.facing_camera(coord, np.zeros_like(coord), fit_camera(coord)).all()  # unknown normals: keep

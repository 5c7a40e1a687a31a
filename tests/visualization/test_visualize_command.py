"""``concerto3d visualize`` end to end on a hand-made scene, with a stand-in for the trained model."""

import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from concerto3d.cli import main
from concerto3d.visualization.command import frame_overlay, reprojection


class StandInModel:
    def __init__(self):
        self.point_encoder = torch.nn.Linear(3, 3)

    def embed(self, points, colors=None, normals=None):
        assert not self.point_encoder.training
        return np.concatenate([points, np.sin(3 * points), colors / 255.0], axis=1).astype(np.float32)


def look_at(eye, target):
    """camera-to-world (4, 4), OpenCV axes (x right, y down, z forward), z up in the world."""
    z = np.subtract(target, eye).astype(float)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, y, z], axis=1)
    pose[:3, 3] = eye
    return pose


@pytest.fixture()
def scene(tmp_path):
    rng = np.random.default_rng(0)
    n = 800
    coord = np.concatenate([rng.uniform(-1, 1, (n, 2)), rng.uniform(0, 0.3, (n, 1))], axis=1).astype(np.float32)
    labels = np.where(coord[:, 2] < 0.15, 1, 4).astype(np.int16)
    d = tmp_path / "scene0000_00"
    (d / "images").mkdir(parents=True)
    np.save(d / "coord.npy", coord)
    np.save(d / "color.npy", (np.abs(coord) * 200).astype(np.uint8))
    np.save(d / "normal.npy", np.tile(np.float32([0, 0, 1]), (n, 1)))
    np.save(d / "segment20.npy", labels)
    w, h = 64, 48
    K = np.array([[40.0, 0, w / 2], [0, 40.0, h / 2], [0, 0, 1]])
    pose = look_at([0, -2.5, 2.0], [0, 0, 0])
    uv, depth = reprojection(coord, pose, K)
    ok = (depth > 0) & (uv[:, 0] >= -0.5) & (uv[:, 0] < w - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < h - 0.5)
    pixels = np.floor(uv[ok] + 0.5)  # pixel centres at integer coordinates (data/README.md §3)
    corr = np.stack([np.zeros(ok.sum()), pixels[:, 0], pixels[:, 1], np.flatnonzero(ok)], axis=1)
    np.save(d / "correspondences.npy", corr.astype(np.int32))
    np.save(d / "poses.npy", pose[None].astype(np.float32))
    np.save(d / "intrinsics.npy", K[None].astype(np.float32))
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / "images" / "000000.jpg")
    return d


@pytest.fixture()
def stand_in(monkeypatch):
    fake = types.ModuleType("concerto3d.inference")
    fake.load_model = lambda run, device="cpu": StandInModel()
    monkeypatch.setitem(sys.modules, "concerto3d.inference", fake)


def test_visualize_writes_panel_ply_and_frame_check(scene, tmp_path, stand_in, capsys):
    out = tmp_path / "out" / "panel.png"
    ply = tmp_path / "out" / "pca.ply"
    code = main(["visualize", str(scene), "--model", "RUN", "--out", str(out), "--ply", str(ply), "--frame", "0",
                 "--tile-size", "160x120", "--query", "3"])
    assert code == 0
    panel = Image.open(out)
    assert panel.size == (4 * 160, 28 + 120 + 90)
    import open3d as o3d

    cloud = o3d.io.read_point_cloud(str(ply))
    assert len(cloud.points) == 800 and cloud.has_colors()
    frame_png = tmp_path / "out" / "panel_frame000000.png"
    assert frame_png.is_file()
    assert "median reprojection offset" in capsys.readouterr().out


def test_frame_check_measures_alignment(scene, tmp_path):
    coord = np.load(scene / "coord.npy")
    assert frame_overlay(scene, coord, 0, tmp_path / "a.png") < 0.75  # rounded projections
    corr = np.load(scene / "correspondences.npy")
    corr[:, 1] += 5  # a misaligned set: 5 px to the right
    np.save(scene / "correspondences.npy", corr)
    assert frame_overlay(scene, coord, 0, tmp_path / "b.png") > 4.0


def test_frame_alone_needs_no_model(scene, tmp_path, monkeypatch, capsys):
    fake = types.ModuleType("concerto3d.inference")
    fake.load_model = None  # calling it would fail
    monkeypatch.setitem(sys.modules, "concerto3d.inference", fake)
    monkeypatch.chdir(tmp_path)
    assert main(["visualize", str(scene), "--model", "RUN", "--frame", "0"]) == 0
    assert (tmp_path / "scene0000_00_frame000000.png").is_file()


def test_interactive_without_display_says_so_and_fails(scene, stand_in, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["visualize", str(scene), "--model", "RUN", "--interactive"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "display" in err


@pytest.mark.parametrize("extra, message", [
    (["--query", "800"], "--query"),
    (["--frame", "3"], "--frame"),
    (["--tile-size", "big"], "--tile-size"),
])
def test_bad_arguments_exit_2(scene, tmp_path, stand_in, capsys, extra, message):
    assert main(["visualize", str(scene), "--model", "RUN", "--out", str(tmp_path / "p.png"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_nothing_to_do_and_missing_scene(scene, tmp_path, stand_in, capsys):
    assert main(["visualize", str(scene), "--model", "RUN"]) == 2
    assert main(["visualize", str(tmp_path / "missing"), "--model", "RUN", "--out", "x.png"]) == 2


class FakeViewControl:
    def __init__(self):
        self.view = {}

    def __getattr__(self, name):  # set_lookat, set_front, set_up, set_zoom: remember the value
        if not name.startswith("set_"):
            raise AttributeError(name)
        return lambda value: self.view.__setitem__(name[4:], np.asarray(value, dtype=float))


def fake_windows(monkeypatch, presses, picks):
    """Replace Open3D's windows by fakes: each key window presses the keys of the next entry of ``presses``; each
    picking window returns the next entry of ``picks`` (indices into the cloud it was given). Returns the list of
    (points, colours, view) on screen when each key window closes."""
    import open3d as o3d

    shown = []

    class FakeKeyWindow:
        def create_window(self, *args):
            self.callbacks, self.control = {}, FakeViewControl()
            return True

        def register_key_callback(self, key, callback):
            self.callbacks[key] = callback

        def add_geometry(self, cloud):
            self.cloud = cloud

        def update_geometry(self, cloud):
            pass

        def get_view_control(self):
            return self.control

        def close(self):
            pass

        def run(self):
            for key in presses.pop(0):
                self.callbacks[ord(key)](self)
            shown.append((np.asarray(self.cloud.points).copy(), np.asarray(self.cloud.colors).copy(),
                          self.control.view))

        def destroy_window(self):
            pass

    class FakeEditor(FakeKeyWindow):
        def run(self):
            self.points = np.asarray(self.cloud.points).copy()

        def get_picked_points(self):
            return picks.pop(0)

    monkeypatch.setattr(o3d.visualization, "VisualizerWithKeyCallback", FakeKeyWindow)
    monkeypatch.setattr(o3d.visualization, "VisualizerWithEditing", FakeEditor)
    return shown


def test_interactive_viewer_switches_colourings_and_picks_a_query(monkeypatch):
    """Keys 2 (labels), P (pick), then shift-click point 7; no normals, so nothing is cut away."""
    from concerto3d.visualization.command import interactive_view
    from concerto3d.visualization.pca import similarity_colors

    shown = fake_windows(monkeypatch, presses=[["2", "P"], []], picks=[[7]])
    rng = np.random.default_rng(0)
    coord, feats = rng.normal(size=(20, 3)), rng.normal(size=(20, 5))
    colorings = {name: rng.uniform(size=(20, 3)).astype(np.float32) for name in ("input", "labels", "pca")}
    colorings["similarity"] = similarity_colors(feats, 0)
    assert interactive_view(coord, np.zeros((20, 3)), feats, colorings, 0)
    np.testing.assert_allclose(shown[0][1], colorings["labels"], atol=1e-6)  # key 2
    np.testing.assert_allclose(shown[1][1], similarity_colors(feats, 7), atol=1e-6)  # after picking point 7


def box_room(n_side=6):
    """Floor (z=0, normals up) and ceiling (z=2, normals down) of a 4 x 3 m room: (coord, normal, is_ceiling)."""
    x, y = np.meshgrid(np.linspace(0, 4, n_side), np.linspace(0, 3, n_side))
    floor = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    ceiling = floor + [0, 0, 2.0]
    coord = np.concatenate([floor, ceiling])
    normal = np.concatenate([np.tile([0, 0, 1.0], (len(floor), 1)), np.tile([0, 0, -1.0], (len(ceiling), 1))])
    return coord, normal, np.arange(len(coord)) >= len(floor)


def test_interactive_viewer_starts_at_the_panel_camera_with_the_ceiling_cut_away(monkeypatch, capsys):
    """First view: the panel's camera, ceiling left out; C brings it back, C again hides it; a pick in the cut-away
    cloud becomes the index of that point in the whole scene."""
    from concerto3d.visualization.command import WINDOW_SIZE, interactive_view, view_control_parameters
    from concerto3d.visualization.pca import similarity_colors
    from concerto3d.visualization.render import fit_camera

    coord, normal, ceiling = box_room()
    n = len(coord)
    feats = np.concatenate([coord, np.cos(coord)], axis=1)
    colorings = {"input": np.tile(np.float32([0.5, 0.5, 0.5]), (n, 1)), "similarity": np.zeros((n, 3))}
    shown = fake_windows(monkeypatch, presses=[[], ["C", "P"], ["C", "P"], []], picks=[[], [2]])
    # the first call: Q at once. The second: C (everything) and P, no pick; C (cut again) and P, pick the cut
    # cloud's point 2; Q
    assert interactive_view(coord, normal, feats, colorings, 0)
    points, _, view = shown[0]
    assert len(points) == (~ceiling).sum()
    np.testing.assert_allclose(points, coord[~ceiling])
    camera = fit_camera(coord, aspect=WINDOW_SIZE[0] / WINDOW_SIZE[1])
    expected = view_control_parameters(camera, float(np.ptp(coord[~ceiling], axis=0).max()))
    for key in ("front", "lookat", "up", "zoom"):
        np.testing.assert_allclose(view[key], expected[key])
    assert view["front"][2] > 0.5  # the eye is above the room, looking down

    shown.clear()
    assert interactive_view(coord, normal, feats, colorings, 0)
    assert len(shown[0][0]) == n  # after C: the ceiling is back
    assert len(shown[1][0]) == (~ceiling).sum()  # C again
    query = np.flatnonzero(~ceiling)[2]  # point 2 of the cut-away cloud
    np.testing.assert_allclose(shown[2][1], similarity_colors(feats, query)[~ceiling], atol=1e-6)
    assert f"query point: {query}" in capsys.readouterr().out


def test_no_cull_draws_every_point(monkeypatch):
    from concerto3d.visualization.command import interactive_view

    coord, normal, _ = box_room()
    colorings = {"input": np.full((len(coord), 3), 0.5), "similarity": np.zeros((len(coord), 3))}
    shown = fake_windows(monkeypatch, presses=[[]], picks=[])
    assert interactive_view(coord, normal, np.ones((len(coord), 2)), colorings, 0, cull=False)
    assert len(shown[0][0]) == len(coord)


def test_view_control_parameters_reproduce_the_camera():
    """Open3D's eye is lookat + front * zoom * extent / tan(fov / 2): at any Open3D field of view the view shows
    the same height at the looked-at point as the panel's camera."""
    from concerto3d.visualization.command import view_control_parameters
    from concerto3d.visualization.render import Camera

    camera = Camera(center=(1.0, 2.0, 0.5), eye=(1.0, -1.0, 4.5), fov_deg=50.0)
    view = view_control_parameters(camera, extent=6.0)
    distance = 5.0
    np.testing.assert_allclose(view["lookat"] + view["front"] * distance, camera.eye)
    np.testing.assert_allclose(view["up"], [0, 0, 1])
    for fov in (30.0, 60.0):
        o3d_distance = view["zoom"] * 6.0 / np.tan(np.radians(fov) / 2)
        np.testing.assert_allclose(o3d_distance * np.tan(np.radians(fov) / 2), distance * np.tan(np.radians(25)))


def test_visualize_writes_a_self_contained_html_viewer(scene, tmp_path, stand_in, capsys):
    html = tmp_path / "out" / "view.html"
    assert main(["visualize", str(scene), "--model", "RUN", "--html", str(html), "--query", "3"]) == 0
    text = html.read_text()
    assert "800 of 800 points" in capsys.readouterr().out
    assert '<script src="http' not in text and "Plotly.newPlot" in text and len(text) > 1_000_000  # plotly.js inlined
    for name in ("PCA of features", "input colours", "labels", "similarity to point 3"):
        assert name in text
    assert "800 of 800 points" in text


def test_html_viewer_subsamples_large_clouds_and_keeps_the_colours_of_the_points_shown(tmp_path):
    from concerto3d.visualization.html import write_html_viewer

    rng = np.random.default_rng(1)
    coord = rng.uniform(0, 5, (5000, 3))
    red = np.zeros((5000, 3))
    red[:, 0] = np.linspace(0, 1, 5000)
    shown = write_html_viewer(tmp_path / "v.html", coord, {"ramp": red, "grey": np.full((5000, 3), 0.5)},
                              max_points=1200, title="room", marked=7)
    text = (tmp_path / "v.html").read_text()
    assert shown == 1200 and "room: 1,200 of 5,000 points (random subsample)" in text
    rows = np.sort(np.random.default_rng(0).choice(5000, size=1200, replace=False))  # the viewer's seeded subsample
    ramp = ['"#%02x0000"' % int(round(v * 255)) for v in red[rows, 0]]
    assert ",".join(ramp[:50]) in text  # the shown points' own colours, in order
    assert "#808080" in text and "query point" in text
    with pytest.raises(ValueError, match="shape"):
        write_html_viewer(tmp_path / "w.html", coord, {"bad": red[:10]})

"""Generic RGB-D folders: 7-Scenes and TUM presets, explicit patterns, natural sort, skips."""

import numpy as np
import pytest
from PIL import Image

from concerto3d.errors import FormatError, InputError
from concerto3d.io.frames import FrameSkip, RGBDFrame
from concerto3d.io.geometry_files import write_matrix
from concerto3d.io.images import write_color_png, write_depth_png
from concerto3d.io.rgbd_folder import RGBDFolderSource, looks_like_rgbd_folder, natural_key


def pose(i):
    p = np.eye(4)
    c, s = np.cos(0.2 * i), np.sin(0.2 * i)
    p[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    p[:3, 3] = [0.1 * i, 0.2, -0.3 * i]
    return p


def make_7scenes(seq, n, skip_depth=()):
    seq.mkdir(parents=True)
    (seq.parent / "camera-intrinsics.txt").write_text("585 0 320\n0 585 240\n0 0 1\n")  # scene-level file
    depths, colors = [], []
    for i in range(n):
        color = np.full((24, 32, 3), (i, 2 * i, 3 * i), np.uint8)
        depth = np.full((24, 32), 1500 + i, np.uint16)
        depth[0, 0] = 0
        write_color_png(seq / f"frame-{i:06d}.color.png", color)
        if i not in skip_depth:
            write_depth_png(seq / f"frame-{i:06d}.depth.png", depth)
        write_matrix(seq / f"frame-{i:06d}.pose.txt", pose(i))
        colors.append(color)
        depths.append(depth)
    return colors, depths


def test_7scenes_folder_read_back(tmp_path):
    seq = tmp_path / "chess" / "seq-01"
    colors, depths = make_7scenes(seq, 12, skip_depth={5})
    assert looks_like_rgbd_folder(seq) == "7scenes"
    source = RGBDFolderSource(seq, preset="7scenes")
    assert len(source) == 12 and source.name == "seq-01"
    items = list(source.iter_frames())
    assert [x.index for x in items] == list(range(12))
    assert isinstance(items[5], FrameSkip) and items[5].reason == "missing depth"
    assert source.num_skipped == 1
    for i in (0, 10, 11):
        f = items[i]
        assert isinstance(f, RGBDFrame)
        np.testing.assert_array_equal(f.color, colors[i])
        assert f.depth.dtype == np.float32
        np.testing.assert_allclose(f.depth, depths[i] / 1000.0, rtol=1e-6)
        assert f.depth[0, 0] == 0
        np.testing.assert_allclose(f.camera_to_world, pose(i), atol=1e-12)
        np.testing.assert_array_equal(f.intrinsic_depth, [[585, 0, 320], [0, 585, 240], [0, 0, 1]])
    assert [x.index for x in source.iter_frames(step=4)] == [0, 4, 8]
    assert RGBDFolderSource(seq).preset == "7scenes"  # recognised without being named
    assert looks_like_rgbd_folder(seq, preset="tum") is None


def test_tum_folder_with_parent_intrinsics_and_quaternion_poses(tmp_path):
    case = tmp_path / "pairs" / "case_1"
    case.mkdir(parents=True)
    (tmp_path / "pairs" / "kinect_params.txt").write_text("525\t0\t319.5\n0\t525\t239.5\n0\t0\t1")
    s = np.sqrt(0.5)
    for key, q in (("prev", (0, 0, 0, 1)), ("curr", (0, 0, s, s))):
        write_color_png(case / f"img_{key}.png", np.zeros((6, 8, 3), np.uint8))
        write_depth_png(case / f"dep_{key}.png", np.full((6, 8), 5000, np.uint16))
        (case / f"pose_{key}.txt").write_text(" ".join(map(str, (1.0, 2.0, 3.0) + q)))
    assert looks_like_rgbd_folder(case) == "tum"
    source = RGBDFolderSource(case, preset="tum")
    frames = {source.keys[f.index]: f for f in source.iter_frames()}
    np.testing.assert_allclose(frames["prev"].depth, 1.0)  # 5000 / 5000
    np.testing.assert_allclose(frames["curr"].camera_to_world[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
                               atol=1e-12)
    np.testing.assert_allclose(frames["curr"].camera_to_world[:3, 3], [1, 2, 3])
    assert frames["prev"].intrinsic_depth[0, 2] == 319.5


def test_explicit_patterns_natural_sort_and_colour_intrinsics(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    (tmp_path / "K.txt").write_text("100 100 15.5 11.5")
    for key in ("2", "10", "1"):
        write_color_png(tmp_path / "rgb" / f"{key}.png", np.zeros((48, 64, 3), np.uint8))  # colour 2x depth
        write_depth_png(tmp_path / "depth" / f"{key}.png", np.ones((24, 32), np.uint16))
        (tmp_path / f"pose{key}.txt").write_text(f"{key} 0 0 0 0 0 0 1")  # leading timestamp
    source = RGBDFolderSource(tmp_path, color="rgb/*.png", depth="depth/*.png", pose="pose*.txt",
                              intrinsics="K.txt", depth_scale=1.0, pose_format="tum")
    assert source.keys == ["1", "2", "10"]
    f = next(iter(source.iter_frames()))
    np.testing.assert_allclose(f.intrinsic_color, [[200, 0, 31], [0, 200, 23], [0, 0, 1]])
    np.testing.assert_allclose(f.depth, 1.0)
    assert sorted(["frame-10", "frame-9", "frame-100"], key=natural_key) == ["frame-9", "frame-10", "frame-100"]


def test_rgbd_folder_bad_inputs(tmp_path):
    seq = tmp_path / "scene" / "seq"
    make_7scenes(seq, 2)
    with pytest.raises(InputError, match="preset"):
        RGBDFolderSource(seq, preset="kinectfusion")
    with pytest.raises(InputError, match="one"):
        RGBDFolderSource(seq, preset="7scenes", color="frame-*.*.png")
    with pytest.raises(InputError, match="intrinsics file not found"):
        RGBDFolderSource(seq, preset="7scenes", intrinsics="nope.txt")
    with pytest.raises(InputError, match="no frames"):
        RGBDFolderSource(seq, preset="tum", intrinsics=seq.parent / "camera-intrinsics.txt")
    with pytest.raises(InputError, match="depth scale"):
        RGBDFolderSource(seq, preset="7scenes", depth_scale=0)
    # an 8-bit depth PNG is refused for the whole folder, not skipped
    Image.fromarray(np.full((24, 32), 7, np.uint8)).save(seq / "frame-000001.depth.png")
    with pytest.raises(FormatError, match="frame-000001.depth.png"):
        list(RGBDFolderSource(seq, preset="7scenes").iter_frames())

"""Reading Pointcept's preprocessed ScanNet (concerto3d.io.pointcept), and its malformed variants: each is a one-line
error naming the file, from the reader and from ``concerto3d preprocess``."""

import sys
from pathlib import Path

import numpy as np
import pytest

from concerto3d.cli import main
from concerto3d.errors import FormatError, InputError
from concerto3d.io.pointcept import (find_pointcept_scenes, frame_keys, looks_like_pointcept, read_correspondence,
                                     read_intrinsic, read_points, read_pose)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from pointcept_layout import COLOR_H, COLOR_W, make_pointcept_root, tiny_intrinsics  # noqa: E402


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_pointcept_root(tmp_path_factory.mktemp("pointcept") / "scannet")


def test_the_layout_is_recognised_and_read(root):
    assert looks_like_pointcept(root) and not looks_like_pointcept(root / "train")
    scenes = find_pointcept_scenes(root)
    assert [(s.split, s.name) for s in scenes] == [("train", "scene0000_00"), ("train", "scene0001_00"),
                                                    ("val", "scene0002_00")]
    scene = scenes[2]
    assert scene.points_dir == root / "val" / "scene0002_00"
    assert scene.images_dir == root / "images" / "val" / "scene0002_00"
    points = read_points(scene.points_dir)
    n = len(points.coord)
    assert points.coord.dtype == np.float32 and points.color.dtype == np.uint8 and points.color.shape == (n, 3)
    assert points.segment20.min() == -1 and set(np.unique(points.segment20)) <= {-1, 0, 1, 4, 6}
    assert frame_keys(scene.images_dir) == [0, 75, 150]
    assert np.allclose(read_intrinsic(scene.images_dir), tiny_intrinsics())
    assert read_pose(scene.images_dir, 75).shape == (4, 4)
    rows = read_correspondence(scene.images_dir, 75, n, (COLOR_H, COLOR_W))
    stored = np.load(scene.images_dir / "correspondence" / "75.npy")
    assert stored.dtype == np.float64 and rows.dtype == np.int64 and np.array_equal(rows, stored)


def test_pointcepts_marker_of_an_unusable_frame_reads_as_no_rows(tmp_path):
    root = make_pointcept_root(tmp_path / "root", scenes=(("train", "scene0000_00"),))
    images = root / "images" / "train" / "scene0000_00"
    np.save(images / "correspondence" / "0.npy", -np.ones((1, 3)))
    assert read_correspondence(images, 0, 10, (COLOR_H, COLOR_W)).shape == (0, 3)


def test_a_point_folder_without_frames_is_a_scene_without_images(tmp_path):
    root = make_pointcept_root(tmp_path / "root", scenes=(("train", "scene0000_00"),))
    (root / "images").rename(tmp_path / "elsewhere")
    [scene] = find_pointcept_scenes(root)
    assert scene.images_dir is None and looks_like_pointcept(root)


def _break(root: Path, what: str) -> str:
    """Damage the one scene of ``root``; returns the file the error must name."""
    points, images = root / "train" / "scene0000_00", root / "images" / "train" / "scene0000_00"
    n = len(np.load(points / "coord.npy"))
    if what == "no coord":
        (points / "coord.npy").unlink()
        return "coord.npy"
    if what == "flat coord":
        np.save(points / "coord.npy", np.zeros((n, 2), np.float32))
        return "coord.npy"
    if what == "short color":
        np.save(points / "color.npy", np.zeros((n - 1, 3), np.uint8))
        return "color.npy"
    if what == "labels out of range":
        np.save(points / "segment20.npy", np.full(n, 20))
        return "segment20.npy"
    if what == "pickled array":
        np.save(points / "normal.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        return "normal.npy"
    if what == "rows outside the image":
        np.save(images / "correspondence" / "0.npy", np.array([[COLOR_W, 0, 0]], np.float64))
        return "correspondence/0.npy"
    if what == "rows of two columns":
        np.save(images / "correspondence" / "0.npy", np.zeros((4, 2)))
        return "correspondence/0.npy"
    if what == "unknown point":
        np.save(images / "correspondence" / "0.npy", np.array([[0, 0, n]], np.float64))
        return "correspondence/0.npy"
    if what == "depth intrinsics":  # a principal point outside the colour image
        K = np.eye(4, dtype=np.float32)
        K[:3, :3] = [[60, 0, 300], [0, 60, 200], [0, 0, 1]]
        np.save(images / "intrinsic" / "intrinsic.npy", K)
        return "intrinsic.npy"
    if what == "oddly named frame":
        (images / "color" / "0.png").rename(images / "color" / "frame_0.png")
        return "frame_0.png"
    raise ValueError(what)


BROKEN = ["no coord", "flat coord", "short color", "labels out of range", "pickled array", "rows outside the image",
          "rows of two columns", "unknown point", "depth intrinsics", "oddly named frame"]


@pytest.mark.parametrize("what", BROKEN)
def test_a_malformed_layout_is_a_one_line_error_naming_the_file(what, tmp_path, capsys):
    root = make_pointcept_root(tmp_path / "root", scenes=(("train", "scene0000_00"),))
    named = _break(root, what)
    code = main(["preprocess", str(root), str(tmp_path / "out"), "--image-size", "32x48", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert named in err and "no scene could be preprocessed" in err, err
    assert not (tmp_path / "out" / "scene0000_00").exists()


@pytest.mark.parametrize("what", ["no coord", "flat coord", "short color", "labels out of range"])
def test_the_reader_raises_the_projects_errors(what, tmp_path):
    root = make_pointcept_root(tmp_path / "root", scenes=(("train", "scene0000_00"),))
    named = _break(root, what)
    with pytest.raises(InputError, match=named) as info:
        read_points(root / "train" / "scene0000_00")
    assert isinstance(info.value, FormatError) == (what != "no coord")

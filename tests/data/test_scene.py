"""data/scene.py: the one owner of the preprocessed dataset (split lists, arrays, correspondences, meta.json)."""

import json

import numpy as np
import pytest

from concerto3d.config import load_config, with_data_geometry
from concerto3d.data.dataset import DataConfig, with_image_geometry
from concerto3d.data.scene import (image_geometry, load_correspondences, load_scene, scene_folders, split_names,
                                   split_scenes, write_split)
from concerto3d.errors import FormatError, InputError

from fake_scenes import make_fake_root


def _set_geometry(root, names, size, patch):
    for name in names:
        path = root / name / "meta.json"
        meta = json.loads(path.read_text())
        path.write_text(json.dumps({**meta, "image_size": list(size), "patch_size": patch}))


def test_a_split_is_its_list_or_an_error(tmp_path):
    names = make_fake_root(tmp_path, n_scenes=3, splits={"train": ["scene0002_00", "scene0000_00", "scene0002_00"]})
    assert split_names(tmp_path, "train") == ["scene0002_00", "scene0000_00"]  # list order, duplicates dropped
    assert [p.name for p in split_scenes(tmp_path, "train")] == ["scene0002_00", "scene0000_00"]
    assert [p.name for p in scene_folders(tmp_path)] == names
    with pytest.raises(InputError, match="val.txt: missing split list"):
        split_scenes(tmp_path, "val")
    write_split(tmp_path, "val", [])
    with pytest.raises(InputError, match="val.txt: split list is empty"):
        split_scenes(tmp_path, "val")
    write_split(tmp_path, "val", ["scene0001_00", "scene0009_00"])
    with pytest.raises(InputError, match="lists 1 scene.*'scene0009_00'"):
        split_scenes(tmp_path, "val")
    with pytest.raises(InputError, match="not a folder"):
        split_scenes(tmp_path / "nowhere", "train")


def test_scene_arrays_and_correspondences_are_checked(tmp_path):
    make_fake_root(tmp_path, n_scenes=1, n_points=50, n_frames=2)
    folder = tmp_path / "scene0000_00"
    scene = load_scene(folder)
    assert len(scene) == 50 and scene.segment20.dtype == np.int64 and scene.coord.dtype == np.float32
    corr = load_correspondences(folder, num_points=50)
    assert corr.shape[1] == 4 and len(corr) > 0
    np.save(folder / "correspondences.npy", np.array([[0, 1, 1, 50]], np.int32))
    with pytest.raises(FormatError, match="point < 50"):
        load_correspondences(folder, num_points=50)
    np.save(folder / "correspondences.npy", np.array([[0, -1, 1, 3]], np.int32))
    with pytest.raises(FormatError, match="negative"):
        load_correspondences(folder)
    np.save(folder / "color.npy", np.zeros((49, 3), np.uint8))
    with pytest.raises(FormatError, match=r"color.npy: expected an array of shape \(50, 3\)"):
        load_scene(folder)
    (folder / "color.npy").unlink()
    assert (load_scene(folder).color == 128).all()  # an absent optional array has its documented default


def test_image_and_patch_size_come_from_the_data_unless_set(tmp_path):
    names = make_fake_root(tmp_path, n_scenes=2, splits={"train": ["scene0000_00", "scene0001_00"]},
                           image_size=(64, 96))
    assert image_geometry(tmp_path, "train") is None  # recorded by no scene: the defaults apply
    assert with_image_geometry(DataConfig(), tmp_path).image_size == (240, 320)
    _set_geometry(tmp_path, names, (64, 96), 32)
    assert image_geometry(tmp_path, "train") == ((64, 96), 32)
    cfg = with_data_geometry(load_config(None, []), tmp_path)
    assert (cfg.data.image_size, cfg.data.patch_size) == ((64, 96), 32)
    assert (cfg.image_encoder.image_size, cfg.image_encoder.patch_size) == ((64, 96), 32)  # the encoder follows
    cfg = with_data_geometry(load_config(None, ["data.image_size=[32, 64]"]), tmp_path)  # set: kept
    assert (cfg.data.image_size, cfg.image_encoder.image_size, cfg.data.patch_size) == ((32, 64), (32, 64), 32)
    with pytest.raises(InputError, match="must be equal"):
        with_data_geometry(load_config(None, ["image_encoder.image_size=[32, 64]"]), tmp_path)
    _set_geometry(tmp_path, names[:1], (64, 96), 16)
    with pytest.raises(InputError, match="different image or patch sizes"):
        image_geometry(tmp_path, "train")

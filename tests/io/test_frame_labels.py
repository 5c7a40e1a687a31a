"""ScanNet's 2D label images: the zip and the unpacked folder read alike; the label table maps their ids."""

import numpy as np
import pytest
from PIL import Image

from concerto3d.errors import FormatError
from concerto3d.io import read_label_table, write_label_table
from concerto3d.io.frame_labels import FrameLabels, label_zip_name, write_label_zip


def _images():
    rng = np.random.default_rng(0)
    return {0: rng.integers(0, 300, (6, 8)), 5: rng.integers(0, 40, (6, 8))}


def test_zip_and_folder_give_the_same_ids(tmp_path):
    zipped, unpacked = tmp_path / "scene0001_00", tmp_path / "scene0002_00"
    zipped.mkdir()
    (unpacked / "label-filt").mkdir(parents=True)
    write_label_zip(zipped / label_zip_name("scene0001_00"), _images())
    for k, ids in _images().items():
        Image.fromarray(ids.astype(np.uint16)).save(unpacked / "label-filt" / f"{k}.png")
    for folder in (zipped, unpacked):
        labels = FrameLabels(folder)
        assert labels.available
        for k, ids in _images().items():
            np.testing.assert_array_equal(labels.read(k), ids)
        assert labels.read(1) is None  # a frame without a label image
    assert not FrameLabels(tmp_path).available and FrameLabels(tmp_path).read(0) is None


def test_damaged_label_files_are_one_line_errors(tmp_path):
    (tmp_path / label_zip_name(tmp_path.name)).write_bytes(b"not a zip")
    with pytest.raises(FormatError, match="label archive"):
        FrameLabels(tmp_path).read(0)
    other = tmp_path / "b"
    (other / "label-filt").mkdir(parents=True)
    (other / "label-filt" / "0.png").write_bytes(b"\x89PNG junk")
    with pytest.raises(FormatError, match="cannot decode"):
        FrameLabels(other).read(0)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(other / "label-filt" / "1.png")
    with pytest.raises(FormatError, match="greyscale"):
        FrameLabels(other).read(1)


def test_the_label_table_maps_scannet_ids_to_nyu40(tmp_path):
    path = tmp_path / "scannetv2-labels.combined.tsv"
    write_label_table(path, [{"id": 1, "raw_category": "wall", "nyu40id": 1},
                             {"id": 40, "raw_category": "office chair", "nyu40id": 5},
                             {"id": 3, "raw_category": "cabinet", "nyu40id": 3}])
    table = read_label_table(path)
    ids = np.array([[0, 1, 40], [3, 2, 999]])
    np.testing.assert_array_equal(table.ids_to_nyu40(ids), [[0, 1, 5], [3, 0, 0]])  # unlisted ids: unannotated

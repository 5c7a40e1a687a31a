"""ScanNet files: label table, segments + aggregation, splits, scene folders and exported frames."""

import logging

import numpy as np
import pytest

from concerto3d.errors import FormatError, InputError
from concerto3d.io.frames import FrameSkip, RGBDFrame
from concerto3d.io.geometry_files import write_matrix
from concerto3d.io.images import write_color_jpeg, write_depth_png
from concerto3d.io.label_table import LABEL_TABLE_COLUMNS, read_label_table, write_label_table
from concerto3d.io.scannet import (ScanNetScene, SegGroup, find_scannet_scenes, instance_ids, read_aggregation_json,
                                   read_segs_json, vertex_nyu40_from_aggregation, write_aggregation_json,
                                   write_segs_json)
from concerto3d.io.scannet_export import ScanNetExportSource
from concerto3d.io.split_lists import read_split, write_split


def test_label_table_round_trip_and_unknown_category(tmp_path, caplog):
    path = tmp_path / "scannetv2-labels.combined.tsv"
    write_label_table(path, [{"raw_category": "chair", "nyu40id": 5},
                             {"raw_category": "kitchen cabinets", "nyu40id": 3, "count": 7},
                             {"raw_category": "mug", "nyu40id": 40}])
    header = path.read_text().splitlines()[0].split("\t")
    assert tuple(header) == LABEL_TABLE_COLUMNS
    assert header[:5] == ["id", "raw_category", "category", "count", "nyu40id"] and header[7] == "nyu40class"
    assert path.read_text().splitlines()[1].split("\t")[7] == "chair"
    table = read_label_table(path)
    assert len(table) == 3
    assert table.to_nyu40("kitchen cabinets") == 3
    assert table.to_scannet20("chair") == 4  # wall, floor, cabinet, bed, chair
    assert table.to_scannet20("mug") == -1  # otherprop is not one of the 20
    with caplog.at_level(logging.WARNING):
        assert table.to_nyu40("spaceship") == 0
        assert table.to_nyu40("spaceship") == 0
    assert table.num_unknown == 2
    assert sum("spaceship" in r.message for r in caplog.records) == 1  # warned once, counted twice


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("id\traw_category\tcategory\n1\tchair\tchair\n", "nyu40id"),
    ("id\traw_category\tnyu40id\n1\tchair\tfive\n", "line 2"),
    ("id\traw_category\tnyu40id\n1\tchair\t41\n", "outside"),
])
def test_bad_label_tables(tmp_path, text, match):
    path = tmp_path / "labels.tsv"
    path.write_text(text)
    with pytest.raises(FormatError, match=match) as info:
        read_label_table(path)
    assert "labels.tsv" in str(info.value)


def test_segs_and_aggregation_give_instances(tmp_path):
    segs = np.array([0, 0, 1, 2, 2, 3, 9])
    write_segs_json(tmp_path / "s.segs.json", "scene0000_00", segs)
    groups = [SegGroup(0, 0, "chair", [0, 2]), {"id": 1, "objectId": 5, "label": "table", "segments": [3]}]
    write_aggregation_json(tmp_path / "s.aggregation.json", "scene0000_00", groups)
    segs_back = read_segs_json(tmp_path / "s.segs.json")
    agg = read_aggregation_json(tmp_path / "s.aggregation.json")
    np.testing.assert_array_equal(segs_back, segs)
    assert [(g.id, g.object_id, g.label, g.segments) for g in agg] == [(0, 0, "chair", [0, 2]),
                                                                       (1, 5, "table", [3])]
    ids = instance_ids(segs_back, agg)
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [0, 0, -1, 0, 0, 5, -1])
    write_label_table(tmp_path / "t.tsv", [{"raw_category": "chair", "nyu40id": 5}])
    table = read_label_table(tmp_path / "t.tsv")
    np.testing.assert_array_equal(vertex_nyu40_from_aggregation(segs, agg, table), [5, 5, 0, 5, 5, 0, 0])
    assert table.num_unknown == 1  # "table" is not in this tiny table


@pytest.mark.parametrize("name, text, reader", [
    ("a.segs.json", "", read_segs_json),
    ("b.segs.json", "{not json", read_segs_json),
    ("c.segs.json", '{"sceneId": "x"}', read_segs_json),
    ("d.aggregation.json", '{"segGroups": [{"id": 0}]}', read_aggregation_json),
])
def test_bad_json_files(tmp_path, name, text, reader):
    (tmp_path / name).write_text(text)
    with pytest.raises(FormatError) as info:
        reader(tmp_path / name)
    assert name in str(info.value)


def test_split_round_trip(tmp_path):
    write_split(tmp_path / "train.txt", ["scene0000_00", "scene0001_00"])
    assert read_split(tmp_path / "train.txt") == ["scene0000_00", "scene0001_00"]
    (tmp_path / "bad.txt").write_text("scene 0000\n")
    with pytest.raises(FormatError, match="bad.txt"):
        read_split(tmp_path / "bad.txt")


# -- exported frames ----------------------------------------------------------------------------------------
KC = np.array([[100.0, 0, 39.5], [0, 90.0, 29.5], [0, 0, 1]])
KD = np.array([[50.0, 0, 19.5], [0, 45.0, 14.5], [0, 0, 1]])


def make_export(scene_dir, n=3, skip_depth=(), skip_color=()):
    """Colour 80x60, depth 40x30 (different resolutions, as in ScanNet)."""
    for sub in ("color", "depth", "pose", "intrinsic"):
        (scene_dir / sub).mkdir(parents=True, exist_ok=True)
    K4c, K4d = np.eye(4), np.eye(4)
    K4c[:3, :3], K4d[:3, :3] = KC, KD
    write_matrix(scene_dir / "intrinsic" / "intrinsic_color.txt", K4c)
    write_matrix(scene_dir / "intrinsic" / "intrinsic_depth.txt", K4d)
    for i in range(n):
        if i not in skip_color:
            write_color_jpeg(scene_dir / "color" / f"{i}.jpg", np.full((60, 80, 3), 10 * i, np.uint8))
        if i not in skip_depth:
            write_depth_png(scene_dir / "depth" / f"{i}.png", np.full((30, 40), 1000 + i, np.uint16))
        pose = np.eye(4)
        pose[:3, 3] = [i, 0, 0]
        write_matrix(scene_dir / "pose" / f"{i}.txt", pose)


def test_export_folder_source(tmp_path):
    scene = tmp_path / "scans" / "scene0001_00"
    make_export(scene, n=4, skip_depth={2})
    source = ScanNetScene(scene).frame_source()
    assert isinstance(source, ScanNetExportSource) and len(source) == 4 and source.name == "scene0001_00"
    items = list(source.iter_frames())
    assert isinstance(items[2], FrameSkip) and items[2].reason == "missing depth"
    assert source.num_skipped == 1
    f = items[3]
    assert isinstance(f, RGBDFrame) and f.index == 3
    assert f.color.shape == (60, 80, 3) and f.depth.shape == (30, 40)
    np.testing.assert_allclose(f.depth, 1.003)
    np.testing.assert_array_equal(f.intrinsic_color, KC)
    np.testing.assert_array_equal(f.intrinsic_depth, KD)
    assert f.camera_to_world[0, 3] == 3
    assert [x.index for x in source.iter_frames(step=2)] == [0, 2]
    assert find_scannet_scenes(tmp_path) == [scene]


def test_export_bad_inputs(tmp_path):
    scene = tmp_path / "scene0002_00"
    make_export(scene, n=2)
    (scene / "color" / "1.jpg").write_bytes(b"\xff\xd8\xff garbage")
    items = list(ScanNetExportSource(scene).iter_frames())
    assert isinstance(items[1], FrameSkip) and items[1].reason == "unreadable color"
    # colour without depth and depth without colour
    write_color_jpeg(scene / "color" / "5.jpg", np.zeros((60, 80, 3), np.uint8))
    write_depth_png(scene / "depth" / "6.png", np.zeros((30, 40), np.uint16))
    reasons = {x.index: x.reason for x in ScanNetExportSource(scene).iter_frames() if isinstance(x, FrameSkip)}
    assert reasons == {1: "unreadable color", 5: "missing depth", 6: "missing color"}
    (scene / "intrinsic" / "intrinsic_depth.txt").write_text("1 2 3\n")
    with pytest.raises(FormatError, match="intrinsic_depth.txt"):
        ScanNetExportSource(scene)
    (scene / "intrinsic" / "intrinsic_depth.txt").unlink()
    with pytest.raises(InputError, match="intrinsic_depth.txt"):
        ScanNetExportSource(scene)
    with pytest.raises(InputError, match="no frames"):
        ScanNetScene(tmp_path).frame_source()


def test_scene_prefers_sens_and_can_be_told_otherwise(tmp_path):
    from concerto3d.io.sens import SensWriter
    from concerto3d.io.sens_frames import SensFrameSource

    scene = tmp_path / "scene0003_00"
    make_export(scene, n=2)
    with SensWriter(scene / "scene0003_00.sens", dict(intrinsic_color=KC, intrinsic_depth=KD, color_width=80,
                                                      color_height=60, depth_width=40, depth_height=30)) as w:
        w.add_frame(np.eye(4), np.zeros((60, 80, 3), np.uint8), np.zeros((30, 40), np.uint16))
    s = ScanNetScene(scene)
    assert s.has_sens and s.has_export and not s.has_mesh
    assert isinstance(s.frame_source(), SensFrameSource) and len(s.frame_source()) == 1
    assert isinstance(s.frame_source("export"), ScanNetExportSource)
    with pytest.raises(InputError, match="'auto', 'sens' or 'export'"):
        s.frame_source("video")

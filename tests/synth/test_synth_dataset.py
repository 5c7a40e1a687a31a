"""generate_dataset / `concerto3d synth`: the ScanNet layout, read back with concerto3d.io; determinism."""

import filecmp

import numpy as np
import pytest

pytest.importorskip("open3d")

from concerto3d.cli import main  # noqa: E402
from concerto3d.io import (SensReader, instance_ids, read_aggregation_json, read_color, read_depth,  # noqa: E402
                           read_intrinsics, read_label_table, read_mesh_ply, read_pose, read_segs_json, read_split,
                           read_vertex_labels_ply)
from concerto3d.io.scannet import ScanNetScene, read_scene_meta  # noqa: E402
from concerto3d.labels import nyu40_to_scannet20  # noqa: E402
from concerto3d.synth import generate_dataset  # noqa: E402
from concerto3d.synth.mesh import seen_by_depth  # noqa: E402
from concerto3d.synth.room import sample_scene  # noqa: E402

COLOR, DEPTH, FRAMES, SEED = (160, 120), (80, 60), 3, 11


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "out"
    summary = generate_dataset(out, 2, FRAMES, SEED, color_size=COLOR, depth_size=DEPTH, progress=False)
    return out, summary


def test_layout_exists_and_parses(dataset):
    out, summary = dataset
    assert summary["scenes"] == ["scene0000_00", "scene0001_00"]
    train, val = read_split(out / "scannetv2_train.txt"), read_split(out / "scannetv2_val.txt")
    assert len(val) == 1 and sorted(train + val) == summary["scenes"]
    table = read_label_table(out / "scannetv2-labels.combined.tsv")
    for name in summary["scenes"]:
        d = out / "scans" / name
        mesh = read_mesh_ply(d / f"{name}_vh_clean_2.ply")
        nyu40 = read_vertex_labels_ply(d / f"{name}_vh_clean_2.labels.ply")
        segs = read_segs_json(d / f"{name}_vh_clean_2.0.010000.segs.json")
        groups = read_aggregation_json(d / f"{name}.aggregation.json")
        assert len(mesh.vertices) == len(nyu40) == len(segs) > 1e4
        # a scan holds what its frames saw: every vertex passes some frame's depth test, and part of the room
        # (behind the camera path) is missing
        Kd = read_intrinsics(d / "intrinsic" / "intrinsic_depth.txt")
        seen = np.zeros(len(mesh.vertices), bool)
        for i in range(FRAMES):
            depth_mm = np.round(read_depth(d / "depth" / f"{i}.png", 1000.0) * 1000).astype(np.uint16)
            seen |= seen_by_depth(mesh.vertices, read_pose(d / "pose" / f"{i}.txt"), Kd, depth_mm)
        assert seen.all()
        scene_summary = next(r for r in summary["per_scene"] if r["name"] == name)
        assert 0.05 < scene_summary["observed"] < 0.95
        inst = instance_ids(segs, groups)
        assert inst.min() >= 0  # every vertex belongs to an annotated object
        for g in groups:  # an instance's raw label maps, through the table, to its vertices' NYU40 id
            assert np.all(nyu40[inst == g.object_id] == table.to_nyu40(g.label))
        meta = read_scene_meta(d / f"{name}.txt")
        assert int(meta["colorWidth"]) == COLOR[0] and int(meta["depthHeight"]) == DEPTH[1]
        assert int(meta["numColorFrames"]) == FRAMES
        Kc = read_intrinsics(d / "intrinsic" / "intrinsic_color.txt")
        assert abs(Kc[0, 0] - 1169.6 * COLOR[0] / 1296) < 1e-6
        for i in range(FRAMES):
            assert read_color(d / "color" / f"{i}.jpg").shape == (COLOR[1], COLOR[0], 3)
            assert read_depth(d / "depth" / f"{i}.png", 1000.0).shape == (DEPTH[1], DEPTH[0])
            pose = read_pose(d / "pose" / f"{i}.txt")
            assert np.allclose(pose[:3, :3].T @ pose[:3, :3], np.eye(3), atol=1e-9)
        with SensReader(d / f"{name}.sens") as sens:
            assert len(sens) == FRAMES and sens.header.color_size == COLOR and sens.header.depth_size == DEPTH
            raw = next(iter(sens.iter_raw()))
            exported = read_depth(d / "depth" / "0.png", 1000.0)
            assert np.allclose(sens.decode_depth(raw) / 1000.0, exported)
            assert np.allclose(raw.camera_to_world, read_pose(d / "pose" / "0.txt"), atol=1e-6)
        frames = list(ScanNetScene(d).frame_source().iter_frames())
        assert len(frames) == FRAMES and all(hasattr(f, "color") for f in frames)


def test_labels_cover_ten_scannet20_classes(dataset):
    out, summary = dataset
    classes = set()
    for name in summary["scenes"]:
        seg20 = nyu40_to_scannet20(read_vertex_labels_ply(out / "scans" / name / f"{name}_vh_clean_2.labels.ply"))
        classes |= set(np.unique(seg20[seg20 >= 0]).tolist())
    assert len(classes) >= 10, sorted(classes)


def test_same_seed_same_bytes_whatever_workers(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    generate_dataset(again, 2, FRAMES, SEED, color_size=COLOR, depth_size=DEPTH, workers=2, progress=False)
    for name in ("scene0000_00", "scene0001_00"):  # made by two processes this time
        a, b = out / "scans" / name, again / "scans" / name
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        _, mismatch, errors = filecmp.cmpfiles(a, b, [str(f) for f in files], shallow=False)
        assert not mismatch and not errors
    tables = ["scannetv2-labels.combined.tsv", "scannetv2_train.txt", "scannetv2_val.txt"]
    assert filecmp.cmpfiles(out, again, tables, shallow=False)[0] == tables
    # ... and another seed gives other scenes
    other = sample_scene(np.random.default_rng([SEED + 1, 0]))
    assert sample_scene(np.random.default_rng([SEED, 0])).size != other.size


def test_depth_files_have_holes_and_millimetres(dataset):
    out, _ = dataset
    depth = read_depth(out / "scans/scene0000_00/depth/0.png", 1000.0)
    assert 0 < (depth == 0).mean() < 0.5
    assert 0.3 < depth[depth > 0].min() and depth.max() <= 5.1


def test_a_failed_scene_leaves_no_folder(tmp_path, monkeypatch):
    import concerto3d.synth.writer as writer

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(writer, "_write_annotations", broken)
    with pytest.raises(OSError, match="disk full"):
        writer.generate_scene(tmp_path, 0, SEED, 1, COLOR, DEPTH)
    assert list(tmp_path.iterdir()) == []


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["synth", str(out), "--scenes", "1", "--frames", "1", "--seed", "2",
                 "--color-size", "64x48", "--depth-size", "32x24"])
    assert code == 0
    assert "1 scenes" in capsys.readouterr().out
    assert (out / "scans/scene0000_00/color/0.jpg").is_file()
    assert main(["synth", str(tmp_path / "bad"), "--scenes", "0"]) == 2
    assert "--scenes" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["synth", str(tmp_path / "file")]) == 2
    assert "found a file" in capsys.readouterr().err


def test_frame_labels_round_trip_through_preprocess(dataset, tmp_path):
    """synth writes ScanNet's <scene>_2d-label-filt.zip (label-filt/<i>.png, 16-bit ScanNet label ids at depth
    resolution); preprocess maps them through the label table and keeps them beside the resized frames, where
    they name the class of the points the frames see."""
    from concerto3d.data.preprocess import preprocess
    from concerto3d.data.scene import label_path, read_frame_labels
    from concerto3d.io.frame_labels import FrameLabels

    out, summary = dataset
    scene_dir = out / "scans" / summary["scenes"][0]
    raw = FrameLabels(scene_dir).read(0)
    assert raw.shape == (DEPTH[1], DEPTH[0]) and raw.max() > 0
    table = read_label_table(out / "scannetv2-labels.combined.tsv")
    assert set(np.unique(table.ids_to_nyu40(raw))) <= set(table.raw_to_nyu40.values()) | {0}

    result = preprocess(out, tmp_path / "pre", frame_skip=1, voxel=0.05, image_size=(48, 64), patch_size=16,
                        progress=False)
    assert result["scenes"]["done"] == 2
    for name in summary["scenes"]:
        folder = tmp_path / "pre" / name
        corr, seg = np.load(folder / "correspondences.npy"), np.load(folder / "segment20.npy")
        for k in range(FRAMES):
            labels = read_frame_labels(label_path(folder, k))
            assert labels.shape == (48, 64)
            rows = corr[corr[:, 0] == k]
            seen, truth = labels[rows[:, 2], rows[:, 1]], seg[rows[:, 3]]
            both = (seen >= 0) & (truth >= 0)
            assert both.mean() > 0.5 and (seen[both] == truth[both]).mean() > 0.8, (name, k)


def test_scans_without_frame_labels_preprocess_as_before(dataset, tmp_path, caplog):
    import shutil

    from concerto3d.data.preprocess import preprocess
    from concerto3d.data.scene import read_meta

    out, summary = dataset
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    name = summary["scenes"][0]
    (copy / "scans" / name / f"{name}_2d-label-filt.zip").unlink()  # this scene: no label images
    (copy / "scannetv2-labels.combined.tsv").rename(copy / "table.tsv")  # the other: labels, but no table
    preprocess(copy, tmp_path / "pre", frame_skip=1, voxel=0.05, image_size=(48, 64), patch_size=16,
               progress=False)
    for scene in summary["scenes"]:
        assert not (tmp_path / "pre" / scene / "labels").exists()
        assert read_meta(tmp_path / "pre" / scene)["frames"]["labelled"] == 0
    assert "no scannetv2-labels.combined.tsv" in caplog.text


def test_colour_frames_without_depth_get_depth_from_the_mesh(dataset, tmp_path):
    """A ScanNet-style scene with its mesh and exported colour frames but no depth (no .sens, no depth/): the
    frames' depth is rendered from the mesh, and the correspondences pass the same colour check as with the
    sensor's depth (a point's colour matches its pixel; shuffled pairs do not)."""
    import json
    import shutil

    from PIL import Image

    from concerto3d.data.preprocess import preprocess

    out, summary = dataset
    name = summary["scenes"][0]
    root = tmp_path / "colour_only"
    shutil.copytree(out, root)
    for other in summary["scenes"][1:]:
        shutil.rmtree(root / "scans" / other)
    (root / "scans" / name / f"{name}.sens").unlink()
    shutil.rmtree(root / "scans" / name / "depth")
    for path, label in ((root, "rendered"), (out, "sensor")):
        pre = tmp_path / f"pre_{label}"
        preprocess(path, pre, frame_skip=1, voxel=0.05, image_size=(48, 64), patch_size=16, progress=False)
    scene, sensor = tmp_path / "pre_rendered" / name, tmp_path / "pre_sensor" / name
    assert json.loads((scene / "meta.json").read_text())["source"]["depth"] == "rendered from the mesh"
    color, corr = np.load(scene / "color.npy").astype(int), np.load(scene / "correspondences.npy")
    assert len(corr) > 0.5 * len(np.load(sensor / "correspondences.npy"))
    for k in range(FRAMES):
        rows = corr[corr[:, 0] == k]
        image = np.asarray(Image.open(scene / "images" / f"{k:06d}.jpg")).astype(int)
        diff = np.abs(image[rows[:, 2], rows[:, 1]] - color[rows[:, 3]])
        shuffled = np.abs(image[rows[:, 2], rows[:, 1]] - color[np.random.default_rng(k).permutation(rows[:, 3])])
        assert len(rows) > 100 and np.median(diff) < 10 < np.median(shuffled), (k, np.median(diff))

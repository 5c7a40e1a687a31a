"""``concerto3d preprocess``: output layout, correspondences on real outputs, fusion, resume, bad inputs."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from concerto3d.data.correspondence import scale_intrinsics_to_size
from concerto3d.data.preprocess import clean_stale_tmp, preprocess
from concerto3d.data.preprocess_options import PreprocessOptions
from concerto3d.data.scene_builder import MeshInput, process_scene
from concerto3d.errors import InputError
from rgbd_scenes import (
    OCCLUDER, ROOM_HI, ROOM_LO, FakeFrameSource, room_mesh, room_poses, write_7scenes_folder, write_scannet_scene,
)

REPO = Path(__file__).resolve().parents[2]
ARRAYS = {"coord.npy": (np.float32, 2), "color.npy": (np.uint8, 2), "normal.npy": (np.float32, 2),
          "segment20.npy": (np.int16, 1), "segment_nyu40.npy": (np.int16, 1), "instance.npy": (np.int32, 1),
          "frame_ids.npy": (np.int32, 1), "poses.npy": (np.float32, 3), "intrinsics.npy": (np.float32, 3),
          "correspondences.npy": (np.int32, 2)}
SMALL = dict(image_size=(48, 64), patch_size=16)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mesh_input() -> MeshInput:
    v, c, f, nyu40, segment = room_mesh()
    return MeshInput(v, c, f, nyu40=nyu40, instance=np.where(segment == 1, 7, -1).astype(np.int32))


def test_scene_from_mesh_has_the_documented_layout(tmp_path):
    poses = room_poses(5)
    poses[2] = np.full((4, 4), np.nan)  # a failed pose: skipped and counted
    src = FakeFrameSource(poses, occluder=OCCLUDER)
    options = PreprocessOptions(frame_skip=1, voxel=0.05, **SMALL)
    meta = process_scene("scene0000_00", src, _mesh_input(), tmp_path, options, {"kind": "test"})
    scene = tmp_path / "scene0000_00"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene0000_00"]  # no temporary folder left
    data = {}
    for name, (dtype, ndim) in ARRAYS.items():
        data[name] = np.load(scene / name)
        assert data[name].dtype == dtype and data[name].ndim == ndim, name
    n = len(data["coord.npy"])
    assert n == meta["num_points"] > 1000
    assert all(len(data[k]) == n for k in ("color.npy", "normal.npy", "segment20.npy", "instance.npy"))
    assert np.allclose(np.linalg.norm(data["normal.npy"], axis=1), 1, atol=1e-5)
    # labels: walls -> wall (0), floor -> floor (1), ceiling (nyu40 22) -> ignore, occluder (chair) -> 4
    nyu = data["segment_nyu40.npy"]
    assert set(np.unique(nyu)) == {1, 2, 5, 22}
    assert np.array_equal(data["segment20.npy"][nyu == 22], np.full((nyu == 22).sum(), -1))
    assert set(data["segment20.npy"][nyu == 5]) == {4} and set(data["instance.npy"][nyu == 5]) == {7}
    assert set(data["instance.npy"][nyu != 5]) == {-1}
    # frames: 4 kept (one invalid pose), images at the requested size, intrinsics scaled to it
    assert data["frame_ids.npy"].tolist() == [0, 1, 3, 4]
    assert meta["frames"] == {"total": 5, "frame_skip": 1, "kept": 4, "skipped": {"invalid pose": 1},
                              "labelled": 0}
    assert sorted(p.name for p in (scene / "images").iterdir()) == [f"{k:06d}.jpg" for k in range(4)]
    assert Image.open(scene / "images" / "000003.jpg").size == (64, 48)
    expected_K = scale_intrinsics_to_size(src.K_color, (96, 128), (48, 64))
    assert np.allclose(data["intrinsics.npy"], expected_K, atol=1e-4)
    assert np.allclose(data["poses.npy"][2], poses[3], atol=1e-6)
    json_meta = json.loads((scene / "meta.json").read_text())
    assert json_meta == meta and json_meta["depth_test"]["abs_tol"] == 0.05
    # correspondences: rows (k, u, v, point) in range
    corr = data["correspondences.npy"]
    assert corr.shape[1] == 4 and len(corr) == meta["correspondences"]["total"] > 500
    assert corr[:, 0].min() == 0 and corr[:, 0].max() == 3
    assert (corr[:, 1] < 64).all() and (corr[:, 2] < 48).all() and (corr[:, 3] < n).all() and (corr >= 0).all()


def test_point_colours_match_the_written_images_and_hidden_points_do_not_match(tmp_path):
    # the occluder hides part of the floor and walls from every camera placed behind it
    poses = room_poses(6)
    src = FakeFrameSource(poses, occluder=OCCLUDER)
    options = PreprocessOptions(frame_skip=1, voxel=0.05, **SMALL)
    process_scene("s", src, _mesh_input(), tmp_path, options)
    scene = tmp_path / "s"
    coord, color = np.load(scene / "coord.npy"), np.load(scene / "color.npy")
    corr = np.load(scene / "correspondences.npy")
    poses_out = np.load(scene / "poses.npy").astype(np.float64)
    for k in range(len(poses_out)):
        rows = corr[corr[:, 0] == k]
        image = np.asarray(Image.open(scene / "images" / f"{k:06d}.jpg")).astype(int)
        diff = np.abs(image[rows[:, 2], rows[:, 1]] - color[rows[:, 3]].astype(int))
        assert np.median(diff) < 8, k  # JPEG, resizing, a point anywhere in its pixel
        # every matched point is the first surface along its ray: nothing between it and the camera
        eye = poses_out[k, :3, 3]
        p = coord[rows[:, 3]].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (OCCLUDER.lo - eye) / (p - eye)
            t2 = (OCCLUDER.hi - eye) / (p - eye)
        near = np.max(np.minimum(t1, t2), axis=1)
        far = np.min(np.maximum(t1, t2), axis=1)
        blocked = (near <= far) & (near > 0) & (near < 0.97)  # the segment passes through the occluder
        assert blocked.sum() <= max(2, 0.01 * len(rows)), k  # only silhouette pixels, if any


def test_fusion_of_a_generic_folder_gives_points_on_the_surface(tmp_path):
    folder = write_7scenes_folder(tmp_path / "in" / "seq-01", room_poses(6))
    # the room's world is z-up: said with --up z, the stored points are the room's own (3 frames see too little
    # floor for --up auto to find up within a few degrees: tests/data/test_up_axis.py)
    summary = preprocess(folder, tmp_path / "out", frame_skip=2, voxel=0.05, progress=False, up="z", **SMALL)
    assert summary["scenes"] == {"total": 1, "done": 1, "skipped": 0}
    scene = tmp_path / "out" / "seq-01"
    coord = np.load(scene / "coord.npy").astype(np.float64)
    dist = np.min(np.concatenate([coord - ROOM_LO, ROOM_HI - coord], axis=1), axis=1)
    assert len(coord) > 500 and np.median(dist) < 2e-3 and dist.max() < 0.05
    assert (np.load(scene / "segment20.npy") == -1).all() and (np.load(scene / "instance.npy") == -1).all()
    source = json.loads((scene / "meta.json").read_text())["source"]
    assert source["preset"] == "7scenes" and source["preset_recognised"]  # not null when recognised (issue 26)
    normal = np.load(scene / "normal.npy")
    assert np.allclose(np.linalg.norm(normal, axis=1), 1, atol=1e-5)
    centre = (ROOM_LO + ROOM_HI) / 2
    assert (np.sum(normal * (centre - coord), axis=1) > 0).mean() > 0.95  # facing into the room
    meta = json.loads((scene / "meta.json").read_text())
    assert meta["source"]["points_from"] == "fusion" and meta["frames"]["kept"] == 3
    assert len(np.load(scene / "correspondences.npy")) > 0.5 * 3 * 48 * 64 / 4


def _scannet_root(root: Path, scenes: int, frames: int) -> Path:
    for i in range(scenes):
        write_scannet_scene(root, f"scene{i:04d}_00", room_poses(frames, seed=i))
    (root / "scannetv2_train.txt").write_text("".join(f"scene{i:04d}_00\n" for i in range(scenes)) + "scene9999_00\n")
    return root


@pytest.mark.slow
def test_killed_run_resumes_to_byte_identical_output(tmp_path):
    scans = _scannet_root(tmp_path / "scans", scenes=4, frames=24)
    cmd = [sys.executable, "-m", "concerto3d", "preprocess", str(scans), None, "--frame-skip", "1",
           "--voxel", "0.04", "--image-size", "48x64", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd[:5] + [str(killed)] + cmd[6:], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "scene0000_00" / "meta.json").exists():
        assert proc.poll() is None and time.time() < deadline, "preprocess ended before the first scene"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted(p.name for p in killed.iterdir() if (p / "meta.json").exists())
    assert finished and len(finished) < 4, f"the kill came too late to test resuming: {finished}"
    assert not (killed / "summary.json").exists()
    rerun = subprocess.run(cmd[:5] + [str(killed)] + cmd[6:], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} already done" in rerun.stdout
    full = tmp_path / "full"
    fresh = subprocess.run(cmd[:5] + [str(full)] + cmd[6:], env=env, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    a, b = _tree(killed), _tree(full)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    assert not [p for p in killed.iterdir() if p.name.startswith(".tmp-")]
    assert (full / "splits" / "train.txt").read_text().split() == [f"scene{i:04d}_00" for i in range(4)]


@pytest.mark.slow
def test_two_workers_give_the_same_bytes_as_one(tmp_path):
    scans = _scannet_root(tmp_path / "scans", scenes=2, frames=6)
    kwargs = dict(frame_skip=2, voxel=0.05, progress=False, **SMALL)
    preprocess(scans, tmp_path / "one", workers=1, **kwargs)
    summary = preprocess(scans, tmp_path / "two", workers=2, **kwargs)
    assert summary["scenes"]["done"] == 2
    a, b = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []


def test_bad_scenes_are_skipped_with_a_reason_and_the_others_go_on(tmp_path):
    scans = tmp_path / "scans"
    write_scannet_scene(scans, "scene0000_00", room_poses(3))
    truncated = write_scannet_scene(scans, "scene0001_00", room_poses(3)) / "scene0001_00.sens"
    truncated.write_bytes(truncated.read_bytes()[:-500])
    write_scannet_scene(scans, "scene0002_00", [])  # an empty scene: no frames
    summary = preprocess(scans, tmp_path / "out", frame_skip=1, voxel=0.05, progress=False, **SMALL)
    # the truncated .sens keeps the frames before the damage (issue 27); the empty scene is skipped
    assert summary["scenes"] == {"total": 3, "done": 2, "skipped": 1}
    meta = json.loads((tmp_path / "out" / "scene0001_00" / "meta.json").read_text())
    assert meta["frames"]["kept"] == 2 and meta["frames"]["total"] == 3
    assert "no usable frames" in summary["skipped"]["scene0002_00"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scene0000_00", "scene0001_00", "splits",
                                                                     "summary.json"]  # the lock is gone too
    assert (tmp_path / "out" / "splits" / "train.txt").read_text() == "scene0000_00\nscene0001_00\n"
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["skipped"] == summary["skipped"] and "this_run" not in written


def test_nothing_usable_is_a_one_line_error(tmp_path):
    scans = tmp_path / "scans"
    write_scannet_scene(scans, "scene0000_00", [np.full((4, 4), np.inf)] * 2)  # every pose failed
    with pytest.raises(InputError, match="no scene could be preprocessed.*invalid pose"):
        preprocess(scans, tmp_path / "out", frame_skip=1, progress=False, **SMALL)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["summary.json"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no ScanNet scenes, Pointcept.s layout or RGB-D folders found"):
        preprocess(empty, tmp_path / "out2", progress=False)


def test_cli_reports_bad_arguments_in_one_line(tmp_path):
    from concerto3d.cli import main

    scans = tmp_path / "scans"
    write_scannet_scene(scans, "scene0000_00", room_poses(1))
    assert main(["preprocess", str(scans), str(tmp_path / "o"), "--image-size", "50x64", "--no-progress"]) == 2
    with pytest.raises(SystemExit):
        main(["preprocess", str(scans), str(tmp_path / "o"), "--image-size", "big"])
    assert main(["preprocess", str(tmp_path / "nowhere"), str(tmp_path / "o")]) == 2


def test_an_input_without_split_lists_gets_a_train_list_of_its_scenes(tmp_path):
    from concerto3d.data.scene import split_scenes

    for name in ("seq-02", "seq-01"):
        write_7scenes_folder(tmp_path / "in" / name, room_poses(2))
    preprocess(tmp_path / "in", tmp_path / "out", frame_skip=1, voxel=0.1, progress=False, **SMALL)
    assert sorted(p.name for p in (tmp_path / "out" / "splits").iterdir()) == ["train.txt"]  # no val list
    assert (tmp_path / "out" / "splits" / "train.txt").read_text() == "seq-01\nseq-02\n"
    assert [p.name for p in split_scenes(tmp_path / "out", "train")] == ["seq-01", "seq-02"]
    # a single scene folder as the input: the same
    preprocess(tmp_path / "in" / "seq-02", tmp_path / "one", frame_skip=1, voxel=0.1, progress=False, **SMALL)
    assert (tmp_path / "one" / "splits" / "train.txt").read_text() == "seq-02\n"


def test_the_input_split_lists_are_copied_keeping_the_written_scenes(tmp_path):
    scans = tmp_path / "scans"
    for i in range(3):
        write_scannet_scene(scans, f"scene{i:04d}_00", room_poses(1, seed=i))
    (scans / "scannetv2_train.txt").write_text("scene0002_00\nscene0000_00\nscene9999_00\n")
    (scans / "scannetv2_val.txt").write_text("scene0001_00\n")
    preprocess(scans, tmp_path / "out", frame_skip=1, voxel=0.1, progress=False, **SMALL)
    splits = tmp_path / "out" / "splits"
    assert sorted(p.name for p in splits.iterdir()) == ["train.txt", "val.txt"]
    assert splits.joinpath("train.txt").read_text() == "scene0002_00\nscene0000_00\n"  # the list's order
    assert splits.joinpath("val.txt").read_text() == "scene0001_00\n"


def test_a_scene_name_that_a_split_list_cannot_hold_is_refused_before_any_work(tmp_path):
    write_7scenes_folder(tmp_path / "in" / "seq 01", room_poses(1))
    with pytest.raises(InputError, match="without spaces"):
        preprocess(tmp_path / "in", tmp_path / "out", frame_skip=1, progress=False, **SMALL)
    assert not (tmp_path / "out").exists()


def test_options_have_one_source_of_defaults(tmp_path):
    import argparse

    from concerto3d.data import command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["scans", "out"])
    default = PreprocessOptions()
    assert (args.frame_skip, args.voxel, args.image_size, args.patch_size, args.max_frames, args.abs_tol,
            args.rel_tol) == (default.frame_skip, default.voxel, default.image_size, default.patch_size,
                              default.max_frames, default.abs_tol, default.rel_tol)
    with pytest.raises(TypeError, match="frame_skipp"):
        preprocess(tmp_path, tmp_path / "out", frame_skipp=1)


def test_stale_temporary_folders_are_removed_and_live_ones_kept(tmp_path):
    dead = tmp_path / ".tmp-scene0000_00-999999999"
    live = tmp_path / f".tmp-scene0001_00-{os.getpid()}"
    dead.mkdir()
    live.mkdir()
    (dead / "coord.npy").write_bytes(b"half")
    assert clean_stale_tmp(tmp_path) == [dead.name]
    assert not dead.exists() and live.exists()


@pytest.mark.slow
def test_generated_scene_point_colours_match_its_images(tmp_path):
    from concerto3d.synth import generate_dataset

    generate_dataset(tmp_path / "synth", 1, 3, seed=0, color_size=(160, 120), depth_size=(80, 60), progress=False)
    summary = preprocess(tmp_path / "synth", tmp_path / "out", frame_skip=1, progress=False, **SMALL)
    assert summary["scenes"]["done"] == 1 and summary["frames"]["kept"] == 3
    scene = tmp_path / "out" / "scene0000_00"
    color = np.load(scene / "color.npy").astype(int)
    corr = np.load(scene / "correspondences.npy")
    assert (np.load(scene / "segment20.npy") >= 0).mean() > 0.5  # labelled scene
    for k in range(3):
        rows = corr[corr[:, 0] == k]
        image = np.asarray(Image.open(scene / "images" / f"{k:06d}.jpg")).astype(int)
        diff = np.abs(image[rows[:, 2], rows[:, 1]] - color[rows[:, 3]])
        shuffled = np.abs(image[rows[:, 2], rows[:, 1]] - color[np.random.default_rng(k).permutation(rows[:, 3])])
        assert len(rows) > 0.3 * 48 * 64
        assert np.median(diff) < 8 < np.median(shuffled), k  # sub-pixel textures make single pixels differ


def test_rerun_keeps_finished_scenes_and_warns_when_options_differ(tmp_path, caplog):
    scans = tmp_path / "scans"
    write_scannet_scene(scans, "scene0000_00", room_poses(2))
    first = preprocess(scans, tmp_path / "out", frame_skip=1, voxel=0.05, progress=False, **SMALL)
    before = _tree(tmp_path / "out")
    again = preprocess(scans, tmp_path / "out", frame_skip=1, voxel=0.05, progress=False, **SMALL)
    assert again["this_run"]["already_done"] == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert _tree(tmp_path / "out") == before and first["points"] == again["points"]
    preprocess(scans, tmp_path / "out", frame_skip=1, voxel=0.1, progress=False, **SMALL)
    assert "other options" in caplog.text
    assert _tree(tmp_path / "out")["scene0000_00/coord.npy"] == before["scene0000_00/coord.npy"]


def test_max_frames_and_frame_skip_pick_the_first_frames_of_the_step(tmp_path):
    src = FakeFrameSource(room_poses(9), occluder=None)
    options = PreprocessOptions(frame_skip=3, max_frames=2, voxel=0.1, **SMALL)
    meta = process_scene("s", src, _mesh_input(), tmp_path, options)
    assert np.load(tmp_path / "s" / "frame_ids.npy").tolist() == [0, 3]
    assert meta["frames"]["kept"] == 2 and meta["options"]["max_frames"] == 2
    with pytest.raises(InputError, match="patch size"):
        PreprocessOptions(image_size=(48, 64), patch_size=10).check()


def test_a_scene_finished_meanwhile_by_another_process_is_kept(tmp_path):
    src = FakeFrameSource(room_poses(1), occluder=None)
    options = PreprocessOptions(frame_skip=1, voxel=0.1, **SMALL)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "meta.json").write_text("{}")
    process_scene("s", src, _mesh_input(), tmp_path, options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["meta.json"]


def test_frames_that_change_size_mid_sequence_are_skipped_by_reason(tmp_path):
    """Issue 27, item 10: one intrinsics file serves a whole RGB-D sequence, so a frame whose images have other sizes
    than the sequence's first kept frame cannot be trusted; it is skipped and counted, the rest kept."""
    first = FakeFrameSource(room_poses(4)[:3])
    other = FakeFrameSource(room_poses(4)[3:], color_size=(120, 160), depth_size=(60, 80))

    class Mixed:
        name = "s"

        def __len__(self):
            return 4

        def iter_frames(self, step=1):
            yield from first.iter_frames(step)
            for frame in other.iter_frames(step):
                frame.index = 3
                yield frame

    meta = process_scene("s", Mixed(), _mesh_input(), tmp_path, PreprocessOptions(frame_skip=1, **SMALL))
    assert meta["frames"]["kept"] == 3 and meta["frames"]["skipped"] == {"intrinsics do not fit the images": 1}


def test_a_single_scene_can_be_named(tmp_path):
    """An RGB-D folder is named after its folder, often a generic one (``data``): --scene-name names it."""
    folder = write_7scenes_folder(tmp_path / "in" / "data", room_poses(2))
    preprocess(folder, tmp_path / "out", frame_skip=1, voxel=0.1, progress=False, scene_name="kitchen", **SMALL)
    assert (tmp_path / "out" / "kitchen" / "meta.json").is_file() and not (tmp_path / "out" / "data").exists()
    assert (tmp_path / "out" / "splits" / "train.txt").read_text() == "kitchen\n"
    write_7scenes_folder(tmp_path / "in" / "other", room_poses(2))
    with pytest.raises(InputError, match="names one scene"):
        preprocess(tmp_path / "in", tmp_path / "out2", frame_skip=1, progress=False, scene_name="x", **SMALL)
    with pytest.raises(InputError, match="without spaces"):
        preprocess(folder, tmp_path / "out3", frame_skip=1, progress=False, scene_name="a b", **SMALL)

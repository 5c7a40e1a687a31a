"""Generated bad files for every reader a user's file goes through: 500 damaged versions each of a tiny valid
``.sens``, mesh/labels PLY, label table, point cloud, and generic RGB-D folder (truncations, flipped and inserted
bytes, NaN/inf written into the numbers, empty files, random junk). The only acceptable outcomes are a result of the
documented type or the project's own error with a one-line message naming the file; never another exception, a
hang (20 s per case) or a non-finite value passed on."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from concerto3d.errors import Concerto3DError
from concerto3d.io.frames import FrameSkip, RGBDFrame, is_valid_pose
from concerto3d.io.geometry_files import read_intrinsics, read_pose, write_matrix
from concerto3d.io.images import write_color_png, write_depth_png
from concerto3d.io.label_table import read_label_table, write_label_table
from concerto3d.io.ply import (Mesh, read_mesh_ply, read_point_cloud, read_vertex_labels_ply, write_labels_ply,
                               write_mesh_ply)
from concerto3d.io.rgbd_folder import RGBDFolderSource
from concerto3d.io.scannet import read_aggregation_json, read_segs_json
from concerto3d.io.sens import SensWriter
from concerto3d.io.sens_frames import SensFrameSource
from fuzzing import DAMAGE, FUZZ, TEXT_DAMAGE, check_own_error, damage_bytes, damage_text, time_limit


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Tiny valid files of every format, as bytes, plus a scratch folder to write damaged copies into."""
    root = tmp_path_factory.mktemp("pristine")
    files = {}
    fields = dict(intrinsic_color=np.diag([30.0, 30.0, 1.0]), intrinsic_depth=np.diag([15.0, 15.0, 1.0]),
                  color_width=16, color_height=12, depth_width=8, depth_height=6)
    with SensWriter(root / "a.sens", fields) as w:
        for i in range(2):
            w.add_frame(np.eye(4), np.full((12, 16, 3), 60 * i, np.uint8), np.full((6, 8), 1000 + i, np.uint16))
    rng = np.random.default_rng(0)
    mesh = Mesh(rng.uniform(0, 1, (6, 3)).astype(np.float32), rng.integers(0, 255, (6, 3), dtype=np.uint8),
                np.array([[0, 1, 2], [2, 3, 4], [3, 4, 5]], np.int32))
    write_labels_ply(root / "a.labels.ply", mesh, np.array([1, 2, 3, 4, 5, 40]))
    write_mesh_ply(root / "a.ply", mesh)
    write_label_table(root / "labels.tsv", [{"raw_category": "wall", "nyu40id": 1},
                                            {"raw_category": "chair", "nyu40id": 5},
                                            {"raw_category": "desk", "nyu40id": 14}])
    (root / "cloud.xyz").write_text("0 0 0 255 0 0\n1 0 0 0 255 0\n0 1 0.5 0 0 255\n")
    (root / "segs.json").write_text('{"sceneId": "s", "segIndices": [0, 0, 1, 1, 2, 2]}')
    (root / "agg.json").write_text('{"sceneId": "s", "segGroups": [{"id": 0, "objectId": 0, "segments": [1], '
                                   '"label": "chair"}]}')
    for name in ("a.sens", "a.labels.ply", "a.ply", "labels.tsv", "cloud.xyz", "segs.json", "agg.json"):
        files[name] = (root / name).read_bytes()
    scratch = tmp_path_factory.mktemp("damaged")
    return files, scratch


def _write(scratch, name, data: bytes):
    path = scratch / name
    path.write_bytes(data)
    return path


@FUZZ
@given(damages=DAMAGE)
def test_sens_reader(pristine, damages):
    files, scratch = pristine
    path = _write(scratch, "fuzz.sens", damage_bytes(files["a.sens"], damages))
    with time_limit():
        try:
            items = list(SensFrameSource(path).iter_frames())
        except Concerto3DError as err:
            check_own_error(err, "fuzz.sens")
            return
    for item in items:
        assert isinstance(item, (RGBDFrame, FrameSkip))
        if isinstance(item, RGBDFrame):
            assert is_valid_pose(item.camera_to_world)  # a NaN/inf pose is a skip, never a frame
            assert item.depth.dtype == np.float32 and item.color.dtype == np.uint8
            assert np.isfinite(item.intrinsic_color).all() and np.isfinite(item.intrinsic_depth).all()


@FUZZ
@given(which=st.sampled_from(["mesh", "labels", "cloud_ply"]), damages=DAMAGE)
def test_ply_readers(pristine, which, damages):
    files, scratch = pristine
    source = files["a.labels.ply" if which == "labels" else "a.ply"]
    path = _write(scratch, "fuzz.ply", damage_bytes(source, damages))
    with time_limit():
        try:
            if which == "mesh":
                mesh = read_mesh_ply(path)
                assert np.isfinite(mesh.vertices).all()
                assert mesh.faces.size == 0 or mesh.faces.max() < len(mesh.vertices)
            elif which == "labels":
                labels = read_vertex_labels_ply(path)
                assert labels.dtype == np.int64 and labels.ndim == 1
            else:
                xyz, colors, normals = read_point_cloud(path)
                assert np.isfinite(xyz).all() and len(xyz) > 0
        except Concerto3DError as err:
            check_own_error(err, "fuzz.ply")


@FUZZ
@given(which=st.sampled_from(["labels.tsv", "cloud.xyz", "segs.json", "agg.json"]),
       text_damages=TEXT_DAMAGE, byte_damages=st.none() | DAMAGE)
def test_text_readers(pristine, which, text_damages, byte_damages):
    """The label table, a text point cloud and the ScanNet segment/aggregation JSON files."""
    files, scratch = pristine
    data = damage_text(files[which].decode(), text_damages).encode()
    if byte_damages is not None:
        data = damage_bytes(data, byte_damages)
    name = "fuzz." + which.split(".", 1)[1]
    path = _write(scratch, name, data)
    with time_limit():
        try:
            if which == "labels.tsv":
                table = read_label_table(path)
                assert all(0 <= table.to_nyu40(raw) <= 40 for raw in ("wall", "chair", "desk", "unknown thing"))
            elif which == "cloud.xyz":
                xyz, colors, normals = read_point_cloud(path)
                assert np.isfinite(xyz).all() and len(xyz) > 0
            elif which == "segs.json":
                segs = read_segs_json(path)
                assert segs.ndim == 1
            else:
                groups = read_aggregation_json(path)
                assert isinstance(groups, list)
        except Concerto3DError as err:
            check_own_error(err, name)


@FUZZ
@given(which=st.sampled_from(["pose", "tum pose", "intrinsics"]), text_damages=TEXT_DAMAGE)
def test_pose_and_intrinsics_files(pristine, which, text_damages):
    _, scratch = pristine
    good = {"pose": "1 0 0 0.5\n0 1 0 0\n0 0 1 2\n0 0 0 1\n", "tum pose": "0.1 0.2 0.3 0 0 0 1\n",
            "intrinsics": "585 0 320\n0 585 240\n0 0 1\n"}[which]
    path = scratch / "fuzz.txt"
    path.write_text(damage_text(good, text_damages))
    with time_limit():
        try:
            if which == "intrinsics":
                K = read_intrinsics(path)
                assert np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0
            else:
                M = read_pose(path, "tum" if which == "tum pose" else "matrix")
                assert M.shape == (4, 4)  # non-finite poses are kept: the frame reader skips them
        except Concerto3DError as err:
            check_own_error(err, "fuzz.txt")


@pytest.fixture(scope="module")
def rgbd_folder(tmp_path_factory):
    """A 7-Scenes folder of two 8x6 frames; returns (folder, {file name: pristine bytes})."""
    seq = tmp_path_factory.mktemp("rgbd") / "seq-01"
    seq.mkdir()
    (seq / "camera-intrinsics.txt").write_text("10 0 4\n0 10 3\n0 0 1\n")
    for i in range(2):
        write_color_png(seq / f"frame-{i:06d}.color.png", np.full((6, 8, 3), 50 * i, np.uint8))
        write_depth_png(seq / f"frame-{i:06d}.depth.png", np.full((6, 8), 1500 + i, np.uint16))
        pose = np.eye(4)
        pose[0, 3] = 0.1 * i
        write_matrix(seq / f"frame-{i:06d}.pose.txt", pose)
    return seq, {p.name: p.read_bytes() for p in seq.iterdir()}


@FUZZ
@given(which=st.sampled_from(["frame-000001.color.png", "frame-000001.depth.png", "frame-000001.pose.txt",
                              "camera-intrinsics.txt"]), damages=DAMAGE)
def test_generic_rgbd_folder(rgbd_folder, which, damages):
    seq, originals = rgbd_folder
    path = seq / which
    path.write_bytes(damage_bytes(originals[which], damages))
    try:
        with time_limit():
            try:
                items = list(RGBDFolderSource(seq, preset="7scenes").iter_frames())
            except Concerto3DError as err:
                check_own_error(err, which)
                return
        assert len(items) == 2 and isinstance(items[0], RGBDFrame)  # the undamaged frame always comes through
        for item in items:
            if isinstance(item, RGBDFrame):
                assert is_valid_pose(item.camera_to_world)
                assert np.isfinite(item.depth).all() and (item.depth >= 0).all()
                assert np.isfinite(item.intrinsic_depth).all()
    finally:
        path.write_bytes(originals[which])

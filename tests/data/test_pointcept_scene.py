"""``concerto3d preprocess`` on Pointcept's preprocessed layout: one conversion into concerto3d's own scene folders.

The acceptance test writes the same generated scan twice, as ScanNet (for concerto3d's own ``preprocess``) and in
Pointcept's layout with correspondences made the way Pointcept's script makes them (the mesh ray-cast through
every pixel of the full-resolution colour image, each hit matched to its nearest point within 1 cm), and checks
that a point sees the same pixel, within one, either way.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from concerto3d.data.fusion import voxel_representatives
from concerto3d.data.pointcept_scene import frame_rows
from concerto3d.data.preprocess import preprocess
from concerto3d.data.scene import load_correspondences, load_scene, read_image, split_names

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pointcept_layout import make_pointcept_root, write_pointcept_scene  # noqa: E402

TINY = dict(image_size=(32, 48), patch_size=16, progress=False)


def test_frame_rows_move_pixels_to_the_resized_image_and_keep_the_kept_points():
    # colour 4x6 -> image 2x3: pixel (u, v) lands on (u // 2, v // 2); points 1 and 3 were dropped, 0 -> 0, 2 -> 1
    index_map = np.array([0, -1, 1, -1])
    rows = np.array([[0, 0, 0], [1, 1, 0], [5, 3, 2], [4, 2, 2], [3, 0, 1], [2, 2, 3], [2, 1, 0]])
    out = frame_rows(rows, index_map, (4, 6), (2, 3))
    assert out.tolist() == [[0, 0, 0], [1, 0, 0], [2, 1, 1]]  # unique, by point, then v, u
    assert frame_rows(np.zeros((0, 3), np.int64), index_map, (4, 6), (2, 3)).shape == (0, 3)


def test_the_hand_made_layout_converts_to_concerto3d_scenes(tmp_path, caplog):
    root = make_pointcept_root(tmp_path / "scannet")
    out = tmp_path / "data"
    summary = preprocess(root, out, voxel=0.05, **TINY)
    assert summary["scenes"] == {"total": 3, "done": 3, "skipped": 0}
    assert split_names(out, "train") == ["scene0000_00", "scene0001_00"] and split_names(out, "val") == ["scene0002_00"]
    for split, name in (("train", "scene0000_00"), ("val", "scene0002_00")):
        src, folder = root / split / name, out / name
        keep = voxel_representatives(np.load(src / "coord.npy"), 0.05)
        scene = load_scene(folder)
        assert len(keep) < len(np.load(src / "coord.npy")) and len(scene) == len(keep)
        assert np.array_equal(scene.coord, np.load(src / "coord.npy")[keep])
        assert np.array_equal(scene.segment20, np.load(src / "segment20.npy")[keep])
        assert np.allclose(np.linalg.norm(scene.normal, axis=1), 1, atol=1e-5)
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["frames"]["kept"] == 3 and meta["frames"]["frame_gap"] == 75 and meta["source"]["split"] == split
        assert np.load(folder / "frame_ids.npy").tolist() == [0, 75, 150]
        assert read_image(folder / "images" / "000002.jpg")[1] == (32, 48)
        corr = load_correspondences(folder, len(scene))
        # every Pointcept row of a kept point is there, its pixel halved (64x96 -> 32x48)
        new_index = {int(p): i for i, p in enumerate(keep)}
        for k, key in enumerate((0, 75, 150)):
            pc = np.load(root / "images" / split / name / "correspondence" / f"{key}.npy").astype(np.int64)
            want = {(int(u) // 2, int(v) // 2, new_index[int(p)]) for u, v, p in pc if int(p) in new_index}
            assert set(map(tuple, corr[corr[:, 0] == k, 1:].tolist())) == want
    assert np.all(np.diff(corr[:, 0]) >= 0)  # sorted by frame
    # a rerun keeps the finished scenes and does not call Pointcept's frames "other options"
    caplog.clear()
    assert preprocess(root, out, voxel=0.05, **TINY)["this_run"]["already_done"] == 3
    assert "other options" not in caplog.text
    preprocess(root, tmp_path / "again", voxel=0.05, frame_skip=3, **TINY)
    assert "--frame-skip does not apply to Pointcept's layout" in caplog.text


def test_unusable_frames_are_skipped_by_reason_and_a_scene_without_images_keeps_its_points(tmp_path):
    root = make_pointcept_root(tmp_path / "scannet", scenes=(("train", "scene0000_00"), ("train", "scene0001_00")))
    images = root / "images" / "train" / "scene0000_00"
    np.save(images / "pose" / "75.npy", np.full((4, 4), -np.inf, np.float32))  # ScanNet's failed tracking
    np.save(images / "correspondence" / "75.npy", -np.ones((1, 3)))  # ... and Pointcept's marker for it
    (images / "correspondence" / "150.npy").unlink()
    (root / "images" / "train" / "scene0001_00").rename(tmp_path / "moved")
    preprocess(root, tmp_path / "data", voxel=0.05, **TINY)
    meta = json.loads((tmp_path / "data" / "scene0000_00" / "meta.json").read_text())
    assert meta["frames"]["kept"] == 1 and meta["frames"]["total"] == 3
    assert meta["frames"]["skipped"] == {"invalid pose": 1, "missing correspondence": 1}
    assert np.load(tmp_path / "data" / "scene0000_00" / "frame_ids.npy").tolist() == [0]
    meta = json.loads((tmp_path / "data" / "scene0001_00" / "meta.json").read_text())
    assert meta["frames"]["kept"] == 0 and meta["num_points"] > 300
    assert len(load_correspondences(tmp_path / "data" / "scene0001_00")) == 0


# ---------------------------------------------------------------------------------------------------------------
# acceptance: the same scan through concerto3d's own preprocess and through Pointcept's layout

COLOR, DEPTH, FRAMES, SIZE, VOXEL = (640, 480), (160, 120), 3, (96, 128), 0.05


def pointcept_rows(vertices, faces, pose, K, size):
    """Pointcept's correspondences of one frame (its ``correspondenceGet``, written here from its description):
    the mesh's depth through every pixel (Open3D's pinhole rays), each pixel back-projected at that depth and
    matched to the nearest vertex within 1 cm. Returns (M, 3) float64 rows (u, v, vertex)."""
    import open3d as o3d
    from scipy.spatial import cKDTree

    h, w = size
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(o3d.core.Tensor(K), o3d.core.Tensor(np.linalg.inv(pose)),
                                                             w, h)
    depth = scene.cast_rays(rays)["t_hit"].numpy()  # each ray's direction has camera z = 1: t is the depth
    v, u = np.nonzero(np.isfinite(depth))
    camera = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(len(u))], 1) * depth[v, u, None]
    distance, nearest = cKDTree(vertices).query(camera @ pose[:3, :3].T + pose[:3, 3])
    near = distance < 0.01
    return np.stack([u[near], v[near], nearest[near]], axis=1).astype(np.float64)


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory):
    pytest.importorskip("open3d")
    from concerto3d.io import read_color, read_intrinsics, read_mesh_ply, read_pose, read_vertex_labels_ply
    from concerto3d.labels import nyu40_to_scannet20
    from concerto3d.synth import generate_dataset

    base = tmp_path_factory.mktemp("pointcept_acceptance")
    generate_dataset(base / "scans", 1, FRAMES, 7, color_size=COLOR, depth_size=DEPTH, progress=False)
    preprocess(base / "scans", base / "own", frame_skip=1, voxel=VOXEL, image_size=SIZE, patch_size=16,
               progress=False)
    name = "scene0000_00"
    scan = base / "scans" / "scans" / name
    mesh = read_mesh_ply(scan / f"{name}_vh_clean_2.ply")
    K = read_intrinsics(scan / "intrinsic" / "intrinsic_color.txt")
    frames = []
    for i in range(FRAMES):
        pose, color = read_pose(scan / "pose" / f"{i}.txt"), read_color(scan / "color" / f"{i}.jpg")
        frames.append({"key": i, "color": color, "pose": pose,
                       "rows": pointcept_rows(mesh.vertices, mesh.faces, pose, K, color.shape[:2])})
    points = {"coord": mesh.vertices.astype(np.float32), "color": mesh.colors[:, :3].astype(np.uint8),
              "segment20": nyu40_to_scannet20(read_vertex_labels_ply(scan / f"{name}_vh_clean_2.labels.ply"))}
    split = "val" if name in (base / "scans" / "scannetv2_val.txt").read_text().split() else "train"
    write_pointcept_scene(base / "pointcept", split, name, points, frames, K)
    preprocess(base / "pointcept", base / "converted", voxel=VOXEL, image_size=SIZE, patch_size=16, progress=False)
    return base / "own" / name, base / "converted" / name


def test_the_same_scan_gives_the_same_points_cameras_and_images(both_ways):
    own, converted = both_ways
    assert np.array_equal(np.load(own / "coord.npy"), np.load(converted / "coord.npy"))
    assert np.array_equal(np.load(own / "segment20.npy"), np.load(converted / "segment20.npy"))
    assert np.allclose(np.load(own / "intrinsics.npy"), np.load(converted / "intrinsics.npy"), atol=1e-4)
    assert np.allclose(np.load(own / "poses.npy"), np.load(converted / "poses.npy"), atol=1e-5)
    for k in range(FRAMES):
        a, b = (read_image(folder / "images" / f"{k:06d}.jpg")[0].astype(int) for folder in (own, converted))
        assert a.shape == b.shape == (*SIZE, 3) and np.abs(a - b).mean() < 3


def test_a_point_sees_the_same_pixel_within_one_either_way(both_ways):
    own, converted = both_ways
    mine, theirs = load_correspondences(own).astype(np.int64), load_correspondences(converted).astype(np.int64)
    for k in range(FRAMES):
        a, b = mine[mine[:, 0] == k], theirs[theirs[:, 0] == k]
        common = np.intersect1d(a[:, 3], b[:, 3])
        assert len(common) > 1000
        # Pointcept matches pixels, concerto3d points: most points seen one way are seen the other way too (the
        # rest: holes in the sensor depth, and points no full-resolution pixel has as its nearest)
        assert len(common) > 0.6 * len(np.unique(a[:, 3])) and len(common) > 0.75 * len(np.unique(b[:, 3]))
        own_pixel = np.full((int(a[:, 3].max()) + 1, 2), -99)
        own_pixel[a[:, 3]] = a[:, 1:3]  # concerto3d: one pixel per point and frame
        b = b[np.isin(b[:, 3], common)]
        off = np.abs(b[:, 1:3] - own_pixel[b[:, 3]]).max(axis=1)  # each of Pointcept's pixels of the point
        nearest = np.full(len(own_pixel), 99)
        np.minimum.at(nearest, b[:, 3], off)
        assert nearest[common].max() <= 1, k  # the point's own pixel is among Pointcept's, within one
        assert np.median(off) <= 1

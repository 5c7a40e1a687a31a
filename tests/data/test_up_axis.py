"""The up axis: estimated for RGB-D folders whose world is not z-up, and the scene stored z-up."""

import json

import numpy as np
import pytest
from rgbd_scenes import ROOM_HI, ROOM_LO, room_poses, write_7scenes_folder

from concerto3d.data.preprocess import preprocess
from concerto3d.data.up_axis import axis_vector, camera_up, estimate_up, refine_up, rotation_to_z
from concerto3d.io.geometry_files import write_matrix

SMALL = dict(image_size=(48, 64), patch_size=16)


def _rotation(axis, degrees):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(degrees)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def _angle(a, b):
    return np.degrees(np.arccos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


@pytest.mark.parametrize("up", [[0, 0, 1], [0, -1, 0], [0.3, 0.2, -0.9], [0, 0, -1]])
def test_rotation_to_z_takes_up_to_z(up):
    rotation = rotation_to_z(np.array(up, float))
    np.testing.assert_allclose(rotation @ (np.array(up) / np.linalg.norm(up)), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_camera_up_and_the_refinement_by_level_normals():
    world = _rotation([1, 0.4, 0], 100)  # the input world: z-up room turned by 100 degrees
    poses = [np.block([[world @ p[:3, :3], (world @ p[:3, 3])[:, None]], [np.zeros((1, 3)), 1]])
             for p in room_poses(12)]
    guess = camera_up(np.stack(poses))
    assert _angle(guess, world @ [0, 0, 1]) < 15  # cameras pitch down a little: a rough guess
    rng = np.random.default_rng(0)
    floor = np.tile(world @ [0, 0, 1], (500, 1)) + rng.normal(0, 0.02, (500, 3))
    walls = np.array([world @ [np.cos(a), np.sin(a), 0] for a in rng.uniform(0, 2 * np.pi, 1500)])
    normals = np.concatenate([floor, -floor[:200], walls])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    assert _angle(refine_up(guess, normals), world @ [0, 0, 1]) < 1
    assert _angle(estimate_up(np.stack(poses), normals), world @ [0, 0, 1]) < 1
    assert axis_vector("-y").tolist() == [0, -1, 0]
    with pytest.raises(ValueError):
        axis_vector("up")


def test_a_generic_folder_whose_world_is_not_z_up_is_stored_z_up(tmp_path):
    """7-Scenes-like folder rendered in a z-up room, its poses written in a world turned by 70 degrees: the
    stored scene's up is +z within 2 degrees (floor normals, room height), as with the unturned poses."""
    poses = room_poses(8)
    plain = write_7scenes_folder(tmp_path / "plain" / "seq-01", poses)
    turned = write_7scenes_folder(tmp_path / "turned" / "seq-01", poses)
    world = np.eye(4)
    world[:3, :3] = _rotation([1, -0.5, 0.2], 70)
    for i, pose in enumerate(poses):
        write_matrix(turned / f"frame-{i:06d}.pose.txt", world @ pose)
    for name in ("plain", "turned"):
        preprocess(tmp_path / name, tmp_path / f"out_{name}", frame_skip=1, voxel=0.05, progress=False, **SMALL)
        scene = tmp_path / f"out_{name}" / "seq-01"
        meta = json.loads((scene / "meta.json").read_text())
        truth = world[:3, :3] @ [0, 0, 1] if name == "turned" else np.array([0, 0, 1])
        assert meta["up"]["mode"] == "auto"
        assert _angle(meta["up"]["up_in_input"], truth) < 2, (name, meta["up"])
        coord, normal = np.load(scene / "coord.npy"), np.load(scene / "normal.npy")
        extent = coord[:, 2].max() - coord[:, 2].min()
        assert abs(extent - (ROOM_HI - ROOM_LO)[2]) < 0.15, (name, extent)  # floor to ceiling along the stored z
        assert _angle(refine_up(np.array([0, 0, 1.0]), normal), [0, 0, 1]) < 2, name  # level surfaces lie flat
        poses_stored = np.load(scene / "poses.npy")
        assert _angle(camera_up(poses_stored), [0, 0, 1]) < 15  # the cameras were turned with the scene
    assert meta["up"]["tilt_degrees"] > 60  # the turned world was found 70 degrees off
    # --up names the axis instead: here the input's z, kept as it is
    preprocess(tmp_path / "plain", tmp_path / "given", frame_skip=1, voxel=0.05, progress=False, up="z", **SMALL)
    given = json.loads((tmp_path / "given" / "seq-01" / "meta.json").read_text())["up"]
    assert given["from"] == "given" and np.allclose(given["rotation"], np.eye(3))

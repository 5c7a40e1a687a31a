"""Image patch features onto points: the maths by hand, then one scene's photos through a real image encoder."""

import numpy as np
import pytest
import torch
from PIL import Image

from concerto3d.errors import InputError
from concerto3d.evaluation.lifting import lift_patch_features, lift_scene_features, lift_split


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# 2 images of 12 x 8 pixels, patches of 4 -> a 2 x 3 patch grid; patch (k, r, c) has feature (100k + 10r + c, -1)
F, HP, WP, P = 2, 2, 3, 4
GRID = torch.tensor([[[[100 * k + 10 * r + c, -1.0] for c in range(WP)] for r in range(HP)] for k in range(F)])

CORR = np.array([
    # k, u, v, point
    [0, 1, 1, 0],    # point 0: image 0 patch (0, 0) -> 0
    [1, 9, 5, 0],    # point 0: image 1 patch (1, 2) -> 112
    [0, 5, 6, 1],    # point 1: image 0 patch (1, 1) -> 11, seen by two pixels of the same patch
    [0, 7, 4, 1],    #          -> 11 again
    [1, 11, 7, 3],   # point 3: last pixel of image 1, patch (1, 2) -> 112
    [0, 4, 3, 4],    # point 4: image 0 patch (0, 1) -> 1 (u = 4 starts the second patch column)
    [1, 0, 4, 4],    #          image 1 patch (1, 0) -> 110
    [1, 3, 0, 4],    #          image 1 patch (0, 0) -> 100
])                   # point 2 unseen


def test_lifting_against_hand_made_correspondences():
    out = lift_patch_features(GRID, CORR, num_points=5, patch_size=P)
    expected = torch.tensor([[(0 + 112) / 2, -1.0],
                             [11.0, -1.0],
                             [0.0, 0.0],
                             [112.0, -1.0],
                             [(1 + 110 + 100) / 3, -1.0]])
    torch.testing.assert_close(out.features, expected)
    assert out.seen.tolist() == [True, True, False, True, True]
    assert out.num_unseen == 1
    features, seen, num_unseen = out  # unpacks as a tuple too
    assert features.shape == (5, 2)


def test_numpy_inputs_and_no_correspondences():
    out = lift_patch_features(GRID.numpy(), np.zeros((0, 4), dtype=np.int32), num_points=3, patch_size=P)
    assert out.num_unseen == 3 and not out.seen.any() and (out.features == 0).all()


@pytest.mark.parametrize("row, message", [
    ([2, 0, 0, 0], "image index"),
    ([0, 12, 0, 0], "patch column"),
    ([0, 0, 8, 0], "patch row"),
    ([0, 0, 0, 5], "point index"),
    ([0, -1, 0, 0], "patch column"),
])
def test_out_of_range_rows_are_rejected(row, message):
    with pytest.raises(ValueError, match=message):
        lift_patch_features(GRID, np.array([row]), num_points=5, patch_size=P)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="patch grid"):
        lift_patch_features(GRID[0], CORR, 5, P)
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        lift_patch_features(GRID, CORR[:, :3], 5, P)
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        lift_patch_features(GRID, CORR.astype(float), 5, P)


def _tiny_encoder():
    from concerto3d.models.image_encoder import ImageEncoder, ImageEncoderConfig

    torch.manual_seed(0)
    return ImageEncoder(ImageEncoderConfig(image_size=(32, 48), patch_size=16, hidden_size=16, num_layers=1,
                                           num_heads=2))  # the tiny scenes' 32 x 48 photos (conftest.py)


def test_lift_scene_features_averages_the_patches_that_see_each_point(tiny_data):
    encoder = _tiny_encoder()
    scene = tiny_data / "scene0003_00"
    lifted = lift_scene_features(encoder, scene, image_batch=1)

    images = np.stack([np.asarray(Image.open(scene / "images" / f"{k:06d}.jpg").convert("RGB")) for k in (0, 1)])
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        grid = encoder(encoder.normalize(x)).patch_grid.numpy()
    corr = np.load(scene / "correspondences.npy")
    expected = np.zeros((400, 16), np.float32)
    for p in (0, 5, 250, 399):
        rows = corr[corr[:, 3] == p]
        if len(rows):
            expected[p] = np.mean([grid[k, v // 16, u // 16] for k, u, v, _ in rows], axis=0)
        np.testing.assert_allclose(lifted.features[p], expected[p], rtol=1e-4, atol=1e-5)
        assert lifted.seen[p] == (len(rows) > 0)
    assert (lifted.features[~lifted.seen] == 0).all()
    assert np.array_equal(lifted.labels, np.load(scene / "segment20.npy"))


def test_lift_split_lifts_every_scene_of_the_list_and_counts_the_unseen_points(tiny_data):
    out = lift_split(_tiny_encoder(), tiny_data, "train", image_batch=2, progress=False)
    assert len(out.features) == len(out.labels) == 3 and out.features[0].shape == (400, 16)
    unseen = sum(int((np.abs(x).sum(axis=1) == 0).sum()) for x in out.features)
    assert out.counts["points"] == 1200 and out.counts["unseen"] == unseen
    labelled = sum(int((y != -1).sum()) for y in out.labels)
    assert out.counts["labelled"] == labelled and 0 <= out.counts["labelled_unseen"] <= out.counts["unseen"]


def test_a_scene_without_its_photo_or_correspondences_is_a_one_line_error(tiny_data, tmp_path):
    import shutil

    scene = tmp_path / "scene"
    shutil.copytree(tiny_data / "scene0000_00", scene)
    (scene / "images" / "000001.jpg").unlink()
    with pytest.raises(InputError, match="000001.jpg"):
        lift_scene_features(_tiny_encoder(), scene)
    (scene / "correspondences.npy").unlink()
    with pytest.raises(InputError, match="correspondences.npy"):
        lift_scene_features(_tiny_encoder(), scene)

import numpy as np
import pytest
import torch

from concerto3d.evaluation.lifting import lift_patch_features


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

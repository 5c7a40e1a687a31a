"""Patch keys and pooling of point features onto image patches."""

import pytest
import torch

from concerto3d.ops import correspondence_patch_keys, gather_patches, patch_key, pool_to_patches, split_patch_key


def test_correspondence_keys_follow_vit_patch_order():
    # 32 x 48 images, 16-pixel patches -> a 2 x 3 grid, 6 patches per image.
    corr = torch.tensor([[0, 0, 0, 7], [0, 47, 31, 8], [1, 17, 16, 9], [2, 40, 5, 1]])
    point, key = correspondence_patch_keys(corr, (32, 48), 16)
    assert point.tolist() == [7, 8, 9, 1]
    assert key.tolist() == [0, 5, 6 + 4, 12 + 2]
    image, patch = split_patch_key(key, 6)
    assert image.tolist() == [0, 0, 1, 2] and patch.tolist() == [0, 5, 4, 2]
    assert torch.equal(patch_key(image, patch, 6), key)


def test_pixel_outside_the_image_is_rejected():
    with pytest.raises(ValueError, match="outside"):
        correspondence_patch_keys(torch.tensor([[0, 48, 0, 0]]), (32, 48), 16)


def test_pool_to_patches_is_a_per_key_mean_with_gradients():
    feat = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]], requires_grad=True)
    corr_point = torch.tensor([0, 1, 2, 2, 1])
    corr_key = torch.tensor([9, 9, 4, 4, 4])
    keys, pooled = pool_to_patches(feat, corr_point, corr_key)
    assert keys.tolist() == [4, 9]
    # key 4: points 2, 2, 1 -> (5+5+3)/3, (4+4+2)/3; key 9: points 0, 1.
    torch.testing.assert_close(pooled, torch.tensor([[13 / 3, 10 / 3], [2.0, 1.0]]))
    pooled.sum().backward()
    torch.testing.assert_close(feat.grad[:, 0], torch.tensor([0.5, 0.5 + 1 / 3, 2 / 3]))


def test_gather_patches_picks_the_same_keys_from_the_grid():
    grid = torch.arange(2 * 2 * 3 * 1, dtype=torch.float32).reshape(2, 2, 3, 1)  # value = key
    keys = torch.tensor([0, 5, 7, 11])
    assert gather_patches(grid, keys)[:, 0].tolist() == [0.0, 5.0, 7.0, 11.0]
    with pytest.raises(ValueError, match="outside"):
        gather_patches(grid, torch.tensor([12]))


def test_majority_patch_labels_votes_per_pixel_skips_unlabelled_and_breaks_ties_low():
    from concerto3d.ops import majority_patch_labels

    key = torch.tensor([7, 7, 7, 2, 2, 5, 9, 9])
    label = torch.tensor([4, 4, 1, 3, 6, -1, 2, 8])
    # key 7: 4 twice (two pixels of one point count twice), 1 once -> 4; key 2: 3 and 6 tie -> 3 (lower class);
    # key 5: only an unlabelled point -> left out; key 9: 2 and 8 tie -> 2
    keys, labels = majority_patch_labels(key, label, num_classes=10)
    assert keys.tolist() == [2, 7, 9]
    assert labels.tolist() == [3, 4, 2]
    empty_keys, empty_labels = majority_patch_labels(torch.tensor([1]), torch.tensor([-1]), num_classes=10)
    assert empty_keys.numel() == 0 and empty_labels.numel() == 0

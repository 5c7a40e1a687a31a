"""collate_scenes: shapes, dtypes and the shifting of point and image indices."""

import numpy as np
import pytest
import torch
from fake_scenes import make_fake_root

from concerto3d.data.collate import (FEATURE_CHANNELS, CropSample, PointView, TrainBatch, collate_scenes,
                                     feature_channels, make_view, point_features)
from concerto3d.data.dataset import DataConfig, SceneDataset
from concerto3d.data.point_cloud import PointCloud


def hand_sample(n, f, m, seed, h=32, w=48) -> CropSample:
    """A crop sample with n points, f images, m correspondences; view indices are a random subset."""
    g = torch.Generator().manual_seed(seed)
    cloud = PointCloud.from_arrays(torch.rand(n, 3, generator=g).numpy(), torch.rand(n, 3, generator=g).numpy(),
                                   torch.rand(n, 3, generator=g).numpy())
    keep = np.sort(torch.randperm(n, generator=g)[: n // 2 + 1].numpy())
    corr = torch.stack([torch.randint(0, max(f, 1), (m,), generator=g), torch.randint(0, w, (m,), generator=g),
                        torch.randint(0, h, (m,), generator=g), torch.randint(0, n, (m,), generator=g)], dim=1)
    return CropSample(labels=torch.randint(-1, 20, (n,), generator=g), view_student=make_view(cloud),
                      view_teacher=make_view(cloud.take(keep)), images=torch.rand(f, 3, h, w, generator=g),
                      images_teacher=torch.rand(f, 3, h, w, generator=g), corr=corr if f else corr[:0],
                      centre=torch.zeros(3), scene=f"s{seed}")


def test_collate_shifts_point_and_image_indices():
    samples = [hand_sample(10, 2, 7, 0), hand_sample(6, 3, 5, 1), hand_sample(8, 0, 0, 2)]
    batch = collate_scenes(samples)
    assert isinstance(batch, TrainBatch) and batch.num_crops == 3
    torch.testing.assert_close(batch.crop_offsets, torch.tensor([0, 10, 16, 24]))
    torch.testing.assert_close(batch.image_crop, torch.tensor([0, 0, 1, 1, 1]))
    assert batch.images.shape == (5, 3, 32, 48) and batch.images_teacher.shape == (5, 3, 32, 48)
    assert batch.corr.shape == (12, 4) and batch.labels.shape == (24,)
    for name in ("view_student", "view_teacher"):
        view = getattr(batch, name)
        assert torch.all(view.batch[1:] >= view.batch[:-1])
        for b, s in enumerate(samples):
            mine = view.batch == b
            own = getattr(s, name)
            torch.testing.assert_close(view.coord[mine], own.coord)
            torch.testing.assert_close(view.index[mine], own.index + batch.crop_offsets[b])
            # a view point still carries its crop point's label
            torch.testing.assert_close(batch.labels[view.index[mine]], s.labels[own.index])
    # correspondence rows address the same image and the same crop point after shifting
    start = 0
    for b, s in enumerate(samples):
        rows = batch.corr[start:start + len(s.corr)]
        torch.testing.assert_close(batch.images[rows[:, 0]], s.images[s.corr[:, 0]])
        assert torch.all(batch.image_crop[rows[:, 0]] == b)
        torch.testing.assert_close(batch.labels[rows[:, 3]], s.labels[s.corr[:, 3]])
        torch.testing.assert_close(rows[:, 1:3], s.corr[:, 1:3])
        start += len(s.corr)


def test_collated_dataset_batch_of_two_scenes(tmp_path):
    make_fake_root(tmp_path, n_scenes=2, n_points=400, n_frames=2, image_size=(32, 48))
    ds = SceneDataset(tmp_path, None, DataConfig(max_points=200, min_points=50, max_frames=2, image_size=(32, 48)))
    batch = collate_scenes([ds[0], ds[1]])
    n = int(batch.crop_offsets[-1])
    assert batch.crop_offsets.dtype == torch.long and n == 400 and batch.labels.shape == (n,)
    assert batch.labels.dtype == torch.long and batch.labels.min() >= -1 and batch.labels.max() < 20
    for view in (batch.view_student, batch.view_teacher):
        assert view.coord.dtype == torch.float32 and view.feat.shape == (len(view.coord), FEATURE_CHANNELS)
        assert view.batch.dtype == torch.long and view.index.dtype == torch.long
        assert set(view.batch.tolist()) == {0, 1}
        assert torch.all(view.index[view.batch == 1] >= 200) and torch.all(view.index[view.batch == 0] < 200)
    F = len(batch.images)
    assert batch.images.shape == (F, 3, 32, 48) and batch.images.dtype == torch.float32 and F >= 2
    assert batch.corr.dtype == torch.long and batch.corr[:, 0].max() < F and batch.corr[:, 3].max() < n
    # each correspondence's image belongs to the crop of its point
    point_crop = torch.searchsorted(batch.crop_offsets, batch.corr[:, 3], right=True) - 1
    torch.testing.assert_close(batch.image_crop[batch.corr[:, 0]], point_crop)


def test_to_and_pin_memory():
    batch = collate_scenes([hand_sample(5, 1, 3, 0), hand_sample(4, 1, 2, 1)])
    moved = batch.to("cpu")
    assert isinstance(moved, TrainBatch) and isinstance(moved.view_student, PointView)
    torch.testing.assert_close(moved.view_teacher.index, batch.view_teacher.index)
    if torch.cuda.is_available():
        pinned = batch.pin_memory()
        assert pinned.images.is_pinned() and pinned.view_student.coord.is_pinned()
        assert batch.to("cuda", non_blocking=True).corr.is_cuda


def test_feature_layout():
    assert feature_channels() == feature_channels(False, False) == FEATURE_CHANNELS == 9
    cloud = PointCloud.from_arrays(np.ones((4, 3)), np.full((4, 3), 255, np.uint8), np.full((4, 3), 0.5))
    feat = point_features(cloud)
    np.testing.assert_array_equal(feat[:, :3], 1.0)
    np.testing.assert_array_equal(feat[:, 3:6], 1.0)  # colour 255 -> 1 in [-1, 1]
    np.testing.assert_array_equal(feat[:, 6:9], 0.5)
    assert not point_features(cloud, use_color=False)[:, 3:6].any()
    assert not point_features(cloud.replace(has_normal=False))[:, 6:9].any()


def test_collate_rejects_bad_batches():
    with pytest.raises(ValueError, match="at least one sample"):
        collate_scenes([])
    with pytest.raises(ValueError, match="one size"):
        collate_scenes([hand_sample(5, 1, 3, 0), hand_sample(5, 1, 3, 1, h=16)])

"""FrameIndex: frames' rows and point samples of a frame-sorted correspondences.npy; crops read only their frames."""

import dataclasses

import numpy as np
import pytest
import torch
from fake_scenes import make_fake_root

import concerto3d.data.dataset as dataset_module
from concerto3d.data.dataset import DataConfig, SceneDataset, select_frames
from concerto3d.data.frame_index import FrameIndex


def _corr(rows_per_frame, num_points=1000, seed=0):
    rng = np.random.default_rng(seed)
    parts = [np.column_stack([np.full(n, k), rng.integers(0, 64, (n, 2)), rng.integers(0, num_points, n)])
             for k, n in enumerate(rows_per_frame)]
    return np.concatenate(parts).astype(np.int32)


@pytest.mark.parametrize("chunk_rows", [7, 1 << 20])
def test_offsets_and_samples_of_a_sorted_file(chunk_rows):
    corr = _corr([5, 0, 300, 12])
    index = FrameIndex.build(corr, sample_points=16, chunk_rows=chunk_rows)
    assert index.num_frames == 4 and index.offsets.tolist() == [0, 5, 5, 305, 317]
    np.testing.assert_array_equal(index.rows(corr, np.array([0, 3])), np.concatenate([corr[:5], corr[305:]]))
    assert index.stride.tolist() == [1, 1, 19, 1]  # ceil(300 / 16)
    np.testing.assert_array_equal(index.sample[2, :16], corr[5:305:19, 3])
    assert (index.sample[1] == -1).all() and (index.sample[0, 5:] == -1).all()
    assert index.rows(corr, np.zeros(0, np.int64)).shape == (0, 4)


def test_an_unsorted_file_has_no_index():
    corr = _corr([4, 4])
    assert FrameIndex.build(corr[::-1].copy()) is None
    assert FrameIndex.build(np.concatenate([corr[4:], corr[:4]]), chunk_rows=4) is None  # sorted within each chunk


def test_frames_chosen_from_whole_samples_are_the_exact_choice():
    corr = _corr([40, 10, 25, 60, 0, 33], num_points=200, seed=1)
    index = FrameIndex.build(corr, sample_points=64)  # every frame's rows fit the sample: counts are exact
    rng = np.random.default_rng(2)
    for _ in range(20):
        in_crop = rng.random(200) < rng.uniform(0.05, 0.6)
        exact = select_frames(corr[in_crop[corr[:, 3]], 0].astype(np.int64), 6, 3)
        np.testing.assert_array_equal(index.choose(in_crop, 3), exact)


def test_sampled_counts_pick_the_frames_that_see_the_crop():
    # frames 0-9 see points 0-99 in turn (block k: points 10k..10k+9), 500 rows each; a crop of block 7's points
    corr = np.concatenate([np.column_stack([np.full(500, k), np.zeros((500, 2), int), 10 * k + np.arange(500) % 10])
                           for k in range(10)]).astype(np.int32)
    index = FrameIndex.build(corr, sample_points=32)
    in_crop = np.zeros(100, bool)
    in_crop[70:80] = True
    assert index.choose(in_crop, 2).tolist() == [7]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("frame_index")
    make_fake_root(path, n_scenes=1, splits={"train": ["scene0000_00"]}, n_points=600, n_frames=4, corr_stride=8)
    return path


def test_the_indexed_crop_equals_the_whole_file_crop(root, monkeypatch):
    """Forced onto the indexed path (every file 'large'), a crop is the one the whole-file path gives: each fake
    frame has fewer rows than the sample holds, so the counts are exact."""
    cfg = DataConfig(max_points=200, min_points=50, max_frames=2)
    whole = SceneDataset(root, "train", cfg)
    rows_per_frame = np.bincount(np.load(root / "scene0000_00" / "correspondences.npy")[:, 0])
    assert rows_per_frame.max() <= 256
    whole.load_crop(0, whole.rng(0))  # its scene's index is made now, with the real threshold
    monkeypatch.setattr(dataset_module, "EXACT_ROWS", 0)
    indexed = SceneDataset(root, "train", cfg)
    for i in range(6):
        a, b = whole.load_crop(i, whole.rng(i)), indexed.load_crop(i, indexed.rng(i))
        assert indexed._frame_index["scene0000_00"][1] is not None and whole._frame_index["scene0000_00"][1] is None
        np.testing.assert_array_equal(a.point_index, b.point_index)
        np.testing.assert_array_equal(a.frame_index, b.frame_index)
        np.testing.assert_array_equal(a.corr, b.corr)
        np.testing.assert_array_equal(a.images, b.images)


def test_no_frames_wanted_reads_no_images_and_keeps_the_crop(root):
    with_frames = SceneDataset(root, "train", DataConfig(max_points=200, min_points=50, max_frames=2, loop=6))
    without = SceneDataset(root, "train", dataclasses.replace(with_frames.config, max_frames=0))
    a, b = with_frames[3], without[3]
    assert b.images.shape[0] == 0 and b.corr.shape == (0, 4)
    assert a.images.shape[0] > 0
    # the point views are drawn before the images: the same with or without frames
    for va, vb in ((a.view_student, b.view_student), (a.view_teacher, b.view_teacher)):
        assert all(torch.equal(getattr(va, f), getattr(vb, f)) for f in ("coord", "feat", "index"))

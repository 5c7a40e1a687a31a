"""SceneDataset on tiny fake preprocessed scenes: crops, frames, correspondences, views, determinism, workers."""

import logging
import pickle

import numpy as np
import pytest
import torch
from fake_scenes import make_fake_root, make_fake_scene, palette_color

from concerto3d.data.collate import FEATURE_SLICES, collate_scenes
from concerto3d.data.dataset import DataConfig, SceneDataset, select_frames
from concerto3d.data.image_transforms import denormalize
from concerto3d.errors import FormatError, InputError

IMAGE_SIZE = (64, 96)
SMALL = dict(max_points=256, min_points=64, max_frames=2, image_size=IMAGE_SIZE)
# augmentation off except a full rotation about z
ROTATE_ONLY = dict(view_crop=(1.0, 1.0), rotate_z=180.0, tilt=0.0, scale=(1.0, 1.0), flip_p=0.0, elastic_p=0.0,
                   jitter_sigma=0.0, color_jitter=0.0, color_drop_p=0.0, normal_drop_p=0.0, image_jitter=0.0,
                   image_grayscale_p=0.0, image_blur_p=0.0)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("preprocessed")
    make_fake_root(path, n_scenes=2, splits={"train": ["scene0000_00"], "val": ["scene0001_00"]},
                   n_points=600, n_frames=3, image_size=IMAGE_SIZE)
    return path


def test_splits_and_scene_discovery(root, tmp_path):
    assert SceneDataset(root, "train", DataConfig(**SMALL)).scenes == ["scene0000_00"]
    assert SceneDataset(root, "val", DataConfig(**SMALL)).scenes == ["scene0001_00"]
    assert SceneDataset(root, None, DataConfig(**SMALL)).scenes == ["scene0000_00", "scene0001_00"]
    with pytest.raises(InputError, match="test.txt: missing split list"):  # a split is its list, or an error
        SceneDataset(root, "test", DataConfig(**SMALL))
    assert len(SceneDataset(root, None, DataConfig(**SMALL, loop=3))) == 6
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("scene_missing\n")
    with pytest.raises(InputError, match="train.txt: lists 1 scene.* with no preprocessed folder"):
        SceneDataset(tmp_path, "train")
    with pytest.raises(InputError, match="expected a folder"):
        SceneDataset(tmp_path / "nowhere")


def test_sample_shapes_and_ranges(root):
    ds = SceneDataset(root, None, DataConfig(**SMALL))
    s = ds[0]
    n = s.num_points
    assert n == 256 and s.labels.shape == (n,) and s.labels.dtype == torch.long
    assert 1 <= len(s.images) <= 2 and s.images.shape[1:] == (3, *IMAGE_SIZE) and s.images.dtype == torch.float32
    assert s.images_teacher.shape == s.images.shape
    assert s.corr.dtype == torch.long and s.corr.shape[1] == 4 and len(s.corr) > 0
    assert s.corr[:, 0].max() < len(s.images) and s.corr[:, 3].max() < n and s.corr.min() >= 0
    assert s.corr[:, 1].max() < IMAGE_SIZE[1] and s.corr[:, 2].max() < IMAGE_SIZE[0]
    for view in (s.view_student, s.view_teacher):
        assert view.coord.shape == (len(view.index), 3) and view.feat.shape == (len(view.index), 9)
        assert view.index.dtype == torch.long and view.index.max() < n and len(view.index) >= 64
        assert not view.feat[:, :2].any()  # the default position input: height only, no x, y
        torch.testing.assert_close(view.feat[:, 2], view.coord[:, 2])
    s = SceneDataset(root, None, DataConfig(**SMALL, position_feature="xyz"))[0]
    torch.testing.assert_close(s.view_student.feat[:, FEATURE_SLICES["xyz"]], s.view_student.coord)


def test_the_height_channel_is_the_height_above_the_scenes_floor(root):
    ds = SceneDataset(root, None, DataConfig(**SMALL, augment=False))
    for i in range(len(ds)):
        s = ds[i]
        world_z = s.view_student.coord[:, 2] + s.centre[2]
        floor = float(np.load(root / ds.scenes[i] / "coord.npy")[:, 2].min())
        assert float(s.centre[2]) == pytest.approx(floor)
        torch.testing.assert_close(s.view_student.feat[:, 2], world_z - floor, atol=1e-5, rtol=0)
        assert float(s.view_student.feat[:, 2].min()) >= -1e-5


def test_crop_is_the_nearest_points_and_frames_see_it_most(root):
    ds = SceneDataset(root, None, DataConfig(**SMALL))
    crop = ds.load_crop(1, ds.rng(1))
    coord = np.load(root / "scene0001_00" / "coord.npy")
    np.testing.assert_array_equal(crop.coord, coord[crop.point_index])
    np.testing.assert_array_equal(crop.segment20, np.load(root / "scene0001_00" / "segment20.npy")[crop.point_index])
    # the crop is a ball: the max_points points nearest to one of its points
    dropped = np.setdiff1d(np.arange(len(coord)), crop.point_index)
    assert any(np.linalg.norm(crop.coord - c, axis=1).max() <= np.linalg.norm(coord[dropped] - c, axis=1).min()
               for c in crop.coord)
    # frames: the ones with the most correspondences into the crop
    corr = np.load(root / "scene0001_00" / "correspondences.npy")
    counts = np.bincount(corr[np.isin(corr[:, 3], crop.point_index), 0], minlength=3)
    others = np.setdiff1d(np.arange(3), crop.frame_index)
    assert 1 <= len(crop.frame_index) <= 2 and counts[crop.frame_index].min() >= counts[others].max()


def test_select_frames():
    np.testing.assert_array_equal(select_frames(np.array([2, 2, 0, 1, 1, 1]), 4, 2), [1, 2])
    np.testing.assert_array_equal(select_frames(np.array([3]), 4, 2), [3])
    assert len(select_frames(np.zeros(0, np.int64), 0, 2)) == 0


@pytest.mark.parametrize("image_size", [IMAGE_SIZE, (128, 144)])
def test_correspondence_pixel_shows_its_point(root, image_size):
    """The pixel (u, v) of a kept correspondence is painted in the colour of its crop point (also after resize)."""
    cfg = DataConfig(**{**SMALL, "image_size": image_size}, augment=False)
    ds = SceneDataset(root, None, cfg)
    for index in range(2):
        s = ds[index]
        view = s.view_student
        np.testing.assert_array_equal(view.index.numpy(), np.arange(s.num_points))  # no augmentation: identity
        point_rgb = (view.feat[s.corr[:, 3], FEATURE_SLICES["color"]] + 1) / 2 * 255
        pixels = denormalize(s.images)[s.corr[:, 0], :, s.corr[:, 2], s.corr[:, 1]] * 255
        assert (pixels - point_rgb).abs().max() < 20, "a correspondence points at a pixel of another point"
        # and the crop point is the scene point the fake scene put there
        crop = ds.load_crop(index, ds.rng(index))
        np.testing.assert_array_equal(palette_color(crop.point_index[s.corr[:, 3].numpy()]),
                                      crop.color[s.corr[:, 3].numpy()])


def test_rotation_does_not_change_labels(root):
    plain = SceneDataset(root, None, DataConfig(**SMALL, augment=False))[0]
    rotated = SceneDataset(root, None, DataConfig(**SMALL, **ROTATE_ONLY))[0]
    torch.testing.assert_close(rotated.labels, plain.labels)
    torch.testing.assert_close(rotated.corr, plain.corr)
    view, ref = rotated.view_student, plain.view_student
    np.testing.assert_array_equal(view.index.numpy(), ref.index.numpy())
    src, dst = ref.coord[view.index].double().numpy(), view.coord.double().numpy()
    R, *_ = np.linalg.lstsq(src, dst, rcond=None)
    np.testing.assert_allclose(src @ R, dst, atol=1e-4)
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-4)
    assert not np.allclose(R, np.eye(3), atol=1e-3)
    # normals turned with the points, colours unchanged
    np.testing.assert_allclose(ref.feat[view.index, 6:9].numpy() @ R, view.feat[:, 6:9].numpy(), atol=1e-4)
    torch.testing.assert_close(view.feat[:, 3:6], ref.feat[view.index, 3:6])


def test_the_two_views_share_points_and_differ(root):
    ds = SceneDataset(root, None, DataConfig(**SMALL))
    for index in range(2):
        s = ds[index]
        shared = np.intersect1d(s.view_student.index.numpy(), s.view_teacher.index.numpy())
        assert len(shared) >= 0.2 * s.num_points
        assert len(s.view_student.index) >= 64 and len(s.view_teacher.index) >= 64
        assert not torch.allclose(s.images, s.images_teacher)


def test_determinism_given_seed_index_and_epoch(root):
    cfg = DataConfig(**SMALL)
    a, b = SceneDataset(root, None, cfg), SceneDataset(root, None, cfg)

    def same(x, y):
        return all(torch.equal(getattr(x.view_student, f), getattr(y.view_student, f)) for f in ("coord", "index")) \
            and torch.equal(x.images, y.images) and torch.equal(x.corr, y.corr)

    assert same(a[1], b[1]) and same(a[1], a[1])
    a.set_epoch(1)
    assert not same(a[1], b[1])
    b.set_epoch(1)
    assert same(a[1], b[1])
    c = SceneDataset(root, None, DataConfig(**SMALL, seed=5))
    assert not same(c[0], SceneDataset(root, None, cfg)[0])


def test_dataloader_with_two_workers_matches_the_main_process(root):
    ds = SceneDataset(root, None, DataConfig(**SMALL, loop=2))
    kwargs = dict(batch_size=2, shuffle=False, collate_fn=collate_scenes)
    serial = list(torch.utils.data.DataLoader(ds, num_workers=0, **kwargs))
    parallel = list(torch.utils.data.DataLoader(ds, num_workers=2, **kwargs))
    assert len(serial) == len(parallel) == 2
    for x, y in zip(serial, parallel):
        torch.testing.assert_close(x.view_teacher.coord, y.view_teacher.coord)
        torch.testing.assert_close(x.corr, y.corr)
        torch.testing.assert_close(x.images, y.images)


def test_options_without_colour_normals_and_with_a_grid(root):
    s = SceneDataset(root, None, DataConfig(**SMALL, use_color=False, use_normal=False))[0]
    assert not s.view_student.feat[:, 3:9].any() and s.view_student.feat[:, :3].abs().sum() > 0
    grid = DataConfig(**{**SMALL, "min_points": 8}, grid_size=0.3, augment=False)
    s = SceneDataset(root, None, grid)[0]
    assert 8 <= s.num_points < 256
    crop = SceneDataset(root, None, grid).load_crop(0, np.random.default_rng(0))
    cells = np.floor(crop.coord / 0.3).astype(int)
    assert len(np.unique(cells, axis=0)) == len(crop.coord)  # one point per occupied cell
    box = SceneDataset(root, None, DataConfig(**SMALL, crop_shape="box"))
    assert box[0].num_points == 256


def test_bad_scene_folders_name_the_file(tmp_path, caplog):
    make_fake_scene(tmp_path / "a", n_points=100, n_frames=1)
    make_fake_scene(tmp_path / "b", n_points=30, n_frames=1)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("a\nb\nnot_preprocessed\n")
    with pytest.raises(InputError, match="e.g. 'not_preprocessed'"):
        SceneDataset(tmp_path, "train", DataConfig(**SMALL))
    (tmp_path / "splits" / "train.txt").write_text("a\nb\n")
    with caplog.at_level(logging.WARNING):
        ds = SceneDataset(tmp_path, "train", DataConfig(**SMALL))
    assert ds.scenes == ["a"] and "skipping scene b" in caplog.text
    np.save(tmp_path / "a" / "correspondences.npy", np.zeros((5, 3), np.int32))
    with pytest.raises(FormatError, match=r"a/correspondences.npy: expected an array of shape \(\*, 4\)"):
        ds[0]
    np.save(tmp_path / "a" / "correspondences.npy", np.array([[0, 1, 1, 100]], np.int32))
    with pytest.raises(FormatError, match="correspondences.npy: expected rows"):
        ds[0]
    np.save(tmp_path / "a" / "correspondences.npy", np.array([[0, 500, 1, 3]], np.int32))
    with pytest.raises(FormatError, match="correspondences.npy: expected pixels inside the 96x64 image"):
        ds[0]
    (tmp_path / "a" / "normal.npy").unlink()
    with pytest.raises(FormatError, match="normal.npy: expected a preprocessed scene file"):
        SceneDataset(tmp_path, None, DataConfig(**SMALL))


def test_config_checks():
    with pytest.raises(ValueError, match="multiples of patch_size"):
        DataConfig(image_size=(100, 320), patch_size=16)
    assert DataConfig(image_size=(100, 320)).patch_size is None  # None: the data's, filled in by the dataset
    with pytest.raises(ValueError, match="min_points <= max_points"):
        DataConfig(max_points=10, min_points=20)
    assert DataConfig(image_size=[240, 320]).image_size == (240, 320)


def test_scene_without_correspondences_gives_a_crop_without_images(tmp_path):
    make_fake_scene(tmp_path / "a", n_points=100, n_frames=0)
    ds = SceneDataset(tmp_path, None, DataConfig(**SMALL))
    s = ds[0]
    assert s.num_points == 100 and s.images.shape == (0, 3, *IMAGE_SIZE) and s.corr.shape == (0, 4)
    batch = collate_scenes([s, s])
    assert batch.images.shape[0] == 0 and batch.image_crop.shape == (0,) and batch.labels.shape == (200,)


def test_dataset_survives_pickling(root):
    """DataLoader workers started with 'spawn' (macOS, Windows) receive a pickled copy of the dataset."""
    ds = SceneDataset(root, None, DataConfig(**SMALL))
    ds.set_epoch(3)
    copy = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(copy[1].view_student.coord, ds[1].view_student.coord)


def test_labelled_frames_are_mirrored_with_their_labels_and_nothing_else_is(root, tmp_path):
    """``label_flip_p`` (the 2d-supervised objective's frames): a mirrored frame's image and labels are mirrored
    together and its correspondences dropped; without frame labels nothing is mirrored and no draw is spent."""
    import shutil

    from PIL import Image

    from concerto3d.data.scene import label_path

    data = tmp_path / "data"
    shutil.copytree(root, data)
    for scene in ("scene0000_00", "scene0001_00"):
        for k in range(3):  # labels that tell left from right: the class is the pixel column's sixteenth
            labels = np.broadcast_to((np.arange(IMAGE_SIZE[1]) // 16).astype(np.uint8), IMAGE_SIZE)
            label_path(data / scene, k).parent.mkdir(exist_ok=True)
            Image.fromarray(np.ascontiguousarray(labels)).save(label_path(data / scene, k))
    still = {**SMALL, **ROTATE_ONLY, "frame_labels": True}
    plain = SceneDataset(data, None, DataConfig(**still, label_flip_p=0.0))[0]
    assert len(plain.corr) and plain.image_labels.shape == (len(plain.images), *IMAGE_SIZE)
    assert (plain.image_labels[:, :, 0] == 0).all() and (plain.image_labels[:, :, -1] == 5).all()
    mirrored = SceneDataset(data, None, DataConfig(**still, label_flip_p=1.0))[0]
    torch.testing.assert_close(mirrored.images, plain.images.flip(-1))
    torch.testing.assert_close(mirrored.image_labels, plain.image_labels.flip(-1))
    assert len(mirrored.corr) == 0
    torch.testing.assert_close(mirrored.view_student.coord, plain.view_student.coord)  # the points stay as they were

    unlabelled = {**SMALL, **ROTATE_ONLY}
    a = SceneDataset(data, None, DataConfig(**unlabelled, label_flip_p=1.0))[0]
    b = SceneDataset(data, None, DataConfig(**unlabelled, label_flip_p=0.0))[0]
    torch.testing.assert_close(a.images, b.images)
    torch.testing.assert_close(a.corr, b.corr)
    torch.testing.assert_close(a.view_student.coord, b.view_student.coord)
    with pytest.raises(ValueError, match="label_flip_p"):
        DataConfig(label_flip_p=1.5)

"""Point and image augmentations: index maps, geometry, inputs left untouched, printing."""

import math

import numpy as np
import pytest
import torch

from concerto3d.data.dataset import DataConfig, build_image_transforms, build_point_transforms
from concerto3d.data.image_transforms import (IMAGENET_MEAN, ImageColorJitter, ImageGaussianBlur, ImageGrayscale,
                                              Normalize, denormalize, gaussian_blur, mirror_labelled_frames,
                                              to_float_image)
from concerto3d.data.compose import Compose
from concerto3d.data.point_cloud import PointCloud, voxel_keys
from concerto3d.data.transforms import (ColorDrop, ColorJitter, ElasticDistortion, GridSample, NormalDrop, RandomCrop,
                                        RandomFlip, RandomJitter, RandomRotateZ, RandomScale, RandomTilt)


def make_cloud(n=500, seed=0) -> PointCloud:
    rng = np.random.default_rng(seed)
    coord = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    normal = rng.standard_normal((n, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    return PointCloud.from_arrays(coord, rng.integers(0, 256, (n, 3)).astype(np.uint8), normal)


def fit_affine(src, dst):
    """Least-squares dst ~ src @ A.T + b; returns (A, b, max residual)."""
    X = np.concatenate([src, np.ones((len(src), 1))], axis=1).astype(np.float64)
    sol, *_ = np.linalg.lstsq(X, dst.astype(np.float64), rcond=None)
    A, b = sol[:3].T, sol[3]
    return A, b, np.abs(X @ sol - dst).max()


def normalized(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def is_nearest_set(coord, kept, metric):
    """True when some kept point has every kept point at least as close as every dropped point."""
    dropped = np.setdiff1d(np.arange(len(coord)), kept)
    for c in coord[kept]:
        d = metric(coord - c)
        if d[kept].max() <= d[dropped].min() + 1e-6:
            return True
    return False


def snapshot(cloud):
    return {k: getattr(cloud, k).copy() for k in ("coord", "color", "normal", "index")}


ALL_TRANSFORMS = [
    RandomRotateZ(), RandomRotateZ(30), RandomTilt(3), RandomScale((0.8, 1.2)), RandomScale((0.8, 1.2), True),
    RandomFlip(1.0), RandomJitter(0.01, 0.03), ElasticDistortion(p=1.0), ColorJitter(0.3, 0.3, p=1.0),
    ColorDrop(p=1.0), NormalDrop(p=1.0), RandomCrop("sphere", (0.3, 0.5), 50), RandomCrop("box", (0.3, 0.5), 50),
    GridSample(0.3),
]


@pytest.mark.parametrize("transform", ALL_TRANSFORMS, ids=repr)
def test_every_transform_keeps_an_index_map_and_leaves_its_input_alone(transform):
    cloud = make_cloud()
    before = snapshot(cloud)
    out = transform(cloud, np.random.default_rng(1))
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(cloud, k), v, err_msg=f"{transform!r} modified its input's {k}")
    assert out is not cloud
    assert out.coord.dtype == np.float32 and out.color.dtype == np.float32 and out.index.dtype == np.int64
    # the index map points at distinct rows of the input, and every array follows it
    assert len(np.unique(out.index)) == len(out.index) and 0 < len(out) <= len(cloud)
    assert out.index.min() >= 0 and out.index.max() < len(cloud)
    # same seed, same result
    again = transform(cloud, np.random.default_rng(1))
    np.testing.assert_array_equal(again.coord, out.coord)
    np.testing.assert_array_equal(again.index, out.index)


@pytest.mark.parametrize("transform", [RandomRotateZ(), RandomRotateZ(30), RandomTilt(3), RandomScale((0.8, 1.2)),
                                       RandomScale((0.8, 1.2), True), RandomFlip(1.0)], ids=repr)
def test_linear_transforms_map_points_and_normals_consistently(transform):
    cloud = make_cloud()
    out = transform(cloud, np.random.default_rng(2))
    np.testing.assert_array_equal(out.index, np.arange(len(cloud)))
    A, b, residual = fit_affine(cloud.coord[out.index], out.coord)
    assert residual < 1e-5 and np.abs(b).max() < 1e-5, "coord_out is not a linear map of coord_in[index]"
    # normals follow the inverse transpose (= the rotation itself for rotations and flips)
    expected = normalized(cloud.normal[out.index] @ np.linalg.inv(A))
    np.testing.assert_allclose(out.normal, expected, atol=1e-5)
    np.testing.assert_array_equal(out.color, cloud.color)

    if isinstance(transform, RandomRotateZ):
        np.testing.assert_allclose(A @ A.T, np.eye(3), atol=1e-5)
        assert np.linalg.det(A) == pytest.approx(1, abs=1e-5) and A[2, 2] == pytest.approx(1, abs=1e-5)
        if transform.angle is not None:
            assert abs(math.degrees(math.atan2(A[1, 0], A[0, 0]))) <= transform.angle + 1e-3
    elif isinstance(transform, RandomTilt):
        np.testing.assert_allclose(A @ A.T, np.eye(3), atol=1e-5)
        tilt = math.degrees(math.acos(min(1.0, A[2, 2])))
        assert 0 < tilt <= math.sqrt(2) * 3 + 1e-3
    elif isinstance(transform, RandomScale):
        np.testing.assert_allclose(A, np.diag(np.diag(A)), atol=1e-5)
        assert np.all((np.diag(A) >= 0.8 - 1e-5) & (np.diag(A) <= 1.2 + 1e-5))
        if not transform.anisotropic:
            assert np.ptp(np.diag(A)) < 1e-5
    else:  # flip with p=1: both horizontal axes mirrored
        np.testing.assert_allclose(A, np.diag([-1.0, -1.0, 1.0]), atol=1e-5)


def test_flip_is_per_axis_and_sometimes_does_nothing():
    cloud = make_cloud(50)
    seen = set()
    for seed in range(40):
        out = RandomFlip(0.5)(cloud, np.random.default_rng(seed))
        seen.add(tuple(np.sign(out.coord[:, :2] * cloud.coord[:, :2]).mean(0).round().astype(int)))
    assert seen == {(1, 1), (-1, 1), (1, -1), (-1, -1)}


def test_jitter_is_small_and_clipped():
    cloud = make_cloud()
    out = RandomJitter(0.01, 0.015)(cloud, np.random.default_rng(0))
    delta = out.coord - cloud.coord[out.index]
    assert np.abs(delta).max() <= 0.015 + 1e-6 and np.abs(delta).max() > 0.005
    np.testing.assert_array_equal(out.normal, cloud.normal)


def test_elastic_distortion_is_a_smooth_bounded_displacement():
    cloud = make_cloud(3000)
    out = ElasticDistortion(((0.2, 0.4),), p=1.0)(cloud, np.random.default_rng(0))
    np.testing.assert_array_equal(out.index, np.arange(len(cloud)))
    disp = out.coord - cloud.coord
    assert 0.001 < np.abs(disp).mean() and np.abs(disp).max() < 0.4  # magnitude x blurred unit noise
    # smooth: close points move alike, far points do not
    d = np.linalg.norm(cloud.coord[:, None] - cloud.coord[None, :500], axis=2)
    i, j = np.nonzero((d < 0.03) & (d > 0))
    near = np.linalg.norm(disp[i] - disp[j], axis=1).mean()
    far = np.linalg.norm(disp[:1500] - disp[1500:], axis=1).mean()
    assert near < 0.3 * far


def test_color_jitter_is_one_affine_map_of_the_colours():
    cloud = make_cloud()
    out = ColorJitter(0.3, 0.3, p=1.0)(cloud, np.random.default_rng(3))
    np.testing.assert_array_equal(out.coord, cloud.coord)
    assert out.color.min() >= 0 and out.color.max() <= 1 and out.has_color
    inside = ((out.color > 0) & (out.color < 1)).all(axis=1)
    x, y = cloud.color[inside].ravel(), out.color[inside].ravel()
    slope, intercept = np.polyfit(x, y, 1)
    np.testing.assert_allclose(slope * x + intercept, y, atol=1e-5)
    assert abs(slope - 1) > 1e-3 or abs(intercept) > 1e-3


def test_drops_zero_their_channels_and_say_so():
    cloud = make_cloud()
    c = ColorDrop(p=1.0)(cloud, np.random.default_rng(0))
    assert not c.has_color and c.has_normal and not c.color.any()
    np.testing.assert_array_equal(c.coord, cloud.coord)
    n = NormalDrop(p=1.0)(cloud, np.random.default_rng(0))
    assert not n.has_normal and n.has_color and not n.normal.any()
    kept = ColorDrop(p=0.0)(cloud, np.random.default_rng(0))
    assert kept.has_color and kept is not cloud


@pytest.mark.parametrize("shape", ["sphere", "box"])
def test_crop_keeps_a_subset_with_at_least_min_points(shape):
    cloud = make_cloud(1000)
    for seed in range(5):
        out = RandomCrop(shape, (0.01, 0.05), min_points=120)(cloud, np.random.default_rng(seed))
        assert len(out) >= 120
        np.testing.assert_array_equal(out.coord, cloud.coord[out.index])
        np.testing.assert_array_equal(out.color, cloud.color[out.index])
        np.testing.assert_array_equal(out.normal, cloud.normal[out.index])
        # a ball / a vertical column: the points nearest to one of the cloud's points
        metric = (lambda x: np.linalg.norm(x, axis=1)) if shape == "sphere" else (lambda x: np.abs(x[:, :2]).max(1))
        assert is_nearest_set(cloud.coord, out.index, metric)
    small = make_cloud(100)
    assert len(RandomCrop(shape, (0.1, 0.2), min_points=120)(small, np.random.default_rng(0))) == 100


def test_grid_sample_keeps_one_point_per_cell():
    cloud = make_cloud(2000)
    out = GridSample(0.25)(cloud, np.random.default_rng(0))
    keys_in = voxel_keys(cloud.coord, 0.25)
    assert len(out) == len(np.unique(keys_in))
    assert len(np.unique(keys_in[out.index])) == len(out)
    np.testing.assert_array_equal(out.coord, cloud.coord[out.index])


def test_index_maps_compose_through_a_chain():
    cloud = make_cloud(2000)
    chain = Compose([RandomCrop("sphere", (0.5, 0.6)), RandomRotateZ(), RandomScale((0.5, 2.0)),
                     RandomCrop("box", (0.5, 0.6)), GridSample(0.1), RandomFlip(0.5)])
    out = chain(cloud, np.random.default_rng(4))
    assert len(out) < 0.4 * len(cloud)
    A, b, residual = fit_affine(cloud.coord[out.index], out.coord)
    assert residual < 1e-5
    np.testing.assert_allclose(out.normal, normalized(cloud.normal[out.index] @ np.linalg.inv(A)), atol=1e-5)
    np.testing.assert_array_equal(out.color, cloud.color[out.index])


def test_default_pipeline_keeps_index_map():
    cfg = DataConfig(min_points=100, max_points=1000)
    tf = build_point_transforms(cfg)
    cloud = make_cloud(1000)
    for seed in range(3):
        out = tf(cloud, np.random.default_rng(seed))
        assert len(out) >= 100 and len(np.unique(out.index)) == len(out)
        if out.has_color:  # colours move together with their points (jitter is one map for the whole cloud)
            assert np.corrcoef(out.color.ravel(), cloud.color[out.index].ravel())[0, 1] > 0.95


def test_transforms_print_readably():
    assert repr(RandomRotateZ()) == "RandomRotateZ(angle=full, p=1.0)"
    assert repr(RandomRotateZ(30, p=0.5)) == "RandomRotateZ(angle=30deg, p=0.5)"
    assert repr(RandomScale((0.9, 1.1))) == "RandomScale(scale=(0.9, 1.1), anisotropic=False, p=1.0)"
    assert repr(RandomCrop("box", (0.6, 1.0), 100)) == \
        "RandomCrop(shape=box, fraction=(0.6, 1), min_points=100, p=1.0)"
    assert repr(Compose([RandomFlip(0.5), ColorDrop(0.2)])) == \
        "Compose([\n  RandomFlip(p=0.5),\n  ColorDrop(p=0.2),\n])"
    text = repr(build_point_transforms(DataConfig()))
    assert text.startswith("Compose([\n  RandomCrop(") and "ElasticDistortion(params=((0.2, 0.4), (0.8, 1.6))" in text
    assert repr(build_image_transforms(DataConfig(augment=False))) == \
        "Compose([\n  Normalize(mean=imagenet, std=imagenet),\n])"
    assert repr(ImageGaussianBlur()) == "ImageGaussianBlur(sigma=(0.1, 2), p=0.5)"


@pytest.mark.parametrize("make", [lambda: RandomRotateZ(200), lambda: RandomScale((1.2, 0.8)),
                                  lambda: RandomCrop("cube"), lambda: ColorDrop(1.5), lambda: GridSample(0),
                                  lambda: RandomJitter(-1), lambda: ImageColorJitter(brightness=1.5)])
def test_bad_arguments_say_what_was_expected(make):
    with pytest.raises(ValueError, match="expected"):
        make()


# -- image side ---------------------------------------------------------------------------------------------------

def make_image(seed=0, h=24, w=32):
    return to_float_image(np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8))


@pytest.mark.parametrize("transform", [ImageColorJitter(p=1.0), ImageGaussianBlur(p=1.0), ImageGrayscale(p=1.0),
                                       Normalize()], ids=repr)
def test_image_transforms_keep_shape_and_input(transform):
    image = make_image()
    before = image.clone()
    out = transform(image, np.random.default_rng(0))
    torch.testing.assert_close(image, before)
    assert out.shape == image.shape and out.dtype == torch.float32
    if not isinstance(transform, Normalize):
        assert out.min() >= 0 and out.max() <= 1


def test_image_transforms_do_not_move_pixels():
    # a single bright dot stays where it was through blur, jitter and grayscale
    image = torch.zeros(3, 24, 32)
    image[:, 7, 19] = 1.0
    pipeline = Compose([ImageColorJitter(p=1.0), ImageGrayscale(p=1.0), ImageGaussianBlur((1.0, 2.0), p=1.0)])
    out = pipeline(image, np.random.default_rng(0))
    assert divmod(int(out.sum(0).argmax()), 32) == (7, 19)
    # blur keeps a constant image constant (reflected borders)
    flat = torch.full((3, 10, 12), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 1.5), flat)


def test_normalize_round_trip():
    image = make_image()
    out = Normalize()(image, np.random.default_rng(0))
    torch.testing.assert_close(denormalize(out), image, atol=1e-6, rtol=0)
    grey = torch.tensor(IMAGENET_MEAN)[:, None, None].expand(3, 4, 4)
    assert Normalize()(grey, np.random.default_rng(0)).abs().max() < 1e-6


def test_two_image_augmentations_differ():
    image = make_image()
    tf = build_image_transforms(DataConfig())
    rng = np.random.default_rng(0)
    a, b = tf(image, rng), tf(image, rng)
    assert not torch.allclose(a, b)


def test_mirroring_labelled_frames_flips_image_and_labels_together_and_drops_the_mirrored_frames_correspondences():
    images = [torch.rand(3, 4, 6) for _ in range(8)]
    labels = np.arange(8 * 4 * 6).reshape(8, 4, 6)
    corr = np.stack([np.repeat(np.arange(8), 3), np.arange(24)], axis=1)  # 3 correspondences per frame
    out, out_labels, out_corr = mirror_labelled_frames(images, labels, corr, 0.5, np.random.default_rng(3))
    mirrored = [not torch.equal(a, b) for a, b in zip(out, images)]
    assert 0 < sum(mirrored) < 8  # p = 0.5 over 8 frames: some of each, for this seed
    for f, m in enumerate(mirrored):
        torch.testing.assert_close(out[f], images[f].flip(-1) if m else images[f])
        np.testing.assert_array_equal(out_labels[f], labels[f, :, ::-1] if m else labels[f])
    kept = sorted(set(out_corr[:, 0].tolist()))
    assert kept == [f for f, m in enumerate(mirrored) if not m]
    assert len(out_corr) == 3 * len(kept)

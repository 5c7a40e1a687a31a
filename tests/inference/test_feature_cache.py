"""The frozen image encoder's feature cache: it returns the encoder's own output, and a changed encoder gets a new
cache instead of a stale one."""

import sys
from pathlib import Path

import numpy as np
import torch

from concerto3d.config import load_config
from concerto3d.data.collate import collate_scenes
from concerto3d.data.dataset import DataConfig, SceneDataset
from concerto3d.data.scene import image_features_path
from concerto3d.inference.feature_cache import encoder_digest, ensure_feature_cache
from concerto3d.models.concerto import ConcertoModel
from concerto3d.models.image_encoder import ImageEncoder, ImageEncoderConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from fake_scenes import make_fake_root  # noqa: E402

SIZE = (32, 48)
DATA = DataConfig(max_points=256, min_points=64, max_frames=2, image_size=SIZE, patch_size=16, augment=False)


def tiny_encoder(seed: int) -> ImageEncoder:
    torch.manual_seed(seed)
    return ImageEncoder(ImageEncoderConfig(image_size=SIZE, patch_size=16, hidden_size=16, num_layers=1,
                                           num_heads=2, freeze=True)).eval()


def test_the_cache_holds_the_encoders_own_output_for_every_crop(tmp_path):
    make_fake_root(tmp_path, n_scenes=2, n_frames=3, image_size=(64, 96))
    encoder = tiny_encoder(0)
    dataset = SceneDataset(tmp_path, None, DATA)
    scenes = [tmp_path / s for s in dataset.scenes]
    digest = ensure_feature_cache(encoder, scenes, SIZE)
    assert all(np.load(image_features_path(s, digest)).shape == (3, 2, 3, 16) for s in scenes)
    dataset.use_feature_cache(digest)
    for i in range(len(dataset)):
        sample = dataset[i]
        assert len(sample.images) > 0
        with torch.no_grad():  # augment=False: the images are exactly what the cache encoded
            expected = encoder(sample.images).patch_grid
        torch.testing.assert_close(sample.image_features, expected, atol=1e-5, rtol=1e-5)
    batch = collate_scenes([dataset[0], dataset[1]])
    assert batch.image_features.shape[0] == batch.images.shape[0]


def test_a_changed_encoder_gets_a_new_cache(tmp_path):
    make_fake_root(tmp_path, n_scenes=1, n_frames=2, image_size=(64, 96))
    scene = tmp_path / "scene0000_00"
    first, second = tiny_encoder(0), tiny_encoder(1)
    a = ensure_feature_cache(first, [scene], SIZE)
    b = ensure_feature_cache(second, [scene], SIZE)
    assert a != b and a == encoder_digest(tiny_encoder(0), SIZE)  # the weights decide the key
    assert encoder_digest(first, (64, 96)) != a  # and so does the image size
    assert not np.allclose(np.load(image_features_path(scene, a)), np.load(image_features_path(scene, b)))
    stamp = image_features_path(scene, a).stat().st_mtime_ns
    assert ensure_feature_cache(first, [scene], SIZE) == a  # present and whole: not written again
    assert image_features_path(scene, a).stat().st_mtime_ns == stamp
    np.save(image_features_path(scene, a), np.zeros((1, 2, 3, 16), np.float32))  # damaged (a frame short)
    ensure_feature_cache(first, [scene], SIZE)
    assert np.load(image_features_path(scene, a)).shape[0] == 2


def test_the_joint_step_with_cached_features_equals_the_step_that_runs_the_encoder(tmp_path):
    make_fake_root(tmp_path, n_scenes=2, n_frames=3, image_size=(64, 96))
    hf = tmp_path / "vit"
    tiny_encoder(0).backbone.save_pretrained(hf)
    cfg = load_config(None, ["objective.kind=joint", f"image_encoder.pretrained_path={hf}", "image_encoder.freeze=true",
                             "data.image_size=[32, 48]", "data.patch_size=16", "point_encoder.ratios=[0.25, 0.25]",
                             "point_encoder.radii=[0.3, 0.6]", "point_encoder.sa_channels=[16, 32]",
                             "point_encoder.global_channels=32", "point_encoder.fp_channels=[32]",
                             "point_encoder.out_channels=32", "point_encoder.max_neighbors=16",
                             "objective.proj_dim=32", "objective.hidden_dim=64"])
    torch.manual_seed(0)
    model = ConcertoModel(cfg).eval()
    assert model.frozen_image_target
    dataset = SceneDataset(tmp_path, None, DATA)
    plain = collate_scenes([dataset[0], dataset[1]])
    dataset.use_feature_cache(ensure_feature_cache(model.image_encoder, [tmp_path / s for s in dataset.scenes], SIZE))
    cached = collate_scenes([dataset[0], dataset[1]])
    assert plain.image_features.numel() == 0 and cached.image_features.numel() > 0
    torch.manual_seed(1)
    a = model(plain)
    torch.manual_seed(1)
    b = model(cached)
    for key in ("loss", "loss_dense", "loss_scene"):
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)


def test_the_digest_covers_scalar_buffers_and_every_weight():
    encoder = tiny_encoder(0)
    encoder.register_buffer("scale", torch.tensor(1.0))  # a 0-d tensor (a copy of the hashing once crashed here)
    a = encoder_digest(encoder, SIZE)
    encoder.scale.fill_(2.0)
    assert encoder_digest(encoder, SIZE) != a


def test_with_a_cache_the_images_are_not_augmented_and_the_points_are_the_same(tmp_path):
    """The model reads the cached features, so the dataset skips the image augmentation (a third of a sample's
    time); the point views, drawn before it from the same generator, do not change."""
    import dataclasses

    make_fake_root(tmp_path, n_scenes=1, n_frames=3, image_size=(64, 96))
    augmented = SceneDataset(tmp_path, None, dataclasses.replace(DATA, augment=True))
    cached = SceneDataset(tmp_path, None, dataclasses.replace(DATA, augment=True))
    plain = SceneDataset(tmp_path, None, DATA)  # augment=False: normalised images only
    cached.use_feature_cache(ensure_feature_cache(tiny_encoder(0), [tmp_path / "scene0000_00"], SIZE))
    a, c, p = augmented[0], cached[0], plain[0]
    torch.testing.assert_close(c.images, p.images)
    assert torch.equal(c.images_teacher, c.images) and not torch.allclose(a.images, c.images)
    torch.testing.assert_close(c.view_student.coord, a.view_student.coord)
    torch.testing.assert_close(c.view_teacher.feat, a.view_teacher.feat)

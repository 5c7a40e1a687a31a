"""Image encoder: from scratch, and from local ViT / DINOv2 checkpoint folders (saved here, never downloaded)."""

import pytest
import torch

from concerto3d.errors import InputError
from concerto3d.models.image_encoder import ImageEncoder, ImageEncoderConfig

TINY = dict(image_size=(32, 48), patch_size=16, hidden_size=16, num_layers=1, num_heads=2)


def test_from_scratch_shapes_and_gradients():
    enc = ImageEncoder(ImageEncoderConfig(**TINY))
    images = torch.randn(2, 3, 32, 48)
    out = enc(images)
    assert out.patch_grid.shape == (2, 2, 3, 16)
    assert out.pooled.shape == (2, 16)
    out.patch_grid.sum().backward()
    assert [n for n, p in enc.named_parameters() if p.grad is None] == []
    with pytest.raises(ValueError, match="multiples of the patch size"):
        enc(torch.randn(1, 3, 30, 48))


def test_patch_grid_is_row_major_after_cls(tmp_path):
    from transformers import ViTConfig, ViTModel

    vit = ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=32))
    vit.save_pretrained(tmp_path / "vit")
    enc = ImageEncoder(ImageEncoderConfig(image_size=(32, 32), pretrained_path=str(tmp_path / "vit"), freeze=True))
    assert enc.patch_size == 8 and enc.out_channels == 16
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        tokens = vit.eval()(pixel_values=images).last_hidden_state
    out = enc(images)
    assert out.patch_grid.shape == (1, 4, 4, 16)
    torch.testing.assert_close(out.patch_grid[0, 2, 1], tokens[0, 1 + 2 * 4 + 1])
    torch.testing.assert_close(out.pooled[0], tokens[0, 0])
    # Frozen: no gradients, and train() leaves the backbone in eval mode.
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.backbone.training and not out.patch_grid.requires_grad
    # A non-square size other than the checkpoint's interpolates the position table.
    assert enc(torch.randn(1, 3, 32, 48)).patch_grid.shape == (1, 4, 6, 16)


def test_dinov2_checkpoint_with_register_tokens(tmp_path):
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Dinov2WithRegistersConfig"):
        pytest.skip("this transformers has no DINOv2-with-registers")
    cfg = transformers.Dinov2WithRegistersConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                                 num_attention_heads=2, mlp_ratio=2, num_register_tokens=3)
    model = transformers.Dinov2WithRegistersModel(cfg)
    model.save_pretrained(tmp_path / "dino")
    enc = ImageEncoder(ImageEncoderConfig(pretrained_path=str(tmp_path / "dino"), freeze=True))
    assert enc.num_register_tokens == 3
    images = torch.randn(2, 3, 24, 40)
    with torch.no_grad():
        tokens = model.eval()(pixel_values=images).last_hidden_state
    out = enc(images)
    assert out.patch_grid.shape == (2, 3, 5, 16)
    torch.testing.assert_close(out.patch_grid[1, 1, 4], tokens[1, 1 + 3 + 1 * 5 + 4])


def test_plain_dinov2_checkpoint(tmp_path):
    from transformers import Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                             num_attention_heads=2, mlp_ratio=2)).save_pretrained(tmp_path / "dino")
    enc = ImageEncoder(ImageEncoderConfig(pretrained_path=str(tmp_path / "dino")))
    assert enc.num_register_tokens == 0
    out = enc(torch.randn(1, 3, 32, 48))
    assert out.patch_grid.shape == (1, 4, 6, 16)
    out.patch_grid.mean().backward()  # not frozen: trainable
    # Every trainable weight gets a gradient (DDP needs that): no pooler, no mask token.
    assert [n for n, p in enc.named_parameters() if p.requires_grad and p.grad is None] == []


def test_missing_checkpoint_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="config.json"):
        ImageEncoder(ImageEncoderConfig(pretrained_path=str(tmp_path / "nowhere")))


def test_normalize_uses_the_configured_constants():
    enc = ImageEncoder(ImageEncoderConfig(**TINY, image_mean=(0.5, 0.5, 0.5), image_std=(0.25, 0.5, 1.0)))
    out = enc.normalize(torch.ones(1, 3, 2, 2))
    assert out[0, :, 0, 0].tolist() == [2.0, 1.0, 0.5]


def test_rebuild_config_recreates_a_pretrained_encoder_without_its_folder(tmp_path):
    import json

    from transformers import Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                             num_attention_heads=2, mlp_ratio=2)).save_pretrained(tmp_path / "dino")
    enc = ImageEncoder(ImageEncoderConfig(pretrained_path=str(tmp_path / "dino"), freeze=True))
    cfg = enc.rebuild_config()
    assert cfg.pretrained_path is None and cfg.freeze
    cfg = ImageEncoderConfig(**json.loads(json.dumps(cfg.__dict__)))  # survives a JSON round trip
    rebuilt = ImageEncoder(cfg)
    rebuilt.load_state_dict(enc.state_dict())
    images = torch.randn(1, 3, 32, 48)
    torch.testing.assert_close(rebuilt(images).patch_grid, enc(images).patch_grid)


# --- convolutional encoders (architecture="resnet"): the last feature map is the patch grid -------------------

RESNET = dict(architecture="resnet", image_size=(32, 48), patch_size=16, hidden_size=16)


def test_a_resnet_from_scratch_gives_one_feature_per_patch_and_trains():
    enc = ImageEncoder(ImageEncoderConfig(**RESNET))
    assert enc.is_convolutional and enc.patch_size == 16 and enc.out_channels == 16
    # a stride-4 stem, then stages at strides 4, 8, 16 with widths doubling to hidden_size
    assert list(enc.backbone.config.hidden_sizes) == [4, 8, 16]
    images = torch.randn(2, 3, 32, 48)
    out = enc(images)
    assert out.patch_grid.shape == (2, 2, 3, 16)
    torch.testing.assert_close(out.pooled, out.patch_grid.mean(dim=(1, 2)))
    out.patch_grid.sum().backward()
    assert [n for n, p in enc.named_parameters() if p.grad is None] == []
    with pytest.raises(ValueError, match="multiples of the patch size"):
        enc(torch.randn(1, 3, 30, 48))


def test_a_resnet_patch_sees_its_own_pixels():
    """Patch (row, col) of the grid is the feature map's cell (row, col): changing the pixels of one corner patch
    changes that cell and leaves the far side of the image alone (a convolution's bounded receptive field, the
    locality that makes it suit a 2D teacher trained from few frames)."""
    enc = ImageEncoder(ImageEncoderConfig(**dict(RESNET, image_size=(64, 128)))).eval()
    images = torch.rand(1, 3, 64, 128)
    changed = images.clone()
    changed[:, :, 48:64, 112:128] = 1.0 - changed[:, :, 48:64, 112:128]  # patch (3, 7), a corner
    with torch.no_grad():
        diff = (enc(changed).patch_grid - enc(images).patch_grid).abs().sum(-1)[0]
    assert diff[3, 7] > 0 and (diff[:, 0] == 0).all()


@pytest.mark.parametrize("patch,hidden,match", [(12, 16, "power of two"), (2, 16, "power of two"),
                                                (16, 6, "divisible by 4")])
def test_a_resnet_stride_or_width_it_cannot_build_is_refused(patch, hidden, match):
    with pytest.raises(ValueError, match=match):
        ImageEncoderConfig(**dict(RESNET, image_size=None, patch_size=patch, hidden_size=hidden))
    with pytest.raises(ValueError, match="architecture"):
        ImageEncoderConfig(architecture="unet")


def test_a_resnet_rebuilds_from_its_config_and_loads_from_a_hugging_face_backbone_folder(tmp_path):
    import json

    enc = ImageEncoder(ImageEncoderConfig(**RESNET)).eval()
    cfg = enc.rebuild_config()
    assert cfg.architecture == "resnet" and cfg.backbone_config["model_type"] == "resnet"
    rebuilt = ImageEncoder(ImageEncoderConfig(**json.loads(json.dumps(cfg.__dict__)))).eval()
    rebuilt.load_state_dict(enc.state_dict())
    images = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images).patch_grid, enc(images).patch_grid)

    enc.backbone.save_pretrained(tmp_path / "resnet")  # a transformers backbone folder, as a user's own ResNet
    loaded = ImageEncoder(ImageEncoderConfig(architecture="resnet", patch_size=16,
                                             pretrained_path=str(tmp_path / "resnet"), freeze=True))
    assert loaded.is_convolutional and not any(p.requires_grad for p in loaded.parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded(images).patch_grid, enc(images).patch_grid)
    with pytest.raises(ValueError, match="patch_size"):
        ImageEncoder(ImageEncoderConfig(architecture="resnet", pretrained_path=str(tmp_path / "resnet")))


def test_a_wrapped_backbone_sets_the_architecture_from_what_it_returns():
    """A backbone handed in (a concerto3d run's, ``load_image_backbone``) is read by its outputs, whatever the
    config's architecture says, so that the saved config rebuilds what was wrapped."""
    run = dict(image_size=(32, 48), patch_size=16, pretrained_path="a/run", freeze=True)  # as a joint run's
    conv = ImageEncoder(ImageEncoderConfig(**RESNET)).backbone
    wrapped = ImageEncoder(ImageEncoderConfig(**run), backbone=conv)
    assert wrapped.is_convolutional and wrapped.config.architecture == "resnet"
    assert wrapped.rebuild_config().architecture == "resnet"
    vit = ImageEncoder(ImageEncoderConfig(**TINY)).backbone
    wrapped = ImageEncoder(ImageEncoderConfig(**dict(run, architecture="resnet")), backbone=vit)
    assert not wrapped.is_convolutional and wrapped.config.architecture == "vit"

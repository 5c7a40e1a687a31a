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

"""PointNet++ encoder: shapes, gradients, independence of the clouds of a batch, input checks."""

import pytest
import torch

from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig

TINY = dict(ratios=(0.5, 0.25), radii=(0.3, 0.6), max_neighbors=8, sa_channels=(8, 16), global_channels=16,
            fp_channels=(12,), out_channels=10)


def _clouds(sizes, in_channels, seed=0):
    g = torch.Generator().manual_seed(seed)
    coord = torch.rand(sum(sizes), 3, generator=g) * 2.0
    feat = torch.cat([coord, torch.rand(sum(sizes), in_channels - 3, generator=g) * 2 - 1], dim=1)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return coord, feat, batch


def test_shapes_and_every_parameter_gets_a_gradient():
    cfg = PointEncoderConfig(**TINY)
    enc = PointEncoder(cfg)
    coord, feat, batch = _clouds([120, 80], cfg.in_channels)
    out = enc(coord, feat, batch)
    assert out.point_feat.shape == (200, 10)
    assert out.scene_feat.shape == (2, 16)
    (out.point_feat.pow(2).mean() + out.scene_feat.pow(2).mean()).backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert sum(float(p.grad.abs().sum()) for p in enc.parameters()) > 0


def test_clouds_of_a_batch_do_not_see_each_other():
    cfg = PointEncoderConfig(**TINY)
    enc = PointEncoder(cfg).eval()
    coord, feat, batch = _clouds([90, 70], cfg.in_channels)
    with torch.no_grad():
        before = enc(coord, feat, batch)
        coord2, feat2 = coord.clone(), feat.clone()
        coord2[90:] += 0.05  # move and recolour the second cloud only
        feat2[90:, 3:] = -feat2[90:, 3:]
        after = enc(coord2, feat2, batch)
    torch.testing.assert_close(after.point_feat[:90], before.point_feat[:90])
    torch.testing.assert_close(after.scene_feat[0], before.scene_feat[0])
    assert not torch.allclose(after.point_feat[90:], before.point_feat[90:])
    # A batch of one cloud gives the same features as the cloud inside a bigger batch.
    with torch.no_grad():
        alone = enc(coord[:90], feat[:90], None)
    torch.testing.assert_close(alone.point_feat, before.point_feat[:90])


def test_input_width_follows_color_and_normal_flags_and_is_checked():
    assert PointEncoderConfig().in_channels == 9
    cfg = PointEncoderConfig(use_color=False, **TINY)
    assert cfg.in_channels == 6
    enc = PointEncoder(cfg)
    coord, feat, batch = _clouds([50], 6)
    assert enc(coord, feat, batch).point_feat.shape == (50, 10)
    with pytest.raises(ValueError, match=r"feat of shape \(50, 6\)"):
        enc(coord, torch.zeros(50, 9), batch)


def test_config_rejects_inconsistent_levels_and_accepts_lists():
    with pytest.raises(ValueError, match="one length"):
        PointEncoderConfig(ratios=(0.25, 0.25), radii=(0.1,), sa_channels=(8, 16), fp_channels=(8,))
    with pytest.raises(ValueError, match="fp_channels"):
        PointEncoderConfig(fp_channels=(8,))
    assert PointEncoderConfig(ratios=[0.5], radii=[0.2], sa_channels=[8], fp_channels=[]).ratios == (0.5,)

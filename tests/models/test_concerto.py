"""ConcertoModel: view matching, the losses of each objective, gradients where they belong, the EMA pairs."""

import numpy as np
import pytest
import torch

from concerto3d.config import load_config
from concerto3d.data.collate import PointView, TrainBatch
from concerto3d.models.concerto import ConcertoModel, StepState, match_views, student_image_crop
from concerto3d.models.heads import ProjectionHead
from concerto3d.training.ema import ema_update

TINY = [
    "data.image_size=[32, 48]", "data.patch_size=16", "image_encoder.image_size=[32, 48]", "image_encoder.hidden_size=32",
    "image_encoder.num_layers=1", "image_encoder.num_heads=2", "point_encoder.ratios=[0.25, 0.25]",
    "point_encoder.radii=[0.3, 0.6]", "point_encoder.sa_channels=[16, 32]", "point_encoder.global_channels=32",
    "point_encoder.fp_channels=[32]", "point_encoder.out_channels=32", "point_encoder.max_neighbors=16",
    "objective.proj_dim=32", "objective.hidden_dim=64", "objective.num_prototypes=64",
]


def tiny_cfg(*more):
    return load_config(None, TINY + list(more))


def _view(rng, crop_sizes, keep):
    coords, batch, index, offset = [], [], [], 0
    for b, n in enumerate(crop_sizes):
        rows = np.sort(rng.choice(n, size=int(n * keep), replace=False))
        coords.append(rng.uniform(-1, 1, (len(rows), 3)))
        batch.append(np.full(len(rows), b))
        index.append(rows + offset)
        offset += n
    coord = torch.tensor(np.concatenate(coords), dtype=torch.float32)
    feat = torch.cat([coord, torch.tensor(rng.uniform(-1, 1, (len(coord), 6)), dtype=torch.float32)], 1)
    return PointView(coord, feat, torch.tensor(np.concatenate(batch)), torch.tensor(np.concatenate(index)))


def tiny_batch(seed=0, with_corr=True):
    """Two crops of 120 points, one 32x48 image each, correspondences between them."""
    rng = np.random.default_rng(seed)
    sizes = [120, 120]
    corr = []
    for image in range(2):
        pts = rng.choice(120, size=60, replace=False) + 120 * image
        corr.append(np.column_stack([np.full(60, image), rng.integers(0, 48, 60), rng.integers(0, 32, 60), pts]))
    corr = np.concatenate(corr) if with_corr else np.zeros((0, 4))
    return TrainBatch(
        crop_offsets=torch.tensor([0, 120, 240]), view_student=_view(rng, sizes, 0.8),
        view_teacher=_view(rng, sizes, 0.8),
        images=torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(seed)),
        images_teacher=torch.randn(2, 3, 32, 48), image_crop=torch.tensor([0, 1]),
        corr=torch.tensor(corr, dtype=torch.long), labels=torch.zeros(240, dtype=torch.long))


def test_match_views_pairs_points_of_the_same_crop_point():
    s_rows, t_rows = match_views(torch.tensor([4, 0, 7, 2]), torch.tensor([2, 9, 4, 5]), num_points=10)
    assert s_rows.tolist() == [0, 3] and t_rows.tolist() == [2, 0]
    s_rows, _ = match_views(torch.tensor([1, 3]), torch.tensor([0, 2]), 4)
    assert s_rows.numel() == 0


def test_joint_losses_and_gradients():
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg("objective.kind=joint", "objective.distillation=dino"))
    out = model(tiny_batch(), StepState(0, 0.04))
    parts = out["loss_distill"] + out["loss_dense"] + out["loss_scene"]
    assert torch.isfinite(out["loss"]) and torch.allclose(out["loss"], parts)
    assert out["matched"] > 0 and out["patches"] > 0 and out["feat_rank"] >= 1
    out["loss"].backward()
    grads = lambda m: [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads(model.point_encoder))
    assert any(g is not None and g.abs().sum() > 0 for g in grads(model.image_encoder))
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    assert model.center.abs().sum() > 0  # the DINO centre moved in training mode


def test_dense_alignment_is_zero_without_correspondences_and_3d_has_no_image_encoder():
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg("objective.kind=joint"))
    out = model(tiny_batch(with_corr=False))
    assert out["loss_dense"] == 0 and out["loss_scene"] == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()  # still a graph: DDP's hooks would run
    model3d = ConcertoModel(tiny_cfg("objective.kind=3d", "objective.distillation=mse"))
    assert model3d.image_encoder is None
    out = model3d(tiny_batch())
    assert set(out) >= {"loss", "loss_distill"} and "loss_dense" not in out and 0 <= out["loss"] <= 4 * 0.5


def test_2d_objective_distils_the_image_encoder():
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg("objective.kind=2d", "objective.distillation=sinkhorn"))
    assert model.point_encoder is None and set(model.teacher) == {"image_encoder", "image_distill"}
    out = model(tiny_batch())
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["matched"] == 2 * 2 * 3  # F x Hp x Wp patches
    assert all(p.grad is not None for p in model.heads["image_distill"].parameters())


@pytest.mark.parametrize("kind", ["3d", "2d"])
def test_contrastive_distillation_and_koleo_term(kind):
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg(f"objective.kind={kind}", "objective.distillation=contrast",
                                   "objective.koleo_weight=0.1"))
    distilled = "point" if kind == "3d" else "image"
    assert isinstance(model.heads[f"{distilled}_distill"], ProjectionHead) and "predictor" not in model.heads
    out = model(tiny_batch(), StepState(0, 0.04))
    assert torch.allclose(out["loss"], out["loss_distill"] + out["loss_koleo"])
    assert out["loss_koleo"] != 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    encoder = model.point_encoder if kind == "3d" else model.image_encoder
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters() if p.requires_grad)
    assert "loss_koleo" not in ConcertoModel(tiny_cfg(f"objective.kind={kind}"))(tiny_batch())  # weight 0: off


def _frozen_vit(tmp_path):
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(image_size=[32, 48], patch_size=16, hidden_size=24, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=48)).save_pretrained(tmp_path / "vit")
    return [f"image_encoder.pretrained_path={tmp_path / 'vit'}", "image_encoder.freeze=true"]


def test_frozen_pretrained_image_encoder_is_a_cosine_target(tmp_path):
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg(*_frozen_vit(tmp_path)))
    assert model.frozen_image_target and "image_proj" not in model.heads
    out = model(tiny_batch())
    assert 0 <= out["loss_dense"] <= 2  # 1 - cos, weight 1
    out["loss"].backward()
    assert all(p.grad is None for p in model.image_encoder.parameters())


def test_frozen_target_with_info_nce_is_the_dense_info_nce_of_pooled_points_and_frozen_patches(tmp_path, monkeypatch):
    from concerto3d import objectives

    frozen = _frozen_vit(tmp_path)
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg(*frozen, "objective.frozen_target_loss=info_nce", "objective.temperature=0.1"))
    assert model.frozen_image_target and "image_proj" not in model.heads
    seen = {}

    def spy(point_emb, patch_emb, temperature, max_negatives=None):
        seen.update(points=point_emb, patches=patch_emb, temperature=temperature)
        return objectives.cross_modal.dense_info_nce(point_emb, patch_emb, temperature, max_negatives)

    monkeypatch.setattr(objectives, "dense_info_nce", spy)
    out = model(tiny_batch())
    # the patch side is the frozen encoder's raw features (24 channels), not a trained projection
    assert seen["temperature"] == 0.1 and seen["patches"].shape[1] == 24 and not seen["patches"].requires_grad
    expected = objectives.cross_modal.info_nce(seen["points"], seen["patches"], 0.1)
    assert torch.allclose(out["loss_dense"], expected)
    assert expected > 0
    out["loss"].backward()
    assert all(p.grad is None for p in model.image_encoder.parameters())
    assert model.heads["point_proj"].net[-1].weight.grad.abs().sum() > 0
    # the default (cosine) does not reach the InfoNCE at all for a frozen target
    seen.clear()
    ConcertoModel(tiny_cfg(*frozen))(tiny_batch())
    assert seen == {}


def test_ema_pairs_move_the_teacher_towards_the_student():
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg("objective.kind=3d", "objective.distillation=sinkhorn"))
    with torch.no_grad():
        for p in model.point_encoder.parameters():
            p.add_(1.0)
    pairs = model.ema_pairs()
    assert [type(s).__name__ for _, s in pairs] == ["PointEncoder", "PrototypeHead"]
    contrast = ConcertoModel(tiny_cfg("objective.kind=3d", "objective.distillation=contrast"))
    assert [type(s).__name__ for _, s in contrast.ema_pairs()] == ["PointEncoder", "ProjectionHead"]
    teacher, student = pairs[0]
    before = next(teacher.parameters()).clone()
    ema_update(teacher, student, 0.5)
    after, target = next(teacher.parameters()), next(student.parameters())
    assert torch.allclose(after, 0.5 * before + 0.5 * target)


def test_bad_objective_settings_are_rejected():
    with pytest.raises(ValueError, match="freeze"):
        ConcertoModel(tiny_cfg("objective.kind=2d", "image_encoder.freeze=true"))


def test_distillation_uses_at_most_max_distill_points_pairs():
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg("objective.kind=3d", "objective.max_distill_points=10"))
    out = model(tiny_batch())
    assert out["matched"] == 10 and out["points"] == 192 and torch.isfinite(out["loss"])


@pytest.mark.parametrize("distillation", ["sinkhorn", "dino"])
def test_distillation_reports_normalised_target_and_student_entropies(distillation):
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg("objective.kind=3d", f"objective.distillation={distillation}"))
    out = model(tiny_batch(), StepState(0, 0.04))
    for key in ("teacher_entropy", "student_entropy"):
        assert 0.0 < float(out[key]) <= 1.0 + 1e-6
    # a very hot teacher gives uniform targets: entropy 1, the plateau the monitor is there to show
    out = model(tiny_batch(), StepState(0, 1e4))
    assert float(out["teacher_entropy"]) == pytest.approx(1.0, abs=1e-4)
    mse = ConcertoModel(tiny_cfg("objective.kind=3d", "objective.distillation=mse"))(tiny_batch())
    assert "teacher_entropy" not in mse


def test_student_image_crop_matches_each_crop_patch_to_the_image_patch_under_its_centre():
    # Images that hold their own pixel coordinates (channel 0: y, channel 1: x of the pixel centre): bilinear
    # resizing keeps a linear ramp exact, so the mean of the 2 x 2 central pixels of each crop patch is the image
    # position that patch's centre came from.
    patch, hp, wp = 8, 5, 7
    ys, xs = torch.meshgrid(torch.arange(hp * patch) + 0.5, torch.arange(wp * patch) + 0.5, indexing="ij")
    images = torch.stack([ys, xs, torch.zeros_like(xs)]).expand(6, -1, -1, -1).contiguous()
    generator = torch.Generator().manual_seed(0)
    mirrored = 0
    for _ in range(10):
        crops, source = student_image_crop(images, patch, (0.4, 0.8), generator)
        assert crops.shape == images.shape and source.shape == (6, hp, wp)
        c = patch // 2
        centre = sum(crops[:, :2, c - dy::patch, c - dx::patch][:, :, :hp, :wp] for dy in (0, 1) for dx in (0, 1)) / 4
        expected = (centre[:, 0] // patch).long() * wp + (centre[:, 1] // patch).long()
        offset = centre / patch - (centre / patch).round()
        clear = (offset.abs() > 1e-4).all(dim=1)  # a centre exactly on a patch border may round either way
        assert clear.float().mean() > 0.8 and torch.equal(source[clear], expected[clear])
        mirrored += int((centre[:, 1, 0, 0] > centre[:, 1, 0, -1]).sum())
    assert mirrored > 0
    crops, source = student_image_crop(images, patch, (1.0, 1.0))
    assert torch.equal(crops, images) and source.flatten(1).tolist() == [list(range(hp * wp))] * 6


def test_2d_objective_cannot_match_patches_by_position_alone():
    # The student's crop puts other image patches at each grid position than the teacher's view: an encoder that
    # outputs a feature of the grid position only no longer matches the teacher.
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg("objective.kind=2d", "objective.image_crop=[0.5, 0.5]"))
    crops, source = student_image_crop(tiny_batch().images, 16, (0.5, 0.5), torch.Generator().manual_seed(0))
    assert not torch.equal(source[0], torch.arange(6).reshape(2, 3))
    out = model(tiny_batch())
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["matched"] == 2 * 2 * 3


def test_masking_replaces_the_cues_of_masked_student_points_by_a_learned_token():
    torch.manual_seed(0)
    model = ConcertoModel(tiny_cfg("objective.kind=3d", "objective.mask_ratio=0.5", "objective.mask_size=0.5"))
    batch = tiny_batch()
    view = batch.view_student
    with torch.no_grad():
        model.mask_token.copy_(torch.arange(6, dtype=torch.float32) + 10)
    feat, masked = model._mask(view)
    assert 0 < masked.float().mean() < 1
    assert torch.equal(feat[masked, 3:], (torch.arange(6.) + 10).expand(int(masked.sum()), 6))
    assert torch.equal(feat[:, :3], view.feat[:, :3])  # the position channels are never masked
    assert torch.equal(feat[~masked], view.feat[~masked])
    out = model(batch)
    assert 0 < out["masked"] < 1
    out["loss"].backward()
    assert model.mask_token.grad is not None and model.mask_token.grad.abs().sum() > 0
    model.eval()  # evaluation and the teacher never see a mask
    assert model._mask(view)[1] is None
    assert ConcertoModel(tiny_cfg("objective.kind=3d")).mask_token is None

"""The trainer end to end on tiny scenes: learning without collapse, exact resume, skipped non-finite steps, CLI."""

import os
import signal

import numpy as np
import pytest
import torch

from concerto3d.cli import main
from concerto3d.errors import InputError
from concerto3d.inference import load_model
from concerto3d.training.checkpoint import list_checkpoints, load_latest_checkpoint
from concerto3d.training.logging import read_metrics
from concerto3d.training.trainer import batch_indices, build_optimizer, train

TIMING = {"points_per_s", "step_s"}  # wall-clock columns; everything else must repeat exactly


def test_batch_order_is_a_pure_function_of_seed_epoch_and_rank():
    a = batch_indices(10, 2, seed=3, epoch=1)
    assert a == batch_indices(10, 2, seed=3, epoch=1) and a != batch_indices(10, 2, seed=3, epoch=2)
    assert sorted(i for b in a for i in b) == list(range(10))
    r0, r1 = batch_indices(10, 2, 3, 1, rank=0, world_size=2), batch_indices(10, 2, 3, 1, rank=1, world_size=2)
    assert len(r0) == len(r1) == 2 and not set(sum(r0, [])) & set(sum(r1, []))


def test_adamw_skips_weight_decay_on_norms_and_biases():
    from concerto3d.config import OptimConfig

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)  # frozen parameters are left out
    opt = build_optimizer(model, OptimConfig(weight_decay=0.1))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and [p.shape for p in decay["params"]] == [(4, 3)]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 4  # 2 biases, LayerNorm weight + bias


@pytest.mark.slow
def test_tiny_joint_run_learns_without_collapse_and_saves_a_loadable_model(tiny_data, tiny_config, tmp_path):
    cfg = tiny_config("steps=40", "optim.lr=3e-3", "optim.min_lr=1e-3", "objective.kind=joint")
    result = train(cfg, tiny_data, tmp_path / "run")
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(40)) and result.skipped_steps == 0
    first, last = slice(0, 10), slice(30, 40)
    loss, dense, rank = (np.array([r[k] for r in rows]) for k in ("loss", "loss_dense", "feat_rank"))
    assert np.isfinite(loss).all()
    assert loss[last].mean() < 0.95 * loss[first].mean(), loss  # the loss falls ...
    assert dense[last].mean() < 0.95 * dense[first].mean(), dense  # ... the 2D-3D alignment too ...
    assert rank[last].min() > 4.0, rank  # ... without collapse (effective rank of the 32-d student features)
    assert rows[-1]["feat_std"] > 0.02
    assert {"loss_distill", "loss_scene", "lr", "momentum", "points_per_s", "skipped_steps"} <= set(rows[0])
    assert (tmp_path / "run" / "config.yaml").is_file() and list((tmp_path / "run" / "tensorboard").iterdir())

    # the model folder loads without the training config and embeds a cloud
    model = load_model(tmp_path / "run")
    assert model.config["objective"] == "joint" and model.image_encoder is not None
    pts = np.random.default_rng(0).uniform(0, 2, (300, 3)).astype(np.float32)
    feats = model.embed(pts, colors=np.full((300, 3), 128, np.uint8))
    assert feats.shape == (300, 32) and feats.dtype == np.float32 and np.isfinite(feats).all()

    # its model card says what it was trained on: the data's digest (over the one split list there is), the
    # split and scene count, the steps and objective
    from concerto3d.data.digest import data_digest

    data = model.config["training"]["data"]
    assert data["sha256"] == data_digest(tiny_data, ("train",)) and data["sha256_splits"] == ["train"]
    assert data["split"] == "train" and data["scenes"] == 3 and data["name"] == tiny_data.name
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert data["sha256"] in card and "- steps: 40" in card and "objective: `joint`" in card


def _interrupt_at(step_to_stop):
    def hook(step, metrics):
        if step == step_to_stop:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: the trainer checkpoints and returns
    return hook


@pytest.mark.slow
def test_interrupted_and_resumed_run_repeats_the_uninterrupted_losses_exactly(tiny_data, tiny_config, tmp_path):
    cfg = tiny_config("steps=6", "objective.kind=joint", "data.loop=2")  # 6 samples: 3 steps per epoch
    full = train(cfg, tiny_data, tmp_path / "full")
    first = train(cfg, tiny_data, tmp_path / "split", on_step_end=_interrupt_at(1))  # stops inside epoch 0
    assert first.interrupted and first.steps_done == 2 and first.model_dir is None
    assert [p.name for p in list_checkpoints(tmp_path / "split")] == ["step_00000002.pt"]
    data = load_latest_checkpoint(tmp_path / "split")[0]["data"]
    assert (data["epoch"], data["position"], data["steps_per_epoch"]) == (0, 2, 3)
    with pytest.raises(InputError, match="--resume"):
        train(cfg, tiny_data, tmp_path / "split")  # a run with checkpoints is not silently overwritten
    second = train(cfg, tiny_data, tmp_path / "split", resume=True)
    assert not second.interrupted and second.steps_done == 6
    a, b = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "split")
    assert [r["step"] for r in b] == list(range(6))
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if k not in TIMING} == {k: v for k, v in rb.items() if k not in TIMING}
    assert second.digest == full.digest  # same final weights, teacher and optimiser-driven student alike


@pytest.mark.slow
def test_a_non_finite_loss_skips_the_step_and_training_goes_on(tiny_data, tiny_config, tmp_path, monkeypatch):
    from concerto3d.models.concerto import ConcertoModel

    forward = ConcertoModel.forward

    def poisoned(self, batch, step_state=None):
        out = forward(self, batch, step_state)
        if step_state.step == 1:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(ConcertoModel, "forward", poisoned)
    cfg = tiny_config("steps=4", "objective.kind=3d", "objective.distillation=sinkhorn")
    result = train(cfg, tiny_data, tmp_path / "run")
    assert result.skipped_steps == 1 and result.steps_done == 4 and result.model_dir is not None
    rows = read_metrics(tmp_path / "run")
    assert [r["skipped_steps"] for r in rows] == [0, 1, 1, 1]
    assert np.isnan(rows[1]["loss"]) and np.isfinite([r["loss"] for r in rows[2:]]).all()
    state, _ = load_latest_checkpoint(tmp_path / "run")
    assert all(int(s["step"]) == 3 for s in state["optimizer"]["state"].values())  # 4 steps, 1 skipped
    model = load_model(tmp_path / "run" / "model")
    assert model.image_encoder is None and model.config["objective"] == "3d"


@pytest.mark.slow
def test_cli_train_2d_objective_and_bad_override(tiny_data, tiny_overrides, tmp_path, capsys):
    code = main(["train", str(tiny_data), "--out", str(tmp_path / "run"), "--objective", "2d", "--steps", "2",
                 *tiny_overrides])
    assert code == 0
    model = load_model(tmp_path / "run")
    assert model.point_encoder is None and model.image_encoder is not None
    with pytest.raises(InputError, match="no point encoder"):
        model.embed(np.zeros((4, 3), np.float32))
    out = model.image_encoder(torch.zeros(1, 3, 32, 48)).patch_grid
    assert out.shape == (1, 2, 3, 32)
    code = main(["train", str(tiny_data), "--out", str(tmp_path / "bad"), "optim.lrr=1"])
    assert code == 2 and "did you mean optim.lr" in capsys.readouterr().err


def test_cli_train_supervised_objective_saves_a_point_encoder_that_fits_the_labels(tiny_data, tiny_overrides,
                                                                                   tmp_path):
    code = main(["train", str(tiny_data), "--out", str(tmp_path / "run"), "--objective", "supervised", "--steps",
                 "12", *tiny_overrides])
    assert code == 0
    rows = read_metrics(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == list(range(12)) and all("accuracy" in r for r in rows)
    assert rows[-1]["loss_supervised"] < rows[0]["loss_supervised"]  # the labels are being learned
    model = load_model(tmp_path / "run")
    assert model.config["objective"] == "supervised" and model.image_encoder is None
    assert model.embed(np.random.default_rng(0).uniform(size=(64, 3)).astype(np.float32)).shape == (64, 32)


@pytest.mark.parametrize("kind,frames", [("3d", 0), ("supervised", 0), ("joint", 2), ("2d", 2)])
def test_objectives_without_images_read_no_frames(kind, frames):
    from concerto3d.config import load_config
    from concerto3d.training.trainer import _data_config

    cfg = load_config(None, [f"objective.kind={kind}", "data.max_frames=2"])
    assert _data_config(cfg).max_frames == frames and cfg.data.max_frames == 2


@pytest.mark.parametrize("architecture", ["vit", "resnet"])
def test_a_2d_teacher_trained_on_frame_labels_loads_as_the_image_encoder(tiny_data, tiny_config, tmp_path,
                                                                        architecture):
    """``--objective 2d-supervised`` trains the image encoder on labels/<k>.png; its run folder, given as
    ``image_encoder.pretrained_path`` (what --image-encoder sets), yields the trained encoder's patch features,
    for a ViT and for a convolutional teacher alike."""
    import shutil

    from PIL import Image

    from concerto3d.data.scene import image_path, label_path, read_image
    from concerto3d.inference import load_image_backbone, load_image_encoder
    from concerto3d.models.build import build_model

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    with pytest.raises(InputError, match="2D labels"):  # no scene has frame labels yet
        train(tiny_config("objective.kind=2d-supervised", "steps=1"), data, tmp_path / "none")
    for scene in sorted(p for p in data.iterdir() if p.name.startswith("scene")):
        corr, seg = np.load(scene / "correspondences.npy"), np.load(scene / "segment20.npy")
        for k in range(2):
            h, w = read_image(image_path(scene, k))[1]
            labels = np.full((h, w), 255, np.uint8)
            rows = corr[corr[:, 0] == k]
            labels[rows[:, 2], rows[:, 1]] = np.where(seg[rows[:, 3]] >= 0, seg[rows[:, 3]], 255)
            label_path(scene, k).parent.mkdir(exist_ok=True)
            Image.fromarray(labels).save(label_path(scene, k))
    run = tmp_path / "teacher"
    arch = f"image_encoder.architecture={architecture}"
    result = train(tiny_config("objective.kind=2d-supervised", "steps=6", "image_encoder.freeze=false", arch),
                   data, run)
    assert result.steps_done == 6 and result.model_dir is not None
    metrics = read_metrics(run)
    assert all(np.isfinite(m["loss"]) for m in metrics) and max(m["matched"] for m in metrics) > 0

    trained = build_model(tiny_config("objective.kind=2d-supervised", "image_encoder.freeze=false", arch))
    trained.load_state_dict(load_latest_checkpoint(run)[0]["model"])
    loaded = load_image_encoder(run)
    assert loaded.config.architecture == architecture
    card = (run / "model" / "README.md").read_text()
    assert f"image encoder: {dict(vit='a ViT', resnet='a ResNet')[architecture]} trained" in card
    images = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images).patch_grid, trained.image_encoder.eval()(images).patch_grid)
    joint = build_model(tiny_config("objective.kind=joint", f"image_encoder.pretrained_path={run}",
                                    "image_encoder.freeze=true"),
                        resolve_backbone=load_image_backbone)
    with torch.no_grad():
        torch.testing.assert_close(joint.image_encoder.eval()(images).patch_grid, loaded(images).patch_grid)


def test_fewer_scenes_than_a_steps_crops_raise_the_loop_instead_of_failing(tiny_data, tiny_config, tmp_path, caplog):
    """Three scenes, four crops a step: each epoch draws two crops of every scene (data.loop=2), as a user with
    one RGB-D sequence would otherwise have to set by hand."""
    import logging

    with caplog.at_level(logging.INFO, logger="concerto3d.training.trainer"):
        result = train(tiny_config("batch_size=4", "steps=1"), tiny_data, tmp_path / "run")
    assert result.steps_done == 1 and "data.loop=2" in caplog.text

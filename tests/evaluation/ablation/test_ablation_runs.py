"""``concerto3d ablate`` end to end on the tiny scenes: the five rows, resume, the refusals of a changed folder,
--joint-target 2d, --image-encoder (a concerto3d run and a Hugging Face folder), a list of seeds and bad input."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from concerto3d.errors import InputError
from concerto3d.evaluation import lifting
from concerto3d.evaluation.ablation import ROW_KEYS, AblationSettings, run_ablation
from concerto3d.evaluation.ablation.running import check_image_encoder, lifted_features


def test_ablation_end_to_end_then_resume_without_retraining(tiny_data, tmp_path, monkeypatch, capsys, tiny,
                                                            ablate_cli):
    import concerto3d.training.trainer as trainer

    calls = []
    real_train = trainer.train
    monkeypatch.setattr(trainer, "train", lambda *a, **k: calls.append(a[0].objective.kind) or real_train(*a, **k))
    out = tmp_path / "abl"
    argv = [str(tiny_data), "--out", str(out), "--seeds", "1", "--steps", "2", "--probe-epochs", "5",
            "--probe-points", "150", "--probe-batch-size", "64", "--no-progress"]
    capsys.readouterr()
    assert ablate_cli(argv) == 0
    assert sorted(calls) == ["2d", "3d", "joint", "supervised"]  # random is not trained, concat reuses 2d and 3d
    err = capsys.readouterr().err  # --no-progress: no bar at all, the nested training/embedding/lifting ones included
    assert not any(bar in err for bar in ("it/s", "step/s", "scene/s", "%|")), err[-500:]

    probes = {r: json.loads((out / "probes" / f"{r}-seed0.json").read_text()) for r in ROW_KEYS}
    for r, p in probes.items():
        assert 0.0 <= p["miou"] <= 1.0 and p["row"] == r and p["labelled_points"]["val"] > 0
    assert probes["random"]["steps"] == 0 and probes["joint"]["steps"] == 2 and probes["supervised"]["steps"] == 2
    assert probes["supervised"]["feature_dim"] == 24  # the ceiling is the same point encoder
    assert probes["3d"]["labelled_points"]["train_fitted"] == 3 * 150  # --probe-points per train scene
    assert probes["3d"]["head"]["batch_size"] == 64
    assert probes["3d"]["feature_dim"] == 24 and probes["2d"]["feature_dim"] == 32
    assert probes["concat"]["feature_dim"] == 24 + 32
    unseen = probes["2d"]["unseen"]["val"]
    assert unseen["points"] == 400 and 0 <= unseen["unseen"] < 400  # counted, and in the probe like every point
    config = json.loads((out / "runs" / "joint-seed0" / "model" / "config.json").read_text())
    assert config["objective"] == "joint" and config["steps"] == 2

    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows] == list(ROW_KEYS)
    assert float(rows[-1]["miou_mean"]) == pytest.approx(probes["supervised"]["miou"], abs=1e-6)
    md = (out / "results.md").read_text()
    assert "joint (Concerto)" in md and "supervised ceiling" in md and "supervised > 3d" in md and "concerto3d ablate" in md and "--steps 2" in md
    assert (out / "results.png").stat().st_size > 1000

    # resume: nothing is retrained or re-probed when everything is there
    model_mtime = (out / "runs" / "3d-seed0" / "model" / "config.json").stat().st_mtime_ns
    probe_mtime = (out / "probes" / "2d-seed0.json").stat().st_mtime_ns
    calls.clear()
    assert ablate_cli(argv) == 0
    assert calls == []
    assert (out / "runs" / "3d-seed0" / "model" / "config.json").stat().st_mtime_ns == model_mtime
    assert (out / "probes" / "2d-seed0.json").stat().st_mtime_ns == probe_mtime

    # a lost probe JSON is redone from the existing model, without training
    (out / "probes" / "joint-seed0.json").unlink()
    assert ablate_cli(argv) == 0
    assert calls == [] and (out / "probes" / "joint-seed0.json").is_file()

    # other settings in the same folder are refused
    with pytest.raises(InputError, match="other settings"):
        run_ablation(tiny_data, out, AblationSettings(steps=3, seeds=[0], overrides=tiny), progress=False)

    # the same folder on a copy of the data elsewhere is the same ablation (meta.json, with its source paths, does
    # not count), but not on changed data (regenerated scans, another preprocessing): the data digest
    moved = tmp_path / "moved"
    shutil.copytree(tiny_data, moved)
    (moved / "scene0000_00" / "meta.json").write_text(json.dumps({"source": "elsewhere"}))
    assert ablate_cli([str(moved), *argv[1:]]) == 0 and calls == []
    label = np.load(moved / "scene0003_00" / "segment20.npy")
    label[0] = 6 if label[0] != 6 else 4
    np.save(moved / "scene0003_00" / "segment20.npy", label)
    capsys.readouterr()
    assert ablate_cli([str(moved), *argv[1:]]) == 2 and calls == []
    assert "data_sha256" in capsys.readouterr().err

    # so is the same command once a package default has changed (the digest of the whole training config)
    real_config = AblationSettings.train_config

    def other_default(settings, objective, seed, extra=(), data=None):
        cfg = real_config(settings, objective, seed, extra, data)
        cfg.objective.max_distill_points += 1
        return cfg

    monkeypatch.setattr(AblationSettings, "train_config", other_default)
    calls.clear()
    capsys.readouterr()
    assert ablate_cli(argv) == 2 and calls == []
    assert "training_sha256" in capsys.readouterr().err


def test_joint_target_2d_aligns_the_joint_row_with_the_2d_rows_frozen_image_encoder(tiny_data, tmp_path,
                                                                                     monkeypatch, ablate_cli):
    import concerto3d.training.trainer as trainer
    from safetensors.torch import load_file

    configs = {}
    real_train = trainer.train
    monkeypatch.setattr(trainer, "train",
                        lambda *a, **k: configs.setdefault(a[0].objective.kind, a[0]) and real_train(*a, **k))
    out = tmp_path / "abl"
    argv = [str(tiny_data), "--out", str(out), "--seeds", "1", "--steps", "2", "--rows", "2d,joint",
            "--joint-target", "2d", "--probe-epochs", "2", "--probe-points", "100", "--no-progress"]
    assert ablate_cli(argv) == 0
    joint = configs["joint"]
    assert joint.image_encoder.freeze
    assert joint.image_encoder.pretrained_path == str((out / "runs" / "2d-seed0").resolve())
    # the joint run's image encoder is the 2d row's, unchanged by the joint training (frozen)
    trained_2d = load_file(str(out / "runs" / "2d-seed0" / "model" / "model.safetensors"))
    in_joint = load_file(str(out / "runs" / "joint-seed0" / "model" / "model.safetensors"))
    in_joint = {k: v for k, v in in_joint.items() if k.startswith("image_encoder.")}
    assert trained_2d.keys() == in_joint.keys() and trained_2d
    assert all(torch.equal(trained_2d[k], in_joint[k]) for k in trained_2d)
    assert "--joint-target 2d" in (out / "results.md").read_text()
    losses = (out / "runs" / "joint-seed0" / "metrics.csv").read_text().splitlines()
    assert "loss_dense" in losses[0] and len(losses) == 3


def test_image_encoder_option_is_the_2d_row_and_the_joint_target_without_training_it(tiny_data, tmp_path,
                                                                                  monkeypatch, capsys, ablate_cli):
    """``--image-encoder PATH``: a pre-trained encoder (here a 2d run on the same scenes) is the 2d row, lifted
    and probed but never trained, and the joint row's frozen target; replacing its weights is refused."""
    import concerto3d.training.trainer as trainer

    configs = {}
    real_train = trainer.train
    monkeypatch.setattr(trainer, "train",
                        lambda *a, **k: configs.setdefault(a[0].objective.kind, a[0]) and real_train(*a, **k))
    first = tmp_path / "first"
    base = ["--seeds", "1", "--steps", "2", "--rows", "2d,joint", "--probe-epochs", "2", "--probe-points", "100",
            "--no-progress"]
    assert ablate_cli([str(tiny_data), "--out", str(first), "--rows", "2d", *base[:4], *base[6:]]) == 0
    encoder = tmp_path / "pretrained"
    shutil.copytree(first / "runs" / "2d-seed0", encoder)
    configs.clear()

    out = tmp_path / "abl"
    argv = [str(tiny_data), "--out", str(out), "--image-encoder", str(encoder), *base]
    assert ablate_cli(argv) == 0
    assert list(configs) == ["joint"]  # the 2d row is the given encoder: nothing trained for it
    joint = configs["joint"]
    assert joint.image_encoder.freeze and joint.image_encoder.pretrained_path == str(encoder.resolve())
    assert not (out / "runs" / "2d-seed0").exists()
    probe = json.loads((out / "probes" / "2d-seed0.json").read_text())
    assert probe["run"] == str(encoder.resolve())
    # the same encoder lifted in its own ablation folder gives the same features, hence the same probe
    assert probe["miou"] == pytest.approx(json.loads((first / "probes" / "2d-seed0.json").read_text())["miou"])
    settings = json.loads((out / "ablation.json").read_text())
    assert settings["joint_target"] == "2d" and len(settings["image_encoder_sha256"]) == 64
    table = (out / "results.md").read_text()
    assert "--image-encoder" in table
    assert f"- image encoder: 2D row and joint target: the image encoder of a concerto3d `2d` run `{encoder.resolve()}`" \
        f" (sha256 {settings['image_encoder_sha256'][:12]}) (2 steps), frozen." in table

    # a second seed probes the same encoder's features again, without lifting them again (one pass per scene)
    lifts = []
    real_lift = lifting.lift_scene_features
    monkeypatch.setattr(lifting, "lift_scene_features", lambda *a, **k: lifts.append(a[1]) or real_lift(*a, **k))
    two = tmp_path / "two"
    assert ablate_cli([str(tiny_data), "--out", str(two), "--image-encoder", str(encoder), "--seeds", "2", "--rows",
                       "2d", *base[6:]]) == 0
    assert len(lifts) == 4 and len(set(lifts)) == 4  # 3 train + 1 val scenes, once each
    seeds = [json.loads((two / "probes" / f"2d-seed{s}.json").read_text()) for s in (0, 1)]
    assert seeds[0]["miou"] == pytest.approx(probe["miou"]) and seeds[1]["head"]["seed"] == 1

    # its model card edited (as probe does, or a person): the encoder is the same, the rerun goes on
    card = encoder / "model" / "README.md"
    card.write_text(card.read_text() + "\nMy notes.\n")
    assert ablate_cli(argv) == 0
    # other weights in that folder: refused, not mixed with the rows built on the old ones
    weights = encoder / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    capsys.readouterr()
    assert ablate_cli(argv) == 2
    assert "image_encoder_sha256" in capsys.readouterr().err


def test_image_encoder_option_reads_a_local_hugging_face_folder_with_its_own_patch_size(tiny_data, tmp_path, tiny):
    """A DINOv2-like folder (14-pixel patches): refused up front with the overrides that fit, lifted once given."""
    from transformers import ViTConfig, ViTModel

    folder = tmp_path / "hf_vit"
    ViTModel(ViTConfig(image_size=28, patch_size=14, hidden_size=40, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64), add_pooling_layer=False).save_pretrained(folder)
    settings = AblationSettings(steps=1, seeds=[0], overrides=tiny, image_encoder=str(folder), probe_epochs=2)
    assert settings.joint_target == "2d"
    with pytest.raises(InputError, match=r"14-pixel patches.*data.patch_size=14 data.image_size=\[28,42\]"):
        run_ablation(tiny_data, tmp_path / "abl", settings, progress=False)
    assert not (tmp_path / "abl" / "runs").exists()  # refused before any row ran

    fit = ["data.patch_size=14", "data.image_size=[28, 42]", "image_encoder.patch_size=14",
           "image_encoder.image_size=[28, 42]"]
    settings = AblationSettings(steps=1, seeds=[0], overrides=tiny + fit, rows=["2d"], image_encoder=str(folder),
                                probe_epochs=2)
    check_image_encoder(folder, settings, tiny_data)
    feats = lifted_features(folder, tiny_data, settings, "lift")
    assert len(feats.train_x) == 3 and feats.train_x[0].shape[1] == 40  # the HF model's hidden size
    x = feats.val_x[0]
    seen = np.abs(x).sum(axis=1) > 0
    assert seen.all()  # the first photo covers the whole scene
    assert len(np.unique(x[seen].round(5), axis=0)) > 1  # points on different patches get different features


def test_a_list_of_seeds_runs_those_seeds_only_and_is_printed_back(tiny_data, tmp_path, ablate_cli):
    out = tmp_path / "abl"
    argv = [str(tiny_data), "--out", str(out), "--rows", "random", "--seeds", "2,5", "--probe-epochs", "2",
            "--probe-points", "100", "--no-progress"]
    assert ablate_cli(argv) == 0
    assert sorted(p.name for p in (out / "probes").glob("*.json")) == ["random-seed2.json", "random-seed5.json"]
    assert json.loads((out / "ablation.json").read_text())["seeds"] == [2, 5]
    assert "--seeds 2,5" in (out / "results.md").read_text()
    with open(out / "results.csv") as f:
        assert [r["seeds"] for r in csv.DictReader(f)] == ["2"]


def test_bad_input_fails_before_any_training(tiny_data, tmp_path, ablate_cli):
    no_val = tmp_path / "no_val"
    no_val.mkdir()
    (no_val / "splits").mkdir()
    (no_val / "x").mkdir()
    np.save(no_val / "x" / "coord.npy", np.zeros((4, 3), np.float32))
    (no_val / "splits" / "train.txt").write_text("x\n")
    with pytest.raises(InputError, match="val.txt"):
        run_ablation(no_val, tmp_path / "o1", AblationSettings(seeds=[0]), progress=False)
    with pytest.raises(InputError, match="optim.lrr"):
        run_ablation(tiny_data, tmp_path / "o2", AblationSettings(seeds=[0], overrides=["optim.lrr=1"]),
                     progress=False)
    assert not (tmp_path / "o2" / "runs").exists()
    assert ablate_cli([str(tiny_data), "steps=5", "--out", str(tmp_path / "o3")]) == 2

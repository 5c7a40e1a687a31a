"""``concerto3d ablate``: the five rows end to end on tiny scenes, resume, lifting, aggregation and bad input."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from concerto3d import cli
from concerto3d.errors import InputError
from concerto3d.evaluation import ablate
from concerto3d.labels import NUM_CLASSES_20, SCANNET20_NAMES

H, W = 32, 48
TINY = [
    "data.max_points=256", "data.min_points=48", "data.max_frames=2", "data.image_size=[32, 48]",
    "data.patch_size=16", "data.elastic_p=0", "image_encoder.image_size=[32, 48]", "image_encoder.patch_size=16",
    "image_encoder.hidden_size=32", "image_encoder.num_layers=1", "image_encoder.num_heads=2",
    "point_encoder.ratios=[0.25, 0.25]", "point_encoder.radii=[0.3, 0.6]", "point_encoder.sa_channels=[16, 32]",
    "point_encoder.global_channels=32", "point_encoder.fp_channels=[32]", "point_encoder.out_channels=24",
    "point_encoder.max_neighbors=16", "objective.proj_dim=32", "objective.hidden_dim=64",
    "objective.num_prototypes=64", "optim.warmup_steps=1", "batch_size=2", "device=cpu", "checkpoint_every=1000",
]


def _write_scene(folder, rng) -> None:
    """A floor and two boxes (~400 points), two orthographic top-view photos and their correspondences."""
    floor = np.column_stack([rng.uniform(0, 3, 200), rng.uniform(0, 2, 200), np.zeros(200)])
    parts, colours, labels = [floor], [np.tile([120, 110, 100], (200, 1))], [np.full(200, 1)]
    for cls, colour in ((4, (200, 40, 40)), (6, (40, 180, 60))):
        lo = np.array([rng.uniform(0.2, 2.2), rng.uniform(0.2, 1.2), 0.0])
        top = np.column_stack([lo[0] + rng.uniform(0, 0.6, 100), lo[1] + rng.uniform(0, 0.6, 100),
                               np.full(100, rng.uniform(0.4, 0.9))])
        parts.append(top)
        colours.append(np.tile(colour, (100, 1)))
        labels.append(np.full(100, cls))
    coord = np.concatenate(parts).astype(np.float32)
    color = np.clip(np.concatenate(colours) + rng.normal(0, 8, (len(coord), 3)), 0, 255).astype(np.uint8)
    label = np.concatenate(labels).astype(np.int16)
    label[::17] = -1  # some unlabelled points
    (folder / "images").mkdir(parents=True)
    corr = []
    for k, (lo, hi) in enumerate((((0, 0), (3, 2)), ((0.5, 0.3), (2.0, 1.3)))):
        u = np.floor((coord[:, 0] - lo[0]) / (hi[0] - lo[0]) * W).astype(np.int64)
        v = np.floor((coord[:, 1] - lo[1]) / (hi[1] - lo[1]) * H).astype(np.int64)
        inside = np.flatnonzero((u >= 0) & (u < W) & (v >= 0) & (v < H))
        image = np.full((H, W, 3), 90, np.uint8)
        image[v[inside], u[inside]] = color[inside]
        Image.fromarray(image).save(folder / "images" / f"{k:06d}.jpg", quality=95)
        corr.append(np.column_stack([np.full(len(inside), k), u[inside], v[inside], inside]))
    normal = np.tile(np.array([0, 0, 1], np.float32), (len(coord), 1))
    np.save(folder / "coord.npy", coord)
    np.save(folder / "color.npy", color)
    np.save(folder / "normal.npy", normal)
    np.save(folder / "segment20.npy", label)
    np.save(folder / "correspondences.npy", np.concatenate(corr).astype(np.int32))
    (folder / "meta.json").write_text(json.dumps({"source": "test"}))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """3 train scenes and 1 val scene."""
    root = tmp_path_factory.mktemp("ablate_scenes")
    rng = np.random.default_rng(0)
    names = [f"scene{i:04d}_00" for i in range(4)]
    for name in names:
        _write_scene(root / name, rng)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("\n".join(names[:3]) + "\n")
    (root / "splits" / "val.txt").write_text(names[3] + "\n")
    return root


def _ablate(argv, monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "ablate", ("concerto3d.evaluation.ablate_command", "the Concerto table"))
    # key=value overrides come right after DATA (argparse stops filling positionals at the first option)
    return cli.main(["ablate", argv[0], *TINY, *argv[1:]])


def test_ablation_end_to_end_then_resume_without_retraining(tiny_data, tmp_path, monkeypatch, capsys):
    import concerto3d.training.trainer as trainer

    calls = []
    real_train = trainer.train
    monkeypatch.setattr(trainer, "train", lambda *a, **k: calls.append(a[0].objective.kind) or real_train(*a, **k))
    out = tmp_path / "abl"
    argv = [str(tiny_data), "--out", str(out), "--seeds", "1", "--steps", "2", "--probe-epochs", "5",
            "--probe-points", "150", "--probe-batch-size", "64", "--no-progress"]
    capsys.readouterr()
    assert _ablate(argv, monkeypatch) == 0
    assert sorted(calls) == ["2d", "3d", "joint"]  # random is not trained, concat reuses 2d and 3d
    err = capsys.readouterr().err  # --no-progress: no bar at all, the nested training/embedding/lifting ones included
    assert not any(bar in err for bar in ("it/s", "step/s", "scene/s", "%|")), err[-500:]

    probes = {r: json.loads((out / "probes" / f"{r}-seed0.json").read_text()) for r in ablate.ROW_KEYS}
    for r, p in probes.items():
        assert 0.0 <= p["miou"] <= 1.0 and p["row"] == r and p["labelled_points"]["val"] > 0
    assert probes["random"]["steps"] == 0 and probes["joint"]["steps"] == 2
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
    assert [r["row"] for r in rows] == list(ablate.ROW_KEYS)
    assert float(rows[-1]["miou_mean"]) == pytest.approx(probes["joint"]["miou"], abs=1e-6)
    md = (out / "results.md").read_text()
    assert "joint (Concerto)" in md and "concerto3d ablate" in md and "--steps 2" in md
    assert (out / "results.png").stat().st_size > 1000

    # resume: nothing is retrained or re-probed when everything is there
    model_mtime = (out / "runs" / "3d-seed0" / "model" / "config.json").stat().st_mtime_ns
    probe_mtime = (out / "probes" / "2d-seed0.json").stat().st_mtime_ns
    calls.clear()
    assert _ablate(argv, monkeypatch) == 0
    assert calls == []
    assert (out / "runs" / "3d-seed0" / "model" / "config.json").stat().st_mtime_ns == model_mtime
    assert (out / "probes" / "2d-seed0.json").stat().st_mtime_ns == probe_mtime

    # a lost probe JSON is redone from the existing model, without training
    (out / "probes" / "joint-seed0.json").unlink()
    assert _ablate(argv, monkeypatch) == 0
    assert calls == [] and (out / "probes" / "joint-seed0.json").is_file()

    # other settings in the same folder are refused
    with pytest.raises(InputError, match="other settings"):
        ablate.run_ablation(tiny_data, out, ablate.AblationSettings(steps=3, seeds=[0], overrides=TINY),
                            progress=False)

    # the same folder on a copy of the data elsewhere is the same ablation (meta.json, with its source paths, does
    # not count), but not on changed data (regenerated scans, another preprocessing): the data digest
    moved = tmp_path / "moved"
    shutil.copytree(tiny_data, moved)
    (moved / "scene0000_00" / "meta.json").write_text(json.dumps({"source": "elsewhere"}))
    assert _ablate([str(moved), *argv[1:]], monkeypatch) == 0 and calls == []
    label = np.load(moved / "scene0003_00" / "segment20.npy")
    label[0] = 6 if label[0] != 6 else 4
    np.save(moved / "scene0003_00" / "segment20.npy", label)
    capsys.readouterr()
    assert _ablate([str(moved), *argv[1:]], monkeypatch) == 2 and calls == []
    assert "data_sha256" in capsys.readouterr().err

    # so is the same command once a package default has changed (the digest of the whole training config)
    real_config = ablate._train_config

    def other_default(settings, objective, seed, extra=()):
        cfg = real_config(settings, objective, seed, extra)
        cfg.objective.max_distill_points += 1
        return cfg

    monkeypatch.setattr(ablate, "_train_config", other_default)
    calls.clear()
    capsys.readouterr()
    assert _ablate(argv, monkeypatch) == 2 and calls == []
    assert "training_sha256" in capsys.readouterr().err


def test_joint_target_2d_aligns_the_joint_row_with_the_2d_rows_frozen_image_encoder(tiny_data, tmp_path,
                                                                                     monkeypatch):
    import concerto3d.training.trainer as trainer
    from safetensors.torch import load_file

    configs = {}
    real_train = trainer.train
    monkeypatch.setattr(trainer, "train",
                        lambda *a, **k: configs.setdefault(a[0].objective.kind, a[0]) and real_train(*a, **k))
    out = tmp_path / "abl"
    argv = [str(tiny_data), "--out", str(out), "--seeds", "1", "--steps", "2", "--rows", "2d,joint",
            "--joint-target", "2d", "--probe-epochs", "2", "--probe-points", "100", "--no-progress"]
    assert _ablate(argv, monkeypatch) == 0
    joint = configs["joint"]
    assert joint.image_encoder.freeze and joint.image_encoder.pretrained_path == str((out / "runs" / "2d-seed0").resolve())
    # the joint run's image encoder is the 2d row's, unchanged by the joint training (frozen)
    trained_2d = load_file(str(out / "runs" / "2d-seed0" / "model" / "image_encoder.safetensors"))
    in_joint = load_file(str(out / "runs" / "joint-seed0" / "model" / "image_encoder.safetensors"))
    assert trained_2d.keys() == in_joint.keys()
    assert all(torch.equal(trained_2d[k], in_joint[k]) for k in trained_2d)
    assert "--joint-target 2d" in (out / "results.md").read_text()
    losses = (out / "runs" / "joint-seed0" / "metrics.csv").read_text().splitlines()
    assert "loss_dense" in losses[0] and len(losses) == 3


def test_image_encoder_option_is_the_2d_row_and_the_joint_target_without_training_it(tiny_data, tmp_path,
                                                                                  monkeypatch, capsys):
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
    assert _ablate([str(tiny_data), "--out", str(first), "--rows", "2d", *base[:4], *base[6:]], monkeypatch) == 0
    encoder = tmp_path / "pretrained"
    shutil.copytree(first / "runs" / "2d-seed0", encoder)
    configs.clear()

    out = tmp_path / "abl"
    argv = [str(tiny_data), "--out", str(out), "--image-encoder", str(encoder), *base]
    assert _ablate(argv, monkeypatch) == 0
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
    assert "--image-encoder" in (out / "results.md").read_text()

    # a second seed probes the same encoder's features again, without lifting them again (one pass per scene)
    lifts = []
    real_lift = ablate.lift_scene_features
    monkeypatch.setattr(ablate, "lift_scene_features", lambda *a, **k: lifts.append(a[1]) or real_lift(*a, **k))
    two = tmp_path / "two"
    assert _ablate([str(tiny_data), "--out", str(two), "--image-encoder", str(encoder), "--seeds", "2", "--rows",
                    "2d", *base[6:]], monkeypatch) == 0
    assert len(lifts) == 4 and len(set(lifts)) == 4  # 3 train + 1 val scenes, once each
    seeds = [json.loads((two / "probes" / f"2d-seed{s}.json").read_text()) for s in (0, 1)]
    assert seeds[0]["miou"] == pytest.approx(probe["miou"]) and seeds[1]["head"]["seed"] == 1

    # other weights in that folder: refused, not mixed with the rows built on the old ones
    weights = encoder / "model" / "image_encoder.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    capsys.readouterr()
    assert _ablate(argv, monkeypatch) == 2
    assert "image_encoder_sha256" in capsys.readouterr().err


def test_image_encoder_option_reads_a_local_hugging_face_folder_with_its_own_patch_size(tiny_data, tmp_path):
    """A DINOv2-like folder (14-pixel patches): refused up front with the overrides that fit, lifted once given."""
    from transformers import ViTConfig, ViTModel

    folder = tmp_path / "hf_vit"
    ViTModel(ViTConfig(image_size=28, patch_size=14, hidden_size=40, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64), add_pooling_layer=False).save_pretrained(folder)
    settings = ablate.AblationSettings(steps=1, seeds=[0], overrides=TINY, image_encoder=str(folder),
                                       probe_epochs=2)
    assert settings.joint_target == "2d"
    with pytest.raises(InputError, match=r"14-pixel patches.*data.patch_size=14 data.image_size=\[28,42\]"):
        ablate.run_ablation(tiny_data, tmp_path / "abl", settings, progress=False)
    assert not (tmp_path / "abl" / "runs").exists()  # refused before any row ran

    fit = ["data.patch_size=14", "data.image_size=[28, 42]", "image_encoder.patch_size=14",
           "image_encoder.image_size=[28, 42]"]
    settings = ablate.AblationSettings(steps=1, seeds=[0], overrides=TINY + fit, rows=["2d"],
                                       image_encoder=str(folder), probe_epochs=2)
    ablate._check_image_encoder(folder, settings)
    feats = ablate._lifted_features(folder, tiny_data, settings, "lift")
    assert len(feats.train_x) == 3 and feats.train_x[0].shape[1] == 40  # the HF model's hidden size
    x = feats.val_x[0]
    seen = np.abs(x).sum(axis=1) > 0
    assert seen.all()  # the first photo covers the whole scene
    assert len(np.unique(x[seen].round(5), axis=0)) > 1  # points on different patches get different features


def test_image_encoder_settings_joint_without_the_2d_row_and_conflicting_targets(tiny_data, tmp_path, monkeypatch,
                                                                                capsys):
    encoder = tmp_path / "enc"
    encoder.mkdir()
    # with a given encoder the joint row does not need the 2d row ...
    settings = ablate.AblationSettings(rows=["3d", "joint"], image_encoder=str(encoder))
    assert settings.joint_target == "2d"
    # ... without one it does
    with pytest.raises(InputError, match="add the 2d row"):
        ablate.AblationSettings(rows=["3d", "joint"], joint_target="2d")
    # an explicit --joint-target scratch contradicts --image-encoder
    capsys.readouterr()
    argv = [str(tiny_data), "--out", str(tmp_path / "abl"), "--image-encoder", str(encoder), "--joint-target",
            "scratch", "--no-progress"]
    assert _ablate(argv, monkeypatch) == 2
    assert "cannot be combined with --joint-target scratch" in capsys.readouterr().err


@pytest.mark.parametrize("text, seeds", [("3", [0, 1, 2]), ("1", [0]), ("2,3,4", [2, 3, 4]), ("4,1", [4, 1]),
                                         ("5,", [5]), (" 2 , 0 ", [2, 0])])
def test_seeds_are_a_count_or_a_list(text, seeds):
    from concerto3d.evaluation.ablate_command import parse_seeds

    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", "-2", "x", "1,1", "1,-1", ",", "2.5"])
def test_bad_seeds_are_refused(text):
    import argparse

    from concerto3d.evaluation.ablate_command import parse_seeds

    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds(text)


def test_a_list_of_seeds_runs_those_seeds_only_and_is_printed_back(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    argv = [str(tiny_data), "--out", str(out), "--rows", "random", "--seeds", "2,5", "--probe-epochs", "2",
            "--probe-points", "100", "--no-progress"]
    assert _ablate(argv, monkeypatch) == 0
    assert sorted(p.name for p in (out / "probes").glob("*.json")) == ["random-seed2.json", "random-seed5.json"]
    assert json.loads((out / "ablation.json").read_text())["seeds"] == [2, 5]
    assert "--seeds 2,5" in (out / "results.md").read_text()
    with open(out / "results.csv") as f:
        assert [r["seeds"] for r in csv.DictReader(f)] == ["2"]


def test_a_folder_from_before_the_data_digest_is_refused_with_a_reason(tiny_data, tmp_path):
    out = tmp_path / "abl"
    out.mkdir()
    settings = ablate.AblationSettings(steps=1, seeds=[0], overrides=TINY, rows=["random"], probe_epochs=2)
    old = {"data": str(tiny_data), **ablate.asdict(settings)}
    old["training_sha256"] = ablate.training_digest(settings)
    old.pop("data_sha256")
    (out / "ablation.json").write_text(json.dumps(old))
    with pytest.raises(InputError, match="from before data_sha256 was recorded"):
        ablate.run_ablation(tiny_data, out, settings, progress=False)


def test_lift_scene_features_averages_the_patches_that_see_each_point(tiny_data):
    from concerto3d.models.image_encoder import ImageEncoder, ImageEncoderConfig

    torch.manual_seed(0)
    encoder = ImageEncoder(ImageEncoderConfig(image_size=(H, W), patch_size=16, hidden_size=16, num_layers=1,
                                              num_heads=2))
    scene = tiny_data / "scene0003_00"
    lifted = ablate.lift_scene_features(encoder, scene, image_batch=1)

    images = np.stack([np.asarray(Image.open(scene / "images" / f"{k:06d}.jpg").convert("RGB")) for k in (0, 1)])
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        grid = encoder(encoder.normalize(x)).patch_grid.numpy()
    corr = np.load(scene / "correspondences.npy")
    expected = np.zeros((400, 16), np.float32)
    for p in (0, 5, 250, 399):
        rows = corr[corr[:, 3] == p]
        if len(rows):
            expected[p] = np.mean([grid[k, v // 16, u // 16] for k, u, v, _ in rows], axis=0)
        np.testing.assert_allclose(lifted.features[p], expected[p], rtol=1e-4, atol=1e-5)
        assert lifted.seen[p] == (len(rows) > 0)
    assert (lifted.features[~lifted.seen] == 0).all()
    assert np.array_equal(lifted.labels, np.load(scene / "segment20.npy"))


def _summary(miou, iou_wall, oa=0.5):
    iou = {n: None for n in SCANNET20_NAMES}
    iou["wall"], iou["floor"] = iou_wall, 2 * miou - iou_wall
    return {"miou": miou, "overall_accuracy": oa, "iou": iou}


def test_aggregate_mean_and_sample_std_over_seeds_and_the_ordering():
    probes = {
        "3d": {0: _summary(0.40, 0.3), 1: _summary(0.50, 0.5), 2: _summary(0.45, 0.4)},
        "joint": {1: _summary(0.60, 0.6), 0: _summary(0.62, 0.6)},
        "2d": {0: _summary(0.44, 0.4)},
    }
    stats = ablate.aggregate(probes)
    assert [s.key for s in stats] == ["2d", "3d", "joint"]  # table order, rows without seeds left out
    s3 = stats[1]
    assert s3.seeds == [0, 1, 2] and s3.miou == [0.40, 0.50, 0.45]
    assert s3.miou_mean == pytest.approx(0.45) and s3.miou_std == pytest.approx(np.std([0.4, 0.5, 0.45], ddof=1))
    assert s3.iou_mean[0] == pytest.approx(0.4) and np.isnan(s3.iou_mean[5]) and len(s3.iou_mean) == NUM_CLASSES_20
    assert stats[0].miou_std == 0.0  # one seed: no spread

    checks = {(c.better, c.worse): c for c in ablate.ordering_checks(stats)}
    assert checks[("joint", "3d")].holds  # +0.16 > std 0.05
    assert not checks[("3d", "2d")].holds  # +0.01 < std 0.05
    assert checks[("joint", "3d")].difference == pytest.approx(0.16)
    assert ("concat", "3d") not in checks  # absent rows are not checked
    stats_random = ablate.aggregate({"3d": probes["3d"], "random": {0: _summary(0.20, 0.2), 1: _summary(0.25, 0.2)}})
    by_pair = {(c.better, c.worse): c for c in ablate.ordering_checks(stats_random)}
    assert by_pair[("3d", "random")].holds and by_pair[("3d", "random")].difference == pytest.approx(0.225)


def test_write_results_writes_every_row_and_class(tmp_path):
    stats = ablate.aggregate({"random": {0: _summary(0.1, 0.1)}, "joint": {0: _summary(0.6, 0.5),
                                                                             1: _summary(0.7, 0.7)}})
    paths = ablate.write_results(tmp_path, stats, {"command": "concerto3d ablate D --out O"})
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows] == ["random", "joint"]
    assert float(rows[1]["miou_mean"]) == pytest.approx(0.65) and rows[1]["miou_per_seed"] == "0.600000;0.700000"
    assert float(rows[1]["iou_floor"]) == pytest.approx(0.7) and "iou_chair" not in rows[1]
    md = paths["md"].read_text()
    assert "65.0 ± 7.1" in md and "joint > random" in md


@pytest.mark.parametrize("kwargs, message", [
    ({"rows": ["concat", "joint"]}, "concat needs"),
    ({"rows": ["joint", "nope"]}, "expected some of"),
    ({"seeds": []}, "seeds"),
    ({"steps": 0}, "steps"),
    ({"joint_target": "dinov2"}, "scratch or 2d"),
    ({"rows": ["3d", "joint"], "joint_target": "2d"}, "add the 2d row"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        ablate.AblationSettings(**kwargs)


def test_bad_input_fails_before_any_training(tiny_data, tmp_path, monkeypatch):
    no_val = tmp_path / "no_val"
    no_val.mkdir()
    (no_val / "splits").mkdir()
    (no_val / "x").mkdir()
    np.save(no_val / "x" / "coord.npy", np.zeros((4, 3), np.float32))
    (no_val / "splits" / "train.txt").write_text("x\n")
    with pytest.raises(InputError, match="val.txt"):
        ablate.run_ablation(no_val, tmp_path / "o1", ablate.AblationSettings(seeds=[0]), progress=False)
    with pytest.raises(InputError, match="optim.lrr"):
        ablate.run_ablation(tiny_data, tmp_path / "o2", ablate.AblationSettings(seeds=[0], overrides=["optim.lrr=1"]),
                            progress=False)
    assert not (tmp_path / "o2" / "runs").exists()
    assert _ablate([str(tiny_data), "steps=5", "--out", str(tmp_path / "o3")], monkeypatch) == 2


def test_subsample_labelled_keeps_at_most_n_labelled_points_per_scene_in_order():
    xs = [np.arange(10, dtype=np.float32)[:, None], np.arange(4, dtype=np.float32)[:, None]]
    ys = [np.array([0, -1, 1, 2, -1, 3, 4, 5, 6, 7]), np.array([-1, 1, -1, 2])]
    fx, fy = ablate.subsample_labelled(xs, ys, 3, seed=0)
    assert [len(y) for y in fy] == [3, 2] and all((y != -1).all() for y in fy)
    assert all(np.array_equal(x[:, 0], np.sort(x[:, 0])) for x in fx)  # original order kept
    assert np.array_equal(ys[0][fx[0][:, 0].astype(int)], fy[0])  # features and labels stay paired
    again = ablate.subsample_labelled(xs, ys, 3, seed=0)[0][0]
    assert np.array_equal(again, fx[0])  # seeded
    all_x, all_y = ablate.subsample_labelled(xs, ys, None, seed=0)
    assert [len(y) for y in all_y] == [8, 2]


def test_data_digest_follows_the_points_labels_and_files_not_the_folder_or_meta(tiny_data, tmp_path):
    digest = ablate.data_digest(tiny_data)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_data, copy)
    (copy / "scene0001_00" / "meta.json").write_text("{}")
    assert ablate.data_digest(copy) == digest

    def changed(edit) -> str:
        other = tmp_path / f"other{len(list(tmp_path.iterdir()))}"
        shutil.copytree(tiny_data, other)
        edit(other)
        return ablate.data_digest(other)

    def nudge_coord(root):
        coord = np.load(root / "scene0002_00" / "coord.npy")
        coord[5, 2] += 0.01
        np.save(root / "scene0002_00" / "coord.npy", coord)

    def drop_correspondences(root):
        corr = np.load(root / "scene0001_00" / "correspondences.npy")
        np.save(root / "scene0001_00" / "correspondences.npy", corr[:-3])

    def swap_splits(root):
        train = (root / "splits" / "train.txt").read_text().split()
        val = (root / "splits" / "val.txt").read_text().split()
        (root / "splits" / "train.txt").write_text("\n".join(train[1:] + val) + "\n")
        (root / "splits" / "val.txt").write_text(train[0] + "\n")

    digests = {changed(nudge_coord), changed(drop_correspondences), changed(swap_splits)}
    assert len(digests) == 3 and digest not in digests

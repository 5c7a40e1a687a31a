"""The trained model folder: written by save_model, loaded by load_model / from_pretrained without the training
config (also from a copy elsewhere, and in the old format 1), embed(), the model card."""

import json
import shutil

import numpy as np
import pytest
import torch

from concerto3d.config import load_config
from concerto3d.errors import FormatError, InputError
from concerto3d.models.concerto import ConcertoModel
from concerto3d.inference import MODEL_FORMAT, PretrainedModel, load_model, save_model

TINY = [
    "data.image_size=[32, 48]", "data.patch_size=16", "image_encoder.image_size=[32, 48]", "image_encoder.hidden_size=32",
    "image_encoder.num_layers=1", "image_encoder.num_heads=2", "point_encoder.ratios=[0.25, 0.25]",
    "point_encoder.radii=[0.3, 0.6]", "point_encoder.sa_channels=[16, 32]", "point_encoder.global_channels=32",
    "point_encoder.fp_channels=[32]", "point_encoder.out_channels=24", "point_encoder.max_neighbors=16",
    "objective.proj_dim=32", "objective.hidden_dim=64", "objective.num_prototypes=64",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    cfg = load_config(None, TINY + ["data.grid_size=0.05"])
    model = ConcertoModel(cfg)
    run = tmp_path_factory.mktemp("run")
    save_model(model, cfg, run, steps=7)
    return model, cfg, run


def test_layout_and_config_json(trained):
    _, _, run = trained
    names = sorted(p.name for p in (run / "model").iterdir())
    assert names == ["README.md", "config.json", "model.safetensors"]  # as huggingface_hub's save_pretrained
    meta = json.loads((run / "model" / "config.json").read_text())
    assert meta["format"] == MODEL_FORMAT == 2 and meta["library"] == "concerto3d"
    assert meta["objective"] == "joint" and meta["proj_dim"] == 32 and meta["weights"] == "student"
    assert meta["input"] == {"use_color": True, "use_normal": True, "grid_size": 0.05, "feature_channels": 9,
                             "position_feature": "height"}
    assert meta["point_encoder"]["out_channels"] == 24 and meta["steps"] == 7


def test_load_gives_the_same_weights_from_run_or_model_folder(trained):
    model, _, run = trained
    for path in (run, run / "model"):
        loaded = load_model(path)
        assert not loaded.training
        for name in ("point_encoder", "image_encoder"):
            ref, got = getattr(model, name).state_dict(), getattr(loaded, name).state_dict()
            assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)


def test_embed_matches_the_encoder_and_follows_the_grid(trained):
    model, _, run = trained
    loaded = load_model(run)
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (400, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (400, 3)).astype(np.uint8)
    feats = loaded.embed(pts, colors=colors)
    assert feats.shape == (400, 24) and feats.dtype == np.float32 and loaded.out_channels == 24
    # points in one 5 cm cell share a feature
    cells = np.floor((pts - (pts.min(0) + pts.max(0)) / 2) / 0.05).astype(int)
    _, first, inverse = np.unique(cells, axis=0, return_index=True, return_inverse=True)
    np.testing.assert_array_equal(feats, feats[first][inverse.reshape(-1)])
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        loaded.embed(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="colors"):
        loaded.embed(pts, colors=colors[:10])


def test_teacher_export_and_3d_model(tmp_path):
    torch.manual_seed(0)
    cfg = load_config(None, TINY + ["objective.kind=3d"])
    model = ConcertoModel(cfg)
    with torch.no_grad():
        for p in model.teacher["point_encoder"].parameters():
            p.add_(1.0)
    save_model(model, cfg, tmp_path, weights="teacher")
    loaded = load_model(tmp_path)
    assert loaded.image_encoder is None and loaded.config["weights"] == "teacher"
    ref = model.teacher["point_encoder"].state_dict()
    assert all(torch.equal(ref[k], v) for k, v in loaded.point_encoder.state_dict().items())


def test_bad_model_folders(tmp_path, trained):
    with pytest.raises(InputError, match="RUN/model/config.json"):
        load_model(tmp_path / "nothing")
    _, cfg, run = trained
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "model" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(FormatError, match="model.safetensors"):
        load_model(broken)
    (broken / "model" / "model.safetensors").unlink()
    with pytest.raises(FormatError, match="weights are missing"):
        load_model(broken)
    # weights of another architecture: refused (strict), never loaded in part
    torch.manual_seed(1)
    other_cfg = load_config(None, TINY + ["point_encoder.out_channels=16"])
    other = tmp_path / "other"
    save_model(ConcertoModel(other_cfg), other_cfg, other)
    shutil.copy(other / "model" / "model.safetensors", broken / "model" / "model.safetensors")
    with pytest.raises(FormatError, match="do not match"):
        load_model(broken)
    meta = json.loads((run / "model" / "config.json").read_text())
    meta["point_encoder"]["out_channel"] = 3
    (broken / "model" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="did you mean out_channels"):
        load_model(broken)


def small_cloud(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 1.5, (n, 3)).astype(np.float32), rng.integers(0, 256, (n, 3)).astype(np.uint8),
            rng.normal(size=(n, 3)).astype(np.float32))


def test_a_copied_model_folder_loads_alone_and_gives_the_same_features(trained, tmp_path, monkeypatch):
    """The folder as people share it: copied elsewhere, the run and the training config gone; load_model and
    from_pretrained both rebuild it, with no network, and embed a cloud exactly as the model before copying."""
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("loading a local model folder tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    _, _, run = trained
    pts, colors, normals = small_cloud()
    before = load_model(run)
    ref = before.embed(pts, colors=colors, normals=normals)
    grids_ref = before.image_encoder(torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0)))
    source = tmp_path / "run"
    shutil.copytree(run, source)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(source / "model", elsewhere)
    shutil.rmtree(source)  # nothing of the run is left: no config.yaml, no checkpoints
    for loaded in (load_model(elsewhere), PretrainedModel.from_pretrained(elsewhere)):
        assert loaded.path == elsewhere and not loaded.training
        np.testing.assert_array_equal(loaded.embed(pts, colors=colors, normals=normals), ref)
        grids = loaded.image_encoder(torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0)))
        assert torch.equal(grids.patch_grid, grids_ref.patch_grid)


def test_an_image_encoder_from_a_hugging_face_folder_is_stored_without_that_folder(tmp_path):
    """A frozen teacher loaded from a local HF folder: the model folder inlines its architecture and keeps its
    weights, so it loads after the teacher's folder is gone; the path it came from stays in training for the card."""
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64), add_pooling_layer=False).save_pretrained(tmp_path / "teacher")
    torch.manual_seed(0)
    cfg = load_config(None, TINY + [f"image_encoder.pretrained_path={tmp_path / 'teacher'}",
                                    "image_encoder.freeze=true"])
    model = ConcertoModel(cfg)
    save_model(model, cfg, tmp_path / "run", training={"image_encoder": {"path": str(tmp_path / "teacher"),
                                                                         "sha256": "0" * 64, "frozen": True}})
    shutil.rmtree(tmp_path / "teacher")
    meta = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert meta["image_encoder"]["pretrained_path"] is None and meta["image_encoder"]["backbone_config"]
    loaded = load_model(tmp_path / "run")
    images = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(images).patch_grid, model.image_encoder.eval()(images).patch_grid)
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert str(tmp_path / "teacher") in card and "2D teacher" in card


def write_format_1(model, cfg, folder, steps=7):
    """A model folder as concerto3d wrote it before format 2: one safetensors file per encoder, no card."""
    from safetensors.torch import save_file

    from concerto3d.inference.model_folder import _config_dict

    folder.mkdir(parents=True)
    meta = {"format": 1, "point_encoder": _config_dict(cfg.point_encoder),
            "image_encoder": _config_dict(model.image_encoder.config), "proj_dim": cfg.objective.proj_dim,
            "input": {"use_color": True, "use_normal": True, "grid_size": cfg.data.grid_size, "feature_channels": 9,
                      "position_feature": cfg.data.position_feature},
            "objective": "joint", "weights": "student", "steps": steps}
    for name in ("point_encoder", "image_encoder"):
        save_file({k: v.contiguous() for k, v in getattr(model, name).state_dict().items()},
                  str(folder / f"{name}.safetensors"))
    (folder / "config.json").write_text(json.dumps(meta, indent=2))


def test_a_format_1_folder_still_loads_and_saves_as_format_2(trained, tmp_path):
    model, cfg, run = trained
    old = tmp_path / "old" / "model"
    write_format_1(model, cfg, old)
    pts, colors, normals = small_cloud(seed=1)
    ref = load_model(run).embed(pts, colors=colors, normals=normals)
    for loaded in (load_model(old.parent), PretrainedModel.from_pretrained(old)):
        assert loaded.config["format"] == 1
        np.testing.assert_array_equal(loaded.embed(pts, colors=colors, normals=normals), ref)
    # a format-1 folder whose weights do not fit its config: refused, naming the file
    (old / "point_encoder.safetensors").write_bytes(b"junk")
    with pytest.raises(FormatError, match="point_encoder.safetensors"):
        load_model(old)

    converted = load_model(run).save_pretrained(tmp_path / "converted")
    assert sorted(p.name for p in converted.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    np.testing.assert_array_equal(load_model(converted).embed(pts, colors=colors, normals=normals), ref)
    with pytest.raises(InputError, match="never replaces"):
        load_model(run).save_pretrained(converted)


def test_model_card_says_what_the_model_was_trained_on_and_how_to_load_it(trained):
    """The card's text (a pure function of config.json): front matter the Hub reads, the steps, the objective,
    the data digest, the input, how to load it, "not measured" until a probe, the licence note."""
    import yaml

    from concerto3d.inference.model_card import NOT_MEASURED, PROBE_BEGIN, PROBE_END, model_card

    _, _, run = trained
    meta = json.loads((run / "model" / "config.json").read_text())
    meta["steps"] = 1234
    meta["training"] = {"data": {"name": "scannet_pre", "split": "train", "scenes": 1201, "sha256": "ab" * 32,
                                 "sha256_splits": ["train", "val"], "origin": "scannet"},
                        "image_encoder": None, "seed": 0, "batch_size": 2, "concerto3d_version": "0.1.0"}
    card = model_card(meta)
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "concerto3d" and "point-cloud" in front["tags"] and "scannet" in front["tags"]
    assert front["license"] == "other" and "ScanNet_TOS" in front["license_link"]
    assert "- steps: 1234" in card and "objective: `joint`" in card and "ab" * 32 in card
    assert "1201 scene(s)" in card and "split `train`" in card and "random initialisation" in card
    assert "metres" in card and "z up" in card and "0-255" in card and "grid size: 0.05 m" in card
    assert "load_model(" in card and "PretrainedModel.from_pretrained(" in card
    assert "Terms of Use" in card and "licence of the training data governs" in card
    block = card[card.index(PROBE_BEGIN):card.index(PROBE_END)]
    assert NOT_MEASURED in block
    # synthetic data: no ScanNet link in the front matter, and the card says who made the data
    meta["training"]["data"]["origin"] = "synthetic"
    card = model_card(meta)
    assert "license_link" not in card.split("---\n")[1] and "made by `concerto3d synth`" in card


def test_model_card_front_matter_reads_with_huggingface_hub(trained):
    """The Hub's own parser (offline: ModelCard parses text, nothing is fetched) reads our metadata."""
    hub = pytest.importorskip("huggingface_hub")
    _, _, run = trained
    card = hub.ModelCard((run / "model" / "README.md").read_text())
    assert card.data.library_name == "concerto3d" and card.data.license == "other"


def test_probe_fills_its_block_and_leaves_the_rest_of_the_card_alone(trained, tmp_path):
    from concerto3d.inference.model_card import NOT_MEASURED, probe_row, with_probe_result
    from concerto3d.inference.model_folder import record_probe

    _, _, run = trained
    folder = tmp_path / "model"
    shutil.copytree(run / "model", folder)
    card = folder / "README.md"
    edited = card.read_text().replace("## Licence", "My notes: trained on a Friday.\n\n## Licence")
    card.write_text(edited)
    summary = {"miou": 0.4567, "overall_accuracy": 0.8, "scenes": {"train": 3, "val": 1},
               "head": {"epochs": 20, "lr": 0.01, "seed": 0, "train_points_per_scene": None}}
    data = tmp_path / "data"  # the probed data: its digest keys the row
    for name in ("scene0000_00", "scene0001_00"):
        (data / name).mkdir(parents=True)
        np.save(data / name / "coord.npy", small_cloud()[0])
    (data / "splits").mkdir()
    (data / "splits" / "train.txt").write_text("scene0000_00\n")
    (data / "splits" / "val.txt").write_text("scene0001_00\n")
    assert record_probe(folder, data, summary)
    text = card.read_text()
    assert "45.7%" in text and NOT_MEASURED not in text and "My notes: trained on a Friday." in text
    outside = lambda t: t.split("<!-- concerto3d:probe:begin")[0] + t.split("<!-- concerto3d:probe:end -->")[1]
    assert outside(text) == outside(edited)
    # the same data probed again: its row is replaced; other data: a second row
    assert record_probe(folder, data, dict(summary, miou=0.5))
    text = card.read_text()
    assert "50.0%" in text and "45.7%" not in text
    twice = with_probe_result(text, probe_row("other", "cd" * 32, summary))
    assert sum(line.startswith("| `") for line in twice.splitlines()) == 2 and outside(twice) == outside(edited)
    # the block removed by the user: the card is theirs, nothing written
    card.write_text("my own card\n")
    assert not record_probe(folder, data, summary) and card.read_text() == "my own card\n"


def test_data_origin_tells_synthetic_scenes_from_scannet_ones(tmp_path):
    """Synthetic scans are in ScanNet's layout too: what tells them apart is the marker synth leaves in its folder."""
    from concerto3d.inference.model_folder import data_origin
    from concerto3d.synth.writer import SYNTH_MARKER

    (tmp_path / "synth" / "scans").mkdir(parents=True)
    (tmp_path / "synth" / SYNTH_MARKER).write_text("made by concerto3d synth\n")
    (tmp_path / "scannet" / "scans").mkdir(parents=True)
    data = tmp_path / "data"
    sources = {"a": {"kind": "scannet", "path": str(tmp_path / "synth" / "scans" / "a")},
               "b": {"kind": "scannet", "path": str(tmp_path / "scannet" / "scans" / "b")},
               "c": {"kind": "rgbd", "path": str(tmp_path / "c")}, "d": "test", "e": None}
    for name, source in sources.items():
        (data / name).mkdir(parents=True)
        (data / name / "meta.json").write_text(json.dumps({"source": source}))
    assert data_origin(data, ["a"]) == "synthetic" and data_origin(data, ["b"]) == "scannet"
    assert data_origin(data, ["c"]) == "rgbd" and data_origin(data, ["a", "b"]) == "mixed"
    assert data_origin(data, ["d", "e", "missing"]) is None

"""The trained model folder: written by save_model, loaded by load_model without the training config, embed()."""

import json

import numpy as np
import pytest
import torch

from concerto3d.config import load_config
from concerto3d.errors import FormatError, InputError
from concerto3d.models.concerto import ConcertoModel
from concerto3d.inference import load_model, save_model

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
    assert names == ["config.json", "image_encoder.safetensors", "point_encoder.safetensors"]
    meta = json.loads((run / "model" / "config.json").read_text())
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
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "model" / "point_encoder.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(FormatError, match="point_encoder.safetensors"):
        load_model(broken)
    meta = json.loads((run / "model" / "config.json").read_text())
    meta["point_encoder"]["out_channel"] = 3
    (broken / "model" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="did you mean out_channels"):
        load_model(broken)

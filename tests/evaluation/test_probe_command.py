"""The probe end to end on tiny hand-made scenes, with a stand-in for the trained model."""

import json
import sys
import types

import numpy as np
import pytest
import torch

from concerto3d.cli import main
from concerto3d.errors import InputError
from concerto3d.evaluation.features import (embed_scene, extract_point_features, interpolate_features, load_scene,
                                            read_split)
from concerto3d.evaluation.probe_command import run_probe
from concerto3d.labels import SCANNET20_NAMES


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class StandInModel:
    """Like ``PretrainedModel``: ``.embed(points, colors, normals) -> (N, C)`` and a ``.point_encoder``. Its features
    are (x, y, and 4 fixed random projections of the colour)."""

    def __init__(self):
        self.point_encoder = torch.nn.Linear(3, 3)
        self.calls = 0

    def embed(self, points, colors=None, normals=None):
        self.calls += 1
        assert not self.point_encoder.training
        proj = np.random.default_rng(0).normal(size=(3, 4))
        return np.concatenate([points[:, :2], (colors / 255.0) @ proj], axis=1).astype(np.float32)


def write_scene(root, name, n, seed):
    """Points in a 2 x 2 m square; the label is the quadrant: wall (0), floor (1), chair (4), table (6); 10 % of the
    points unlabelled."""
    rng = np.random.default_rng(seed)
    coord = np.concatenate([rng.uniform(0.05, 1.0, (n, 2)) * rng.choice([-1, 1], (n, 2)),
                            rng.uniform(0, 2, (n, 1))], axis=1).astype(np.float32)
    quadrant = (coord[:, 0] < 0).astype(int) * 2 + (coord[:, 1] < 0).astype(int)
    segment = np.array([0, 1, 4, 6])[quadrant].astype(np.int16)
    segment[rng.random(n) < 0.1] = -1
    d = root / name
    d.mkdir(parents=True)
    np.save(d / "coord.npy", coord)
    np.save(d / "color.npy", rng.integers(0, 256, (n, 3), dtype=np.uint8))
    normal = rng.normal(size=(n, 3))
    np.save(d / "normal.npy", (normal / np.linalg.norm(normal, axis=1, keepdims=True)).astype(np.float32))
    np.save(d / "segment20.npy", segment)
    return d


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "data"
    for i, name in enumerate(["scene_a", "scene_b", "scene_c"]):
        write_scene(root, name, 300, seed=i)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("scene_a\nscene_b\n")
    (root / "splits" / "val.txt").write_text("# held out\nscene_c\n\n")
    return root


def test_run_probe_separates_the_quadrants_and_is_deterministic(dataset):
    model = StandInModel()
    summary, result = run_probe(model, dataset, epochs=150, lr=0.05, seed=0)
    assert model.calls == 3  # frozen encoder: each scene embedded once
    assert summary["classes_present"] == 4
    assert summary["miou"] > 0.97 and summary["overall_accuracy"] > 0.98
    assert summary["iou"]["wall"] is not None and summary["iou"]["sofa"] is None
    assert summary["scenes"] == {"train": 2, "val": 1}
    assert summary["labelled_points"]["val"] == int((np.load(dataset / "scene_c" / "segment20.npy") >= 0).sum())
    again, _ = run_probe(StandInModel(), dataset, epochs=150, lr=0.05, seed=0)
    assert again["miou"] == summary["miou"] and again["confusion"] == summary["confusion"]


def test_train_points_per_scene_caps_the_cached_training_set(dataset):
    summary, _ = run_probe(StandInModel(), dataset, epochs=50, lr=0.05, train_points_per_scene=100)
    assert summary["labelled_points"]["train"] == 200  # 100 labelled points from each of the 2 train scenes
    assert summary["miou"] > 0.9


def test_cli_probe_writes_json_and_prints_a_table(dataset, tmp_path, monkeypatch, capsys):
    fake = types.ModuleType("concerto3d.models.pretrained")
    fake.load_model = lambda run, device="cpu": StandInModel()
    monkeypatch.setitem(sys.modules, "concerto3d.models.pretrained", fake)
    out = tmp_path / "probe" / "result.json"
    code = main(["probe", str(dataset), "--model", "RUN", "--out", str(out), "--epochs", "50", "--lr", "0.05",
                 "--device", "cpu"])
    assert code == 0
    result = json.loads(out.read_text())  # strict JSON: absent classes are null, not NaN
    assert set(result["iou"]) == set(SCANNET20_NAMES)
    assert 0.9 < result["miou"] <= 1.0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "wall" in printed and "overall acc" in printed


def test_cli_probe_bad_input_exits_2_with_one_line(dataset, tmp_path, monkeypatch, capsys):
    fake = types.ModuleType("concerto3d.models.pretrained")
    fake.load_model = lambda run, device="cpu": StandInModel()
    monkeypatch.setitem(sys.modules, "concerto3d.models.pretrained", fake)
    (dataset / "splits" / "val.txt").unlink()
    assert main(["probe", str(dataset), "--model", "RUN"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "val.txt" in err
    assert main(["probe", str(tmp_path / "nowhere"), "--model", "RUN"]) == 2


def test_read_split_and_load_scene_errors(dataset):
    assert [p.name for p in read_split(dataset, "val")] == ["scene_c"]
    (dataset / "splits" / "train.txt").write_text("scene_a\nscene_zz\n")
    with pytest.raises(InputError, match="scene_zz"):
        read_split(dataset, "train")
    np.save(dataset / "scene_a" / "color.npy", np.zeros((5, 3), np.uint8))
    with pytest.raises(InputError, match="color.npy"):
        load_scene(dataset / "scene_a")
    (dataset / "scene_b" / "coord.npy").unlink()
    with pytest.raises(InputError, match="coord.npy"):
        load_scene(dataset / "scene_b")


def test_scene_without_labels_loads_as_ignore(dataset):
    (dataset / "scene_a" / "segment20.npy").unlink()
    scene = load_scene(dataset / "scene_a")
    assert (scene.segment20 == -1).all() and scene.segment20.dtype == np.int64


def test_subsampled_embedding_is_carried_back_to_every_point(dataset):
    scene = load_scene(dataset / "scene_a")
    full = embed_scene(StandInModel(), scene)
    capped = embed_scene(StandInModel(), scene, max_points=120, seed=0)
    assert capped.shape == full.shape == (300, 6)
    keep = np.sort(np.random.default_rng(0).choice(300, 120, replace=False))
    np.testing.assert_allclose(capped[keep], full[keep], atol=1e-5)  # embedded points keep their own features
    # the others get a weighted mean of neighbours: inside the range of the features
    assert (capped.min(0) >= full.min(0) - 1e-5).all() and (capped.max(0) <= full.max(0) + 1e-5).all()
    sf = extract_point_features(StandInModel(), dataset / "scene_a", max_points=120)
    np.testing.assert_allclose(sf.features, capped)


def test_interpolate_features_by_hand():
    src = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    feat = torch.tensor([[0.0], [1.0]])
    dst = np.array([[0.25, 0, 0], [1.0, 0, 0]])
    out = interpolate_features(src, feat, dst, k=2)
    # weights 1/d^2: (16 * 0 + 16/9 * 1) / (16 + 16/9) = 0.1
    torch.testing.assert_close(out, torch.tensor([[0.1], [1.0]]))


def test_embed_returning_the_wrong_number_of_rows_is_caught(dataset):
    class Broken(StandInModel):
        def embed(self, points, colors=None, normals=None):
            return np.zeros((len(points) - 1, 4), np.float32)

    with pytest.raises(ValueError, match="model.embed returned"):
        embed_scene(Broken(), load_scene(dataset / "scene_a"))

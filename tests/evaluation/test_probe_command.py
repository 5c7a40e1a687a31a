"""``concerto3d probe`` on tiny hand-made scenes, with a stand-in for the trained model."""

import json
import sys
import types

import pytest

from concerto3d.cli import main
from concerto3d.labels import SCANNET20_NAMES


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cli_probe_writes_json_and_prints_a_table(dataset, tmp_path, monkeypatch, capsys, stand_in):
    fake = types.ModuleType("concerto3d.inference")
    fake.load_model = lambda run, device="cpu": stand_in()
    monkeypatch.setitem(sys.modules, "concerto3d.inference", fake)
    out = tmp_path / "probe" / "result.json"
    code = main(["probe", str(dataset), "--model", "RUN", "--out", str(out), "--epochs", "50", "--lr", "0.05",
                 "--device", "cpu"])
    assert code == 0
    result = json.loads(out.read_text())  # strict JSON: absent classes are null, not NaN
    assert set(result["iou"]) == set(SCANNET20_NAMES)
    assert 0.9 < result["miou"] <= 1.0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "wall" in printed and "overall acc" in printed


def test_cli_probe_bad_input_exits_2_with_one_line(dataset, tmp_path, monkeypatch, capsys, stand_in):
    fake = types.ModuleType("concerto3d.inference")
    fake.load_model = lambda run, device="cpu": stand_in()
    monkeypatch.setitem(sys.modules, "concerto3d.inference", fake)
    (dataset / "splits" / "val.txt").unlink()
    assert main(["probe", str(dataset), "--model", "RUN"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "val.txt" in err
    assert main(["probe", str(tmp_path / "nowhere"), "--model", "RUN"]) == 2


def test_cli_probe_records_its_result_in_the_model_card_unless_told_not_to(dataset, tmp_path):
    """A real (tiny, untrained) model folder: the probe's row lands in the card's probe block, keyed by the probed
    data's digest; ``--no-card`` leaves the card as it was."""
    import torch

    from concerto3d.data.digest import data_digest
    from concerto3d.inference import PretrainedModel
    from concerto3d.inference.model_card import NOT_MEASURED
    from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig

    small = dict(ratios=(0.25, 0.25), radii=(0.3, 0.6), max_neighbors=8, sa_channels=(8, 16), global_channels=16,
                 fp_channels=(8,), out_channels=6, mlp_layers=1)
    torch.manual_seed(0)
    config = {"format": 1, "objective": "3d", "point_encoder": small, "image_encoder": None, "steps": 5,
              "input": {"use_color": True, "use_normal": True, "grid_size": 0.0, "feature_channels": 9}}
    folder = PretrainedModel(PointEncoder(PointEncoderConfig(**small)), None, config).save_pretrained(
        tmp_path / "model")
    card = folder / "README.md"
    before = card.read_text()
    assert main(["probe", str(dataset), "--model", str(folder), "--epochs", "2", "--device", "cpu",
                 "--no-card"]) == 0
    assert card.read_text() == before and NOT_MEASURED in before
    assert main(["probe", str(dataset), "--model", str(folder), "--epochs", "2", "--device", "cpu"]) == 0
    after = card.read_text()
    assert NOT_MEASURED not in after and data_digest(dataset)[:16] in after and "2 epochs" in after

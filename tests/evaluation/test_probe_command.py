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

"""A user holding Pointcept's preprocessed ScanNet: one ``concerto3d preprocess`` converts it, then ``train``,
``probe`` and ``visualize`` run with the same commands as on concerto3d's own data."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from concerto3d.cli import main

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "data"))
from pointcept_layout import make_pointcept_root  # noqa: E402

_spec = importlib.util.spec_from_file_location("training_fixtures", TESTS / "training" / "conftest.py")
_training = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_training)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_train_probe_and_visualize_run_on_a_converted_pointcept_layout(tmp_path, capsys):
    root = make_pointcept_root(tmp_path / "scannet")
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["preprocess", str(root), str(data), "--image-size", "32x48", "--patch-size", "16",
                 "--no-progress"]) == 0
    assert "3 done" in capsys.readouterr().out

    assert main(["train", str(data), "--out", str(run), "--steps", "2", *_training.TINY_OVERRIDES]) == 0
    assert (run / "model" / "config.json").is_file()

    probe = tmp_path / "probe.json"
    assert main(["probe", str(data), "--model", str(run), "--out", str(probe), "--epochs", "2",
                 "--device", "cpu"]) == 0
    result = json.loads(probe.read_text())
    assert 0.0 <= result["miou"] <= 1.0 and "wall" in result["iou"]

    panel = tmp_path / "panel.png"
    assert main(["visualize", str(data / "scene0002_00"), "--model", str(run), "--out", str(panel),
                 "--frame", "0", "--tile-size", "160x120", "--device", "cpu"]) == 0
    assert panel.stat().st_size > 0

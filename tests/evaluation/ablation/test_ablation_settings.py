"""Ablation settings: what is refused up front, and how --image-encoder and --joint-target go together."""

from __future__ import annotations

import pytest

from concerto3d.errors import InputError
from concerto3d.evaluation.ablation import ROW_KEYS, AblationSettings, probe_path_of, run_dir_of


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
        AblationSettings(**kwargs)


def test_image_encoder_settings_joint_without_the_2d_row_and_conflicting_targets(tiny_data, tmp_path, ablate_cli,
                                                                                capsys):
    encoder = tmp_path / "enc"
    encoder.mkdir()
    # with a given encoder the joint row does not need the 2d row ...
    settings = AblationSettings(rows=["3d", "joint"], image_encoder=str(encoder))
    assert settings.joint_target == "2d"
    # ... without one it does
    with pytest.raises(InputError, match="add the 2d row"):
        AblationSettings(rows=["3d", "joint"], joint_target="2d")
    # an explicit --joint-target scratch contradicts --image-encoder
    capsys.readouterr()
    argv = [str(tiny_data), "--out", str(tmp_path / "abl"), "--image-encoder", str(encoder), "--joint-target",
            "scratch", "--no-progress"]
    assert ablate_cli(argv) == 2
    assert "cannot be combined with --joint-target scratch" in capsys.readouterr().err


def test_rows_are_kept_in_table_order_and_each_unit_has_its_folders(tmp_path):
    assert AblationSettings(rows=["joint", "random"]).rows == ["random", "joint"]
    assert AblationSettings().rows == list(ROW_KEYS)
    assert run_dir_of(tmp_path, "3d", 2) == tmp_path / "runs" / "3d-seed2"
    assert probe_path_of(tmp_path, "concat", 0) == tmp_path / "probes" / "concat-seed0.json"


@pytest.mark.parametrize("text, seeds", [("3", [0, 1, 2]), ("1", [0]), ("2,3,4", [2, 3, 4]), ("4,1", [4, 1]),
                                         ("5,", [5]), (" 2 , 0 ", [2, 0])])
def test_seeds_are_a_count_or_a_list(text, seeds):
    from concerto3d.evaluation.ablation.command import parse_seeds

    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", "-2", "x", "1,1", "1,-1", ",", "2.5"])
def test_bad_seeds_are_refused(text):
    import argparse

    from concerto3d.evaluation.ablation.command import parse_seeds

    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds(text)

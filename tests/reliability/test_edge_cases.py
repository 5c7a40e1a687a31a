"""Degenerate but well-formed inputs: each gets a clear one-line error or a documented skip, never a traceback.

Image smaller than a patch, a scene of one point (fewer than a crop needs), a one-point cloud through the encoder,
frames with no valid depth, every pose invalid, a raw category missing from the label table, non-finite values in a
training batch, an output path that cannot be a folder (read-only and full output folders: test_unwritable_output.py)."""

import logging

import numpy as np
import pytest
import torch

from concerto3d.errors import Concerto3DError, InputError
from conftest import TINY_OVERRIDES
from fuzzing import check_own_error


def test_an_image_smaller_than_a_patch_is_a_config_error():
    from concerto3d.config import load_config

    with pytest.raises(InputError, match="multiples of patch_size=16") as err:
        load_config(None, [*TINY_OVERRIDES, "data.image_size=[8, 8]", "image_encoder.image_size=[8, 8]"])
    check_own_error(err.value)


def _one_point_scenes(root):
    scene = root / "scene0000_00"
    (scene / "images").mkdir(parents=True)
    np.save(scene / "coord.npy", np.zeros((1, 3), np.float32))
    np.save(scene / "color.npy", np.zeros((1, 3), np.uint8))
    np.save(scene / "normal.npy", np.array([[0, 0, 1]], np.float32))
    np.save(scene / "segment20.npy", np.zeros(1, np.int16))
    np.save(scene / "correspondences.npy", np.zeros((0, 4), np.int32))
    (scene / "meta.json").write_text("{}")
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("scene0000_00\n")
    return root


def test_training_on_scenes_smaller_than_a_crop_is_one_line(tmp_path, caplog):
    from concerto3d.cli import main

    data = _one_point_scenes(tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        code = main(["train", str(data), "--out", str(tmp_path / "run"), "--steps", "2", *TINY_OVERRIDES])
    assert code == 2
    assert "fewer than min_points=48" in caplog.text  # each small scene is a logged skip ...
    assert not (tmp_path / "run" / "checkpoints").exists()  # ... and no training started


def test_a_one_point_cloud_goes_through_the_point_encoder():
    from concerto3d.config import load_config
    from concerto3d.models.point_encoder import PointEncoder

    encoder = PointEncoder(load_config(None, TINY_OVERRIDES).point_encoder)
    out = encoder(torch.zeros(1, 3), torch.zeros(1, 9), torch.zeros(1, dtype=torch.long))
    assert out.point_feat.shape == (1, 32) and torch.isfinite(out.point_feat).all()


def _seven_scenes(seq, depth_value=0, poses=None):
    from concerto3d.io.geometry_files import write_matrix
    from concerto3d.io.images import write_color_png, write_depth_png

    seq.mkdir(parents=True)
    (seq / "camera-intrinsics.txt").write_text("40 0 16\n0 40 12\n0 0 1\n")
    for i in range(3):
        write_color_png(seq / f"frame-{i:06d}.color.png", np.full((24, 32, 3), 80, np.uint8))
        write_depth_png(seq / f"frame-{i:06d}.depth.png", np.full((24, 32), depth_value, np.uint16))
        pose = np.eye(4) if poses is None else poses[i]
        write_matrix(seq / f"frame-{i:06d}.pose.txt", pose)
    return seq


@pytest.mark.parametrize("case, reason", [("no valid depth", "no valid depth|no points"),
                                          ("every pose invalid", "invalid pose")])
def test_a_folder_without_usable_frames_is_a_one_line_error_with_the_reason(tmp_path, case, reason):
    from concerto3d.data.preprocess import preprocess

    if case == "no valid depth":
        seq = _seven_scenes(tmp_path / "in" / "seq-01", depth_value=0)
    else:
        seq = _seven_scenes(tmp_path / "in" / "seq-01", depth_value=1500, poses=[np.full((4, 4), np.nan)] * 3)
    with pytest.raises(Concerto3DError, match=reason) as err:
        preprocess(seq, tmp_path / "out", frame_skip=1, image_size=(16, 16), patch_size=16, progress=False)
    check_own_error(err.value)


def test_a_raw_category_missing_from_the_label_table_maps_to_0_with_one_warning(tmp_path, caplog):
    from concerto3d.io.label_table import read_label_table, write_label_table

    write_label_table(tmp_path / "labels.tsv", [{"raw_category": "chair", "nyu40id": 5}])
    table = read_label_table(tmp_path / "labels.tsv")
    with caplog.at_level(logging.WARNING):
        assert [table.to_nyu40(c) for c in ("chair", "hoverboard", "hoverboard")] == [5, 0, 0]
    assert caplog.text.count("hoverboard") == 1 and table.num_unknown >= 1


def test_effective_rank_of_non_finite_features_is_nan_not_an_svd_error():
    from concerto3d.objectives.stats import effective_rank

    x = torch.randn(8, 4)
    x[2, 1] = float("nan")
    assert torch.isnan(effective_rank(x))
    assert torch.isfinite(effective_rank(torch.randn(8, 4)))


@pytest.mark.slow
def test_nan_in_a_batch_skips_the_step_and_the_count_is_logged(tiny_data, tmp_path, monkeypatch, caplog):
    from concerto3d.config import load_config
    from concerto3d.models.concerto import ConcertoModel
    from concerto3d.training.logging import read_metrics
    from concerto3d.training.trainer import train

    forward = ConcertoModel.forward

    def poisoned(self, batch, step_state=None):
        if step_state.step == 1:
            batch.view_student.feat[3, 0] = float("inf")  # one non-finite input value, not a poisoned loss
            batch.images[0, 0, 0, 0] = float("nan")
        return forward(self, batch, step_state)

    monkeypatch.setattr(ConcertoModel, "forward", poisoned)
    with caplog.at_level(logging.WARNING):
        result = train(load_config(None, [*TINY_OVERRIDES, "steps=3", "objective.kind=joint"]), tiny_data,
                       tmp_path / "run")
    assert result.skipped_steps == 1 and result.steps_done == 3 and result.model_dir is not None
    assert [r["skipped_steps"] for r in read_metrics(tmp_path / "run")] == [0, 1, 1]
    assert "step 1: non-finite" in caplog.text and "1 step(s) were skipped" in caplog.text


@pytest.mark.parametrize("command", ["preprocess", "train"])
def test_an_output_path_that_cannot_be_a_folder_is_a_one_line_error(tmp_path, command, capsys):
    from concerto3d.cli import main

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    src = _seven_scenes(tmp_path / "in" / "seq-01", depth_value=1500) if command == "preprocess" else \
        _one_point_scenes(tmp_path / "data")
    args = [str(src), str(blocker / "out")] if command == "preprocess" else \
        [str(src), "--out", str(blocker / "out"), *TINY_OVERRIDES, "data.min_points=1"]
    assert main([command, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and "Traceback" not in err[0], err

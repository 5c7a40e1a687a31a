"""Checkpoints: atomic write, keep the last N, checksum verification with fallback, RNG state round trip."""

import logging
import random

import numpy as np
import pytest
import torch

from concerto3d.errors import FormatError
from concerto3d.training.checkpoint import (list_checkpoints, load_checkpoint, load_latest_checkpoint, rng_state,
                                            save_checkpoint, set_rng_state)


def _state(step):
    return {"step": step, "weights": torch.full((3,), float(step)), "config": {"optim": {"lr": 1e-3}}}


def test_save_keeps_the_last_two_and_leaves_no_temporary_files(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, _state(step), step, keep=2)
    paths = list_checkpoints(tmp_path)
    assert [p.name for p in paths] == ["step_00000002.pt", "step_00000003.pt"]
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_00000002.pt", "step_00000002.pt.sha256", "step_00000003.pt", "step_00000003.pt.sha256"]
    state, path = load_latest_checkpoint(tmp_path)
    assert path == paths[-1] and state["step"] == 3 and torch.equal(state["weights"], torch.full((3,), 3.0))


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path):
    save_checkpoint(tmp_path, _state(1), 1)
    with pytest.raises(Exception):
        save_checkpoint(tmp_path, {"bad": lambda: None}, 2)  # lambdas cannot be pickled: the write fails midway
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000001.pt"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")] == []
    assert load_latest_checkpoint(tmp_path)[0]["step"] == 1


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
    save_checkpoint(tmp_path, _state(1), 1)
    newest = save_checkpoint(tmp_path, _state(2), 2)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="checksum"):
        load_checkpoint(newest)
    with caplog.at_level(logging.WARNING):
        state, path = load_latest_checkpoint(tmp_path)
    assert state["step"] == 1 and path.name == "step_00000001.pt"
    assert "step_00000002.pt" in caplog.text


def test_a_truncated_checkpoint_without_sidecar_is_skipped_and_all_bad_is_an_error(tmp_path):
    only = save_checkpoint(tmp_path, _state(1), 1)
    only.with_name(only.name + ".sha256").unlink()
    with pytest.raises(FormatError, match="sidecar"):
        load_checkpoint(only)
    with pytest.raises(FormatError, match="none of the 1"):
        load_latest_checkpoint(tmp_path)
    assert load_latest_checkpoint(tmp_path / "elsewhere") is None


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path, {"rng": rng_state()}, 1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_latest_checkpoint(tmp_path)[0]["rng"])  # loaded with weights_only=True
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected

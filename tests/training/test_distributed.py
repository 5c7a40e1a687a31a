"""DDP on CPU: two gloo processes started by torchrun train a few steps and end with identical weights."""

import os
import re
import subprocess
import sys

import pytest
import torch

from concerto3d.models.digest import state_digest
from concerto3d.training.distributed import DistInfo, all_gather_object, all_reduce_max


def test_single_process_helpers_are_no_ops():
    assert DistInfo().is_main and not DistInfo().enabled and not DistInfo(rank=1, world_size=2).is_main
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(all_reduce_max(t), torch.tensor([1.0, 2.0])) and all_gather_object("x") == ["x"]


def test_state_digest_sees_every_weight():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert state_digest(a) == state_digest(b)
    with torch.no_grad():
        b.bias[0] += 1e-6
    assert state_digest(a) != state_digest(b)


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(tiny_data, tiny_overrides, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "concerto3d",
           "train", str(tiny_data), "--out", str(tmp_path / "run"), "--steps", "3", *tiny_overrides,
           "batch_size=1", "objective.kind=joint"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d): weights digest ([0-9a-f]{64})", proc.stderr))
    assert set(digests) == {"0", "1"}, proc.stderr[-3000:]
    assert digests["0"] == digests["1"]  # student, teacher and DINO centre identical on both ranks
    assert (tmp_path / "run" / "model" / "config.json").is_file()  # written once, by rank 0
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # one header, one row per step: only rank 0 logs

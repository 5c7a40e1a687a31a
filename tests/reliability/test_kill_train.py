"""``kill -9`` of ``concerto3d train`` at several moments: rerunning with ``--resume`` finishes the job with the
losses of an uninterrupted run (CPU, one thread: identical numbers), and no checkpoint is ever half-written (each
resumed run loads the newest one without complaint; tests/training/test_checkpoint.py covers the fallback from a
damaged newest checkpoint). Marked ``soak`` (about 2 minutes): ``pytest -m soak tests/reliability``."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES

REPO = Path(__file__).resolve().parents[2]
STEPS = 8
TIMING = {"points_per_s", "step_s"}  # wall-clock columns; all others must repeat exactly


def _command(data, run, resume=False):
    return [sys.executable, "-m", "concerto3d", "train", str(data), "--out", str(run), "--steps", str(STEPS),
            "--objective", "joint", *TINY_OVERRIDES, "checkpoint_every=1", "keep_checkpoints=2", "data.loop=2",
            *(["--resume"] if resume else [])]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _metrics(run):
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _checkpoints(run):
    folder = run / "checkpoints"
    return sorted(p.name for p in folder.glob("step_*.pt")) if folder.is_dir() else []


def _kill_when(run, proc, ready, timeout=180):
    """SIGKILL ``proc`` as soon as ``ready(checkpoint names)`` holds; returns the names seen at that moment."""
    deadline = time.time() + timeout
    while True:
        names = _checkpoints(run)
        if ready(names):
            break
        assert proc.poll() is None, f"train ended before the kill point (checkpoints {names})"
        assert time.time() < deadline, "no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return names


@pytest.mark.soak  # about 2 minutes on a loaded 2-core machine: run with -m soak
def test_train_killed_twice_resumes_to_the_uninterrupted_losses(tiny_data, tmp_path):
    from concerto3d.cli import main
    from concerto3d.config import load_config
    from concerto3d.training.trainer import train

    env = _env()
    full = tmp_path / "full"  # the uninterrupted run, in this process (one torch thread, like the subprocesses)
    cfg = load_config(None, [*TINY_OVERRIDES, "checkpoint_every=1", "keep_checkpoints=2", "data.loop=2",
                             f"steps={STEPS}", "objective.kind=joint"])
    expected = train(cfg, tiny_data, full)

    run = tmp_path / "killed"
    # 1st kill: the moment the first checkpoint appears (the next step is running, or its checkpoint being written)
    proc = subprocess.Popen(_command(tiny_data, run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(run, proc, lambda names: len(names) >= 1)
    # rerunning without --resume refuses to overwrite the run, in one line
    assert main(_command(tiny_data, run)[3:]) == 2
    # 2nd kill: in the resumed run, a few steps later
    proc = subprocess.Popen(_command(tiny_data, run, resume=True), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    seen = _kill_when(run, proc, lambda names: any(n >= "step_00000004.pt" for n in names))
    assert seen[-1] < f"step_{STEPS:08d}.pt", "the kill came too late to test resuming"
    finish = subprocess.run(_command(tiny_data, run, resume=True), env=env, capture_output=True, text=True)
    assert finish.returncode == 0, finish.stderr[-2000:]
    assert "resuming from" in finish.stderr  # the newest complete checkpoint is what gets loaded

    a, b = _metrics(full), _metrics(run)
    assert [int(r["step"]) for r in b] == list(range(STEPS))
    assert a == b  # identical losses, learning rates, feature statistics, step by step
    assert (run / "model" / "config.json").is_file()
    digest = [line for line in finish.stderr.splitlines() if "weights digest" in line]
    assert digest and expected.digest in digest[-1]  # same final weights

"""``kill -9`` of a tiny ``concerto3d train`` at two moments, in the default suite (the random-moment version with
more kills is test_kill_train.py, marked ``soak``).

The same command (with ``--resume``, which starts from step 0 when the run has no checkpoint) is run three times:
in a subprocess killed right after the first checkpoint file appears, in a subprocess killed again mid-way between
two checkpoints (one step past the checkpoint it resumed from, so that step is redone and its logged row replaced),
then through ``cli.main`` in the test's process, left to finish. The
finished run's per-step CSV rows equal an uninterrupted run's (CPU, one thread: identical numbers), and its final
checkpoint loads."""

import csv
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import TINY_OVERRIDES

REPO = Path(__file__).resolve().parents[2]
STEPS, EVERY = 4, 2  # checkpoints after steps 2 and 4
SETTINGS = [*TINY_OVERRIDES, f"checkpoint_every={EVERY}", "keep_checkpoints=2", "data.loop=2"]
TIMING = {"points_per_s", "step_s"}  # wall-clock columns; all others must repeat exactly


def _command(data, run):
    return [sys.executable, "-m", "concerto3d", "train", str(data), "--out", str(run), "--steps", str(STEPS),
            "--objective", "joint", *SETTINGS, "--resume"]


def _start(command, stderr_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(stderr_path, "w") as err:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)


def _rows(run):
    path = run / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _checkpoints(run):
    return sorted(p.name for p in (run / "checkpoints").glob("step_*.pt"))


def _kill_when(proc, ready, timeout=300):
    """SIGKILL ``proc`` as soon as ``ready()`` is true (checked every 5 ms)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "train ended before the kill point"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_train_killed_after_a_checkpoint_and_between_two_resumes_to_the_uninterrupted_losses(tiny_data, tmp_path,
                                                                                             caplog):
    from concerto3d.cli import main
    from concerto3d.config import load_config
    from concerto3d.training.checkpoint import load_latest_checkpoint
    from concerto3d.training.trainer import train

    expected = train(load_config(None, [*SETTINGS, f"steps={STEPS}", "objective.kind=joint"]), tiny_data,
                     tmp_path / "full")  # the uninterrupted run, in this process (one torch thread, as below)
    run, log = tmp_path / "killed", tmp_path / "stderr.txt"

    # 1st kill: the moment the first checkpoint appears (step 3 is running, or its row being written)
    proc = _start(_command(tiny_data, run), log)
    _kill_when(proc, lambda: _checkpoints(run) != [])
    assert _checkpoints(run) == ["step_00000002.pt"]

    # 2nd kill: the rerun resumes from step 2, rewrites metrics.csv without the rows it will redo (a new file), and
    # is killed once it has logged step index 2 again: mid-way between the checkpoints of steps 2 and 4
    before = os.stat(run / "metrics.csv").st_ino
    proc = _start(_command(tiny_data, run), log)
    _kill_when(proc, lambda: (run / "metrics.csv").is_file() and os.stat(run / "metrics.csv").st_ino != before
               and any(r["step"] == "2" for r in _rows(run)))
    assert "resuming from" in log.read_text() and "step_00000002.pt" in log.read_text()
    assert _checkpoints(run) == ["step_00000002.pt"], "the kill came too late to fall between two checkpoints"

    # the same command again finishes the job from the step-2 checkpoint (in this process: one torch import less)
    caplog.clear()  # only this run's lines
    with caplog.at_level(logging.INFO):
        assert main(_command(tiny_data, run)[3:]) == 0
    assert "step_00000002.pt (step 2)" in caplog.text  # resumed from the checkpoint before the 2nd kill

    a, b = _rows(tmp_path / "full"), _rows(run)
    assert [int(r["step"]) for r in b] == list(range(STEPS))
    assert a == b  # identical losses, learning rates, feature statistics, step by step
    state, path = load_latest_checkpoint(run)
    assert path.name == f"step_{STEPS:08d}.pt" and state["step"] == STEPS
    assert f"weights digest {expected.digest} after {STEPS} steps" in caplog.text  # the same final weights

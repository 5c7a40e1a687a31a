"""Soak test (marked ``soak``, not in the default suite)::

    .venv/bin/python -m pytest -m soak tests/reliability/test_soak.py

A few thousand small training steps of the tiny joint config (``CONCERTO3D_SOAK_STEPS``, default 2000), stopped
like Ctrl-C every 250 steps and resumed from the checkpoint (written every 50 steps), with NaN injected into the
input features of one batch in 97. Checks: every run resumes where the last stopped; the poisoned steps, and only
they, are skipped and counted (metrics.csv and the log); the resident memory stays flat (growth from the first
to the last quarter of the steps under 50 MiB). Prints the memory figures.
"""

import logging
import os
import signal

import numpy as np
import pytest

from conftest import TINY_OVERRIDES

STEPS = int(os.environ.get("CONCERTO3D_SOAK_STEPS", "2000"))
STOP_EVERY = 250
POISON_EVERY, POISON_AT = 97, 5


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


@pytest.mark.soak
def test_thousands_of_steps_with_stops_resumes_and_nan_batches(tiny_data, tmp_path, monkeypatch, caplog):
    from concerto3d.config import load_config
    from concerto3d.models.concerto import ConcertoModel
    from concerto3d.training.logging import read_metrics
    from concerto3d.training.trainer import train

    forward = ConcertoModel.forward

    def poisoned(self, batch, step_state=None):
        if step_state is not None and step_state.step % POISON_EVERY == POISON_AT:
            batch.view_student.feat[0, 0] = float("nan")  # a non-finite value in the batch itself
        return forward(self, batch, step_state)

    monkeypatch.setattr(ConcertoModel, "forward", poisoned)
    cfg = load_config(None, [*TINY_OVERRIDES, "objective.kind=joint", f"steps={STEPS}", "checkpoint_every=50",
                             "keep_checkpoints=2", "log_every=50"])
    rss = {}

    def hook(step, metrics):
        rss[step] = _rss_mib()
        if (step + 1) % STOP_EVERY == 0 and step + 1 < STEPS:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: checkpoint and return

    run, starts, result = tmp_path / "run", [], None
    with caplog.at_level(logging.WARNING, logger="concerto3d"):
        while result is None or result.interrupted:
            starts.append(0 if result is None else result.steps_done)
            result = train(cfg, tiny_data, run, resume=result is not None, on_step_end=hook)
    assert starts == list(range(0, STEPS, STOP_EVERY))
    assert result.steps_done == STEPS and result.model_dir is not None

    poisoned_steps = [s for s in range(STEPS) if s % POISON_EVERY == POISON_AT]
    rows = read_metrics(run)  # one row every log_every steps, with the running count of skipped steps
    assert [r["step"] for r in rows] == sorted(set(range(0, STEPS, 50)) | {STEPS - 1})  # and the last step
    assert [r["skipped_steps"] for r in rows] == [sum(p < r["step"] for p in poisoned_steps) +
                                                  (r["step"] in poisoned_steps) for r in rows]
    warned = [int(line.split("step ")[1].split(":")[0]) for line in caplog.text.splitlines()
              if "non-finite loss or gradient" in line]
    assert warned == poisoned_steps and result.skipped_steps == len(poisoned_steps)
    assert f"{len(poisoned_steps)} step(s) were skipped" in caplog.text

    steps = sorted(rss)
    quarter = len(steps) // 4
    first = float(np.median([rss[s] for s in steps[quarter:2 * quarter]]))  # after the warm-up quarter
    last = float(np.median([rss[s] for s in steps[-quarter:]]))
    print(f"\nsoak: {STEPS} steps, {len(starts)} runs, {len(poisoned_steps)} skipped; RSS median "
          f"{first:.0f} MiB (2nd quarter) -> {last:.0f} MiB (last quarter), max {max(rss.values()):.0f} MiB")
    assert last - first < 50, (first, last)

"""Fixtures of the ablation tests: training overrides that make every row a few seconds on the tiny scenes of
``tests/evaluation/conftest.py``, and the ``concerto3d ablate`` command line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from concerto3d import cli

_spec = importlib.util.spec_from_file_location("training_fixtures",
                                               Path(__file__).resolve().parents[2] / "training" / "conftest.py")
_training = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_training)

# the training tests' tiny model, with 24-wide point features (a width no image encoder here has) and 1 warm-up step
TINY = [o for o in _training.TINY_OVERRIDES
        if not o.startswith(("point_encoder.out_channels=", "optim.warmup_steps="))] + [
    "point_encoder.out_channels=24", "optim.warmup_steps=1"]


@pytest.fixture
def tiny() -> list[str]:
    """The tiny training overrides, for :class:`AblationSettings` ``overrides``."""
    return list(TINY)


@pytest.fixture
def ablate_cli():
    """``ablate_cli([DATA, *options])`` runs ``concerto3d ablate`` with the tiny overrides; returns the exit code."""
    def run(argv: list[str]) -> int:
        # key=value overrides come right after DATA (argparse stops filling positionals at the first option)
        return cli.main(["ablate", argv[0], *TINY, *argv[1:]])

    return run

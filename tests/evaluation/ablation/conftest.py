"""Fixtures of the ablation tests: training overrides that make every row a few seconds on the tiny scenes of
``tests/evaluation/conftest.py``, and the ``concerto3d ablate`` command line."""

from __future__ import annotations

import pytest

from concerto3d import cli

TINY = [
    "data.max_points=256", "data.min_points=48", "data.max_frames=2", "data.image_size=[32, 48]",
    "data.patch_size=16", "data.elastic_p=0", "image_encoder.image_size=[32, 48]", "image_encoder.patch_size=16",
    "image_encoder.hidden_size=32", "image_encoder.num_layers=1", "image_encoder.num_heads=2",
    "point_encoder.ratios=[0.25, 0.25]", "point_encoder.radii=[0.3, 0.6]", "point_encoder.sa_channels=[16, 32]",
    "point_encoder.global_channels=32", "point_encoder.fp_channels=[32]", "point_encoder.out_channels=24",
    "point_encoder.max_neighbors=16", "objective.proj_dim=32", "objective.hidden_dim=64",
    "objective.num_prototypes=64", "optim.warmup_steps=1", "batch_size=2", "device=cpu", "checkpoint_every=1000",
]


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

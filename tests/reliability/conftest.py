"""Fixtures of the reliability tests: the training tests' tiny preprocessed scenes and tiny config, one torch
thread."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("training_fixtures",
                                               Path(__file__).resolve().parents[1] / "training" / "conftest.py")
training_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(training_fixtures)

TINY_OVERRIDES = training_fixtures.TINY_OVERRIDES
make_scenes = training_fixtures.make_scenes
_one_thread_in_every_reliability_test = training_fixtures._one_thread_in_every_training_test  # autouse here too


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A folder of 3 tiny preprocessed scenes (see tests/training/conftest.py)."""
    root = tmp_path_factory.mktemp("tiny_scenes_reliability")
    make_scenes(root)
    return root

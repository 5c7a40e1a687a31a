"""Fixtures shared by every test folder."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def one_torch_thread():
    """One torch thread while a test runs: tiny tensors gain nothing from more, and CI machines are shared and
    busy. Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def benchmark_script():
    """``benchmark_script("ablation_headroom")``: a script of ``benchmarks/`` (not part of the package) loaded as a
    module, so its functions can be tested; its ``main`` does not run."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load

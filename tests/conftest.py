"""Fixtures shared by every test folder."""

import pytest


@pytest.fixture
def one_torch_thread():
    """One torch thread while a test runs: tiny tensors gain nothing from more, and CI machines are shared and
    busy. Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


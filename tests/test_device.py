import pytest
import torch

from concerto3d.device import resolve_device
from concerto3d.errors import InputError


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "gpu", "", "cuda:x"):
        with pytest.raises(InputError, match="expected auto, cpu, cuda or cuda:i"):
            resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_resolve_device_without_cuda_is_a_one_line_error():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(InputError, match="no CUDA device"):
            resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resolve_device_picks_the_local_rank_gpu():
    n = torch.cuda.device_count()
    assert resolve_device("cuda", local_rank=n + 1) == torch.device("cuda", (n + 1) % n)
    assert resolve_device("cuda:0", local_rank=3) == torch.device("cuda", 0)

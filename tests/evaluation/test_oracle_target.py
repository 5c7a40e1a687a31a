"""benchmarks/ablation_oracle_target.py: the label-oracle patch grid that stands in for the image encoder."""

from types import SimpleNamespace

import torch


def test_each_patch_gets_the_code_of_its_majority_label_and_unlabelled_patches_get_zeros(benchmark_script):
    codes = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([3, 3, 5, -1, 1, 2])  # crop points 0..5
    corr = torch.tensor([
        [0, 1, 1, 0], [0, 2, 3, 1], [0, 15, 15, 2],          # image 0, patch (0, 0): 3, 3, 5 -> 3
        [0, 20, 20, 2], [0, 21, 20, 2], [0, 31, 31, 4],      # image 0, patch (1, 1): 5 by two pixels, 1 by one -> 5
        [0, 17, 2, 3],                                       # image 0, patch (0, 1): only an unlabelled point
        [1, 0, 16, 5],                                       # image 1, patch (1, 0): 2
    ])
    batch = SimpleNamespace(images=torch.zeros(2, 3, 32, 32), corr=corr, labels=labels)
    grid = benchmark_script("ablation_oracle_target").oracle_patch_grid(batch, 16, codes)
    assert grid.shape == (2, 2, 2, 8)
    want = torch.zeros(2, 2, 2, 8)
    want[0, 0, 0], want[0, 1, 1], want[1, 1, 0] = codes[3], codes[5], codes[2]
    assert torch.equal(grid, want)

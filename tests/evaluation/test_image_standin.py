"""benchmarks/image_standin.py: the whole-frame patch labels and the augmentation of the stand-in image encoder."""

import numpy as np
import torch


def test_each_frame_patch_gets_the_majority_label_of_its_pixels_points(benchmark_script):
    # 3 frames of 32x32 pixels, 16-px patches (a 2x2 grid each); frame 1 sees nothing
    labels = np.array([3, 3, 5, -1, 1, 2])
    corr = np.array([
        [0, 1, 1, 0], [0, 2, 3, 1], [0, 15, 15, 2],          # frame 0, patch (0, 0): 3, 3, 5 -> 3
        [0, 20, 20, 2], [0, 21, 20, 2], [0, 31, 31, 4],      # frame 0, patch (1, 1): 5 twice (pixels), 1 once -> 5
        [0, 17, 2, 3],                                       # frame 0, patch (0, 1): only an unlabelled point
        [2, 0, 16, 5],                                       # frame 2, patch (1, 0): 2
    ])
    grid = benchmark_script("image_standin").frame_patch_labels(corr, labels, 3, (2, 2), 16, 20)
    assert grid.shape == (3, 2, 2)
    assert grid[0].tolist() == [[3, -1], [-1, 5]]
    assert grid[1].tolist() == [[-1, -1], [-1, -1]]
    assert grid[2].tolist() == [[-1, -1], [2, -1]]


def test_augment_mirrors_the_label_grid_with_its_image(benchmark_script):
    # a patch-coded image: pixel value = its patch column / 10, so a mirrored image must come with a mirrored grid
    images = torch.arange(3).repeat_interleave(16).float().div(10).view(1, 1, 1, 48).expand(8, 3, 16, 48).clone()
    grid = torch.arange(3).view(1, 1, 3).expand(8, 1, 3).clone()
    out, out_grid = benchmark_script("image_standin").augment(images, grid, torch.Generator().manual_seed(0))
    flipped = out_grid[:, 0, 0] == 2
    assert 0 < int(flipped.sum()) < 8  # both cases happen with this seed
    for b in range(8):
        # the column order of the pixels (jitter is monotonic per image) must follow the grid's
        cols = out[b, 0, 0, ::16]
        assert torch.equal(torch.argsort(cols), torch.argsort(out_grid[b, 0].float()))

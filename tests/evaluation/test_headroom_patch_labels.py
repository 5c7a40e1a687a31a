"""benchmarks/ablation_headroom.py --modality 2d: the patch labels the supervised image encoder learns from."""

from types import SimpleNamespace

import torch


def test_each_patch_gets_the_majority_label_of_its_pixels_points(benchmark_script):
    # two 32x32 images, 16-px patches: keys image * 4 + row * 2 + col
    labels = torch.tensor([3, 3, 5, -1, 1, 2])  # crop points 0..5
    corr = torch.tensor([
        # image 0, patch (0, 0): points 0, 1 (label 3) and 2 (label 5) -> 3
        [0, 1, 1, 0], [0, 2, 3, 1], [0, 15, 15, 2],
        # image 0, patch (1, 1): point 2 seen by three pixels, point 4 (label 1) by one -> 5 (pixel-weighted;
        # counting each point once would tie and give 1)
        [0, 20, 20, 2], [0, 21, 20, 2], [0, 22, 20, 2], [0, 31, 31, 4],
        # image 0, patch (0, 1): only the unlabelled point 3 -> no label, left out
        [0, 17, 2, 3],
        # image 1, patch (1, 0): point 5 (label 2)
        [1, 0, 16, 5],
    ])
    batch = SimpleNamespace(images=torch.zeros(2, 3, 32, 32), corr=corr, labels=labels)
    keys, patch_label = benchmark_script("ablation_headroom").patch_labels(batch, patch_size=16, num_classes=20)
    assert keys.tolist() == [0, 3, 6]
    assert patch_label.tolist() == [3, 5, 2]

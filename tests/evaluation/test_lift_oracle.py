"""benchmarks/ablation_lift_oracle.py: patch-majority labels carried to the points through the lifting."""

import numpy as np


def test_points_take_the_majority_label_of_the_patches_that_see_them(benchmark_script):
    lifted_patch_labels = benchmark_script("ablation_lift_oracle").lifted_patch_labels
    labels = np.array([3, 3, 5, -1, 1, 2, 4])  # points 0..6; point 6 is seen by no frame
    corr = np.array([
        # frame 0, patch (0, 0): points 0, 1 (3) and 2 (5) -> 3; the same pixels' (u, v) in frame 1 are
        # another patch
        [0, 1, 1, 0], [0, 2, 3, 1], [0, 15, 15, 2],
        # frame 0, patch (0, 1) (u 16..31): point 4 (1) twice, point 5 (2) once -> 1
        [0, 16, 0, 4], [0, 20, 5, 4], [0, 31, 15, 5],
        # frame 1, patch (0, 0): point 2 (5) and the unlabelled point 3, whose vote does not count -> 5
        [1, 1, 1, 2], [1, 2, 2, 3], [1, 3, 3, 3],
    ])
    pred = lifted_patch_labels(labels, corr, (32, 32), 16, 20)
    # point 2: patch 3 (frame 0) and patch 5 (frame 1) tie -> the lower class; point 3 (unlabelled) takes its patch's
    # label 5; point 5 is outvoted in its patch; point 6 is unseen
    assert pred.tolist() == [3, 3, 3, 5, 1, 1, -2]

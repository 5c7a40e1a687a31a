"""Point-cloud operations: farthest point sampling, neighbour queries, k-NN interpolation, pooling onto patches.

The fast paths call fpsample (FPS, on the host for any device) and torch-cluster (neighbour queries) directly; each
has a plain reference with the same semantics that the tests hold it to.
"""

from concerto3d.ops.masking import grid_mask
from concerto3d.ops.neighbors import knn, knn_interpolate, radius, radius_table
from concerto3d.ops.patches import (correspondence_patch_keys, gather_patches, majority_patch_labels, patch_key,
                                    patch_majority_labels, pool_to_patches, split_patch_key)
from concerto3d.ops.sampling import fps, fps_cluster, fps_reference, num_samples

__all__ = [
    "fps", "fps_cluster", "fps_reference", "num_samples",
    "radius", "radius_table", "knn", "knn_interpolate",
    "patch_key", "split_patch_key", "correspondence_patch_keys", "pool_to_patches", "majority_patch_labels",
    "patch_majority_labels", "gather_patches", "grid_mask",
]

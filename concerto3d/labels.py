"""Label vocabularies: NYU40 and the 20 ScanNet benchmark classes.

ScanNet annotates each vertex with a raw category; ``scannetv2-labels.combined.tsv`` maps it to an NYU40 id, and the
benchmark keeps 20 of the 40 NYU classes. Here ``segment20`` is the index 0..19 into :data:`SCANNET20_NAMES`, with
-1 for everything else (unannotated, or an NYU40 class outside the benchmark).
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = -1

NYU40_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat",
    "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel", "shower curtain", "box",
    "whiteboard", "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)  # NYU40 id k is NYU40_NAMES[k - 1]; id 0 means unannotated

SCANNET20_NYU40_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
SCANNET20_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
    "otherfurniture",
)
NUM_CLASSES_20 = len(SCANNET20_NAMES)

# lookup table: NYU40 id (0..40) -> ScanNet-20 index or -1
_NYU40_TO_20 = np.full(41, IGNORE_INDEX, dtype=np.int64)
for _i, _nyu in enumerate(SCANNET20_NYU40_IDS):
    _NYU40_TO_20[_nyu] = _i


def nyu40_to_scannet20(nyu40: np.ndarray) -> np.ndarray:
    """Map NYU40 ids to ScanNet-20 indices.

    Args:
        nyu40: (N,) integer NYU40 ids; 0 or anything outside 1..40 counts as unannotated.
    Returns:
        (N,) int64 indices 0..19, -1 where the class is not one of the 20.
    """
    nyu40 = np.asarray(nyu40)
    if not np.issubdtype(nyu40.dtype, np.integer):
        raise ValueError(f"expected integer NYU40 ids, got dtype {nyu40.dtype}")
    out = np.full(nyu40.shape, IGNORE_INDEX, dtype=np.int64)
    ok = (nyu40 >= 0) & (nyu40 <= 40)
    out[ok] = _NYU40_TO_20[nyu40[ok]]
    return out


def scannet20_to_nyu40(segment20: np.ndarray) -> np.ndarray:
    """Inverse of :func:`nyu40_to_scannet20`; -1 maps to 0 (unannotated)."""
    segment20 = np.asarray(segment20)
    table = np.asarray((0,) + SCANNET20_NYU40_IDS, dtype=np.int64)
    return table[segment20 + 1]

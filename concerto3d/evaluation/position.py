"""How much of a point's absolute position its features carry: the position shortcut measure.

Features that describe *what* a point is should not let a linear map recover *where* in the room it is. The measure
fits a ridge regression from standardised features to the horizontal position of each point (x, y relative to its
room's bounding-box centre) on the train rooms and reports R^2 on the val rooms: 0 = no linear trace of the
position, 1 = the position read off exactly. Height (z) is left out on purpose: height above the floor is a real
cue of what a point is (floor, table top, ceiling).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["room_xy", "position_r2"]


def room_xy(coord: np.ndarray) -> np.ndarray:
    """(N, 3) points of one room -> (N, 2) x, y relative to the centre of the room's bounding box."""
    coord = np.asarray(coord, dtype=np.float64)
    centre = (coord.min(axis=0) + coord.max(axis=0)) / 2
    return coord[:, :2] - centre[:2]


def position_r2(train_feats: Sequence[np.ndarray], train_xy: Sequence[np.ndarray], val_feats: Sequence[np.ndarray],
                val_xy: Sequence[np.ndarray], ridge: float = 1e-3, max_rows: int = 200_000, seed: int = 0) -> float:
    """R^2 on the val rooms of a ridge regression from features to room-centred x, y fitted on the train rooms.

    Args:
        train_feats, val_feats: per-room (N_i, C) features.
        train_xy, val_xy: per-room (N_i, 2) positions (:func:`room_xy`).
        ridge: L2 weight on the standardised features (relative to the number of rows).
        max_rows: fit on at most this many train rows (a seeded random subset).
    Returns:
        1 - SSE / SST over both coordinates of every val point (SST about the val mean); can be below 0.
    """
    x = np.concatenate([np.asarray(f, np.float64) for f in train_feats])
    y = np.concatenate([np.asarray(p, np.float64) for p in train_xy])
    if len(x) != len(y) or y.ndim != 2 or y.shape[1] != 2:
        raise ValueError(f"expected (N, C) features and (N, 2) positions, got {x.shape} and {y.shape}")
    if len(x) > max_rows:
        keep = np.random.default_rng(seed).choice(len(x), max_rows, replace=False)
        x, y = x[keep], y[keep]
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-8
    xs = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    gram = xs.T @ xs + ridge * len(xs) * np.diag([1.0] * (xs.shape[1] - 1) + [0.0])
    weights = np.linalg.solve(gram, xs.T @ y)
    vx = np.concatenate([np.asarray(f, np.float64) for f in val_feats])
    vy = np.concatenate([np.asarray(p, np.float64) for p in val_xy])
    pred = np.hstack([(vx - mean) / std, np.ones((len(vx), 1))]) @ weights
    sst = ((vy - vy.mean(axis=0)) ** 2).sum()
    return float(1.0 - ((vy - pred) ** 2).sum() / max(sst, 1e-12))

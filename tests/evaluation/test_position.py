"""The position-shortcut measure on hand-made features."""

import numpy as np

from concerto3d.evaluation.position import position_r2, room_xy


def _rooms(rng, n_rooms, features):
    feats, xys = [], []
    for _ in range(n_rooms):
        coord = rng.uniform(0, [6, 4, 3], size=(500, 3))
        xy = room_xy(coord)
        feats.append(features(coord, xy))
        xys.append(xy)
    return feats, xys


def test_features_that_hold_the_position_score_one_and_others_near_zero():
    rng = np.random.default_rng(0)
    tx, ty = _rooms(rng, 3, lambda c, xy: np.hstack([xy @ [[1, 2], [3, -1]], rng.normal(size=(len(c), 6))]))
    vx, vy = _rooms(rng, 2, lambda c, xy: np.hstack([xy @ [[1, 2], [3, -1]], rng.normal(size=(len(c), 6))]))
    assert position_r2(tx, ty, vx, vy) > 0.99  # a linear trace of x, y: read off exactly
    tx, ty = _rooms(rng, 3, lambda c, xy: np.hstack([c[:, 2:] * 2, rng.normal(size=(len(c), 6))]))
    vx, vy = _rooms(rng, 2, lambda c, xy: np.hstack([c[:, 2:] * 2, rng.normal(size=(len(c), 6))]))
    assert abs(position_r2(tx, ty, vx, vy)) < 0.02  # height and noise say nothing of x, y
    assert np.allclose(room_xy(np.array([[0, 0, 0], [2, 4, 1.0]])), [[-1, -2], [1, 2]])

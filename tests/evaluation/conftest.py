"""Fixtures of the evaluation tests: tiny preprocessed scenes (with photos and correspondences, or labelled by
quadrant) and a stand-in for a trained model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

# the photos of the tiny scenes: (H, W) pixels, 16-pixel patches -> a 2 x 3 patch grid
PHOTO_H, PHOTO_W = 32, 48


def _write_scene(folder, rng) -> None:
    """A floor and two boxes (~400 points), two orthographic top-view photos and their correspondences."""
    h, w = PHOTO_H, PHOTO_W
    floor = np.column_stack([rng.uniform(0, 3, 200), rng.uniform(0, 2, 200), np.zeros(200)])
    parts, colours, labels = [floor], [np.tile([120, 110, 100], (200, 1))], [np.full(200, 1)]
    for cls, colour in ((4, (200, 40, 40)), (6, (40, 180, 60))):
        lo = np.array([rng.uniform(0.2, 2.2), rng.uniform(0.2, 1.2), 0.0])
        top = np.column_stack([lo[0] + rng.uniform(0, 0.6, 100), lo[1] + rng.uniform(0, 0.6, 100),
                               np.full(100, rng.uniform(0.4, 0.9))])
        parts.append(top)
        colours.append(np.tile(colour, (100, 1)))
        labels.append(np.full(100, cls))
    coord = np.concatenate(parts).astype(np.float32)
    color = np.clip(np.concatenate(colours) + rng.normal(0, 8, (len(coord), 3)), 0, 255).astype(np.uint8)
    label = np.concatenate(labels).astype(np.int16)
    label[::17] = -1  # some unlabelled points
    (folder / "images").mkdir(parents=True)
    corr = []
    for k, (lo, hi) in enumerate((((0, 0), (3, 2)), ((0.5, 0.3), (2.0, 1.3)))):
        u = np.floor((coord[:, 0] - lo[0]) / (hi[0] - lo[0]) * w).astype(np.int64)
        v = np.floor((coord[:, 1] - lo[1]) / (hi[1] - lo[1]) * h).astype(np.int64)
        inside = np.flatnonzero((u >= 0) & (u < w) & (v >= 0) & (v < h))
        image = np.full((h, w, 3), 90, np.uint8)
        image[v[inside], u[inside]] = color[inside]
        Image.fromarray(image).save(folder / "images" / f"{k:06d}.jpg", quality=95)
        corr.append(np.column_stack([np.full(len(inside), k), u[inside], v[inside], inside]))
    normal = np.tile(np.array([0, 0, 1], np.float32), (len(coord), 1))
    np.save(folder / "coord.npy", coord)
    np.save(folder / "color.npy", color)
    np.save(folder / "normal.npy", normal)
    np.save(folder / "segment20.npy", label)
    np.save(folder / "correspondences.npy", np.concatenate(corr).astype(np.int32))
    (folder / "meta.json").write_text(json.dumps({"source": "test"}))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """3 train scenes and 1 val scene of ~400 points, each with two 32 x 48 photos (read-only: copy to change)."""
    root = tmp_path_factory.mktemp("tiny_scenes")
    rng = np.random.default_rng(0)
    names = [f"scene{i:04d}_00" for i in range(4)]
    for name in names:
        _write_scene(root / name, rng)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("\n".join(names[:3]) + "\n")
    (root / "splits" / "val.txt").write_text(names[3] + "\n")
    return root


class _StandInModel:
    """Like ``PretrainedModel``: ``.embed(points, colors, normals) -> (N, C)`` and a ``.point_encoder``. Its features
    are (x, y, and 4 fixed random projections of the colour)."""

    def __init__(self):
        self.point_encoder = torch.nn.Linear(3, 3)
        self.calls = 0

    def embed(self, points, colors=None, normals=None):
        self.calls += 1
        assert not self.point_encoder.training
        proj = np.random.default_rng(0).normal(size=(3, 4))
        return np.concatenate([points[:, :2], (colors / 255.0) @ proj], axis=1).astype(np.float32)


@pytest.fixture
def stand_in():
    """The class of a stand-in for ``PretrainedModel`` (features: x, y and colour projections)."""
    return _StandInModel


def _write_quadrant_scene(root, name, n, seed):
    """Points in a 2 x 2 m square; the label is the quadrant: wall (0), floor (1), chair (4), table (6); 10 % of the
    points unlabelled."""
    rng = np.random.default_rng(seed)
    coord = np.concatenate([rng.uniform(0.05, 1.0, (n, 2)) * rng.choice([-1, 1], (n, 2)),
                            rng.uniform(0, 2, (n, 1))], axis=1).astype(np.float32)
    quadrant = (coord[:, 0] < 0).astype(int) * 2 + (coord[:, 1] < 0).astype(int)
    segment = np.array([0, 1, 4, 6])[quadrant].astype(np.int16)
    segment[rng.random(n) < 0.1] = -1
    d = root / name
    d.mkdir(parents=True)
    np.save(d / "coord.npy", coord)
    np.save(d / "color.npy", rng.integers(0, 256, (n, 3), dtype=np.uint8))
    normal = rng.normal(size=(n, 3))
    np.save(d / "normal.npy", (normal / np.linalg.norm(normal, axis=1, keepdims=True)).astype(np.float32))
    np.save(d / "segment20.npy", segment)
    return d


@pytest.fixture()
def dataset(tmp_path):
    """Three quadrant-labelled scenes: train scene_a, scene_b; val scene_c (its list has a comment)."""
    root = tmp_path / "data"
    for i, name in enumerate(["scene_a", "scene_b", "scene_c"]):
        _write_quadrant_scene(root, name, 300, seed=i)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("scene_a\nscene_b\n")
    (root / "splits" / "val.txt").write_text("# held out\nscene_c\n\n")
    return root

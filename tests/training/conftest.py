"""Tiny preprocessed scenes (data/README.md section 3) and a tiny training config, shared by the training tests.

Each scene is a few hundred points: a floor and three coloured boxes, their colour also a wave of the position.
Two 32x48 "photos" look straight down (orthographic): every pixel shows the colour of the highest point that lands
on it, and each such (frame, u, v, point) is a correspondence, so the images and the points agree.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

IMAGE_H, IMAGE_W = 32, 48


def _scene_points(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) coord, (N, 3) uint8 colour, (N, 3) normal, (N,) segment20 of a floor with three boxes."""
    floor = np.column_stack([rng.uniform(0, 3, 300), rng.uniform(0, 2, 300), np.zeros(300)])
    coords, colors, normals, labels = [floor], [np.tile([120, 110, 100], (300, 1))], [np.tile([0, 0, 1], (300, 1))], \
        [np.full(300, 1)]
    for cls, colour in ((4, (200, 40, 40)), (6, (40, 180, 60)), (19, (50, 60, 200))):
        lo = np.array([rng.uniform(0.2, 2.3), rng.uniform(0.2, 1.3), 0.0])
        size = np.array([rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.9)])
        top = np.column_stack([lo[0] + rng.uniform(0, 1, 80) * size[0], lo[1] + rng.uniform(0, 1, 80) * size[1],
                               np.full(80, lo[2] + size[2])])
        side = np.column_stack([np.full(40, lo[0]), lo[1] + rng.uniform(0, 1, 40) * size[1],
                                rng.uniform(0, 1, 40) * size[2]])
        coords += [top, side]
        colors += [np.tile(colour, (120, 1))]
        normals += [np.tile([0, 0, 1], (80, 1)), np.tile([-1, 0, 0], (40, 1))]
        labels += [np.full(120, cls)]
    coord = np.concatenate(coords)
    # colour varies with the position (about one period per metre), so that every image patch looks different
    phase = rng.uniform(0, 2 * np.pi, 3)
    wave = np.stack([np.sin(2.1 * coord[:, 0] + phase[0]), np.cos(2.9 * coord[:, 1] + phase[1]),
                     np.sin(1.7 * (coord[:, 0] - coord[:, 1]) + phase[2])], 1)
    colour = np.clip(0.5 * np.concatenate(colors) + 60 + 60 * wave + rng.normal(0, 4, coord.shape), 0, 255)
    return (coord.astype(np.float32), colour.astype(np.uint8),
            np.concatenate(normals).astype(np.float32), np.concatenate(labels).astype(np.int16))


def _top_view(coord, color, lo, hi):
    """Orthographic top view of the box [lo, hi] (xy): image (H, W, 3) uint8 and (M, 3) rows (u, v, point)."""
    u = np.floor((coord[:, 0] - lo[0]) / (hi[0] - lo[0]) * IMAGE_W).astype(np.int64)
    v = np.floor((coord[:, 1] - lo[1]) / (hi[1] - lo[1]) * IMAGE_H).astype(np.int64)
    inside = np.flatnonzero((u >= 0) & (u < IMAGE_W) & (v >= 0) & (v < IMAGE_H))
    image = np.full((IMAGE_H, IMAGE_W, 3), 90, np.uint8)
    height = np.full((IMAGE_H, IMAGE_W), -np.inf)
    for i in inside[np.argsort(coord[inside, 2])]:  # highest point last: it wins the pixel
        image[v[i], u[i]] = color[i]
        height[v[i], u[i]] = coord[i, 2]
    visible = inside[coord[inside, 2] >= height[v[inside], u[inside]]]
    return image, np.column_stack([u[visible], v[visible], visible])


def make_scenes(root, num_scenes: int = 3, seed: int = 0) -> None:
    """Write ``num_scenes`` tiny preprocessed scenes under ``root`` (and splits/train.txt listing all of them)."""
    rng = np.random.default_rng(seed)
    names = []
    for s in range(num_scenes):
        name = f"scene{s:04d}_00"
        folder = root / name
        (folder / "images").mkdir(parents=True)
        coord, color, normal, seg = _scene_points(rng)
        corr = []
        for k, (lo, hi) in enumerate((((0, 0), (3, 2)), ((0.5, 0.3), (2.0, 1.3)))):
            image, rows = _top_view(coord, color, lo, hi)
            Image.fromarray(image).save(folder / "images" / f"{k:06d}.jpg", quality=95)
            corr.append(np.column_stack([np.full(len(rows), k), rows]))
        np.save(folder / "coord.npy", coord)
        np.save(folder / "color.npy", color)
        np.save(folder / "normal.npy", normal)
        np.save(folder / "segment20.npy", seg)
        np.save(folder / "segment_nyu40.npy", seg)
        np.save(folder / "instance.npy", np.full(len(coord), -1, np.int32))
        np.save(folder / "correspondences.npy", np.concatenate(corr).astype(np.int32))
        np.save(folder / "frame_ids.npy", np.arange(2, dtype=np.int32))
        np.save(folder / "poses.npy", np.tile(np.eye(4, dtype=np.float32), (2, 1, 1)))
        np.save(folder / "intrinsics.npy", np.tile(np.eye(3, dtype=np.float32), (2, 1, 1)))
        (folder / "meta.json").write_text(json.dumps({"source": "test", "points": len(coord)}))
        names.append(name)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("\n".join(names) + "\n")


TINY_OVERRIDES = [
    "data.max_points=256", "data.min_points=48", "data.max_frames=2", "data.image_size=[32, 48]",
    "data.patch_size=16", "data.elastic_p=0", "image_encoder.image_size=[32, 48]", "image_encoder.patch_size=16",
    "image_encoder.hidden_size=32", "image_encoder.num_layers=1", "image_encoder.num_heads=2",
    "point_encoder.ratios=[0.25, 0.25]", "point_encoder.radii=[0.3, 0.6]", "point_encoder.sa_channels=[16, 32]",
    "point_encoder.global_channels=32", "point_encoder.fp_channels=[32]", "point_encoder.out_channels=32",
    "point_encoder.max_neighbors=16", "objective.proj_dim=32", "objective.hidden_dim=64",
    "objective.num_prototypes=64", "optim.warmup_steps=2", "batch_size=2", "device=cpu", "checkpoint_every=1000",
]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A folder of 3 tiny preprocessed scenes."""
    root = tmp_path_factory.mktemp("tiny_scenes")
    make_scenes(root)
    return root


@pytest.fixture
def tiny_overrides():
    """The ``key=value`` overrides of the tiny config (for command-line tests)."""
    return list(TINY_OVERRIDES)


@pytest.fixture
def tiny_config():
    """``tiny_config(*more_overrides) -> TrainConfig`` with the tiny model and data settings."""
    from concerto3d.config import load_config

    return lambda *more: load_config(None, TINY_OVERRIDES + list(more))


@pytest.fixture(autouse=True)
def _one_thread_in_every_training_test(one_torch_thread):
    """(A ``pytestmark`` in a conftest would not reach the tests; an autouse fixture does.)"""

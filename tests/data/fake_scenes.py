"""Tiny preprocessed scene folders (data/README.md section 3) written with numpy + PIL, for the dataset tests.

Each frame shows a cluster of nearby points as uniform ``block`` x ``block`` pixel squares painted in the point's
own colour; every correspondence row (k, u, v, p) lies inside the square of point p in image k. Point colours come
from a palette of 216 well-separated colours (levels 0, 51, ..., 255); with 16-pixel squares (aligned with
JPEG's blocks) and no chroma subsampling the JPEG still shows each point's colour to within a few levels, so a test
can check that the pixel of a correspondence shows the point's colour.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

LEVEL = 51  # palette step: 6 levels per channel


def palette_color(ids: np.ndarray) -> np.ndarray:
    """(N,) point ids -> (N, 3) uint8 colours, distinct for ids 0..215."""
    ids = np.asarray(ids) % 216
    return (np.stack([ids % 6, (ids // 6) % 6, ids // 36], axis=1) * LEVEL).astype(np.uint8)


def make_fake_scene(path: str | Path, n_points: int = 600, n_frames: int = 3, image_size=(64, 96), block: int = 16,
                    corr_stride: int = 4, seed: int = 0, extent=(2.0, 2.0, 1.0)) -> dict:
    """Write one preprocessed scene folder.

    Args:
        path: the scene folder (created).
        n_points: N points, uniform in a box of ``extent`` metres.
        n_frames: F frames; frame k shows the points nearest to a random point, one per ``block`` square.
        image_size: (H, W), multiples of ``block``.
        corr_stride: one correspondence every ``corr_stride`` pixels in each direction inside a square.
    Returns:
        dict with the arrays written (``coord``, ``color``, ``normal``, ``segment20``, ``corr``) for checks.
    """
    rng = np.random.default_rng(seed)
    path = Path(path)
    (path / "images").mkdir(parents=True, exist_ok=True)
    h, w = image_size
    assert h % block == 0 and w % block == 0, "image_size must be a multiple of block"
    coord = (rng.random((n_points, 3)) * np.asarray(extent)).astype(np.float32)
    color = palette_color(np.arange(n_points))
    normal = rng.standard_normal((n_points, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    segment20 = rng.integers(-1, 20, n_points).astype(np.int16)

    rows_b, cols_b = h // block, w // block
    offsets = np.arange(corr_stride // 2, block, corr_stride)
    du, dv = np.meshgrid(offsets, offsets)
    corr = []
    for k in range(n_frames):
        centre = coord[rng.integers(n_points)]
        seen = np.argsort(((coord - centre) ** 2).sum(1))[: rows_b * cols_b]
        seen = rng.permutation(seen)
        image = np.zeros((h, w, 3), np.uint8)
        for slot, p in enumerate(seen):
            r, c = divmod(slot, cols_b)
            image[r * block:(r + 1) * block, c * block:(c + 1) * block] = color[p]
            u = c * block + du.ravel()
            v = r * block + dv.ravel()
            corr.append(np.stack([np.full(len(u), k), u, v, np.full(len(u), p)], axis=1))
        Image.fromarray(image).save(path / "images" / f"{k:06d}.jpg", quality=95, subsampling=0)
    corr = np.concatenate(corr).astype(np.int32) if corr else np.zeros((0, 4), np.int32)

    np.save(path / "coord.npy", coord)
    np.save(path / "color.npy", color)
    np.save(path / "normal.npy", normal)
    np.save(path / "segment20.npy", segment20)
    np.save(path / "segment_nyu40.npy", np.zeros(n_points, np.int16))
    np.save(path / "instance.npy", np.full(n_points, -1, np.int32))
    np.save(path / "frame_ids.npy", np.arange(n_frames, dtype=np.int32) * 10)
    np.save(path / "poses.npy", np.tile(np.eye(4, dtype=np.float32), (n_frames, 1, 1)))
    K = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float32)
    np.save(path / "intrinsics.npy", np.tile(K, (n_frames, 1, 1)))
    np.save(path / "correspondences.npy", corr)
    (path / "meta.json").write_text(json.dumps({"source": "fake", "num_points": n_points, "num_frames": n_frames,
                                                "image_size": [h, w]}))
    return {"coord": coord, "color": color, "normal": normal, "segment20": segment20, "corr": corr}


def make_fake_root(root: str | Path, n_scenes: int = 2, splits: dict[str, list[str]] | None = None,
                   **scene_kwargs) -> list[str]:
    """Write ``n_scenes`` fake scenes ``scene0000_00``... under ``root`` (and ``splits/<name>.txt`` files)."""
    root = Path(root)
    names = [f"scene{i:04d}_00" for i in range(n_scenes)]
    for i, name in enumerate(names):
        make_fake_scene(root / name, seed=i, **scene_kwargs)
    for split, members in (splits or {}).items():
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("\n".join(members) + "\n")
    return names

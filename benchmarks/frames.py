"""A training sample's load time and memory against the frames of its scene (issue 26: flat in the frames).

    .venv/bin/python benchmarks/frames.py [--frames 100 1000] [--rows-per-frame 6500] [--samples 20]

Builds one synthetic preprocessed scene per frame count in a temporary folder: 200k points in an 8 x 6 m room,
each frame seeing ``--rows-per-frame`` points of the stretch of wall and floor its camera faces (rows sorted by frame,
as ``preprocess`` writes them), one 144x192 JPEG hard-linked as every frame's image. For each scene and for a joint
sample (2 frames) and a 3d sample (none), it prints the median time of ``SceneDataset.load_crop`` and the peak of
memory allocated during one (tracemalloc: numpy's arrays; the memory-mapped file's pages are not the process's own),
then the ratio of the largest frame count to the smallest. Before the frame index a sample read the whole
``correspondences.npy``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from concerto3d.data.dataset import DataConfig, SceneDataset  # noqa: E402

IMAGE_SIZE = (144, 192)


def make_scene(folder: Path, frames: int, rows_per_frame: int, points: int = 200_000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    scene = folder / "scene0000_00"
    (scene / "images").mkdir(parents=True)
    coord = (rng.random((points, 3)) * [8.0, 6.0, 3.0]).astype(np.float32)
    np.save(scene / "coord.npy", coord)
    np.save(scene / "color.npy", rng.integers(0, 255, (points, 3), dtype=np.uint8))
    np.save(scene / "normal.npy", np.tile(np.float32([0, 0, 1]), (points, 1)))
    np.save(scene / "segment20.npy", rng.integers(0, 20, points).astype(np.int64))
    # camera k on a loop through the room, seeing the points within 1.5 m of a spot 2 m ahead of it
    angle = np.linspace(0, 2 * np.pi, frames, endpoint=False)
    spots = np.column_stack([4 + 2.5 * np.cos(angle), 3 + 1.8 * np.sin(angle)])
    by_x = np.argsort(coord[:, 0])
    parts = []
    for k, spot in enumerate(spots):
        lo, hi = np.searchsorted(coord[by_x, 0], [spot[0] - 1.5, spot[0] + 1.5])
        near = by_x[lo:hi]
        near = near[np.abs(coord[near, 1] - spot[1]) < 1.5]
        seen = np.sort(rng.choice(near, size=min(rows_per_frame, len(near)), replace=False))
        uv = rng.integers(0, [IMAGE_SIZE[1], IMAGE_SIZE[0]], (len(seen), 2))
        parts.append(np.column_stack([np.full(len(seen), k), uv, seen]).astype(np.int32))
    np.save(scene / "correspondences.npy", np.concatenate(parts))
    first = scene / "images" / f"{0:06d}.jpg"
    Image.fromarray(rng.integers(0, 255, (*IMAGE_SIZE, 3), dtype=np.uint8)).save(first, quality=90)
    for k in range(1, frames):
        os.link(first, scene / "images" / f"{k:06d}.jpg")
    (scene / "meta.json").write_text(json.dumps({"image_size": list(IMAGE_SIZE), "patch_size": 16}))
    (folder / "splits").mkdir()
    (folder / "splits" / "train.txt").write_text("scene0000_00\n")


def measure(root: Path, max_frames: int, samples: int) -> tuple[float, float]:
    """(median seconds, peak MB) of ``load_crop`` over ``samples`` crops (after one that makes the index)."""
    dataset = SceneDataset(root, "train", DataConfig(max_points=8192, min_points=1024, max_frames=max_frames,
                                                     loop=samples + 1))
    dataset.load_crop(0, dataset.rng(0))  # checks the file and makes the index once, as a run does per scene
    times, peaks = [], []
    for i in range(1, samples + 1):
        tracemalloc.start()
        start = time.perf_counter()
        dataset.load_crop(i, dataset.rng(i))
        times.append(time.perf_counter() - start)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return statistics.median(times), max(peaks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rows-per-frame", type=int, default=6500)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for frames in args.frames:
            root = Path(tmp) / f"f{frames}"
            make_scene(root, frames, args.rows_per_frame)
            size = (root / "scene0000_00" / "correspondences.npy").stat().st_size / 2**20
            for kind, max_frames in (("joint", 2), ("3d", 0)):
                seconds, peak = measure(root, max_frames, args.samples)
                results[frames, kind] = (seconds, peak)
                print(f"{frames:5d} frames ({size:6.1f} MB of correspondences), {kind:5s} sample: "
                      f"{seconds * 1e3:7.1f} ms, peak {peak:6.1f} MB")
    small, large = min(args.frames), max(args.frames)
    for kind in ("joint", "3d"):
        (t0, m0), (t1, m1) = results[small, kind], results[large, kind]
        print(f"{kind}: {large} vs {small} frames: time x{t1 / t0:.2f}, memory x{m1 / m0:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

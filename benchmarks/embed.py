"""Peak memory and points/s of ``PretrainedModel.embed`` on a large cloud (default: 1M points, CPU).

The cloud is a synthetic building floor: rooms of 4-6 m on a grid, points on every floor and wall at about the
density of a 2 cm scan, with colours (or none, ``--no-color``). The model is the default ``PointEncoderConfig`` with
random weights (the cost does not depend on the weights). Each ``--tile-points`` value runs in a fresh process, so
its peak resident memory (``ru_maxrss``) is its own; the table gives the peak above the process's memory just
before ``embed`` (the cloud and the model already loaded), i.e. what embedding costs.

    python benchmarks/embed.py                                  # 1M points, tiles of 50k, 100k (default), 200k
    python benchmarks/embed.py --points 200000 --tile-points 100000 400000   # 400000: one tile, untiled
    python benchmarks/embed.py --threads 2 --device cuda

Measured 2026-11-25 on the shared 2-core CI machine (load average 8-9, so wall time is about 2.5x CPU time), 1M
points with colours, 1 torch thread, CPU, ``python benchmarks/embed.py --tile-points 50000 100000 1000000``:

    tile_points   CPU s   wall s   points/s (wall)   peak MiB above the loaded process
         50000     67.7    134.3        7449           717
        100000     45.3    123.0        8132           825   (the default; ~22k points per CPU second)
       1000000     48.7     97.8       10229          2603   (one tile: the untiled encoder)

366 MiB of each peak is the (1M, 96) float32 result itself. Beyond the arrays that grow with the cloud (input,
features, result: ~0.45 KiB per point), the tiled peak is one tile's activations, whatever the cloud's size; the
untiled one grows with the cloud (~2.2 KiB per point more). Tiles of 50k spend ~50% more CPU on their margins.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def building_floor(n: int, seed: int = 0, room: float = 5.0, height: float = 2.6):
    """(n, 3) float32 points on the floors and walls of a square grid of rooms, and (n, 3) uint8 colours."""
    rng = np.random.default_rng(seed)
    side = max(1, int(round(np.sqrt(n / 40_000))))  # about 40k points per 5 m room, as a 2 cm scan
    size = side * room
    on_wall = rng.random(n) < 0.45
    pts = rng.uniform(0, 1, (n, 3)) * [size, size, height]
    pts[~on_wall, 2] = 0.0
    walls = np.flatnonzero(on_wall)
    axis = rng.integers(0, 2, len(walls))  # a wall at x = k * room or at y = k * room
    pts[walls, axis] = rng.integers(0, side + 1, len(walls)) * room
    colors = (rng.uniform(0, 1, (n, 3)) * 255).astype(np.uint8)
    return pts.astype(np.float32), colors


def rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one_run(args) -> dict:
    """Embed once in this process; returns the measurements as a dict."""
    import torch

    from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig
    from concerto3d.inference import PretrainedModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = {"format": 1, "objective": "3d", "point_encoder": None, "image_encoder": None,
              "input": {"use_color": True, "use_normal": True, "grid_size": args.grid_size, "feature_channels": 9}}
    model = PretrainedModel(PointEncoder(PointEncoderConfig()), None, config).to(args.device)
    points, colors = building_floor(args.points)
    colors = None if args.no_color else colors
    model.embed(points[:4096], colors=None if colors is None else colors[:4096])  # warm-up (lazy imports)
    before = current_rss_mib()
    start, cpu = time.perf_counter(), time.process_time()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    feats = model.embed(points, colors=colors, tile_points=args.single)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    result = {"points": len(points), "tile_points": args.single, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
              "points_per_s": round(len(points) / wall), "rss_before_mib": round(before),
              "peak_above_before_mib": round(rss_mib() - before), "features": list(feats.shape),
              "finite": bool(np.isfinite(feats).all()), "load_avg_1min": os.getloadavg()[0]}
    if args.device.startswith("cuda"):
        result["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000, help="points in the cloud (default 1M)")
    parser.add_argument("--tile-points", type=int, nargs="+", default=[50_000, 100_000, 200_000],
                        help="tile sizes to measure, one process each")
    parser.add_argument("--grid-size", type=float, default=0.0, help="the model's input grid_size (default 0)")
    parser.add_argument("--no-color", action="store_true", help="a cloud without colours")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)  # one measurement, as JSON
    args = parser.parse_args()
    if args.single is not None:
        print(json.dumps(one_run(args)))
        return 0
    print(f"embed: {args.points} points, default PointEncoderConfig, {args.threads} thread(s), {args.device}")
    print(f"{'tile_points':>11} {'wall s':>7} {'cpu s':>7} {'points/s':>9} {'peak MiB':>9}  (above the "
          f"process before embed; load avg)")
    for tile in args.tile_points:
        argv = [sys.executable, __file__, "--single", str(tile), "--points", str(args.points), "--threads",
                str(args.threads), "--device", args.device, "--grid-size", str(args.grid_size)]
        argv += ["--no-color"] if args.no_color else []
        line = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(line)
        print(f"{tile:>11} {r['wall_s']:>7} {r['cpu_s']:>7} {r['points_per_s']:>9} "
              f"{r['peak_above_before_mib']:>9}  ({r['rss_before_mib']} MiB before; load {r['load_avg_1min']:.1f})"
              + (f" cuda peak {r['cuda_peak_mib']} MiB" if "cuda_peak_mib" in r else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

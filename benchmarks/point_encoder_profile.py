"""Where the PointNet++ encoder spends its time: forward + backward on CPU, broken down by stage.

Usage:
    .venv/bin/python benchmarks/point_encoder_profile.py [--clouds 4] [--points 16384] [--repeats 3] [--threads 2]

The forward stages are the ``record_function`` labels inside ``concerto3d.models.point_encoder``: sampling (FPS),
grouping (radius search), edge_mlp (``models.grouped_mlp``: gather, MLP per edge, max; its backward is the autograd
function ``_GroupedMLPMaxBackward``), interpolation (k-NN feature propagation), point_mlp (MLPs around the
interpolation), global (global set abstraction). The backward pass is
reported as one total plus its most expensive autograd functions. The clouds are indoor-like crops (a floor
corner, two walls, a table) of about 2 x 2 x 2.5 m, which sets how many neighbours the radii find.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig

STAGES = ("sampling", "grouping", "edge_mlp", "interpolation", "point_mlp", "global")


def synthetic_crop(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) float32 points on a floor, two walls and a table top, metres."""
    parts = []
    sizes = rng.multinomial(n, [0.35, 0.25, 0.25, 0.15])
    u = [rng.random((k, 2)) for k in sizes]
    parts.append(np.c_[u[0][:, 0] * 2, u[0][:, 1] * 2, np.zeros(sizes[0])])  # floor
    parts.append(np.c_[u[1][:, 0] * 2, np.zeros(sizes[1]), u[1][:, 1] * 2.5])  # wall y = 0
    parts.append(np.c_[np.zeros(sizes[2]), u[2][:, 0] * 2, u[2][:, 1] * 2.5])  # wall x = 0
    parts.append(np.c_[0.8 + u[3][:, 0] * 0.8, 0.8 + u[3][:, 1] * 0.6, np.full(sizes[3], 0.75)])  # table top
    pts = np.concatenate(parts).astype(np.float32)
    return pts + rng.normal(scale=0.003, size=pts.shape).astype(np.float32)


def make_batch(clouds: int, points: int, in_channels: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    coord = torch.from_numpy(np.concatenate([synthetic_crop(points, rng) for _ in range(clouds)]))
    extra = torch.rand(coord.size(0), in_channels - 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    feat = torch.cat([coord, extra], dim=1)
    batch = torch.arange(clouds).repeat_interleave(points)
    return coord, feat, batch


def step(model: PointEncoder, coord, feat, batch) -> None:
    out = model(coord, feat, batch)
    (out.point_feat.square().mean() + out.scene_feat.square().mean()).backward()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clouds", type=int, default=4)
    parser.add_argument("--points", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = PointEncoder(PointEncoderConfig())
    coord, feat, batch = make_batch(args.clouds, args.points, model.in_channels)
    print(f"{args.clouds} x {args.points} points, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{torch.get_num_threads()} threads")
    step(model, coord, feat, batch)  # warm-up

    times, cpu_times = [], []
    for _ in range(args.repeats):
        model.zero_grad(set_to_none=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        step(model, coord, feat, batch)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    # On a shared machine the wall time depends on the load; the process CPU time much less (with --threads 1
    # it is close to the single-core wall time of an idle machine).
    print(f"forward + backward: {np.median(times):.3f} s wall, {np.median(cpu_times):.3f} s CPU, median of "
          f"{args.repeats} ({coord.size(0) / np.median(times):,.0f} points/s wall); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        out = model(coord, feat, batch)
        forward_s = time.perf_counter() - start
        loss = out.point_feat.square().mean() + out.scene_feat.square().mean()
        start = time.perf_counter()
        loss.backward()
        backward_s = time.perf_counter() - start
    events = prof.key_averages()
    by_name = {e.key: e for e in events}
    print(f"\nprofiled step: forward {forward_s:.3f} s, backward {backward_s:.3f} s")
    print("forward by stage (CPU time incl. children):")
    for stage in STAGES:
        e = by_name.get(stage)
        if e is not None:
            print(f"  {stage:<14}{e.cpu_time_total / 1e6:8.3f} s  ({e.count} calls)")
    backward = [e for e in events if "Backward" in e.key and e.key.startswith("autograd::engine")]
    backward.sort(key=lambda e: e.cpu_time_total, reverse=True)
    print("backward, most expensive autograd functions:")
    for e in backward[:8]:
        print(f"  {e.key.split(': ')[-1]:<28}{e.cpu_time_total / 1e6:8.3f} s  ({e.count} calls)")
    print("\ntop operators by self CPU time:")
    print(events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))


if __name__ == "__main__":
    main()

"""The CUDA path checked against the CPU path, with figures: torch-cluster's CUDA ops, the point encoder, a bf16
training step. Needs a GPU (exits 2 without one); `benchmarks/cuda_check.sh` runs it with the trainer, probe and
torchrun checks on a bare GPU machine.

    python benchmarks/cuda_check.py [--quick]

What it compares, on the same inputs:

* FPS: fpsample's bucket FPS on CPU against torch-cluster's FPS on CUDA (both exact FPS from row 0, so the
  samples should agree up to distance ties); the covering radius (largest distance from a point to its nearest
  sample) of each; time of each. Then, on CUDA batches shaped like training's, ``ops.fps`` (fpsample on the host,
  indices copied back) against torch-cluster called per cloud (``ops.fps_cluster``) and once for the whole batch.
* ``ops.radius`` / ``ops.knn`` / ``ops.knn_interpolate``: torch-cluster's CPU kernels against its CUDA kernels
  (neighbour sets, distances, interpolated features).
* ``PointEncoder`` forward and backward, fp32 on CUDA and under bf16 autocast, against fp32 on CPU (same weights).
* the default config's joint training step (forward with teacher, losses, backward, AdamW, EMA) on CUDA in fp32
  and bf16, with ``ops.fps`` and with torch-cluster's FPS in its place, and on the CPU, with points/s
  (``benchmarks/train.py``'s step).

Every line printed is one JSON object; the last is ``{"summary": ...}``. Nothing is asserted: the figures go into the
stop note, a mismatch is a finding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed(fn, repeats: int, device: torch.device) -> tuple[object, float]:
    """(last result, median seconds) of ``repeats`` calls after one warm-up, synchronised on CUDA."""
    out, times = fn(), []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - tic)
    return out, statistics.median(times)


def room_cloud(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points on the floor, walls and a few boxes of a 6 x 5 x 3 m room (surfaces, like a scan)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 3, generator=g) * torch.tensor([6.0, 5.0, 3.0])
    face = torch.randint(0, 6, (n,), generator=g)
    u[face == 0, 2] = 0.0                      # floor
    u[face == 1, 0] = 0.0                      # walls
    u[face == 2, 1] = 0.0
    u[face == 3, 0] = 6.0
    box = face >= 4                            # box tops at 0.75 m (tables)
    u[box, 2] = 0.75
    u[box, :2] = u[box, :2] * 0.3 + torch.tensor([2.0, 2.0])
    return u + 0.003 * torch.randn(n, 3, generator=g)


def covering_radius(pos: torch.Tensor, sample: torch.Tensor, chunk: int = 16384) -> float:
    """max over points of the distance to the nearest sampled point (what FPS minimises greedily)."""
    best = []
    for start in range(0, pos.size(0), chunk):
        best.append(torch.cdist(pos[start:start + chunk], pos[sample]).min(dim=1).values)
    return float(torch.cat(best).max())


def sorted_lengths(edges: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Lengths of ``[y index, x index]`` edges, grouped by query and sorted within each query: equal on two devices
    that found the same neighbours up to ties in distance, whatever order each listed them in."""
    length = (y[edges[0]] - x[edges[1]]).norm(dim=1)
    order = torch.argsort(length)
    order = order[torch.argsort(edges[0][order], stable=True)]
    return length[order]


def check_ops(cuda: torch.device, sizes: list[int], repeats: int) -> list[dict]:
    from concerto3d import ops

    rows = []
    for n in sizes:
        pos = room_cloud(n)
        pos_gpu = pos.to(cuda)
        idx_cpu, t_cpu = timed(lambda: ops.fps(pos, None, 0.25), repeats, torch.device("cpu"))
        # torch-cluster's CUDA FPS takes seconds on 100k points: time it once there
        idx_gpu, t_gpu = timed(lambda: ops.fps_cluster(pos_gpu, None, 0.25), repeats if n < 50_000 else 1, cuda)
        idx_gpu = idx_gpu.cpu()
        same = len(set(idx_cpu.tolist()) & set(idx_gpu.tolist())) / idx_cpu.numel()
        r_cpu, r_gpu = covering_radius(pos_gpu, idx_cpu.to(cuda)), covering_radius(pos_gpu, idx_gpu.to(cuda))
        rows.append({"check": "fps", "points": n, "samples": idx_cpu.numel(), "same_samples": round(same, 4),
                     "first_equal": bool(idx_cpu[0] == idx_gpu[0]), "cover_cpu_m": round(r_cpu, 4),
                     "cover_cuda_m": round(r_gpu, 4), "cpu_ms": round(1e3 * t_cpu, 2),
                     "cuda_ms": round(1e3 * t_gpu, 2), "cpu_over_cuda": round(t_cpu / t_gpu, 1)})

        centres = pos[idx_cpu]
        # ops.radius is a k-NN query (k = the cap) cut at r, so only caps the CUDA k-NN kernel takes (<= 100) are
        # checked: an "uncapped" cap of 4096 is a 4096-NN query (100M edges at 100k points), which ran for minutes
        for cap in (32, 64):  # 32: the encoder's cap
            e_cpu, t_cpu = timed(lambda: ops.radius(pos, centres, 0.1, max_num_neighbors=cap), repeats,
                                 torch.device("cpu"))
            e_gpu, t_gpu = timed(lambda: ops.radius(pos_gpu, centres.to(cuda), 0.1, max_num_neighbors=cap),
                                 repeats, cuda)
            a = set(map(tuple, e_cpu.t().tolist()))
            b = set(map(tuple, e_gpu.cpu().t().tolist()))
            deg_cpu = torch.bincount(e_cpu[0], minlength=centres.size(0))
            deg_gpu = torch.bincount(e_gpu[0].cpu(), minlength=centres.size(0))
            # the same neighbours up to ties in distance: compare each query's sorted distances too
            d_cpu, d_gpu = sorted_lengths(e_cpu, pos, centres), sorted_lengths(e_gpu.cpu(), pos, centres)
            rows.append({"check": "radius", "points": n, "queries": centres.size(0), "cap": cap,
                         "edges_cpu": len(a), "edges_cuda": len(b),
                         "jaccard": round(len(a & b) / max(1, len(a | b)), 4),
                         "degree_equal": bool(torch.equal(deg_cpu, deg_gpu)),
                         "max_dist_diff_m": float((d_cpu - d_gpu).abs().max()) if d_cpu.shape == d_gpu.shape
                         else None,
                         "cpu_ms": round(1e3 * t_cpu, 2), "cuda_ms": round(1e3 * t_gpu, 2),
                         "cpu_over_cuda": round(t_cpu / t_gpu, 1)})

        k_cpu, t_cpu = timed(lambda: ops.knn(centres, pos, 3), repeats, torch.device("cpu"))
        k_gpu, t_gpu = timed(lambda: ops.knn(centres.to(cuda), pos_gpu, 3), repeats, cuda)

        d_cpu, d_gpu = sorted_lengths(k_cpu, centres, pos), sorted_lengths(k_gpu.cpu(), centres, pos)
        feat = torch.randn(centres.size(0), 64, generator=torch.Generator().manual_seed(1))
        f_cpu = ops.knn_interpolate(feat, centres, pos)
        f_gpu = ops.knn_interpolate(feat.to(cuda), centres.to(cuda), pos_gpu).cpu()
        rows.append({"check": "knn", "points": n, "k": 3, "edges_equal_count": k_cpu.size(1) == k_gpu.size(1),
                     "max_dist_diff_m": float((d_cpu - d_gpu).abs().max()),
                     "interp_max_abs_diff": float((f_cpu - f_gpu).abs().max()),
                     "cpu_ms": round(1e3 * t_cpu, 2), "cuda_ms": round(1e3 * t_gpu, 2),
                     "cpu_over_cuda": round(t_cpu / t_gpu, 1)})
    return rows


def check_fps_paths(cuda: torch.device, shapes: list[tuple[int, int]], repeats: int) -> list[dict]:
    """FPS of a CUDA batch of ``clouds`` x ``n`` points, ratio 0.25: host fpsample, torch-cluster per cloud and batched."""
    import torch_cluster

    from concerto3d import ops

    rows = []
    for clouds, n in shapes:
        pos = torch.cat([room_cloud(n, seed=s) for s in range(clouds)]).to(cuda)
        batch = torch.arange(clouds, device=cuda).repeat_interleave(n)
        idx_host, t_host = timed(lambda: ops.fps(pos, batch, 0.25), repeats, cuda)
        row = {"check": "fps_paths", "clouds": clouds, "points": n, "host_fpsample_ms": round(1e3 * t_host, 2)}
        if cuda.type == "cuda" and n * clouds <= 200_000:
            slow = 1 if n >= 50_000 else repeats
            idx_loop, t_loop = timed(lambda: ops.fps_cluster(pos, batch, 0.25), slow, cuda)
            idx_one, t_one = timed(lambda: torch_cluster.fps(pos, batch, 0.25, random_start=False), slow, cuda)
            row.update(cluster_per_cloud_ms=round(1e3 * t_loop, 2), cluster_batched_ms=round(1e3 * t_one, 2),
                       per_cloud_over_host=round(t_loop / t_host, 1), batched_over_host=round(t_one / t_host, 1),
                       same_samples=round(len(set(idx_host.tolist()) & set(idx_loop.tolist())) / idx_host.numel(),
                                          4))
        rows.append(row)
    return rows


def check_encoder(cuda: torch.device, points: int, clouds: int) -> list[dict]:
    """Same weights, same input: fp32 CPU against fp32 CUDA and bf16-autocast CUDA, forward and input gradient."""
    from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig

    torch.manual_seed(0)
    enc = PointEncoder(PointEncoderConfig()).eval()
    coord = torch.cat([room_cloud(points, seed=s) for s in range(clouds)])
    feat = torch.cat([coord, torch.rand(coord.size(0), enc.in_channels - 3) * 2 - 1], dim=1)
    batch = torch.arange(clouds).repeat_interleave(points)

    def run(device: torch.device, bf16: bool):
        model = enc.to(device)
        x = feat.to(device).detach().requires_grad_(True)  # a fresh leaf on every device
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out = model(coord.to(device), x, batch.to(device)).point_feat
        out.float().square().mean().backward()
        return out.detach().float().cpu(), x.grad.detach().float().cpu()

    ref_out, ref_grad = run(torch.device("cpu"), False)
    rows = []
    for bf16 in (False, True):
        out, grad = run(cuda, bf16)
        cos = torch.nn.functional.cosine_similarity(out, ref_out, dim=1)
        rows.append({"check": "encoder", "points": points * clouds, "dtype": "bf16-autocast" if bf16 else "fp32",
                     "out_rel_max_diff": float((out - ref_out).abs().max() / ref_out.abs().max()),
                     "out_cos_min": round(float(cos.min()), 5), "out_cos_mean": round(float(cos.mean()), 6),
                     "grad_rel_max_diff": float((grad - ref_grad).abs().max() / ref_grad.abs().max())})
    enc.cpu()
    return rows


def check_step(cuda: torch.device, steps: int, overrides: list[str]) -> list[dict]:
    """benchmarks/train.py's model step: fp32 and bf16 on CUDA, with ops.fps and with torch-cluster's FPS in its
    place, and the CPU (all its threads) for the ratio."""
    from unittest import mock

    from concerto3d import ops
    from train import bench_config, bench_model_step

    rows = []
    for device, amp, fps in ((cuda.type, False, "ops.fps"), (cuda.type, True, "ops.fps"),
                             (cuda.type, False, "torch-cluster"), (cuda.type, True, "torch-cluster"),
                             ("cpu", False, "ops.fps")):
        cfg = bench_config([*overrides, f"device={device}", f"amp={str(amp).lower()}"])
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with mock.patch.object(ops, "fps", ops.fps_cluster if fps == "torch-cluster" else ops.fps):
            result = bench_model_step(cfg, torch.device(device), steps if device == "cuda" else max(1, steps // 5))
        result.update(check="train_step", amp=amp and device == "cuda", fps=fps, batch_size=cfg.batch_size,
                      max_points=cfg.data.max_points, threads=torch.get_num_threads())
        if device == "cuda":
            result["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        rows.append(result)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller clouds, fewer repeats")
    parser.add_argument("--target", default="cuda",
                        help="device checked against the CPU (default cuda; cpu = a dry run of this script)")
    args = parser.parse_args(argv)
    cuda = torch.device(args.target)
    if cuda.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device: nothing to check"}))
        return 2
    import torch_cluster

    env = {"check": "env", "torch": torch.__version__, "cuda": torch.version.cuda,
           "gpu": torch.cuda.get_device_name(0) if cuda.type == "cuda" else None, "torch_cluster": torch_cluster.__version__,
           "torch_cluster_cuda": int(torch.ops.torch_cluster.cuda_version()), "cpu_threads": torch.get_num_threads()}
    print(json.dumps(env), flush=True)
    rows = []
    sections = [
        lambda: check_ops(cuda, [16_384] if args.quick else [16_384, 100_000], 2 if args.quick else 5),
        lambda: check_fps_paths(cuda, [(1, 100_000), (2, 6554), (8, 13_107)] + ([] if args.quick else [(1, 1_000_000)]),
                                2 if args.quick else 5),
        lambda: check_encoder(cuda, 8192 if args.quick else 16_384, 2),
        lambda: check_step(cuda, 3 if args.quick else 10, []),
        lambda: check_step(cuda, 3 if args.quick else 10, ["batch_size=8", "data.max_points=16384"]),
    ]
    failed = 0
    start = time.perf_counter()
    for i, section in enumerate(sections):
        # to stderr, so that a section that runs long is seen in the log while it runs (stdout stays JSON lines)
        print(f"[cuda_check] section {i + 1}/{len(sections)} at {time.perf_counter() - start:.0f} s", file=sys.stderr,
              flush=True)
        try:
            for row in section():
                print(json.dumps(row), flush=True)
                rows.append(row)
        except Exception as exc:  # one broken section must not hide the others' figures
            failed += 1
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    summary = {}
    for r in rows:
        if r["check"] == "fps":
            summary[f"fpsample_cpu_{r['points']}_ms"] = r["cpu_ms"]
            summary[f"torch_cluster_cuda_{r['points']}_ms"] = r["cuda_ms"]
        elif r["check"] == "train_step":
            key = (f"step_b{r['batch_size']}x{r['max_points']}_{r['device']}_{'bf16' if r['amp'] else 'fp32'}"
                   f"{'_torch_cluster_fps' if r['fps'] == 'torch-cluster' else ''}")
            summary[key + "_points_per_s"] = r["points_per_s"]
    print(json.dumps({"summary": summary, "failed_sections": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

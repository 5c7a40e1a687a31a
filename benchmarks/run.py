"""Speed of concerto3d on CPU, each figure measured side by side with its yardstick, in one table.

    .venv/bin/python benchmarks/run.py [--quick] [--threads 1] [--repeats 5] [--only fps train ...]

Rows (each ratio from interleaved repeats, medians; wall time, with the process CPU time beside it):

* ``fps``: ``concerto3d.ops.fps`` over fpsample's bucket FPS called directly on the same cloud (8k, 32k, 100k
  points, ratio 0.25), and torch-cluster's CPU FPS for reference -> ``fps_vs_fpsample`` (worst size).
* ``train``: points/s of a forward + backward of concerto3d's ``PointEncoder`` over a reference PointNet++ built the
  way PyG's ``examples/pointnet2_segmentation.py`` builds it (torch-cluster ``fps``/``radius``, ``PointNetConv``,
  k-NN interpolation, BatchNorm MLPs; same channel widths, same loss), 4 clouds x 16,384 points ->
  ``train_vs_reference``; also the whole joint training step of the default config (``joint_step_s``).
* ``preprocess``: preprocessing one scene over decoding the same frames (``benchmarks/preprocess.py``'s scene and
  child processes) -> ``preprocess_vs_decode``.
* ``embed``: ``load_model(RUN).embed`` of a 1M-point cloud in a fresh process -> ``embed_points_per_s`` and
  ``embed_peak_mib`` (peak RSS growth during the call).

The last line is ``summary: key=value ...``. On a shared machine wall times follow the load: the load average is
printed with the figures, and the ratios (not the absolute times) are what to compare. ``--quick`` stays under 10
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _timed(fn) -> tuple[float, float]:
    """(wall s, process CPU s) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(candidates: dict, repeats: int, warmup: int = 1) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each callable, the callables taking turns within every repeat."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            times[name].append(_timed(fn))
    return {name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
            for name, ts in times.items()}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


# -- FPS -----------------------------------------------------------------------------------------------------------
def bench_fps(sizes: list[int], repeats: int, cluster_max: int) -> dict:
    import fpsample

    from concerto3d import ops
    from concerto3d.ops.sampling import _bucket_height, _start_index
    from point_encoder_profile import synthetic_crop

    ratios, rows = [], []
    for n in sizes:
        cloud = synthetic_crop(n, np.random.default_rng(n)) * (n / 16384) ** 0.5  # about one point per cm^2
        pos = torch.from_numpy(cloud)
        m, h = ops.num_samples(n, 0.25), _bucket_height(n)
        start = _start_index(cloud, h)
        loops = max(1, 200_000 // n)  # small clouds: several calls per timing, so that the load averages out

        def looped(fn, times=loops):
            return lambda: [fn() for _ in range(times)]

        candidates = {
            "ops.fps": looped(lambda: ops.fps(pos, None, 0.25)),
            "fpsample": looped(lambda: fpsample.bucket_fps_kdline_sampling(cloud, m, h=h, start_idx=start)),
        }
        if n <= cluster_max:
            candidates["torch-cluster"] = looped(lambda: ops.fps_cluster(pos, None, 0.25), 1)
        t = interleaved(candidates, repeats if n < 50000 else max(1, repeats // 2))
        t = {name: (wall / (loops if name != "torch-cluster" else 1), cpu) for name, (wall, cpu) in t.items()}
        ratio = t["ops.fps"][0] / t["fpsample"][0]
        ratios.append(ratio)
        ms = {name: f"{wall * 1e3:8.1f} ms" for name, (wall, _) in t.items()}
        rows.append(f"fps {n:>7} pts: ops.fps {ms['ops.fps']}, fpsample {ms['fpsample']} (x{ratio:.2f}), "
                    f"torch-cluster {ms.get('torch-cluster', 'skipped')}")
    return {"rows": rows, "fps_vs_fpsample": round(max(ratios), 3)}


# -- training step vs reference PointNet++ -------------------------------------------------------------------------
class ReferencePointNet2(nn.Module):
    """PointNet++ as PyG's ``examples/pointnet2_segmentation.py`` builds it, with concerto3d's default widths.

    torch-cluster ``fps`` (random start, as the example) and ``radius``, ``PointNetConv`` with PyG ``MLP``s
    (BatchNorm), a global set abstraction, and feature propagation by inverse-distance k-NN interpolation (PyG's
    ``knn_interpolate`` written out over torch-cluster's ``knn``, which PyG 2.8 routes through pyg-lib). The global
    feature is spread back over the deepest level (k = 1 from one point per cloud), as the example's ``fp3``.
    """

    def __init__(self, cfg):
        super().__init__()
        from torch_geometric.nn import MLP, PointNetConv

        widths = [cfg.in_channels, *cfg.sa_channels]
        hidden = lambda c_in, c_out: [c_in] + [c_out] * cfg.mlp_layers  # noqa: E731
        self.sa = nn.ModuleList(PointNetConv(MLP(hidden(widths[i] + 3, widths[i + 1])), add_self_loops=False)
                                for i in range(len(cfg.ratios)))
        self.cfg = cfg
        self.global_mlp = MLP(hidden(widths[-1] + 3, cfg.global_channels))
        self.global_fp = MLP([cfg.global_channels + widths[-1], widths[-1]])
        up = [widths[-1], *cfg.fp_channels, cfg.out_channels]
        levels = len(cfg.ratios)
        self.fp = nn.ModuleList(MLP(hidden(up[i] + widths[levels - 1 - i], up[i + 1])) for i in range(levels))

    @staticmethod
    def knn_interpolate(x, pos_x, pos_y, batch_x, batch_y, k):
        import torch_cluster
        from torch_geometric.utils import scatter

        with torch.no_grad():
            y_idx, x_idx = torch_cluster.knn(pos_x, pos_y, k, batch_x, batch_y)
            diff = pos_x[x_idx] - pos_y[y_idx]
            weights = 1.0 / torch.clamp((diff * diff).sum(dim=-1, keepdim=True), min=1e-16)
        y = scatter(x[x_idx] * weights, y_idx, 0, pos_y.size(0), reduce="sum")
        return y / scatter(weights, y_idx, 0, pos_y.size(0), reduce="sum")

    def forward(self, coord: Tensor, feat: Tensor, batch: Tensor) -> Tensor:
        import torch_cluster
        from torch_geometric.nn import global_max_pool

        levels = [(feat, coord, batch)]
        for conv, ratio, r in zip(self.sa, self.cfg.ratios, self.cfg.radii):
            x, pos, b = levels[-1]
            idx = torch_cluster.fps(pos, b, ratio=ratio)
            row, col = torch_cluster.radius(pos, pos[idx], r, b, b[idx], max_num_neighbors=self.cfg.max_neighbors)
            levels.append((conv((x, None), (pos, pos[idx]), torch.stack([col, row])), pos[idx], b[idx]))
        x, pos, b = levels[-1]
        g = global_max_pool(self.global_mlp(torch.cat([x, pos], dim=1)), b)
        x = self.global_fp(torch.cat([g[b], x], dim=1))  # the example's k = 1 interpolation from one point
        for mlp, (x_skip, pos_skip, b_skip) in zip(self.fp, reversed(levels[:-1])):
            x = mlp(torch.cat([self.knn_interpolate(x, pos, pos_skip, b, b_skip, 3), x_skip], dim=1))
            pos, b = pos_skip, b_skip
        return x


def bench_train(repeats: int, clouds: int, points: int, joint_steps: int) -> dict:
    from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig
    from point_encoder_profile import make_batch

    torch.manual_seed(0)
    cfg = PointEncoderConfig()
    ours, ref = PointEncoder(cfg).train(), ReferencePointNet2(cfg).train()
    coord, feat, batch = make_batch(clouds, points, cfg.in_channels)

    def step(model, out_of):
        model.zero_grad(set_to_none=True)
        out_of(model(coord, feat, batch)).square().mean().backward()  # the same loss on both

    t = interleaved({"concerto3d": lambda: step(ours, lambda o: o.point_feat),
                     "reference": lambda: step(ref, lambda o: o)}, repeats)
    n = coord.size(0)
    rows = [f"train {clouds} x {points} pts fwd+bwd: concerto3d {n / t['concerto3d'][0]:9.0f} pts/s "
            f"({t['concerto3d'][0]:.3f} s, {t['concerto3d'][1]:.3f} s CPU), reference PointNet++ "
            f"{n / t['reference'][0]:9.0f} pts/s ({t['reference'][0]:.3f} s, {t['reference'][1]:.3f} s CPU)"]
    result = {"train_points_per_s": round(n / t["concerto3d"][0]),
              "reference_points_per_s": round(n / t["reference"][0]),
              "train_vs_reference": round(t["reference"][0] / t["concerto3d"][0], 3)}
    if joint_steps:
        from train import bench_config, bench_model_step, frozen_target_overrides

        cpu = torch.device("cpu")
        joint = bench_model_step(bench_config(["device=cpu"]), cpu, joint_steps)
        step_3d = bench_model_step(bench_config(["device=cpu", "objective.kind=3d"]), cpu, joint_steps)
        with tempfile.TemporaryDirectory() as folder:
            frozen = frozen_target_overrides(folder, bench_config(["device=cpu"]))
            cached = bench_model_step(bench_config(["device=cpu", *frozen]), cpu, joint_steps, cached_target=True)
        rows.append(f"joint training step (default config, {joint['points_per_step']} student points): "
                    f"{joint['s_per_step']:.2f} s, {joint['cpu_s_per_step']:.2f} s CPU")
        ratio = cached["cpu_s_per_step"] / step_3d["cpu_s_per_step"]
        rows.append(f"3d step {step_3d['s_per_step']:.2f} s ({step_3d['cpu_s_per_step']:.2f} s CPU); joint step "
                    f"with a frozen target's cached features {cached['s_per_step']:.2f} s "
                    f"({cached['cpu_s_per_step']:.2f} s CPU): {ratio:.2f}x the 3d step in CPU time (target <= 1.2)")
        result.update(joint_step_s=joint["s_per_step"], joint_step_cpu_s=joint["cpu_s_per_step"],
                      step_3d_s=step_3d["s_per_step"], step_3d_cpu_s=step_3d["cpu_s_per_step"],
                      joint_cached_step_s=cached["s_per_step"], joint_cached_step_cpu_s=cached["cpu_s_per_step"],
                      joint_cached_vs_3d=round(ratio, 3))
    return {"rows": rows, **result}


# -- joint training step by stage ----------------------------------------------------------------------------------
def bench_stages(repeats: int, data: str | None) -> dict:
    """CPU seconds per stage of the default joint step: the fast projection path vs the whole-head reference."""
    import collections

    import concerto3d.models.concerto as concerto
    from concerto3d.training.ema import ema_update
    from concerto3d.training.trainer import build_optimizer
    from train import bench_config, synthetic_batch

    cfg = bench_config(["device=cpu"])
    batch = synthetic_batch(cfg)
    fast_split = concerto._split_last_linear
    rows = []

    def profile(variant: str) -> dict:
        concerto._split_last_linear = fast_split if variant == "fast" else (lambda head: (head, nn.Identity()))
        torch.manual_seed(0)
        model = concerto.ConcertoModel(cfg).train()
        optimizer = build_optimizer(model, cfg.optim)
        acc = collections.defaultdict(list)
        parts = {"student point encoder": model.point_encoder, "teacher point encoder": model.teacher["point_encoder"],
                 "image encoder (ViT)": model.image_encoder, "teacher distillation head": model.teacher["point_distill"],
                 **{f"head {k}": m for k, m in model.heads.items()}}
        for name, module in parts.items():
            module.register_forward_pre_hook(lambda m, i: setattr(m, "_tic", time.process_time()))
            module.register_forward_hook(lambda m, i, o, name=name: acc[name].append(time.process_time() - m._tic))
        for step in range(repeats + 1):
            acc_step = {}
            cpu = time.process_time()
            out = model(batch, concerto.StepState(step, 0.04))
            acc_step["forward (all)"] = time.process_time() - cpu
            cpu = time.process_time()
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            acc_step["backward"] = time.process_time() - cpu
            cpu = time.process_time()
            optimizer.step()
            for teacher, student in model.ema_pairs():
                ema_update(teacher, student, 0.996)
            acc_step["AdamW + EMA"] = time.process_time() - cpu
            for k, v in acc_step.items():
                acc[k].append(v)
        concerto._split_last_linear = fast_split
        return {k: statistics.median(v[1:] if len(v) > 1 else v) for k, v in acc.items()}

    before, after = profile("reference"), profile("fast")
    rows.append(f"joint step by stage, CPU s ({torch.get_num_threads()} threads): reference projection -> fast")
    for k in before:  # the fast path calls point_proj's layers, not the head: its cost is in the losses then
        rows.append(f"  {k:<28}{before[k]:7.3f} -> " + (f"{after[k]:7.3f}" if k in after else "  (in forward)"))
    total_b = before["forward (all)"] + before["backward"] + before["AdamW + EMA"]
    total_a = after["forward (all)"] + after["backward"] + after["AdamW + EMA"]
    rows.append(f"  {'step total':<28}{total_b:7.3f} -> {total_a:7.3f}")
    result = {"joint_step_cpu_s_reference": round(total_b, 3), "joint_step_cpu_s_fast": round(total_a, 3)}
    if data:
        result.update(trainer_profile(cfg, data, rows))
    return {"rows": rows, **result}


def trainer_profile(cfg, data: str, rows: list[str], steps: int = 4) -> dict:
    """cProfile of the real trainer on preprocessed scenes: where a step's time goes, data loading included."""
    import cProfile
    import pstats

    from concerto3d.config import apply_overrides
    from concerto3d.training.trainer import train

    cfg = apply_overrides(cfg, [f"steps={steps}", f"checkpoint_every={steps}"])
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as run:
        prof.runcall(train, cfg, data, run)
    stats = pstats.Stats(prof).stats
    wanted = {"__getitem__": "data: SceneDataset.__getitem__", "collate_scenes": "data: collate_scenes",
              "forward": "ConcertoModel.forward", "backward": "loss.backward", "step": "optimizer.step",
              "save_checkpoint": "checkpoint", "ema_update": "EMA"}
    found = {}
    for (path, _, func), (_, _, _, cum, _) in stats.items():
        if func in wanted and ("concerto3d" in path or func in ("backward", "step")):
            label = wanted[func]
            if func == "forward" and not path.endswith("concerto.py"):
                continue
            if func == "step" and "optim" not in path:
                continue
            found[label] = max(found.get(label, 0.0), cum)
    total = max(cum for (_, _, _, cum, _) in stats.values())
    rows.append(f"trainer on {data}, {steps} steps (cProfile, cumulative s of {total:.1f} s):")
    for label, sec in sorted(found.items(), key=lambda kv: -kv[1]):
        rows.append(f"  {label:<34}{sec:7.2f}")
    return {"trainer_data_s_per_step": round((found.get("data: SceneDataset.__getitem__", 0)
                                              + found.get("data: collate_scenes", 0)) / steps, 3)}


# -- preprocessing vs decoding -------------------------------------------------------------------------------------
def bench_preprocess(frames: int, repeats: int) -> dict:
    import preprocess as prep_bench

    with tempfile.TemporaryDirectory() as tmp:
        scans = prep_bench.build_scene(Path(tmp) / "scans", frames)
        dec, pre = [], []
        for i in range(repeats):  # interleaved, one fresh process each
            dec.append(prep_bench._run_child("decode", str(scans)))
            pre.append(prep_bench._run_child("preprocess", str(scans), str(Path(tmp) / f"out{i}")))
    d = statistics.median(r["seconds"] for r in dec)
    p = statistics.median(r["seconds"] for r in pre)
    return {"rows": [f"preprocess {frames} frames: {p:.2f} s ({frames / p:.1f} frames/s), decode only {d:.2f} s "
                     f"({frames / d:.1f} frames/s), peak {max(r['peak_rss_mib'] for r in pre):.0f} MiB"],
            "preprocess_vs_decode": round(p / d, 3)}


# -- embed ---------------------------------------------------------------------------------------------------------
def _embed_child(run: str, points: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    from concerto3d.inference import load_model
    from point_encoder_profile import synthetic_crop
    from preprocess import _peak_rss_mib

    rng = np.random.default_rng(0)
    coord = synthetic_crop(points, rng) * 4.0  # an 8 x 8 x 10 m corner
    colors = rng.integers(0, 256, (points, 3), dtype=np.uint8)
    model = load_model(run)
    before = _peak_rss_mib()
    start = time.perf_counter()
    feats = model.embed(coord, colors)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_growth_mib": _peak_rss_mib() - before, "shape": list(feats.shape)}


def bench_embed(points: int, threads: int) -> dict:
    from concerto3d.inference import save_model
    from concerto3d.models.concerto import ConcertoModel
    from train import bench_config

    with tempfile.TemporaryDirectory() as run:
        cfg = bench_config(["device=cpu"])
        save_model(ConcertoModel(cfg), cfg, run)
        proc = subprocess.run([sys.executable, __file__, "--embed-child", run, str(points), str(threads)],
                              capture_output=True, text=True, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"rows": [f"embed {points} pts: {r['seconds']:.1f} s ({points / r['seconds']:.0f} pts/s), peak RSS "
                     f"+{r['peak_growth_mib']:.0f} MiB, features {tuple(r['shape'])}"],
            "embed_points_per_s": round(points / r["seconds"]), "embed_peak_mib": round(r["peak_growth_mib"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller inputs (< 10 min, 2 cores)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (set explicitly: 1 on a shared box)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", nargs="+", choices=("fps", "train", "preprocess", "embed", "stages"),
                        default=["fps", "train", "preprocess", "embed"], help="stages (opt-in): the joint step's "
                        "profile by stage, fast path vs reference, and the trainer's with --data")
    parser.add_argument("--data", help="preprocessed scenes for the trainer profile of --only stages")
    parser.add_argument("--embed-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.embed_child:
        run, points, threads = args.embed_child
        print(json.dumps(_embed_child(run, int(points), int(threads))))
        return 0
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 7)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
          f"{'quick, ' if args.quick else ''}{repeats} repeats; load average {_load()} at start")
    summary = {}
    benches = {
        "fps": lambda: bench_fps([8192, 32768, 100000], repeats, cluster_max=8192 if args.quick else 32768),
        "train": lambda: bench_train(2 if args.quick else repeats, 4, 16384, joint_steps=2 if args.quick else 5),
        "preprocess": lambda: bench_preprocess(20 if args.quick else 100, 1 if args.quick else 3),
        "embed": lambda: bench_embed(1_000_000, args.threads),
        "stages": lambda: bench_stages(repeats, args.data),
    }
    for name in args.only:
        start = time.perf_counter()
        result = benches[name]()
        for row in result.pop("rows"):
            print(row, flush=True)
        summary.update(result)
        print(f"  ({name}: {time.perf_counter() - start:.0f} s, load average {_load()})", flush=True)
    summary.update(threads=args.threads, load_average=_load())
    print("summary: " + " ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

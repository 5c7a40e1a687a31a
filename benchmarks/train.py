"""Training throughput in points/s for the default config (CPU, and CUDA when present).

Two modes:

* default: in-memory batches shaped like the default config's (``batch_size`` crops of ``data.max_points``
  points, ``data.max_frames`` images of ``data.image_size`` each, correspondences), so the number measures the
  model step alone: forward (student + teacher), losses, backward, AdamW, EMA;
* ``--data DATA``: the real trainer on preprocessed scenes (data loading and augmentation included), for
  ``--steps`` steps in a temporary run folder.

    python benchmarks/train.py --steps 5                       # model step, every device present
    python benchmarks/train.py --data data/demo/preprocessed   # whole trainer
    python benchmarks/train.py optim.lr=1e-3 objective.kind=3d # any config override
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch


def bench_config(overrides: list[str]):
    """The training config of ``overrides``, with the image and patch size a preprocessed dataset would give filled
    in from the package defaults (a synthetic batch has no data to read them from)."""
    from concerto3d.config import load_config, with_data_geometry

    return with_data_geometry(load_config(None, overrides), None)


def synthetic_batch(cfg, seed: int = 0):
    """A TrainBatch shaped like the config's: random points in 2 m crops, images, ~1 correspondence per point."""
    from concerto3d.data.collate import PointView, TrainBatch

    rng = np.random.default_rng(seed)
    b, n, f = cfg.batch_size, cfg.data.max_points, cfg.data.max_frames
    h, w = cfg.data.image_size

    def view():
        keep = int(n * 0.8)
        rows = [np.sort(rng.choice(n, keep, replace=False)) + i * n for i in range(b)]
        coord = torch.tensor(rng.uniform(-1, 1, (b * keep, 3)), dtype=torch.float32)
        feat = torch.cat([coord, torch.tensor(rng.uniform(-1, 1, (b * keep, 6)), dtype=torch.float32)], 1)
        return PointView(coord, feat, torch.arange(b).repeat_interleave(keep), torch.tensor(np.concatenate(rows)))

    corr = []
    for image in range(b * f):
        crop = image // f
        pts = rng.choice(n, n // 2, replace=False) + crop * n
        corr.append(np.column_stack([np.full(len(pts), image), rng.integers(0, w, len(pts)),
                                     rng.integers(0, h, len(pts)), pts]))
    return TrainBatch(
        crop_offsets=torch.arange(b + 1) * n, view_student=view(), view_teacher=view(),
        images=torch.randn(b * f, 3, h, w), images_teacher=torch.randn(b * f, 3, h, w),
        image_crop=torch.arange(b).repeat_interleave(f), corr=torch.tensor(np.concatenate(corr), dtype=torch.long),
        labels=torch.zeros(b * n, dtype=torch.long))


def frozen_target_overrides(folder: str, cfg) -> list[str]:
    """Save an image encoder of ``cfg``'s architecture as a Hugging Face folder and return the overrides that make
    it the joint objective's frozen target (the setting of a DINOv2 target, at this package's ViT size)."""
    from concerto3d.models.image_encoder import ImageEncoder

    torch.manual_seed(0)
    ImageEncoder(cfg.image_encoder).backbone.save_pretrained(folder)
    return [f"image_encoder.pretrained_path={folder}", "image_encoder.freeze=true"]


def bench_model_step(cfg, device: torch.device, steps: int, warmup: int = 1, cached_target: bool = False) -> dict:
    """Time forward + backward + AdamW + EMA on in-memory batches; returns points/s and seconds per step.

    ``cached_target``: a frozen image target's patch features come with the batch, as the trainer's feature cache
    gives them (``TrainBatch.image_features``), instead of running the encoder in the step."""
    from concerto3d.models.build import build_model
    from concerto3d.models.concerto import StepState
    from concerto3d.training.ema import ema_update
    from concerto3d.training.trainer import build_optimizer

    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    optimizer = build_optimizer(model, cfg.optim)
    batch = synthetic_batch(cfg).to(device)
    if cached_target:
        with torch.no_grad():
            batch.image_features = model.image_encoder(batch.images).patch_grid.float()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and cfg.amp)
    times, cpu_times = [], []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic, cpu_tic = time.perf_counter(), time.process_time()
        with autocast:
            out = model(batch, StepState(i, cfg.objective.teacher_temperature))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        for teacher, student in model.ema_pairs():
            ema_update(teacher, student, 0.996)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - tic)
            cpu_times.append(time.process_time() - cpu_tic)
    points = batch.view_student.coord.size(0)
    sec = statistics.median(times)
    # on a shared machine the wall time mostly measures the other processes: report the CPU time and the load too
    return {"device": str(device), "points_per_step": points, "s_per_step": round(sec, 4),
            "points_per_s": round(points / sec, 1), "cpu_s_per_step": round(statistics.median(cpu_times), 4),
            "load_average_1min": round(os.getloadavg()[0], 2), "loss": float(out["loss"].detach())}


def bench_trainer(cfg, data: str, steps: int) -> dict:
    from concerto3d.config import apply_overrides
    from concerto3d.training.logging import read_metrics
    from concerto3d.training.trainer import train

    cfg = apply_overrides(cfg, [f"steps={steps}", f"checkpoint_every={steps}"])
    with tempfile.TemporaryDirectory() as run:
        train(cfg, data, run)
        rows = read_metrics(run)[1:] or read_metrics(run)  # the first step includes start-up costs
    return {"device": cfg.device, "points_per_s": round(statistics.median(r["points_per_s"] for r in rows), 1),
            "s_per_step": round(statistics.median(r["step_s"] for r in rows), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="preprocessed scenes: run the whole trainer on them")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)

    from concerto3d.config import load_config

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    results = []
    for dev in devices:
        overrides = [*args.overrides, f"device={dev}"]
        if args.data:  # training reads the image and patch size from the data
            cfg = load_config(None, overrides)
            result = bench_trainer(cfg, args.data, args.steps)
        else:
            cfg = bench_config(overrides)
            result = bench_model_step(cfg, torch.device(dev), args.steps)
        result.update(threads=torch.get_num_threads(), objective=cfg.objective.kind, batch_size=cfg.batch_size,
                      max_points=cfg.data.max_points)
        results.append(result)
        print(json.dumps(result))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())

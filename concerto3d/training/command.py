"""``concerto3d train DATA --out RUN [--config YAML] [--objective KIND] [--steps N] [--device ...] [--resume]
[key=value ...]``: joint 2D-3D pre-training, in one process or under ``torchrun`` (DDP)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="preprocessed scenes (output of concerto3d preprocess)")
    parser.add_argument("--out", metavar="RUN", required=True,
                        help="run folder: checkpoints/, metrics.csv, tensorboard/, model/")
    parser.add_argument("--config", metavar="YAML", help="a config file (any subset of the keys; see docs/training.md)")
    parser.add_argument("--objective", choices=("joint", "3d", "2d", "supervised", "2d-supervised"),
                        help="joint = 3D self-distillation + 2D-3D alignment (default), 3d = self-distillation "
                             "only, 2d = the image encoder alone, supervised = the point encoder trained with the "
                             "labels, a ceiling for the others, 2d-supervised = the image encoder trained with the "
                             "frames' 2D labels, a 2D teacher for --image-encoder (same as objective.kind=...)")
    parser.add_argument("--steps", type=int, help="optimiser steps of the whole run (same as steps=N)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"),
                        help="auto = CUDA when present (same as device=...)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in RUN, with the config saved in RUN/config.yaml "
                             "(unless --config is given)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.lr=1e-3 objective.temperature=0.1 batch_size=4")


def run(args: argparse.Namespace) -> int:
    from concerto3d.config import load_config
    from concerto3d.training.trainer import train

    overrides = list(args.overrides)
    for flag, key in (("objective", "objective.kind"), ("steps", "steps"), ("device", "device")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    config_path = args.config
    saved = Path(args.out) / "config.yaml"
    if config_path is None and args.resume and saved.is_file():
        config_path = saved  # the merged config the run started with; overrides still apply on top
        logger.info("--resume: using %s", saved)
    cfg = load_config(config_path, overrides)
    result = train(cfg, args.data, args.out, resume=args.resume)
    if result.interrupted:
        print(f"interrupted after step {result.steps_done} of {cfg.steps}; continue with: concerto3d train "
              f"{args.data} --out {args.out} --resume ...")
        return 130
    if result.model_dir is not None:
        print(f"trained {result.steps_done} steps ({result.skipped_steps} skipped); model: {result.model_dir}")
    return 0

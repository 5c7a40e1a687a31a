"""``concerto3d ablate DATA --out DIR [--seeds 3 | --seeds 2,3,4] [--steps N] [key=value ...]``: the Concerto table.

Trains and probes, with the same budget each, a random-init point encoder, the 2D-only image encoder (features
lifted onto the points), the 3D-only point encoder, the concatenation of the two, and the joint (Concerto) point
encoder, over several seeds; writes ``DIR/results.md``, ``results.csv`` and ``results.png``. Rerunning the same
command resumes: finished (row, seed) units are not redone (see :mod:`concerto3d.evaluation.ablation`).
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from concerto3d.errors import InputError
from concerto3d.evaluation.ablation.settings import ROW_KEYS, AblationSettings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default = AblationSettings()  # the one source of the defaults the help texts name
    parser.add_argument("data", metavar="DATA", help="preprocessed dataset (concerto3d preprocess output) with "
                        "splits/train.txt and splits/val.txt")
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="ablation folder: runs/, probes/, results.md, results.csv, results.png")
    parser.add_argument("--seeds", type=parse_seeds, default=list(default.seeds), metavar="N|S,S,...",
                        help="a count N (seeds 0..N-1) or a comma-separated list of seeds, e.g. 3,4 to add two "
                             f"seeds to a folder that holds 0-2 (default {_seeds_text(default.seeds)})")
    parser.add_argument("--steps", type=int, default=default.steps,
                        help=f"training steps of every trained row (default {default.steps})")
    parser.add_argument("--config", metavar="YAML", help="training config for every trained row")
    parser.add_argument("--rows", default=",".join(ROW_KEYS),
                        help=f"comma-separated subset of {','.join(ROW_KEYS)} (default: all)")
    parser.add_argument("--joint-target", choices=("scratch", "2d"), default=None,
                        help="what the joint row's points align with: its own image encoder trained from scratch "
                             "with InfoNCE (scratch, default), or the same seed's 2d-row image encoder, frozen, "
                             "predicted by cosine as Concerto does with DINOv2 (2d)")
    parser.add_argument("--image-encoder", metavar="PATH",
                        help="a pre-trained image encoder as the 2d row (frozen, lifted, not trained) and as the "
                             "joint row's target (implies --joint-target 2d), as the paper does with DINOv2: a "
                             "concerto3d run or model folder with an image encoder, or a local Hugging Face folder")
    parser.add_argument("--probe-epochs", type=int, default=default.probe_epochs,
                        help=f"linear head epochs (default {default.probe_epochs})")
    parser.add_argument("--probe-lr", type=float, default=default.probe_lr,
                        help=f"linear head peak learning rate (default {default.probe_lr:g})")
    parser.add_argument("--probe-batch-size", type=int, default=None,
                        help="points per linear-head step (default: full batch, as concerto3d probe)")
    parser.add_argument("--max-points", type=int, default=None,
                        help="embed at most this many points per scene and interpolate the rest (default: all)")
    parser.add_argument("--probe-points", type=int, default=None,
                        help="fit the linear heads on at most this many labelled points per train scene (default: "
                             "all); val is always scored on every point")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when present), cpu, cuda: training (device=...) and the linear heads")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (the ablation's, and its training, embedding and lifting bars)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="training overrides for every trained row, e.g. batch_size=4 data.max_points=4096")


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: ``"3"`` is seeds 0, 1, 2; ``"2,3,4"`` (a comma anywhere) is that list, in that order.

    Raises:
        argparse.ArgumentTypeError: not a positive count or a list of distinct non-negative integers.
    """
    items = [t.strip() for t in str(text).split(",")]
    try:
        values = [int(t) for t in items if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a comma-separated list of seeds, got {text!r}") \
            from None
    if "," not in str(text):
        if len(values) != 1 or not 1 <= values[0] <= MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"expected a seed count in 1..{MAX_SEEDS}, got {text!r}")
        return list(range(values[0]))
    if (not values or min(values) < 0 or max(values) > MAX_SEED or len(set(values)) != len(values)
            or len(values) > MAX_SEEDS):
        raise argparse.ArgumentTypeError(f"expected at most {MAX_SEEDS} distinct seeds in 0..{MAX_SEED}, got "
                                         f"{text!r}")
    return values


MAX_SEEDS = 1000           # each seed trains every row: more is a typo, not an experiment
MAX_SEED = 2 ** 32 - 1     # numpy's seed range


def _seeds_text(seeds: list[int]) -> str:
    """``--seeds`` as typed back: a count when the seeds are 0..N-1, else the list."""
    return str(len(seeds)) if seeds == list(range(len(seeds))) else ",".join(map(str, seeds))


def run(args: argparse.Namespace) -> int:
    from concerto3d.device import resolve_device
    from concerto3d.evaluation.ablation import ordering_checks, run_ablation

    for item in args.overrides:
        if "=" not in item:
            raise InputError(f"expected key=value training overrides, got {item!r}")
        if item.split("=", 1)[0].strip() in ("objective.kind", "steps", "seed", "data.seed"):
            raise InputError(f"{item!r}: the ablation sets objective.kind, steps, seed and data.seed itself "
                             "(use --steps and --seeds)")
    if args.image_encoder is not None and args.joint_target == "scratch":
        raise InputError("--image-encoder is the joint row's target (--joint-target 2d); it cannot be combined "
                         "with --joint-target scratch")
    joint_target = args.joint_target or "scratch"
    device = resolve_device(args.device)
    overrides = list(args.overrides)
    if args.device != "auto":
        overrides.append(f"device={device.type}")
    settings = AblationSettings(steps=args.steps, seeds=list(args.seeds), overrides=overrides,
                                config=args.config, probe_epochs=args.probe_epochs, probe_lr=args.probe_lr,
                                probe_batch_size=args.probe_batch_size,
                                max_points=args.max_points, probe_points=args.probe_points,
                                rows=[r.strip() for r in args.rows.split(",") if r.strip()],
                                joint_target=joint_target, image_encoder=args.image_encoder)
    command = _command_line(args)
    stats = run_ablation(args.data, args.out, settings, device=device, progress=not args.no_progress,
                         command=command)
    out = Path(args.out)
    print(f"{'row':<8} {'mIoU %':>14}  seeds")
    for s in stats:
        print(f"{s.key:<8} {100 * s.miou_mean:6.1f} ± {100 * s.miou_std:4.1f}   {len(s.seeds)}")
    for c in ordering_checks(stats):
        print(f"{c.better} > {c.worse}: {100 * c.difference:+.1f} (spread {100 * c.spread:.1f}) "
              f"{'holds' if c.holds else 'does NOT hold'}")
    print(f"table: {out / 'results.md'}, {out / 'results.csv'}, {out / 'results.png'}")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this ablation (printed in results.md)."""
    parts = ["concerto3d", "ablate", args.data, "--out", args.out, "--seeds", _seeds_text(args.seeds), "--steps",
             str(args.steps)]
    defaults = AblationSettings()
    for flag, value, default in (("--config", args.config, None), ("--rows", args.rows, None),
                                 ("--probe-epochs", args.probe_epochs, defaults.probe_epochs),
                                 ("--probe-lr", args.probe_lr, defaults.probe_lr),
                                 ("--probe-batch-size", args.probe_batch_size, None),
                                 ("--max-points", args.max_points, None), ("--probe-points", args.probe_points, None),
                                 ("--joint-target", args.joint_target, None),
                                 ("--image-encoder", args.image_encoder, None), ("--device", args.device, "auto")):
        if value is not None and value != default and not (flag == "--rows" and value == ",".join(ROW_KEYS)):
            parts += [flag, str(value)]
    return " ".join(shlex.quote(str(p)) for p in parts + list(args.overrides))


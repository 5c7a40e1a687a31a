"""``concerto3d demo DIR``: the whole pipeline on generated scans, the README's first command.

It runs the same subcommands a user would type, in order, each through :func:`concerto3d.cli.main`:

    synth -> preprocess -> train (joint, a few minutes on CPU) -> probe -> visualize

and prints the probe's mIoU and where the panel PNG is. Every stage is skipped when its output is already there, so a
second run only redoes what is missing (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="folder for everything the demo writes (e.g. data/demo)")
    parser.add_argument("--scenes", type=int, default=4, help="synthetic scenes to generate (default 4)")
    parser.add_argument("--frames", type=int, default=24, help="frames rendered per scene (default 24)")
    parser.add_argument("--voxel", type=float, default=0.04,
                        help="point spacing in metres (default 0.04: a quarter of ScanNet's 2 cm points, for speed)")
    parser.add_argument("--steps", type=int, default=150, help="joint training steps (default 150)")
    parser.add_argument("--max-points", type=int, default=4096, help="points per training crop (default 4096)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="delete OUT first and redo every stage")


def _stage(name: str, argv: list[str], done: Path) -> None:
    from concerto3d.cli import main

    if done.exists():
        print(f"[demo] {name}: already done ({done})")
        return
    print(f"[demo] {name}: concerto3d {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = main(argv)
    if code != 0:
        raise SystemExit(f"[demo] {name} failed (exit {code})")
    print(f"[demo] {name}: {time.perf_counter() - start:.0f} s", flush=True)


def run(args: argparse.Namespace) -> int:
    from concerto3d.data.scene import split_names

    out: Path = args.out
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    scans, data, run_dir = out / "scans", out / "preprocessed", out / "run"
    probe_json, panel = out / "probe.json", out / "features.png"
    total = time.perf_counter()

    _stage("synth", ["synth", str(scans), "--scenes", str(args.scenes), "--frames", str(args.frames),
                     "--seed", str(args.seed)], scans / "scannetv2_val.txt")
    _stage("preprocess", ["preprocess", str(scans), str(data), "--frame-skip", "2", "--voxel", str(args.voxel)],
           data / "summary.json")
    _stage("train", ["train", str(data), "--out", str(run_dir), "--objective", "joint", "--steps", str(args.steps),
                     f"seed={args.seed}", f"data.max_points={args.max_points}",
                     f"data.min_points={min(1024, args.max_points // 2)}"], run_dir / "model" / "config.json")
    _stage("probe", ["probe", str(data), "--model", str(run_dir), "--out", str(probe_json)], probe_json)
    val = split_names(data, "val")
    _stage("visualize", ["visualize", str(data / val[0]), "--model", str(run_dir), "--out", str(panel)], panel)

    result = json.loads(probe_json.read_text())
    print(f"[demo] done in {time.perf_counter() - total:.0f} s")
    print(f"[demo] linear probe on {len(val)} val scene(s): mIoU {100 * result['miou']:.1f}, "
          f"overall accuracy {100 * result['overall_accuracy']:.1f}")
    print(f"[demo] feature panel: {panel}")
    return 0

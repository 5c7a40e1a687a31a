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

from concerto3d.errors import InputError

log = logging.getLogger(__name__)

MARKER = ".concerto3d-demo"  # written into the demo's folder: --fresh deletes only a folder that holds it
DEMO_OUTPUTS = ("scans", "preprocessed", "run", "probe.json", "features.png")  # what an earlier demo leaves


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="folder for everything the demo writes (e.g. data/demo)")
    parser.add_argument("--scenes", type=int, default=4, help="synthetic scenes to generate (default 4)")
    parser.add_argument("--frames", type=int, default=24, help="frames rendered per scene (default 24)")
    parser.add_argument("--voxel", type=float, default=0.04,
                        help="point spacing in metres (default 0.04: a quarter of ScanNet's 2 cm points, for speed)")
    parser.add_argument("--steps", type=int, default=150, help="joint training steps (default 150)")
    parser.add_argument("--max-points", type=int, default=4096, help="points per training crop (default 4096)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true",
                        help="delete OUT first and redo every stage (only a folder an earlier demo made: it holds "
                             f"{MARKER})")


def _stage(name: str, argv: list[str], done: Path) -> None:
    from concerto3d.cli import main

    if done.exists():
        print(f"[demo] {name}: already done ({done})")
        return
    print(f"[demo] {name}: concerto3d {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = main(argv)
    if code != 0:  # the stage printed its one-line reason; the demo stops with one more, exit 2
        raise InputError(f"the {name} stage failed (exit {code}); its reason is on the line above")
    print(f"[demo] {name}: {time.perf_counter() - start:.0f} s", flush=True)


def run(args: argparse.Namespace) -> int:
    from concerto3d.data.scene import split_names
    from concerto3d.io.paths import ensure_output_dir

    out: Path = args.out
    if args.fresh and out.exists():
        if not (out / MARKER).is_file():
            raise InputError(f"--fresh deletes only a folder an earlier demo made (one that holds {MARKER}); this "
                             "one does not: give a new folder, or delete it yourself", out)
        shutil.rmtree(out)
    if out.exists() and not out.is_dir():
        raise InputError("expected a folder for the demo's output, found a file", out)
    if out.is_dir() and not (out / MARKER).is_file():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in DEMO_OUTPUTS)
        if foreign:  # the demo writes only into a new, empty or demo-made folder
            raise InputError(f"holds files the demo did not make (e.g. {foreign[0]!r}); give a new or empty folder",
                             out)
    ensure_output_dir(out, "demo folder")
    if not (out / MARKER).is_file():
        (out / MARKER).write_text("made by concerto3d demo; `concerto3d demo OUT --fresh` may delete this folder\n")
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

"""``concerto3d synth OUT --scenes N --frames F --seed S``: write synthetic ScanNet-layout scans."""

from __future__ import annotations

import argparse
import os

from concerto3d.errors import InputError


def _size(text: str) -> tuple[int, int]:
    """'1296x968' -> (1296, 968)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"image size must be at least 8x8, got {text!r}")
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output folder (gets scans/, the label table and the split lists)")
    parser.add_argument("--scenes", type=int, default=4, help="number of scenes (default 4)")
    parser.add_argument("--frames", type=int, default=20, help="frames per scene (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed; the same arguments give the same files")
    parser.add_argument("--color-size", type=_size, default=(1296, 968), metavar="WxH",
                        help="colour image size (default 1296x968, as ScanNet)")
    parser.add_argument("--depth-size", type=_size, default=(640, 480), metavar="WxH",
                        help="depth image size (default 640x480, as ScanNet)")
    parser.add_argument("--workers", type=int, default=1, help="scenes generated in parallel (default 1)")
    parser.add_argument("--full-mesh", action="store_true",
                        help="write every surface of each room; by default the mesh holds only what the frames saw, "
                             "as a reconstruction from them would")


def run(args: argparse.Namespace) -> int:
    from concerto3d.synth.writer import generate_dataset

    # upper bounds: a value past them is a typo that would render for days or start a process per core of a
    # thousand machines, not a dataset
    for flag, value, most in (("--scenes", args.scenes, 100_000), ("--frames", args.frames, 100_000),
                              ("--workers", args.workers, 256)):
        if not 1 <= value <= most:
            raise InputError(f"{flag} must be in 1..{most}, got {value}")
    if args.seed < 0:
        raise InputError(f"--seed must be non-negative, got {args.seed}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError("output must be a folder, found a file", args.out)
    summary = generate_dataset(args.out, args.scenes, args.frames, args.seed, color_size=args.color_size,
                               depth_size=args.depth_size, workers=args.workers, full_mesh=args.full_mesh)
    print(f"synth: {len(summary['scenes'])} scenes ({len(summary['train'])} train, {len(summary['val'])} val), "
          f"{summary['frames']} frames, {summary['vertices'] / 1e6:.2f} M vertices "
          f"({100 * summary['observed']:.0f} % of the rooms' surfaces seen), "
          f"{len(summary['categories'])} categories in {summary['seconds']:.1f} s "
          f"({summary['seconds_per_frame']:.2f} s/frame rendering) -> {summary['out']}")
    return 0

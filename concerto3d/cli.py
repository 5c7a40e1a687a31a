"""The ``concerto3d`` command: one entry point, one subcommand per job.

Each subcommand lives in the package folder that does the work, as a module with two functions::

    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int | None

The modules are imported only when their subcommand runs, so ``concerto3d --help`` stays fast and a heavy import
(torch, open3d) is paid only by the job that needs it. Errors the user caused (:class:`Concerto3DError`) print one
line and exit with status 2, without a traceback; so does a full disk (or file size limit, or read-only file system)
in any write.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import sys

from concerto3d import __version__
from concerto3d.errors import Concerto3DError
from concerto3d.io.paths import output_write_error

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("concerto3d.synth.command", "generate ScanNet-layout synthetic scans with labels"),
    "preprocess": ("concerto3d.data.command", "scans or RGB-D folders -> per-scene arrays, frames, correspondences"),
    "train": ("concerto3d.training.command", "joint 2D-3D pre-training (one process, or DDP under torchrun)"),
    "probe": ("concerto3d.evaluation.probe_command", "frozen point features -> linear head -> mIoU"),
    "ablate": ("concerto3d.evaluation.ablation.command", "the Concerto table: random, 2D, 3D, concat, joint"),
    "visualize": ("concerto3d.visualization.command", "PCA colours and similarity of point features (PNG/PLY/window)"),
    "embed": ("concerto3d.visualization.embed_command", "per-point features for your own point cloud"),
    "demo": ("concerto3d.demo", "the whole pipeline on generated scans (what the README's first command runs)"),
}


def _load(name: str):
    module, _ = COMMANDS[name]
    return importlib.import_module(module)


def accept_trailing_overrides(parser: argparse.ArgumentParser) -> None:
    """Let ``key=value`` overrides stand anywhere, also after options (``DATA --out RUN --steps 9 optim.lr=1e-3``).

    argparse fills a positional at its first occurrence, so overrides written after an option come back as
    unrecognised arguments. This parser's ``parse_known_args`` (what the top-level parser calls for a subcommand)
    moves them back into ``args.overrides``. Applied to every subcommand that has an ``overrides`` positional.
    """
    parse_known_args = parser.parse_known_args

    def parse(args=None, namespace=None):
        namespace, extras = parse_known_args(args, namespace)
        overrides = [a for a in extras if "=" in a and not a.startswith("-")]
        namespace.overrides = list(getattr(namespace, "overrides", None) or []) + overrides
        return namespace, [a for a in extras if a not in overrides]

    parser.parse_known_args = parse


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="concerto3d", description="Joint 2D-3D self-supervised learning on indoor RGB-D scans.")
    parser.add_argument("--version", action="version", version=f"concerto3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported; the others show their one-line help.
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).add_arguments(p)
            if any(action.dest == "overrides" for action in p._actions):
                accept_trailing_overrides(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
    except ImportError as err:  # a missing optional dependency of one subcommand
        print(f"concerto3d: error: {err}", file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    if any(not a.strip() for a in argv):  # an unset shell variable: as a path, "" would mean the current folder
        print(f"concerto3d {args.command}: error: expected a value, got an empty argument", file=sys.stderr)
        return 2
    for name, value in vars(args).items():  # NaN or infinity is never a meaningful option value
        if isinstance(value, float) and not math.isfinite(value):
            print(f"concerto3d {args.command}: error: --{name.replace('_', '-')}: expected a finite number, got "
                  f"{value}", file=sys.stderr)
            return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        code = _load(args.command).run(args)
    except Concerto3DError as err:
        print(f"concerto3d {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"concerto3d {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, RuntimeError) as err:  # a full disk in a write that no step turned into its own error
        full = output_write_error(err, None)
        if full is None and isinstance(err, OSError) and err.filename is not None:
            # a path the user gave that the system refuses (a name over 255 bytes, a component that is a file)
            full = f"{err.filename}: {err.strerror or type(err).__name__}"
        if full is None:
            raise
        print(f"concerto3d {args.command}: error: {full}", file=sys.stderr)
        return 2
    return int(code or 0)

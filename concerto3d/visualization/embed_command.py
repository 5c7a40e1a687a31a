"""``concerto3d embed INPUT --model RUN --out FEATURES.npy``: per-point features for your own point cloud.

INPUT is any point cloud :func:`concerto3d.io.ply.read_point_cloud` reads (PLY, PCD, XYZ-style text), with or
without colours and normals: a missing cue is given to the model as zeros, as training gives a view whose colours or
normals were dropped. The trained point encoder embeds the cloud in spatial tiles of at most ``--tile-points``
points (``PretrainedModel.embed``), so memory stays bounded whatever the cloud's size, and FEATURES.npy holds one
float32 row per input point, in the input's order: shape (N, C).

Python API: ``load_model(RUN).embed(points, colors=None, normals=None)`` (``concerto3d.inference``).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from concerto3d.errors import InputError
from concerto3d.io.paths import ensure_output_file

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from concerto3d.inference import DEFAULT_TILE_MARGIN, DEFAULT_TILE_POINTS

    parser.add_argument("input", metavar="INPUT", help="point cloud: .ply, .pcd, .xyz/.txt/.pts, .xyzn, .xyzrgb")
    parser.add_argument("--model", metavar="RUN", required=True, help="trained run folder (RUN/model/...)")
    parser.add_argument("--out", metavar="FEATURES.npy", required=True,
                        help="write the (N, C) float32 features here, one row per input point")
    parser.add_argument("--tile-points", type=int, default=DEFAULT_TILE_POINTS,
                        help=f"most points encoded at once; larger clouds are cut into spatial tiles "
                        f"(default {DEFAULT_TILE_POINTS})")
    parser.add_argument("--margin", type=float, default=DEFAULT_TILE_MARGIN,
                        help=f"metres of context around each tile (default {DEFAULT_TILE_MARGIN})")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")


def check_arguments(args: argparse.Namespace) -> Path:
    """The output path after checking the arguments that need no file: raises :class:`InputError`."""
    out = Path(args.out)
    if out.suffix.lower() != ".npy":
        raise InputError(f"--out: expected a .npy file name, got {args.out!r}")
    if args.tile_points < 1024:
        raise InputError(f"--tile-points: expected at least 1024, got {args.tile_points}")
    if not args.margin >= 0:
        raise InputError(f"--margin: expected metres >= 0, got {args.margin}")
    return ensure_output_file(out)


def run(args: argparse.Namespace) -> int:
    from concerto3d.device import resolve_device
    from concerto3d.io.atomic import atomic_write
    from concerto3d.io.ply import read_point_cloud
    from concerto3d.inference import load_model

    out = check_arguments(args)
    device = resolve_device(args.device)
    xyz, colors, normals = read_point_cloud(args.input)
    model = load_model(args.model, device=device)
    if model.point_encoder is None:
        raise InputError(f"the model's {model.config.get('objective')} objective has no point encoder; embed needs "
                         "a joint or 3d run", args.model)
    missing = [name for name, arr in (("colours", colors), ("normals", normals)) if arr is None]
    log.info("%s: %d points%s", args.input, len(xyz), f" without {' and '.join(missing)}" if missing else "")
    start = time.perf_counter()
    features = model.embed(xyz, colors=colors, normals=normals, tile_points=args.tile_points, margin=args.margin)
    seconds = time.perf_counter() - start
    atomic_write(out, lambda fh: np.save(fh, features))  # a reader never sees half a file
    print(f"{out}: {features.shape[0]} x {features.shape[1]} float32 features "
          f"({len(xyz) / max(seconds, 1e-9):.0f} points/s on {device})")
    return 0

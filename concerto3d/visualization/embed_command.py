"""``concerto3d embed INPUT --model RUN --out FEATURES.npy``: per-point features for your own point cloud.

INPUT is any point cloud :func:`concerto3d.io.ply.read_point_cloud` reads (PLY, PCD, XYZ-style text), with or
without colours and normals. Missing normals are estimated (Open3D's local PCA, oriented towards the cloud's centre,
as an indoor scan's surfaces face the room) when the model was trained with normals (``--missing-normals zeros``
gives zeros instead, as training gives a view whose normals were dropped); missing colours are zeros, and a warning
says so when the model was trained with colour. The trained point encoder embeds the cloud in spatial tiles of at most ``--tile-points``
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
    parser.add_argument("--missing-normals", choices=("estimate", "zeros"), default="estimate",
                        help="a cloud without normals, for a model trained with them: estimate them (default) or "
                        "give zeros")
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
    from concerto3d.inference import NORMAL_RADIUS, cloud_normals, load_model

    out = check_arguments(args)
    device = resolve_device(args.device)
    xyz, colors, normals = read_point_cloud(args.input)
    model = load_model(args.model, device=device)
    if model.point_encoder is None:
        raise InputError(f"the model's {model.config.get('objective')} objective has no point encoder; embed needs "
                         "a joint or 3d run", args.model)
    missing = [name for name, arr in (("colours", colors), ("normals", normals)) if arr is None]
    log.info("%s: %d points%s", args.input, len(xyz), f" without {' and '.join(missing)}" if missing else "")
    trained_with = model.config.get("input", {})
    if normals is None and trained_with.get("use_normal", True) and args.missing_normals == "estimate":
        normals = cloud_normals(xyz)
        log.info("normals estimated (Open3D, %.2f m radius, facing the cloud's centre): the model was trained with "
                 "normals; --missing-normals zeros gives zeros instead", NORMAL_RADIUS)
    if colors is None and trained_with.get("use_color", True):
        log.warning("the model was trained with colour and %s has none: its colour input is zeros, as for a view "
                    "whose colour was dropped in training; features of an uncoloured cloud are weaker", args.input)
    start = time.perf_counter()
    features = model.embed(xyz, colors=colors, normals=normals, tile_points=args.tile_points, margin=args.margin)
    seconds = time.perf_counter() - start
    atomic_write(out, lambda fh: np.save(fh, features))  # a reader never sees half a file
    print(f"{out}: {features.shape[0]} x {features.shape[1]} float32 features "
          f"({len(xyz) / max(seconds, 1e-9):.0f} points/s on {device})")
    return 0

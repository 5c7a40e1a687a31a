"""``concerto3d preprocess SCANS OUT``: ScanNet scans, Pointcept's preprocessed layout or RGB-D folders -> per-scene
arrays, frames, correspondences.

The work is done by :func:`concerto3d.data.preprocess.preprocess`; this module only reads the command line. The
defaults shown and used are those of :class:`concerto3d.data.preprocess_options.PreprocessOptions`.
"""

from __future__ import annotations

import argparse

from concerto3d.data.preprocess_options import PreprocessOptions
from concerto3d.errors import InputError


def parse_image_size(text: str) -> tuple[int, int]:
    """``"240x320"`` (height x width) -> (240, 320); raises argparse.ArgumentTypeError otherwise."""
    parts = text.lower().split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 240x320, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive HxW, got {text!r}")
    return h, w


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from concerto3d.data.up_axis import UP_CHOICES

    default = PreprocessOptions()
    height, width = default.image_size
    parser.add_argument("scans", metavar="SCANS",
                        help="a ScanNet root (with scans/), one scene folder, the root of Pointcept's preprocessed "
                             "ScanNet (<split>/<scene>/coord.npy, images/<split>/<scene>/), an RGB-D folder or a "
                             "folder of them")
    parser.add_argument("out", metavar="OUT", help="output folder (finished scenes in it are kept and skipped)")
    parser.add_argument("--frame-skip", type=_positive_int, default=default.frame_skip, metavar="K",
                        help=f"keep every K-th frame (default: {default.frame_skip})")
    parser.add_argument("--voxel", type=_positive_float, default=default.voxel, metavar="M",
                        help=f"voxel size in metres for down-sampling and fusion (default: {default.voxel})")
    parser.add_argument("--workers", type=_positive_int, default=1, metavar="W",
                        help="scenes processed in parallel (default: 1)")
    parser.add_argument("--image-size", type=parse_image_size, default=default.image_size, metavar="HxW",
                        help=f"size of the written images, height x width (default: {height}x{width})")
    parser.add_argument("--patch-size", type=_positive_int, default=default.patch_size, metavar="P",
                        help=f"the image encoder's patch size; must divide the image size (default: "
                             f"{default.patch_size})")
    parser.add_argument("--source", choices=("auto", "scannet", "pointcept", "rgbd"), default="auto",
                        help="input kind (default: auto-detect)")
    parser.add_argument("--rgbd-preset", choices=("7scenes", "tum"), default=None,
                        help="file layout of a generic RGB-D folder (data/README.md section 2)")
    parser.add_argument("--depth-scale", type=_positive_float, default=None, metavar="S",
                        help="raw depth units per metre of an RGB-D folder (default: the preset's)")
    parser.add_argument("--max-frames", type=_positive_int, default=default.max_frames, metavar="N",
                        help="keep at most N frames per scene")
    parser.add_argument("--abs-tol", type=float, default=default.abs_tol, metavar="M",
                        help=f"depth test: absolute tolerance in metres (default: {default.abs_tol})")
    parser.add_argument("--rel-tol", type=float, default=default.rel_tol, metavar="R",
                        help=f"depth test: tolerance as a fraction of the measured depth (default: "
                             f"{default.rel_tol})")
    parser.add_argument("--up", choices=UP_CHOICES, default=default.up,
                        help="which axis of the input world is up; the scene is stored with it as +z. auto "
                             "(default): estimated for RGB-D folders (cameras' up, refined by level surfaces), "
                             "ScanNet's z kept")
    parser.add_argument("--scene-name", metavar="NAME",
                        help="name of the scene when SCANS is one (default: its folder's name)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from concerto3d.data.preprocess import preprocess

    if args.abs_tol < 0 or args.rel_tol < 0:
        raise InputError(f"--abs-tol and --rel-tol must be >= 0, got {args.abs_tol} and {args.rel_tol}")
    options = PreprocessOptions(frame_skip=args.frame_skip, voxel=args.voxel, image_size=args.image_size,
                                patch_size=args.patch_size, max_frames=args.max_frames, abs_tol=args.abs_tol,
                                rel_tol=args.rel_tol, up=args.up)
    preprocess(args.scans, args.out, options, workers=args.workers, source=args.source,
               rgbd_preset=args.rgbd_preset, depth_scale=args.depth_scale, progress=not args.no_progress,
               scene_name=args.scene_name)
    return 0

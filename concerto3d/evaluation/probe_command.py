"""``concerto3d probe DATA --model RUN [--out JSON]``: frozen point features -> linear head -> mIoU.

Recipe: (1) load the trained model, freeze its point encoder; (2) embed every scene of the train split once, keeping
the features in memory; (3) train one ``nn.Linear`` on the standardised train features with cross-entropy (ignore
index -1); (4) embed the val scenes one at a time, accumulate one confusion matrix over the whole val split and report
per-class IoU, mIoU over the ScanNet-20 classes present in the val ground truth, and overall accuracy, as a table, as
JSON, and (unless ``--no-card``) as a row of the model card's probe block (README.md of the model folder). This module
is the command line only; the probe itself is :func:`concerto3d.evaluation.probe.run_probe`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from concerto3d.errors import InputError
from concerto3d.labels import SCANNET20_NAMES

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="preprocessed dataset (concerto3d preprocess output) with "
                        "splits/train.txt and splits/val.txt")
    parser.add_argument("--model", metavar="RUN", required=True, help="trained run folder (RUN/model/...)")
    parser.add_argument("--out", metavar="JSON", help="write the metrics here")
    parser.add_argument("--epochs", type=int, default=20, help="linear head epochs (default 20)")
    parser.add_argument("--lr", type=float, default=1e-2, help="peak learning rate, AdamW, cosine (default 1e-2)")
    parser.add_argument("--batch-size", type=int, default=8192,
                        help="points per step (default 8192; 0 = full batch)")
    parser.add_argument("--max-points", type=int, default=None,
                        help="embed at most this many points per scene and interpolate the rest (default: all)")
    parser.add_argument("--train-points", type=int, default=None, metavar="P",
                        help="cache at most P labelled points of each train scene for the head (default: all)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the head's minibatch order and any point subsets (default 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-card", action="store_true",
                        help="leave the model folder's README.md model card as it is (by default the probe's mIoU "
                        "goes into its marked probe block; nothing else in the card changes)")


def run(args: argparse.Namespace) -> int:
    from concerto3d.device import resolve_device
    from concerto3d.evaluation.metrics import format_iou_table, json_safe
    from concerto3d.evaluation.probe import run_probe
    from concerto3d.io.atomic import atomic_write_json
    from concerto3d.io.paths import ensure_output_file

    data_dir = Path(args.data)
    if not data_dir.is_dir():
        raise InputError("not a folder; expected a preprocessed dataset (concerto3d preprocess OUT)", data_dir)
    if args.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size < 0:
        raise InputError(f"--batch-size must be >= 0, got {args.batch_size}")
    for flag, value in (("--max-points", args.max_points), ("--train-points", args.train_points)):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be >= 1, got {value}")
    out = ensure_output_file(args.out) if args.out else None  # before the work, not after it
    device = resolve_device(args.device)
    from concerto3d.inference import load_model

    model = load_model(args.model, device=device)
    log.info("probing %s on %s (head on %s, %d epochs, seed %d)", args.model, data_dir, device, args.epochs,
             args.seed)
    summary, result = run_probe(model, data_dir, epochs=args.epochs, lr=args.lr, seed=args.seed,
                                batch_size=args.batch_size or None, max_points=args.max_points, device=device,
                                train_points_per_scene=args.train_points)
    summary["model"] = str(args.model)
    print(format_iou_table(result.confusion, SCANNET20_NAMES))
    if out is not None:
        atomic_write_json(out, json_safe(summary))
        log.info("wrote %s", out)
    if not args.no_card and getattr(model, "path", None) is not None:
        _record_in_card(model.path, data_dir, summary)
    return 0


def _record_in_card(folder: Path, data_dir: Path, summary: dict) -> None:
    """The probe's row in the model card; a card that cannot be written costs a warning, not the result."""
    from concerto3d.inference.model_folder import record_probe

    try:
        if record_probe(folder, data_dir, summary):
            log.info("recorded the probe result in %s", Path(folder) / "README.md")
    except OSError as err:
        log.warning("could not record the probe result in the model card of %s (%s)", folder, err)

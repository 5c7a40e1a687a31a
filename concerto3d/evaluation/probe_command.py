"""``concerto3d probe DATA --model RUN [--out JSON]``: frozen point features -> linear head -> mIoU.

Recipe: (1) load the trained model, freeze its point encoder; (2) embed every scene of the train and val splits once,
keeping the features in memory; (3) train one ``nn.Linear`` on the standardised train features with cross-entropy
(ignore index -1); (4) accumulate one confusion matrix over the whole val split and report per-class IoU, mIoU over
the ScanNet-20 classes present in the val ground truth, and overall accuracy, as a table and as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from concerto3d.errors import InputError
from concerto3d.labels import IGNORE_INDEX, NUM_CLASSES_20, SCANNET20_NAMES

if TYPE_CHECKING:
    from concerto3d.evaluation.linear_probe import ProbeResult

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
    parser.add_argument("--seed", type=int, default=0, help="seeds the head's minibatch order (default 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")


def resolve_device(name: str):
    """``auto`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device: expected auto, cpu or cuda[:i], got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


def embed_split(model, scenes: list[Path], max_points: int | None, seed: int, desc: str):
    """Features and labels of each scene of a split: two lists of (N_i, C) float32 and (N_i,) int64 arrays."""
    from tqdm import tqdm

    from concerto3d.evaluation.features import extract_point_features

    feats, labels = [], []
    for scene_dir in tqdm(scenes, desc=desc, unit="scene"):
        sf = extract_point_features(model, scene_dir, max_points=max_points, seed=seed)
        feats.append(sf.features)
        labels.append(sf.labels)
    return feats, labels


def run_probe(model, data_dir, epochs: int = 20, lr: float = 1e-2, seed: int = 0, batch_size: int | None = 8192,
              max_points: int | None = None, device=None) -> tuple[dict, ProbeResult]:
    """Probe a loaded model on a preprocessed dataset.

    Args:
        model: anything with ``.embed(points, colors, normals) -> (N, C)`` (and usually ``.point_encoder``).
        data_dir: preprocessed dataset with ``splits/train.txt`` and ``splits/val.txt``.
        epochs, lr, seed, batch_size: the linear head's training (see ``train_linear_probe``).
        max_points: per-scene embedding cap (the rest interpolated).
        device: where the head trains; default CPU.
    Returns:
        (summary dict ready for JSON, :class:`ProbeResult` on val).
    """
    from concerto3d.evaluation.features import freeze, read_split
    from concerto3d.evaluation.linear_probe import evaluate_probe, train_linear_probe

    train_scenes = read_split(data_dir, "train")
    val_scenes = read_split(data_dir, "val")
    freeze(model)
    t0 = time.perf_counter()
    train_x, train_y = embed_split(model, train_scenes, max_points, seed, "embed train")
    val_x, val_y = embed_split(model, val_scenes, max_points, seed, "embed val")
    t_embed = time.perf_counter() - t0
    dims = {x.shape[1] for x in train_x + val_x}
    if len(dims) != 1:
        raise ValueError(f"the model returned features of different widths across scenes: {sorted(dims)}")
    n_train_labelled = int(sum((y != IGNORE_INDEX).sum() for y in train_y))
    if n_train_labelled == 0:
        raise InputError("the train split has no labelled points (segment20.npy all -1)", Path(data_dir))
    if int(sum((y != IGNORE_INDEX).sum() for y in val_y)) == 0:
        raise InputError("the val split has no labelled points (segment20.npy all -1)", Path(data_dir))

    t0 = time.perf_counter()
    probe = train_linear_probe(np.concatenate(train_x), np.concatenate(train_y), NUM_CLASSES_20, epochs=epochs,
                               lr=lr, seed=seed, batch_size=batch_size, device=device)
    t_train = time.perf_counter() - t0
    train_result = evaluate_probe(probe, train_x, train_y, NUM_CLASSES_20)
    result = evaluate_probe(probe, val_x, val_y, NUM_CLASSES_20)
    summary = {
        "data": str(data_dir),
        "split": "val",
        **result.to_dict(SCANNET20_NAMES),
        "train_miou": train_result.miou,
        "train_overall_accuracy": train_result.overall_accuracy,
        "feature_dim": dims.pop(),
        "scenes": {"train": len(train_scenes), "val": len(val_scenes)},
        "labelled_points": {"train": n_train_labelled, "val": int(result.confusion.sum())},
        "head": {"epochs": epochs, "lr": lr, "seed": seed, "batch_size": batch_size, "optimizer": "adamw"},
        "seconds": {"embed": round(t_embed, 2), "train_head": round(t_train, 2)},
    }
    return summary, result


def _json_safe(obj):
    """NaN/inf floats -> None, numpy scalars -> Python numbers, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def run(args: argparse.Namespace) -> int:
    from concerto3d.evaluation.metrics import format_iou_table

    data_dir = Path(args.data)
    if not data_dir.is_dir():
        raise InputError("not a folder; expected a preprocessed dataset (concerto3d preprocess OUT)", data_dir)
    if args.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size < 0 or (args.max_points is not None and args.max_points < 1):
        raise InputError(f"--batch-size must be >= 0 and --max-points >= 1, got {args.batch_size} and "
                         f"{args.max_points}")
    device = resolve_device(args.device)
    from concerto3d.models.pretrained import load_model

    model = load_model(args.model, device=device)
    log.info("probing %s on %s (head on %s, %d epochs, seed %d)", args.model, data_dir, device, args.epochs,
             args.seed)
    summary, result = run_probe(model, data_dir, epochs=args.epochs, lr=args.lr, seed=args.seed,
                                batch_size=args.batch_size or None, max_points=args.max_points, device=device)
    summary["model"] = str(args.model)
    print(format_iou_table(result.confusion, SCANNET20_NAMES))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_json_safe(summary), indent=2, allow_nan=False) + "\n")
        log.info("wrote %s", out)
    return 0

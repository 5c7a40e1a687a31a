"""``concerto3d probe DATA --model RUN [--out JSON]``: frozen point features -> linear head -> mIoU.

Recipe: (1) load the trained model, freeze its point encoder; (2) embed every scene of the train split once, keeping
the features in memory; (3) train one ``nn.Linear`` on the standardised train features with cross-entropy (ignore
index -1); (4) embed the val scenes one at a time, accumulate one confusion matrix over the whole val split and report
per-class IoU, mIoU over the ScanNet-20 classes present in the val ground truth, and overall accuracy, as a table and
as JSON.
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
from concerto3d.evaluation.metrics import json_safe

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
    parser.add_argument("--train-points", type=int, default=None, metavar="P",
                        help="cache at most P labelled points of each train scene for the head (default: all)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the head's minibatch order and any point subsets (default 0)")
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


def embed_split(model, scenes: list[Path], max_points: int | None, seed: int, desc: str,
                labelled_per_scene: int | None = None, progress: bool = True):
    """Features and labels of each scene of a split: two lists of (N_i, C) float32 and (N_i,) int64 arrays.

    With ``labelled_per_scene``, each scene keeps only its labelled points, at most that many (a random subset
    seeded by ``seed`` and the scene's position), which bounds the memory of the cached training set.
    """
    from tqdm import tqdm

    from concerto3d.evaluation.features import extract_point_features

    feats, labels = [], []
    for i, scene_dir in enumerate(tqdm(scenes, desc=desc, unit="scene", disable=not progress)):
        sf = extract_point_features(model, scene_dir, max_points=max_points, seed=seed)
        x, y = sf.features, sf.labels
        if labelled_per_scene is not None:
            keep = np.flatnonzero(y != IGNORE_INDEX)
            if len(keep) > labelled_per_scene:
                keep = np.sort(np.random.default_rng([seed, i]).choice(keep, labelled_per_scene, replace=False))
            x, y = x[keep], y[keep]
        feats.append(x)
        labels.append(y)
    return feats, labels


def _labelled_points(scene_dir: Path) -> int:
    path = scene_dir / "segment20.npy"
    return int((np.load(path, allow_pickle=False) != IGNORE_INDEX).sum()) if path.is_file() else 0


def run_probe(model, data_dir, epochs: int = 20, lr: float = 1e-2, seed: int = 0, batch_size: int | None = 8192,
              max_points: int | None = None, device=None,
              train_points_per_scene: int | None = None) -> tuple[dict, ProbeResult]:
    """Probe a loaded model on a preprocessed dataset.

    The train split's features are embedded once and cached in memory; the val split is streamed (embedded, predicted
    and added to one confusion matrix a scene at a time), so memory grows with the train split only.

    Args:
        model: anything with ``.embed(points, colors, normals) -> (N, C)`` (and usually ``.point_encoder``).
        data_dir: preprocessed dataset with ``splits/train.txt`` and ``splits/val.txt``.
        epochs, lr, seed, batch_size: the linear head's training (see ``train_linear_probe``).
        max_points: per-scene embedding cap (the rest interpolated).
        device: where the head trains; default CPU.
        train_points_per_scene: cache at most this many labelled points of each train scene (default: all).
    Returns:
        (summary dict ready for JSON, :class:`ProbeResult` on val).
    """
    from tqdm import tqdm

    from concerto3d.evaluation.features import extract_point_features, freeze, read_split
    from concerto3d.evaluation.linear_probe import ProbeResult, evaluate_probe, predict_probe, train_linear_probe
    from concerto3d.evaluation.metrics import confusion_matrix

    train_scenes = read_split(data_dir, "train")
    val_scenes = read_split(data_dir, "val")
    if sum(_labelled_points(s) for s in val_scenes) == 0:  # fail before the slow part
        raise InputError("the val split has no labelled points (segment20.npy all -1)", Path(data_dir))
    freeze(model)

    # 1. train features: one pass of the frozen encoder, cached
    t0 = time.perf_counter()
    train_x, train_y = embed_split(model, train_scenes, max_points, seed, "embed train",
                                   labelled_per_scene=train_points_per_scene)
    t_embed = time.perf_counter() - t0
    dims = {x.shape[1] for x in train_x}
    if len(dims) != 1:
        raise ValueError(f"the model returned features of different widths across scenes: {sorted(dims)}")
    n_train_labelled = int(sum((y != IGNORE_INDEX).sum() for y in train_y))
    if n_train_labelled == 0:
        raise InputError("the train split has no labelled points (segment20.npy all -1)", Path(data_dir))

    # 2. the linear head
    t0 = time.perf_counter()
    probe = train_linear_probe(np.concatenate(train_x), np.concatenate(train_y), NUM_CLASSES_20, epochs=epochs,
                               lr=lr, seed=seed, batch_size=batch_size, device=device)
    t_train = time.perf_counter() - t0
    train_result = evaluate_probe(probe, train_x, train_y, NUM_CLASSES_20)
    del train_x

    # 3. val: streamed into one confusion matrix over the whole split
    t0 = time.perf_counter()
    conf = np.zeros((NUM_CLASSES_20, NUM_CLASSES_20), dtype=np.int64)
    for scene_dir in tqdm(val_scenes, desc="embed + predict val", unit="scene"):
        sf = extract_point_features(model, scene_dir, max_points=max_points, seed=seed)
        conf += confusion_matrix(predict_probe(probe, sf.features), sf.labels, NUM_CLASSES_20)
    result = ProbeResult(conf)
    t_val = time.perf_counter() - t0
    summary = {
        "data": str(data_dir),
        "split": "val",
        **result.to_dict(SCANNET20_NAMES),
        "train_miou": train_result.miou,
        "train_overall_accuracy": train_result.overall_accuracy,
        "feature_dim": dims.pop(),
        "scenes": {"train": len(train_scenes), "val": len(val_scenes)},
        "labelled_points": {"train": n_train_labelled, "val": int(result.confusion.sum())},
        "head": {"epochs": epochs, "lr": lr, "seed": seed, "batch_size": batch_size, "optimizer": "adamw",
                 "train_points_per_scene": train_points_per_scene},
        "seconds": {"embed_train": round(t_embed, 2), "train_head": round(t_train, 2), "val": round(t_val, 2)},
    }
    return summary, result



def run(args: argparse.Namespace) -> int:
    from concerto3d.evaluation.metrics import format_iou_table

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
    device = resolve_device(args.device)
    from concerto3d.models.pretrained import load_model

    model = load_model(args.model, device=device)
    log.info("probing %s on %s (head on %s, %d epochs, seed %d)", args.model, data_dir, device, args.epochs,
             args.seed)
    summary, result = run_probe(model, data_dir, epochs=args.epochs, lr=args.lr, seed=args.seed,
                                batch_size=args.batch_size or None, max_points=args.max_points, device=device,
                                train_points_per_scene=args.train_points)
    summary["model"] = str(args.model)
    print(format_iou_table(result.confusion, SCANNET20_NAMES))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n")
        log.info("wrote %s", out)
    return 0

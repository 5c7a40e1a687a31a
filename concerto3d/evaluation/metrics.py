"""Semantic segmentation metrics from one confusion matrix.

The benchmark mIoU is computed from intersections and unions accumulated over the *whole* validation split, not
averaged per scene: build one confusion matrix (add the per-scene matrices), then read every metric from it. A class
that never occurs in the ground truth has no IoU (``nan``) and is left out of the mean.

All functions are pure numpy; torch tensors are accepted (moved to the CPU first).
"""

from __future__ import annotations

import numpy as np

from concerto3d.labels import IGNORE_INDEX


def _as_int_array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"expected integer class indices for {name}, got dtype {x.dtype}")
    return x.reshape(-1)


def confusion_matrix(pred, target, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Count (ground truth, prediction) pairs.

    Args:
        pred: (N,) integer predicted classes in 0..num_classes-1.
        target: (N,) integer ground-truth classes in 0..num_classes-1, or ``ignore_index`` (those points are skipped).
        num_classes: K.
        ignore_index: target value that marks points without a label (-1 here, not PyTorch's -100).
    Returns:
        (K, K) int64 matrix; entry [t, p] = number of points of true class t predicted as p.
    """
    pred = _as_int_array(pred, "pred")
    target = _as_int_array(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same length, got {pred.shape[0]} and {target.shape[0]}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    for name, x in (("target", target), ("pred", pred)):
        if x.size and (x.min() < 0 or x.max() >= num_classes):
            raise ValueError(f"{name} values must lie in 0..{num_classes - 1} (or {ignore_index} in target), "
                             f"got range {x.min()}..{x.max()}")
    flat = target.astype(np.int64) * num_classes + pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _check_conf(conf) -> np.ndarray:
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"expected a square (K, K) confusion matrix, got shape {conf.shape}")
    return conf.astype(np.float64)


def iou_from_confusion(conf) -> np.ndarray:
    """Per-class intersection over union.

    Args:
        conf: (K, K) confusion matrix, [true, predicted].
    Returns:
        (K,) float64 IoU = TP / (TP + FP + FN); ``nan`` for a class absent from the ground truth (its row sums to 0),
        even if it was predicted, so that it does not enter the mean.
    """
    conf = _check_conf(conf)
    tp = np.diag(conf)
    gt = conf.sum(axis=1)
    union = gt + conf.sum(axis=0) - tp
    iou = np.full(conf.shape[0], np.nan)
    present = gt > 0
    iou[present] = tp[present] / union[present]
    return iou


def miou(conf) -> float:
    """Mean IoU over the classes present in the ground truth of ``conf`` ((K, K)); ``nan`` when none is."""
    iou = iou_from_confusion(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def overall_accuracy(conf) -> float:
    """Fraction of labelled points predicted correctly, from a (K, K) confusion matrix; ``nan`` when empty."""
    conf = _check_conf(conf)
    total = conf.sum()
    return float(np.trace(conf) / total) if total > 0 else float("nan")


def mean_class_accuracy(conf) -> float:
    """Mean over present classes of the per-class recall TP / (TP + FN), from a (K, K) confusion matrix."""
    conf = _check_conf(conf)
    gt = conf.sum(axis=1)
    present = gt > 0
    return float(np.mean(np.diag(conf)[present] / gt[present])) if present.any() else float("nan")


def format_iou_table(conf, class_names: tuple[str, ...] | list[str]) -> str:
    """A plain-text table of per-class IoU (classes absent from the ground truth shown as ``-``), then mIoU, mAcc
    and overall accuracy.

    Args:
        conf: (K, K) confusion matrix, [true, predicted].
        class_names: K names.
    """
    conf = _check_conf(conf)
    if len(class_names) != conf.shape[0]:
        raise ValueError(f"expected {conf.shape[0]} class names, got {len(class_names)}")
    iou = iou_from_confusion(conf)
    gt = conf.sum(axis=1).astype(np.int64)
    width = max(12, max(len(n) for n in class_names))
    lines = [f"{'class':<{width}}  {'IoU':>6}  {'points':>10}", "-" * (width + 20)]
    for name, value, count in zip(class_names, iou, gt):
        shown = "-" if np.isnan(value) else f"{100 * value:6.2f}"
        lines.append(f"{name:<{width}}  {shown:>6}  {count:>10d}")
    lines.append("-" * (width + 20))
    lines.append(f"{'mIoU':<{width}}  {100 * miou(conf):6.2f}  ({int(np.isfinite(iou).sum())} classes present)")
    lines.append(f"{'mAcc':<{width}}  {100 * mean_class_accuracy(conf):6.2f}")
    lines.append(f"{'overall acc':<{width}}  {100 * overall_accuracy(conf):6.2f}")
    return "\n".join(lines)


def json_safe(obj):
    """NaN/inf floats -> None, numpy scalars -> Python values, keys -> str, recursively (for strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj

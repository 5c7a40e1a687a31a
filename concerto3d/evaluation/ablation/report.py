"""The table of an ablation: mean and spread over seeds, the ordering checks, ``results.{csv,md,png}`` (pure
aggregation; files only in :func:`write_results` and :func:`load_probes`)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from concerto3d.evaluation.ablation.settings import PAPER_ORDER, ROWS, probe_path_of
from concerto3d.io.atomic import atomic_write, atomic_write_text
from concerto3d.labels import NUM_CLASSES_20, SCANNET20_NAMES

__all__ = ["mean_and_spread", "RowStats", "aggregate", "OrderingCheck", "ordering_checks", "write_results",
           "load_probes"]


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) of the finite values; (nan, nan) if none."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


@dataclass
class RowStats:
    """One row of the table, over the seeds that have finished.

    Attributes:
        key, label, paper_miou: from :class:`~concerto3d.evaluation.ablation.settings.Row`.
        seeds: the seeds aggregated.
        miou: per-seed val mIoU (fractions, 0..1), in ``seeds`` order.
        miou_mean, miou_std: their mean and sample standard deviation.
        oa_mean, oa_std: overall accuracy, the same way.
        iou_mean, iou_std: (20,) per-class IoU over seeds (nan where the class is absent from val).
    """

    key: str
    label: str
    paper_miou: float | None
    seeds: list[int]
    miou: list[float]
    miou_mean: float
    miou_std: float
    oa_mean: float
    oa_std: float
    iou_mean: np.ndarray
    iou_std: np.ndarray


def aggregate(probes: dict[str, dict[int, dict]]) -> list[RowStats]:
    """Mean and spread over seeds of each row's probe summaries.

    Args:
        probes: ``{row: {seed: summary}}`` with summaries as written by ``probe_features`` (``miou``,
            ``overall_accuracy``, ``iou`` {class name: value or None}).
    Returns:
        one :class:`RowStats` per row that has at least one seed, in table order.
    """
    stats = []
    for row in ROWS:
        per_seed = probes.get(row.key) or {}
        if not per_seed:
            continue
        seeds = sorted(per_seed)
        summaries = [per_seed[s] for s in seeds]
        miou = [float("nan") if s.get("miou") is None else float(s["miou"]) for s in summaries]
        m, sd = mean_and_spread(miou)
        oa, oa_sd = mean_and_spread([s.get("overall_accuracy") for s in summaries])
        iou = np.array([[np.nan if s["iou"].get(n) is None else s["iou"][n] for n in SCANNET20_NAMES]
                        for s in summaries], dtype=np.float64)
        per_class = [mean_and_spread(iou[:, c]) for c in range(NUM_CLASSES_20)]
        stats.append(RowStats(row.key, row.label, row.paper_miou, seeds, miou, m, sd, oa, oa_sd,
                              np.array([p[0] for p in per_class]), np.array([p[1] for p in per_class])))
    return stats


@dataclass
class OrderingCheck:
    """Whether ``better`` beats ``worse`` by more than the spread over seeds (the larger of the two stds)."""

    better: str
    worse: str
    difference: float
    spread: float
    holds: bool


def ordering_checks(stats: Sequence[RowStats], pairs: Sequence[tuple[str, str]] | None = None) -> list[OrderingCheck]:
    """Check the paper's claims on the table.

    Args:
        stats: rows from :func:`aggregate`.
        pairs: (better, worse) row keys; default: each neighbouring pair of the paper's ordering
            (:data:`~concerto3d.evaluation.ablation.settings.PAPER_ORDER`), plus joint > 3d, joint > 2d and
            joint > random, 3d > random (the self-supervised 3D objective teaches more than the architecture
            gives untrained), and supervised > joint, supervised > 3d (the ceiling is above the rows it bounds).
    Returns:
        one :class:`OrderingCheck` per pair whose rows are both present; ``holds`` when the mean difference
        exceeds the larger standard deviation of the two rows (and is positive).
    """
    if pairs is None:
        pairs = list(zip(PAPER_ORDER[:-1], PAPER_ORDER[1:])) + [("joint", "3d"), ("joint", "2d"), ("joint", "random"),
                                                                   ("3d", "random"), ("supervised", "joint"),
                                                                   ("supervised", "3d")]
    by_key = {s.key: s for s in stats}
    checks, seen = [], set()
    for better, worse in pairs:
        if (better, worse) in seen or better not in by_key or worse not in by_key:
            continue
        seen.add((better, worse))
        a, b = by_key[better], by_key[worse]
        diff = a.miou_mean - b.miou_mean
        spread = max(a.miou_std, b.miou_std)
        checks.append(OrderingCheck(better, worse, diff, spread, bool(diff > 0 and diff > spread)))
    return checks


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def _csv_text(stats: Sequence[RowStats], present: list[int]) -> str:
    """results.csv: one line per row, fractions (0..1)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["row", "label", "seeds", "miou_mean", "miou_std", "miou_per_seed", "oa_mean", "oa_std",
                "paper_miou"] + [f"iou_{SCANNET20_NAMES[c].replace(' ', '_')}" for c in present]
               + [f"iou_std_{SCANNET20_NAMES[c].replace(' ', '_')}" for c in present])
    for s in stats:
        w.writerow([s.key, s.label, len(s.seeds), f"{s.miou_mean:.6f}", f"{s.miou_std:.6f}",
                    ";".join(f"{m:.6f}" for m in s.miou), f"{s.oa_mean:.6f}", f"{s.oa_std:.6f}",
                    "" if s.paper_miou is None else s.paper_miou]
                   + [f"{s.iou_mean[c]:.6f}" for c in present] + [f"{s.iou_std[c]:.6f}" for c in present])
    return buf.getvalue()


def _markdown(stats: Sequence[RowStats], present: list[int], header: dict) -> str:
    """results.md: the command, the facts of the run, the table, the ordering checks, per-class IoU."""
    lines = ["# Concerto ablation: joint vs single-modality features (linear probe, val mIoU %)", ""]
    if header.get("command"):
        lines += ["Command:", "", "```", header["command"], "```", ""]
    for key in ("data", "machine", "wall_time"):
        if header.get(key):
            lines.append(f"- {key.replace('_', ' ')}: {header[key]}")
    if header.get("image_encoder"):
        lines.append(f"- image encoder: {header['image_encoder']}")
    if header.get("settings"):
        lines.append(f"- settings: `{json.dumps(header['settings'], sort_keys=True)}`")
    lines += ["", "| row | mIoU (mean ± std) | per seed | overall acc. | paper (ScanNet) |",
              "| --- | --- | --- | --- | --- |"]
    for s in stats:
        lines.append(f"| {s.label} | {_pct(s.miou_mean)} ± {_pct(s.miou_std)} | "
                     f"{', '.join(_pct(m) for m in s.miou)} (seeds {', '.join(map(str, s.seeds))}) | "
                     f"{_pct(s.oa_mean)} ± {_pct(s.oa_std)} | "
                     f"{'' if s.paper_miou is None else s.paper_miou} |")
    checks = ordering_checks(stats)
    if checks:
        lines += ["", "Ordering (holds = mean difference > the larger std of the two rows):", ""]
        for c in checks:
            lines.append(f"- {c.better} > {c.worse}: {100 * c.difference:+.1f} points (spread "
                         f"{100 * c.spread:.1f}) -> {'holds' if c.holds else 'does NOT hold'}")
    if present:
        lines += ["", "Per-class IoU % (mean over seeds):", "",
                  "| row | " + " | ".join(SCANNET20_NAMES[c] for c in present) + " |",
                  "| --- |" + " --- |" * len(present)]
        for s in stats:
            lines.append(f"| {s.key} | " + " | ".join(_pct(s.iou_mean[c]) for c in present) + " |")
    if header.get("notes"):
        lines += ["", *header["notes"]]
    return "\n".join(lines) + "\n"


def write_results(out: Path, stats: Sequence[RowStats], header: dict | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``results.md`` and ``results.png`` (bar chart, mean ± std over seeds) under ``out``.

    Args:
        out: the ablation folder.
        stats: rows from :func:`aggregate`.
        header: optional facts printed at the top of results.md (``command``, ``data``, ``settings``, ``seconds``).
    Returns:
        {"csv": path, "md": path, "png": path}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    present = [c for c in range(NUM_CLASSES_20) if any(np.isfinite(s.iou_mean[c]) for s in stats)]
    paths = {"csv": out / "results.csv", "md": out / "results.md", "png": out / "results.png"}
    atomic_write_text(paths["csv"], _csv_text(stats, present))
    atomic_write_text(paths["md"], _markdown(stats, present, header or {}))
    _bar_chart(paths["png"], stats)
    return paths


def _bar_chart(path: Path, stats: Sequence[RowStats]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(stats))
    means = [100 * s.miou_mean for s in stats]
    stds = [100 * s.miou_std for s in stats]
    palette = {"random": "#999999", "2d": "#4c72b0", "3d": "#55a868", "concat": "#8172b2", "joint": "#c44e52",
               "supervised": "#dd8452"}
    ax.bar(x, means, yerr=stds, capsize=4, color=[palette.get(s.key, "#777777") for s in stats])
    for i, s in enumerate(stats):
        for m in s.miou:
            ax.plot(i, 100 * m, "k.", ms=4)
    ax.set_xticks(x, [s.key for s in stats])
    ax.set_ylabel("val mIoU (%)")
    ax.set_title(f"linear probe, mean ± std over {max((len(s.seeds) for s in stats), default=0)} seed(s)")
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120))
    plt.close(fig)


def load_probes(out: Path, rows: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[int, dict]]:
    """The finished probe summaries under ``OUT/probes`` as ``{row: {seed: summary}}``."""
    probes: dict[str, dict[int, dict]] = {}
    for row in rows:
        for seed in seeds:
            path = probe_path_of(out, row, seed)
            if path.is_file():
                probes.setdefault(row, {})[seed] = json.loads(path.read_text())
    return probes

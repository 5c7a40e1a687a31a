"""The table: mean and spread over seeds, the ordering checks, results.csv and results.md (pure, no training)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from concerto3d.evaluation.ablation import aggregate, ordering_checks, write_results
from concerto3d.labels import NUM_CLASSES_20, SCANNET20_NAMES


def _summary(miou, iou_wall, oa=0.5):
    iou = {n: None for n in SCANNET20_NAMES}
    iou["wall"], iou["floor"] = iou_wall, 2 * miou - iou_wall
    return {"miou": miou, "overall_accuracy": oa, "iou": iou}


def test_aggregate_mean_and_sample_std_over_seeds_and_the_ordering():
    probes = {
        "3d": {0: _summary(0.40, 0.3), 1: _summary(0.50, 0.5), 2: _summary(0.45, 0.4)},
        "joint": {1: _summary(0.60, 0.6), 0: _summary(0.62, 0.6)},
        "2d": {0: _summary(0.44, 0.4)},
    }
    stats = aggregate(probes)
    assert [s.key for s in stats] == ["2d", "3d", "joint"]  # table order, rows without seeds left out
    s3 = stats[1]
    assert s3.seeds == [0, 1, 2] and s3.miou == [0.40, 0.50, 0.45]
    assert s3.miou_mean == pytest.approx(0.45) and s3.miou_std == pytest.approx(np.std([0.4, 0.5, 0.45], ddof=1))
    assert s3.iou_mean[0] == pytest.approx(0.4) and np.isnan(s3.iou_mean[5]) and len(s3.iou_mean) == NUM_CLASSES_20
    assert stats[0].miou_std == 0.0  # one seed: no spread

    checks = {(c.better, c.worse): c for c in ordering_checks(stats)}
    assert checks[("joint", "3d")].holds  # +0.16 > std 0.05
    assert not checks[("3d", "2d")].holds  # +0.01 < std 0.05
    assert checks[("joint", "3d")].difference == pytest.approx(0.16)
    assert ("concat", "3d") not in checks  # absent rows are not checked
    stats_random = aggregate({"3d": probes["3d"], "random": {0: _summary(0.20, 0.2), 1: _summary(0.25, 0.2)}})
    by_pair = {(c.better, c.worse): c for c in ordering_checks(stats_random)}
    assert by_pair[("3d", "random")].holds and by_pair[("3d", "random")].difference == pytest.approx(0.225)


def test_write_results_writes_every_row_and_class(tmp_path):
    stats = aggregate({"random": {0: _summary(0.1, 0.1)}, "joint": {0: _summary(0.6, 0.5), 1: _summary(0.7, 0.7)}})
    paths = write_results(tmp_path, stats, {"command": "concerto3d ablate D --out O"})
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows] == ["random", "joint"]
    assert float(rows[1]["miou_mean"]) == pytest.approx(0.65) and rows[1]["miou_per_seed"] == "0.600000;0.700000"
    assert float(rows[1]["iou_floor"]) == pytest.approx(0.7) and "iou_chair" not in rows[1]
    md = paths["md"].read_text()
    assert "65.0 ± 7.1" in md and "joint > random" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

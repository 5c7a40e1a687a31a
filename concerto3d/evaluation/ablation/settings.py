"""The rows of the Concerto table, the settings that decide its numbers, and the folder of each (row, seed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from concerto3d.errors import InputError

__all__ = ["Row", "ROWS", "ROW_KEYS", "ROW_BY_KEY", "PAPER_ORDER", "AblationSettings", "run_dir_of",
           "probe_path_of", "has_model"]


@dataclass(frozen=True)
class Row:
    """One row of the table.

    Attributes:
        key: short name used in folders and on the command line.
        label: what the table prints.
        objective: the ``--objective`` it is trained with, or None (random: not trained; concat: reuses 2d + 3d).
        paper_miou: the paper's ScanNet linear-probe mIoU (Concerto, NeurIPS 2025), or None.
    """

    key: str
    label: str
    objective: str | None
    paper_miou: float | None


ROWS: tuple[Row, ...] = (
    Row("random", "random-init point encoder", None, None),
    Row("2d", "2D only (image encoder, lifted)", "2d", 63.1),
    Row("3d", "3D only (self-distillation)", "3d", 72.5),
    Row("concat", "concat 2D-only + 3D-only", None, 75.9),
    Row("joint", "joint (Concerto)", "joint", 77.3),
    # the ceiling: the same point encoder and budget, trained with the train rooms' labels, probed like the rest
    Row("supervised", "supervised ceiling (trained with labels)", "supervised", None),
)
ROW_KEYS: tuple[str, ...] = tuple(r.key for r in ROWS)
ROW_BY_KEY: dict[str, Row] = {r.key: r for r in ROWS}

# The paper's ordering, best first; each neighbouring pair is checked against the spread over seeds.
PAPER_ORDER: tuple[str, ...] = ("joint", "concat", "3d", "2d", "random")


@dataclass
class AblationSettings:
    """Everything that decides the numbers of an ablation (stored in ``OUT/ablation.json``).

    Attributes:
        steps: optimiser steps of every trained row (the same budget for each).
        seeds: the seeds; seed s trains with ``seed=s data.seed=s`` and seeds the probe.
        overrides: ``key=value`` training overrides applied to every trained row (after ``config``).
        config: a training YAML for every trained row, or None.
        config_sha256: digest of that file's content (filled in by ``run_ablation``).
        training_sha256: digest of the whole training config a row is built from (package defaults, then
            ``config``, then ``overrides``; filled in by ``run_ablation``), so that a folder whose rows were
            trained under other package defaults is refused instead of mixed with new rows.
        data_sha256: digest of the preprocessed data the rows train and probe on (``provenance.data_digest``;
            filled in by ``run_ablation``), so that a folder built on other scenes (regenerated scans, another
            preprocessing) is refused, and a table names the data it came from.
        probe_epochs, probe_lr, probe_batch_size: the linear head (same for every row).
        max_points: embed at most this many points per scene and interpolate the rest (None = all).
        probe_points: fit the head on at most this many labelled points per train scene (a seeded random
            subset; None = all); the val split is always scored on every point.
        image_batch: images per image-encoder forward pass when lifting 2D features.
        rows: the rows to compute (a subset of :data:`ROW_KEYS`; concat needs 2d and 3d).
        image_encoder: a pre-trained image encoder that *is* the 2d row (frozen, its patch features lifted; nothing
            trained), and the joint row's target (implies ``joint_target="2d"``): a concerto3d run or model folder
            with an image encoder (e.g. a ``2d`` run on other scans), or a local Hugging Face ViT/DINOv2 folder,
            as the paper's 2D row and target are DINOv2. ``image_encoder_sha256`` (filled in by
            ``run_ablation``) is the digest of its files.
        joint_target: what the joint row aligns its points with. ``scratch``: its own image encoder, trained from
            scratch with the points (symmetric InfoNCE). ``2d``: the same seed's 2d-row image encoder, frozen, whose
            patch features the points learn to predict (cosine), as Concerto does with DINOv2; needs the 2d row.
    """

    steps: int = 300
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    overrides: list[str] = field(default_factory=list)
    config: str | None = None
    config_sha256: str | None = None
    training_sha256: str | None = None
    data_sha256: str | None = None
    probe_epochs: int = 100
    probe_lr: float = 1e-2
    probe_batch_size: int | None = None
    max_points: int | None = None
    probe_points: int | None = None
    image_batch: int = 8
    rows: list[str] = field(default_factory=lambda: list(ROW_KEYS))
    joint_target: str = "scratch"
    image_encoder: str | None = None
    image_encoder_sha256: str | None = None

    def __post_init__(self):
        self.seeds = [int(s) for s in self.seeds]
        self.rows = [str(r) for r in self.rows]
        self.overrides = [str(o) for o in self.overrides]
        if self.steps < 1:
            raise InputError(f"--steps must be >= 1, got {self.steps}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise InputError(f"expected one or more distinct seeds, got {self.seeds}")
        unknown = [r for r in self.rows if r not in ROW_BY_KEY]
        if unknown or not self.rows:
            raise InputError(f"--rows: expected some of {', '.join(ROW_KEYS)}, got {', '.join(self.rows) or 'none'}")
        if "concat" in self.rows and not {"2d", "3d"} <= set(self.rows):
            raise InputError("--rows: concat needs the 2d and 3d rows too")
        if self.image_encoder is not None:
            self.image_encoder = str(Path(self.image_encoder).resolve())
            self.joint_target = "2d"
        if self.joint_target not in ("scratch", "2d"):
            raise InputError(f"--joint-target: expected scratch or 2d, got {self.joint_target!r}")
        if (self.joint_target == "2d" and self.image_encoder is None and "joint" in self.rows
                and "2d" not in self.rows):
            raise InputError("--joint-target 2d: the joint row aligns with the 2d row's image encoder; add the 2d row")
        if self.probe_batch_size is not None and self.probe_batch_size < 1:
            raise InputError(f"--probe-batch-size must be >= 1, got {self.probe_batch_size}")
        if self.probe_epochs < 1 or self.probe_lr <= 0:
            raise InputError(f"expected probe epochs >= 1 and lr > 0, got {self.probe_epochs} and {self.probe_lr}")
        if self.max_points is not None and self.max_points < 1:
            raise InputError(f"--max-points must be >= 1, got {self.max_points}")
        if self.probe_points is not None and self.probe_points < 1:
            raise InputError(f"--probe-points must be >= 1, got {self.probe_points}")
        if self.image_batch < 1:
            raise InputError(f"image_batch must be >= 1, got {self.image_batch}")
        self.rows = [k for k in ROW_KEYS if k in self.rows]  # table order

    def result_fields(self) -> dict:
        """The settings a finished unit's numbers depend on (all but the list of seeds and rows)."""
        d = asdict(self)
        d.pop("seeds")
        d.pop("rows")
        d.pop("config")  # the path may move; its content digest is what counts
        d.pop("image_encoder")  # likewise
        return d

    def train_config(self, objective: str, seed: int, extra: Sequence[str] = (), data: Path | None = None):
        """The ``TrainConfig`` of a trained row: package defaults, then ``config``, then ``overrides``, then the
        row's objective, the budget and the seed, then ``extra``; with ``data``, the image and patch sizes left
        unset are filled in from it (``config.with_data_geometry``, as training does)."""
        from concerto3d.config import load_config, with_data_geometry

        overrides = list(self.overrides) + [f"objective.kind={objective}", f"steps={self.steps}",
                                            f"seed={seed}", f"data.seed={seed}", *extra]
        cfg = load_config(self.config, overrides)
        return cfg if data is None else with_data_geometry(cfg, data)


def run_dir_of(out: Path, row: str, seed: int) -> Path:
    """``OUT/runs/<row>-seed<s>``: the training run of one (row, seed)."""
    return Path(out) / "runs" / f"{row}-seed{seed}"


def probe_path_of(out: Path, row: str, seed: int) -> Path:
    """``OUT/probes/<row>-seed<s>.json``: the probe summary of one (row, seed)."""
    return Path(out) / "probes" / f"{row}-seed{seed}.json"


def has_model(run_dir: Path) -> bool:
    """Whether a run folder holds a finished model (``model/config.json``)."""
    return (Path(run_dir) / "model" / "config.json").is_file()

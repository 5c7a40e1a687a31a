"""Run logs: ``RUN/metrics.csv`` (one row per logged step) and TensorBoard scalars under ``RUN/tensorboard/``.

Only the main process writes (``enabled=False`` elsewhere). The CSV's columns are fixed by the first row; a resumed
run first drops the rows at or after the step it resumes from, so the file reads as if the run had never stopped.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path
from typing import Mapping

from concerto3d.io.atomic import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["MetricsLogger", "read_metrics"]


class MetricsLogger:
    """Writes metrics of a run to CSV and TensorBoard.

    Args:
        run_dir: the run folder.
        enabled: False on non-main DDP ranks: every method does nothing.
        resume_step: when resuming, rows with ``step >= resume_step`` are removed from an existing CSV.
        tensorboard: also write TensorBoard event files (skipped with a warning when tensorboard is missing).
    """

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True, resume_step: int | None = None,
                 tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.csv"
        self._columns: list[str] | None = None
        self._writer = None
        self._file = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if resume_step is None:
                self.path.unlink()  # a fresh run in an old folder starts a fresh CSV
            else:
                self._truncate(resume_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"),
                                             purge_step=resume_step)
            except ImportError as err:  # tensorboard is a dependency, but a broken install should not stop a run
                logger.warning("TensorBoard disabled (%s); metrics go to %s only", err, self.path)

    def _truncate(self, resume_step: int) -> None:
        try:
            with open(self.path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                self._columns = reader.fieldnames
                rows = [r for r in reader if int(r["step"]) < resume_step]
            if not self._columns or "step" not in self._columns:
                raise ValueError("no header with a step column")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, csv.Error) as err:
            # an empty or damaged CSV (a disk filled mid-row, an editor): keep it aside, log afresh from here
            aside = self.path.with_name(f"metrics.damaged-{resume_step}.csv")
            os.replace(self.path, aside)
            logger.warning("%s could not be read (%s): kept as %s; logging starts a new metrics.csv at step %d",
                           self.path, type(err).__name__, aside.name, resume_step)
            self._columns = None
            return
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=self._columns)
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.path, text.getvalue())

    def log_text(self, tag: str, text: str) -> None:
        """A block of text (the merged config, the transforms) in TensorBoard's text tab."""
        if self.enabled and self._writer is not None:
            self._writer.add_text(tag, "```\n" + text + "\n```")

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append one CSV row ``step, metrics...`` and the same scalars to TensorBoard.

        The first row fixes the CSV columns; a later key that is not a column is logged to TensorBoard only.
        """
        if not self.enabled:
            return
        values = {k: float(v) for k, v in metrics.items()}
        if self._file is None:
            if self._columns is None:
                self._columns = ["step"] + list(values)
            new = not self.path.exists()
            self._file = open(self.path, "a", newline="")
            self._csv = csv.DictWriter(self._file, fieldnames=self._columns, extrasaction="ignore")
            if new:
                self._csv.writeheader()
        self._csv.writerow({"step": step, **{k: _fmt(v) for k, v in values.items()}})
        self._file.flush()
        if self._writer is not None:
            for key, value in values.items():
                if math.isfinite(value):
                    self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _fmt(value: float) -> str:
    return repr(value)  # shortest text that reads back to the same float: resumed runs compare exactly


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of ``RUN/metrics.csv`` as dicts of floats (``step`` as int); empty cells are NaN."""
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        return [{k: (int(v) if k == "step" else (float(v) if v != "" else math.nan)) for k, v in row.items()}
                for row in csv.DictReader(fh)]

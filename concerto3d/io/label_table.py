"""ScanNet's label table ``scannetv2-labels.combined.tsv``: one row per raw category, mapping it to an NYU40 id (and
other vocabularies)."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from concerto3d.errors import FormatError, InputError
from concerto3d.labels import NYU40_NAMES, nyu40_to_scannet20

log = logging.getLogger(__name__)

# the columns of ScanNet v2's scannetv2-labels.combined.tsv, in order
LABEL_TABLE_COLUMNS: tuple[str, ...] = (
    "id", "raw_category", "category", "count", "nyu40id", "eigen13id", "nyuClass", "nyu40class", "eigen13class",
    "ModelNet40", "ModelNet10", "ShapeNetCore55", "synsetoffset", "wnsynsetid", "wnsynsetkey", "mpcat40",
    "mpcat40index",
)
LABEL_TABLE_NAME = "scannetv2-labels.combined.tsv"


@dataclass
class LabelTable:
    """Raw category -> NYU40 id, from ScanNet's label table.

    ``to_nyu40`` maps an unknown raw category to 0 (unannotated), logs one warning per category and counts every
    such lookup in ``num_unknown``.
    """

    raw_to_nyu40: dict[str, int]
    path: str | None = None
    id_to_nyu40: dict[int, int] = field(default_factory=dict)  # ScanNet label id (the ``id`` column) -> NYU40
    num_unknown: int = 0
    unknown_categories: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.raw_to_nyu40)

    def __contains__(self, raw: str) -> bool:
        return raw in self.raw_to_nyu40

    def to_nyu40(self, raw: str) -> int:
        """NYU40 id of a raw category; 0 (with a warning, counted) when the table does not list it."""
        nyu40 = self.raw_to_nyu40.get(raw)
        if nyu40 is None:
            self.num_unknown += 1
            if raw not in self.unknown_categories:
                self.unknown_categories.add(raw)
                log.warning("%s: raw category %r is not in the label table; labelled 0 (unannotated)",
                            self.path or "label table", raw)
            return 0
        return nyu40

    def ids_to_nyu40(self, ids: np.ndarray) -> np.ndarray:
        """NYU40 ids of an array of ScanNet label ids (the values of ScanNet's 2D label images, ``id`` column);
        0 (unannotated) for 0 and for ids the table does not list. Same shape, int64."""
        ids = np.asarray(ids, dtype=np.int64)
        size = max(self.id_to_nyu40, default=0) + 1
        lookup = np.zeros(size, dtype=np.int64)
        for label_id, nyu40 in self.id_to_nyu40.items():
            lookup[label_id] = nyu40
        inside = (ids >= 0) & (ids < size)
        return np.where(inside, lookup[np.where(inside, ids, 0)], 0)

    def to_scannet20(self, raw: str) -> int:
        """ScanNet-20 index (0..19) of a raw category, -1 when outside the 20 classes or unknown."""
        return int(nyu40_to_scannet20(np.array([self.to_nyu40(raw)]))[0])


def read_label_table(path: str | os.PathLike) -> LabelTable:
    """Read ``scannetv2-labels.combined.tsv`` (tab-separated, header row; needs ``raw_category`` and ``nyu40id``).

    Raises:
        FormatError: empty file, missing columns, or an nyu40id that is not an integer in 0..40 (line named).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("label table not found", path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise FormatError(f"cannot read the label table ({type(err).__name__}: {err})", path) from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise FormatError("label table is empty, expected a tab-separated header row", path)
    header = [cell.strip() for cell in rows[0]]
    missing = [c for c in ("raw_category", "nyu40id") if c not in header]
    if missing:
        raise FormatError(f"label table lacks the column(s) {missing}; header is {header[:8]}", path)
    raw_col, nyu_col = header.index("raw_category"), header.index("nyu40id")
    id_col = header.index("id") if "id" in header else None
    table: dict[str, int] = {}
    ids: dict[int, int] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(raw_col, nyu_col):
            raise FormatError(f"line {line_no} has {len(row)} columns, expected {len(header)}", path)
        raw, value = row[raw_col].strip(), row[nyu_col].strip()
        try:
            nyu40 = int(value)
        except ValueError:
            raise FormatError(f"line {line_no}: nyu40id {value[:20]!r} is not an integer", path) from None
        if not 0 <= nyu40 <= 40:
            raise FormatError(f"line {line_no}: nyu40id {nyu40} outside 0..40", path)
        table.setdefault(raw, nyu40)
        if id_col is not None and id_col < len(row) and row[id_col].strip().isdigit():
            ids.setdefault(int(row[id_col]), nyu40)
    return LabelTable(table, str(path), id_to_nyu40=ids)


def write_label_table(path: str | os.PathLike, rows: Iterable[Mapping[str, object]]) -> None:
    """Write a label table with ScanNet v2's 17 columns (:data:`LABEL_TABLE_COLUMNS`).

    Args:
        rows: mappings with at least ``raw_category`` and ``nyu40id``; missing columns are filled: ``id`` = row
            number from 1, ``category`` = raw_category, ``count`` = 1, ``nyu40class`` = the NYU40 name, the rest
            empty.
    """
    lines = ["\t".join(LABEL_TABLE_COLUMNS)]
    for i, row in enumerate(rows, start=1):
        unknown = set(row) - set(LABEL_TABLE_COLUMNS)
        if unknown:
            raise ValueError(f"unknown label table columns {sorted(unknown)}")
        if "raw_category" not in row or "nyu40id" not in row:
            raise ValueError(f"row {i}: raw_category and nyu40id are required, got {sorted(row)}")
        nyu40 = int(row["nyu40id"])
        if not 0 <= nyu40 <= 40:
            raise ValueError(f"row {i}: nyu40id must be in 0..40, got {nyu40}")
        filled = {"id": i, "category": row["raw_category"], "count": 1,
                  "nyu40class": NYU40_NAMES[nyu40 - 1] if nyu40 else "unannotated", **row}
        cells = [str(filled.get(c, "")) for c in LABEL_TABLE_COLUMNS]
        if any(("\t" in c or "\n" in c) for c in cells):
            raise ValueError(f"row {i}: values must not contain tabs or newlines: {cells}")
        lines.append("\t".join(cells))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

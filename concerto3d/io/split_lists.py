"""Split lists (``scannetv2_{train,val}.txt``): one scene name a line. The one parser of split-list files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from concerto3d.errors import FormatError, InputError
from concerto3d.io.atomic import atomic_write_text


def read_split(path: str | os.PathLike) -> list[str]:
    """Read a split list: one scene name a line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("split list not found", path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"cannot read the split list ({type(err).__name__})", path) from None
    names = [line.split("#", 1)[0].strip() for line in lines]
    names = [n for n in names if n]
    bad = [n for n in names if any(c.isspace() for c in n) or "/" in n]
    if bad:
        raise FormatError(f"split list lines must be single scene names, got {bad[0][:40]!r}", path)
    return names


def write_split(path: str | os.PathLike, names: Iterable[str]) -> None:
    """Write a split list, one scene name a line."""
    names = list(names)
    for n in names:
        if not n or any(c.isspace() for c in n) or "/" in n:
            raise ValueError(f"scene names must be non-empty without spaces or '/', got {n!r}")
    atomic_write_text(path, "".join(n + "\n" for n in names))

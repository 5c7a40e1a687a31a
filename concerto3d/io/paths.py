"""Output folders: made, and checked writable, before any work goes into them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from concerto3d.errors import FormatError, InputError


def ensure_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` (with its parents) and check that a file can be written in it.

    Catches a path under a regular file, a read-only folder or a full disk at the start of a job instead of at its
    first write.

    Returns:
        the folder as a Path.
    Raises:
        InputError: naming the folder, with the operating system's reason.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-") as probe:
            probe.write(b"x")
            probe.flush()
    except OSError as err:
        raise InputError(f"cannot write the {what} ({err.strerror or type(err).__name__})", path) from None
    return path


def read_text_file(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of a small input file; a missing or undecodable file is a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", path)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"cannot read the {what} file as text ({type(err).__name__})", path) from None

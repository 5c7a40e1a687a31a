"""Output folders: made, and checked writable, before any work goes into them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from concerto3d.errors import InputError


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

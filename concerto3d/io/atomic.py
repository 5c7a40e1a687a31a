"""Atomic writes: a reader (or a resumed job) never sees half a file or half a folder.

Every file the package writes for later reading goes through here: the content is written under a temporary name
in the same folder, flushed and fsync'ed, then ``os.replace`` gives it its final name (atomic on POSIX), and the
folder is fsync'ed. A crash at any point leaves either the old file or the new one, plus at most a hidden
``.<name>.*.tmp`` file that the next write of the same name does not trip over.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_folder",
           "fsync_dir"]


def fsync_dir(folder: str | os.PathLike) -> None:
    """fsync a folder so that a rename in it survives a power cut (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on some platforms (Windows); the file itself was fsync'ed
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], before_rename=None) -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a temporary file of the same folder, which then replaces it.

    Args:
        path: the final file; its folder must exist.
        write: called with the temporary file open for binary writing.
        before_rename: optional ``f(tmp_path)`` called after the data is on disk and before the rename (e.g. to
            write a checksum of it); an exception there leaves ``path`` untouched.
    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would make it (mkstemp's files are private)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if before_rename is not None:
            before_rename(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (NaN and inf refused: write them as null first) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_folder(final: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Build a folder under a temporary name next to ``final`` and rename it into place when the block succeeds.

    ``with atomic_folder(out / "model") as tmp: write files into tmp`` -- on an exception the temporary folder is
    removed and ``final`` is untouched.

    Args:
        final: the folder's final path; its parent is created.
        replace: an existing ``final`` is removed just before the rename; False raises FileExistsError instead.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # as mkdir() would make it (mkdtemp's folders are private)
        yield tmp
        if final.exists():
            if not replace:
                raise FileExistsError(f"{final} exists")
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(final.parent)

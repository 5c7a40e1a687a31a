"""Output folders: made, and checked writable, before any work goes into them."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import tempfile
from pathlib import Path
from typing import Iterator

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


def ensure_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check, before any work, that a file can be written at ``path``: not an existing folder, and its folder
    creatable and writable (:func:`ensure_output_dir`, which creates it).

    Returns:
        the path as a Path.
    Raises:
        InputError: naming the path, with the reason.
    """
    path = Path(path)
    if str(path) in ("", ".") or path.is_dir():
        raise InputError(f"{what}: expected a file name, got a folder", path)
    ensure_output_dir(path.parent if str(path.parent) else Path("."), f"folder of {what}")
    return path


def die_with_parent() -> None:
    """Have the kernel end this (worker) process when its parent dies, even by ``kill -9`` (Linux ``prctl``
    PR_SET_PDEATHSIG); elsewhere nothing. Pass it as a process pool's ``initializer``: a killed ``synth`` or
    ``preprocess`` then leaves no worker writing scenes or sleeping on its memory."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:
        return
    if os.getppid() == 1:  # the parent died before the call: follow it now
        os._exit(1)


LOCK_NAME = ".concerto3d.lock"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except (OverflowError, ValueError):
        return False
    return True


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, what: str = "output folder") -> Iterator[Path]:
    """Hold ``folder/.concerto3d.lock`` (this process's id and host) while writing into ``folder``: a second
    concerto3d process on the same folder is refused instead of mixing its files with the first one's.

    A lock whose process is gone (killed) is stale and taken over; one held on another host is respected.

    Raises:
        InputError: another live process holds the lock.
    """
    path = Path(folder) / LOCK_NAME
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = path.read_text(errors="replace").split() if path.is_file() else []
            pid = int(holder[0]) if holder and holder[0].isdigit() else -1
            host = holder[1] if len(holder) > 1 else socket.gethostname()
            if host == socket.gethostname() and not pid_alive(pid):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise InputError(f"another concerto3d process (pid {pid} on {host}) is writing into this {what}; wait "
                             f"for it, or remove {LOCK_NAME} if it is gone", folder) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    else:  # stale twice in a row: another process is taking it over right now
        raise InputError(f"another concerto3d process is starting to write into this {what}", folder)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


# errno values only a write can cause: the disk or the quota is full, the file grew past the process's size limit,
# the file system is read-only. Every later write fails the same way, so a job stops at the first one.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS})


def output_write_error(err: BaseException, path: str | os.PathLike | None,
                       what: str = "output") -> InputError | None:
    """The one-line error for a write that failed for lack of room (or a read-only disk); None for other errors.

    The exception's chain is searched too: ``torch.save`` reports a failed write as a RuntimeError raised while
    handling the OSError.

    Args:
        err: the exception the write raised.
        path: the file or folder to name in the message (the OSError's own file name when None).
        what: what was being written ("checkpoint", "output folder").
    """
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in WRITE_ERRNOS:
            return InputError(f"cannot write the {what} ({seen.strerror or os.strerror(seen.errno)})",
                              path if path is not None else seen.filename)
        seen = seen.__cause__ or seen.__context__
    return None


def read_text_file(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of a small input file; a missing or undecodable file is a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", path)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"cannot read the {what} file as text ({type(err).__name__})", path) from None

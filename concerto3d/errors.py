"""The project's own error types.

Every error a user can cause with a bad file or argument is a :class:`Concerto3DError` whose message is one line
that names the file and says what was expected and what came. The command line prints that line and exits with
status 2, without a traceback.
"""

from __future__ import annotations

import os


class Concerto3DError(Exception):
    """Base class of errors caused by the user's input; ``str(err)`` is a one-line message."""


class InputError(Concerto3DError, ValueError):
    """A file or argument cannot be used.

    Args:
        message: what was expected and what came.
        path: the offending file, prepended to the message when given.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        text = " ".join(str(message).split())  # one line, whatever the message held
        super().__init__(f"{self.path}: {text}" if self.path else text)


class FormatError(InputError):
    """A file exists but its content is not in the expected format (truncated, corrupt, wrong shape)."""

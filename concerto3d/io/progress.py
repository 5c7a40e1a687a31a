"""Progress bars that suit where they are written.

On a terminal a tqdm bar redraws itself in place. Written to a file or a pipe (a log of ``nohup``, a batch job),
each redraw would stay in the file: a 300-step run wrote hundreds of kilobytes of bars. Off a terminal the bar
therefore writes one plain line at most every ``interval`` seconds (and its last state when it closes).
"""

from __future__ import annotations

import re
import sys
from typing import IO, Iterable

__all__ = ["progress_bar", "LineWriter", "OFF_TERMINAL_INTERVAL"]

OFF_TERMINAL_INTERVAL = 30.0  # seconds between progress lines in a log file


_CURSOR_MOVES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # nested bars move the cursor up and down on a terminal


class LineWriter:
    """A file-like for tqdm that turns each in-place redraw (``\\r`` + status) into one line of ``stream``."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> None:
        line = _CURSOR_MOVES.sub("", text.replace("\r", "")).strip()
        if line and line != self.last:  # closing redraws the last state once more
            self.stream.write(line + "\n")
            self.last = line

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable: Iterable | None = None, *, stream: IO[str] | None = None,
                 interval: float = OFF_TERMINAL_INTERVAL, **kwargs):
    """A ``tqdm`` bar (``kwargs`` as tqdm's: total, desc, unit, initial, disable, leave) on ``stream`` (stderr by
    default): the usual bar on a terminal, otherwise a line at most every ``interval`` seconds.

    Callers that set a postfix every update should pass ``refresh=False`` to ``set_postfix`` (the postfix then
    shows with the next line instead of forcing one).
    """
    from tqdm import tqdm  # imported late: about 0.1 s, and not needed by callers without a bar

    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)
    kwargs.setdefault("ncols", 100)
    return tqdm(iterable, file=LineWriter(stream), mininterval=interval,
                # no monitor-thread redraws between updates: a line per interval at most
                maxinterval=float("inf"), ascii=True, **kwargs)

"""progress_bar: a redrawn bar on a terminal, a few plain lines in a log file."""

import io

from concerto3d.io.progress import progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_the_bar_writes_whole_lines_and_not_one_per_update():
    log = io.StringIO()
    with progress_bar(total=1000, desc="train", unit="step", stream=log, interval=3600) as bar:
        for _ in range(1000):
            bar.update(1)
            bar.set_postfix(loss="0.5", refresh=False)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert 1 <= len(lines) <= 3, lines  # the first state, the last state, nothing in between
    assert "1000/1000" in lines[-1] and "train" in lines[-1]


def test_off_a_terminal_a_zero_interval_writes_a_line_per_update():
    log = io.StringIO()
    for _ in progress_bar(range(5), desc="scenes", stream=log, interval=0):
        pass
    lines = log.getvalue().splitlines()
    assert len(lines) >= 5 and all(line.startswith("scenes") for line in lines)


def test_on_a_terminal_the_bar_redraws_in_place():
    tty = FakeTerminal()
    for _ in progress_bar(range(5), desc="scenes", stream=tty, mininterval=0):
        pass
    assert tty.getvalue().count("\r") >= 5


def test_off_a_terminal_nested_bars_write_no_cursor_moves():
    log = io.StringIO()
    with progress_bar(total=2, desc="outer", stream=log, interval=0) as outer:
        for _ in progress_bar(range(3), desc="inner", stream=log, interval=0, leave=False):
            pass
        outer.update(2)
    assert "\x1b" not in log.getvalue() and "inner" in log.getvalue()

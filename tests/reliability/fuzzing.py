"""Shared helpers of the reliability tests: byte and text damage strategies, a per-example time limit, and the
check that a caught error is the project's own, in one line, naming the file."""

from __future__ import annotations

import contextlib
import signal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from concerto3d.errors import Concerto3DError

# 500 generated cases per test (the floor); no deadline (the shared CI machine's timing varies); no example
# database (CI starts clean, and a local run should not replay another run's cases).
FUZZ = settings(max_examples=500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# One damage to a byte string: (kind, position, payload). Positions are taken modulo the length at apply time.
_position = st.integers(min_value=0, max_value=1 << 16)
_one_damage = st.one_of(
    st.tuples(st.just("truncate"), _position, st.just(b"")),
    st.tuples(st.just("set"), _position, st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("xor"), _position, st.sampled_from([b"\x01", b"\x80", b"\xff"])),
    st.tuples(st.just("insert"), _position, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _position, st.integers(1, 64).map(lambda n: bytes(n))),
    st.tuples(st.just("nan32"), _position, st.sampled_from([b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f",
                                                             b"\x00\x00\x80\xff"])),
)
DAMAGE = st.one_of(
    st.lists(_one_damage, min_size=1, max_size=3),
    st.just([("empty", 0, b"")]),
    st.binary(max_size=64).map(lambda b: [("replace", 0, b)]),
)


def damage_bytes(data: bytes, damages) -> bytes:
    """Apply ``damages`` (drawn from :data:`DAMAGE`) to ``data``."""
    out = bytearray(data)
    for kind, pos, payload in damages:
        n = len(out)
        if kind == "empty":
            out = bytearray()
        elif kind == "replace":
            out = bytearray(payload)
        elif n == 0:
            continue
        elif kind == "truncate":
            del out[pos % n:]
        elif kind == "set":
            out[pos % n] = payload[0]
        elif kind == "xor":
            out[pos % n] ^= payload[0]
        elif kind == "insert":
            out[pos % (n + 1):pos % (n + 1)] = payload
        elif kind == "delete":
            del out[pos % n:pos % n + len(payload)]
        elif kind == "nan32":  # a float32 NaN/inf written over 4 bytes (lands inside matrices and coordinates)
            p = pos % n
            out[p:p + 4] = payload
            del out[n:]  # keep the length
    return bytes(out)


# Damage to a whitespace-separated text file: tokens replaced by non-finite or junk values, dropped or added.
BAD_TOKENS = ["nan", "inf", "-inf", "1e309", "-0", "0", "1e-320", "x", "", "1,2", "0x10", "--1", "\x00", "é"]
TEXT_DAMAGE = st.lists(st.tuples(st.sampled_from(["replace", "drop", "add", "dropline", "dupline"]),
                                 st.integers(0, 1 << 12), st.sampled_from(BAD_TOKENS)), min_size=1, max_size=4)


def damage_text(text: str, damages) -> str:
    """Apply ``damages`` (drawn from :data:`TEXT_DAMAGE`) to the tokens and lines of ``text``."""
    lines = [line.split(" ") for line in text.splitlines()]
    for kind, pos, token in damages:
        if not lines:
            lines = [[token]]
            continue
        row = lines[pos % len(lines)]
        if kind == "replace" and row:
            row[pos % len(row)] = token
        elif kind == "drop" and row:
            del row[pos % len(row)]
        elif kind == "add":
            row.insert(pos % (len(row) + 1), token)
        elif kind == "dropline":
            del lines[pos % len(lines)]
        elif kind == "dupline":
            lines.insert(pos % len(lines), list(row))
    return "\n".join(" ".join(r) for r in lines) + "\n"


def check_own_error(err: BaseException, name: str | None = None) -> str:
    """Assert that ``err`` is a :class:`Concerto3DError` with a one-line message (naming ``name`` when given)."""
    assert isinstance(err, Concerto3DError), f"{type(err).__name__} escaped: {err}"
    text = str(err)
    assert text and "\n" not in text, repr(text)
    if name is not None:
        assert name in text, text
    return text


class Hang(Exception):
    """Raised by :func:`time_limit` when one example runs too long."""


@contextlib.contextmanager
def time_limit(seconds: float = 20.0):
    """Fail with :class:`Hang` when the block runs longer than ``seconds`` (SIGALRM; the main thread only)."""
    def on_alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

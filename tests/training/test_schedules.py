"""Schedules: arrays indexed by step, warmup then cosine, momentum cosine/fixed."""

import math

import numpy as np
import pytest

from concerto3d.training.schedules import (build_schedules, cosine_schedule, learning_rate_schedule,
                                           momentum_schedule)


def test_cosine_schedule_matches_the_formula():
    out = cosine_schedule(1.0, 0.1, steps=12, warmup_steps=2, warmup_start=0.0)
    assert out.shape == (12,)
    np.testing.assert_allclose(out[:2], [0.0, 0.5])  # linear warmup towards base
    t = np.arange(10) / 9
    np.testing.assert_allclose(out[2:], 0.1 + 0.45 * (1 + np.cos(math.pi * t)))
    assert out[2] == pytest.approx(1.0) and out[-1] == pytest.approx(0.1)


def test_learning_rate_warmup_is_clamped_to_the_run():
    out = learning_rate_schedule(1e-3, 1e-6, steps=5, warmup_steps=50)
    assert out.shape == (5,) and out[0] == 0.0 and np.all(np.diff(out) > 0)


def test_momentum_cosine_and_fixed():
    cos = momentum_schedule("cosine", 100, start=0.996, end=1.0)
    assert cos[0] == pytest.approx(0.996) and cos[-1] == pytest.approx(1.0) and np.all(np.diff(cos) >= 0)
    np.testing.assert_array_equal(momentum_schedule("fixed", 7, fixed=0.999), np.full(7, 0.999))
    with pytest.raises(ValueError, match="cosine"):
        momentum_schedule("linear", 10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        momentum_schedule("fixed", 3, fixed=1.5)


def test_bad_lengths_are_rejected():
    with pytest.raises(ValueError, match="steps"):
        cosine_schedule(1.0, 0.0, steps=0)
    with pytest.raises(ValueError, match="warmup"):
        cosine_schedule(1.0, 0.0, steps=3, warmup_steps=4)


def test_build_schedules_from_an_optim_config():
    class Optim:  # the fields of concerto3d.config.OptimConfig that schedules read
        lr, min_lr, warmup_steps = 2e-3, 0.0, 3
        momentum_schedule, momentum_start, momentum_end, momentum_fixed = "fixed", 0.996, 1.0, 0.99
    s = build_schedules(Optim, 10)
    assert len(s) == 10 and s.lr[3] == pytest.approx(2e-3) and s.momentum[5] == pytest.approx(0.99)

"""EMA update of the teacher."""

import copy

import pytest
import torch

from concerto3d.training.ema import ema_update


def _pair():
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    student.train()(torch.randn(8, 4))  # moves the BatchNorm running stats
    return teacher, student


def test_teacher_is_m_times_teacher_plus_one_minus_m_times_student():
    teacher, student = _pair()
    t0 = {n: p.detach().clone() for n, p in teacher.named_parameters()}
    ema_update(teacher, student, 0.9)
    for name, p in teacher.named_parameters():
        expected = 0.9 * t0[name] + (1 - 0.9) * dict(student.named_parameters())[name].detach()
        torch.testing.assert_close(p, expected, rtol=1e-6, atol=1e-7)
        assert not p.requires_grad or p.grad is None
    torch.testing.assert_close(teacher[1].running_mean, student[1].running_mean)
    assert teacher[1].num_batches_tracked == student[1].num_batches_tracked


def test_momentum_one_keeps_and_zero_copies():
    teacher, student = _pair()
    t0 = [p.detach().clone() for p in teacher.parameters()]
    ema_update(teacher, student, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), t0))
    ema_update(teacher, student, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), student.parameters()))


def test_mismatched_models_and_bad_momentum_are_rejected():
    teacher, student = _pair()
    with pytest.raises(ValueError, match="momentum"):
        ema_update(teacher, student, 1.5)
    with pytest.raises(ValueError, match="differ"):
        ema_update(torch.nn.Linear(4, 3), student, 0.5)

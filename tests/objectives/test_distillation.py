"""Self-distillation losses against reference formulas, and a short run that must not collapse."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from concerto3d.models.heads import PrototypeHead
from concerto3d.objectives import (contrastive_distillation, dino_distillation, koleo_loss, mse_distillation,
                                   sinkhorn_knopp, update_center)
from concerto3d.training.ema import ema_update


def test_dino_distillation_matches_soft_target_cross_entropy():
    g = torch.Generator().manual_seed(0)
    s, t, c = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g), torch.randn(7, generator=g)
    s.requires_grad_(True)
    loss = dino_distillation(s, t, c, student_temp=0.1, teacher_temp=0.04)
    # torch's cross_entropy with probability targets, built by hand.
    expected = F.cross_entropy(s.detach() / 0.1, torch.softmax((t - c) / 0.04, dim=1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # And a plain loop over points and prototypes for the uncentred case.
    loop = 0.0
    for i in range(5):
        pt = np.exp(t[i].numpy() / 0.04) / np.exp(t[i].numpy() / 0.04).sum()
        ls = s[i].detach().numpy() / 0.1
        ls = ls - np.log(np.exp(ls).sum())
        loop -= float((pt * ls).sum()) / 5
    assert dino_distillation(s, t, None).item() == pytest.approx(loop, rel=1e-4)
    loss.backward()
    assert s.grad.abs().sum() > 0


def test_update_center_is_an_ema_of_the_batch_mean():
    center = torch.tensor([1.0, 0.0, -1.0])
    logits = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    new = update_center(center, logits, momentum=0.9)
    torch.testing.assert_close(new, 0.9 * center + 0.1 * torch.tensor([2.0, 3.0, 4.0]))
    assert center.tolist() == [1.0, 0.0, -1.0]


def _sinkhorn_numpy(logits, temp, iters):
    q = np.exp(logits.astype(np.float64) / temp)  # (P, K)
    q /= q.sum()
    p, k = q.shape
    for _ in range(iters):
        q /= q.sum(axis=0, keepdims=True) * k  # each prototype column sums to 1/K
        q /= q.sum(axis=1, keepdims=True) * p  # each point row sums to 1/P
    return q * p


def test_sinkhorn_knopp_matches_numpy_and_balances_prototypes():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(40, 6, generator=g)
    q = sinkhorn_knopp(logits, teacher_temp=0.5, n_iters=3)
    np.testing.assert_allclose(q.numpy(), _sinkhorn_numpy(logits.numpy(), 0.5, 3), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(40))
    balanced = sinkhorn_knopp(logits, teacher_temp=0.5, n_iters=200)
    torch.testing.assert_close(balanced.sum(dim=0), torch.full((6,), 40 / 6), rtol=1e-3, atol=1e-3)
    # Logits far from 0 at a sharp temperature stay finite.
    assert torch.isfinite(sinkhorn_knopp(logits * 50, teacher_temp=0.04)).all()


def test_mse_distillation_is_two_minus_two_cosine():
    s = torch.tensor([[1.0, 0.0], [0.0, 3.0]], requires_grad=True)
    t = torch.tensor([[5.0, 0.0], [1.0, 0.0]])
    assert mse_distillation(s, t).item() == pytest.approx((0.0 + 2.0) / 2)


def test_contrastive_distillation_is_cross_entropy_over_the_matched_points():
    # two matched pairs, orthogonal, temperature 1: each row's logits are (1, 0) -> loss log(1 + e^-1)
    s = torch.tensor([[2.0, 0.0], [0.0, 0.5]], requires_grad=True)
    t = torch.tensor([[3.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = contrastive_distillation(s, t, temperature=1.0)
    assert loss.item() == pytest.approx(np.log(1 + np.exp(-1)), rel=1e-6)
    loss.backward()
    assert s.grad is not None and t.grad is None  # the teacher is the EMA key encoder: no gradient
    # swapping the teacher rows makes every positive a negative: the loss rises above log 2
    assert contrastive_distillation(s.detach(), t.detach().flip(0), 1.0).item() > np.log(2)
    # a sharper temperature separates the correct matching further
    assert contrastive_distillation(s.detach(), t.detach(), 0.1).item() < loss.item()
    with pytest.raises(ValueError, match="temperature"):
        contrastive_distillation(s, t, 0.0)


def test_koleo_is_minus_log_nearest_neighbour_distance():
    # P points evenly on a circle: every nearest neighbour is 2 sin(pi / P) away
    angles = torch.arange(8) * 2 * np.pi / 8
    ring = torch.stack([angles.cos(), angles.sin()], dim=1) * 3.0  # the scale does not count (normalised rows)
    assert koleo_loss(ring).item() == pytest.approx(-np.log(2 * np.sin(np.pi / 8)), rel=1e-5)
    # two rows that nearly coincide cost more than the spread ring
    squeezed = ring.clone()
    squeezed[1] = squeezed[0] + 0.01
    assert koleo_loss(squeezed).item() > koleo_loss(ring).item() + 1.0
    # a gradient step on the loss pushes the two close rows apart
    x = squeezed.clone().requires_grad_(True)
    koleo_loss(x).backward()
    moved = torch.nn.functional.normalize(x.detach() - 0.01 * x.grad, dim=1)
    before = torch.nn.functional.normalize(squeezed, dim=1)
    assert (moved[0] - moved[1]).norm() > (before[0] - before[1]).norm()
    with pytest.raises(ValueError, match="P >= 2"):
        koleo_loss(torch.ones(1, 3))


def _prototype_usage_after_training(use_center: bool, steps: int = 150) -> float:
    """Train a tiny student against its EMA teacher on two noisy views of the same points; return the entropy
    of the teacher's mean assignment over 16 prototypes (0 = every point on one prototype, log 16 = 2.77 max)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.GELU(), torch.nn.Linear(16, 16))
    student = torch.nn.Sequential(net, PrototypeHead(16, hidden_dim=16, bottleneck_dim=8, num_prototypes=16,
                                                     num_layers=2))
    teacher = copy.deepcopy(student).requires_grad_(False)
    opt = torch.optim.AdamW(student.parameters(), lr=3e-3)
    center = torch.zeros(16)
    points = torch.randn(64, 3)
    for _ in range(steps):
        view_s = points + 0.05 * torch.randn_like(points)
        view_t = points + 0.05 * torch.randn_like(points)
        with torch.no_grad():
            t_logits = teacher(view_t)
        loss = dino_distillation(student(view_s), t_logits, center if use_center else None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if use_center:
            center = update_center(center, t_logits, 0.9)
        ema_update(teacher, student, 0.99)
    with torch.no_grad():
        mean_probs = torch.softmax((teacher(points) - center) / 0.04, dim=1).mean(dim=0)
    return float(-(mean_probs * mean_probs.clamp_min(1e-12).log()).sum())


@pytest.mark.slow
def test_default_dino_recipe_does_not_collapse():
    """Centring + sharpening keeps the teacher spread over the prototypes; without the centre it collapses onto
    one or two of them (which shows the test can fail)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of tiny ops: threads only add overhead
    try:
        with_center = _prototype_usage_after_training(use_center=True)
        without = _prototype_usage_after_training(use_center=False)
    finally:
        torch.set_num_threads(threads)
    assert with_center > 1.5, f"teacher collapsed: assignment entropy {with_center:.2f}"
    assert without < with_center - 0.8

"""The training step's fast paths give the numbers of their plain references (up to float rounding)."""

import copy
import dataclasses

import torch

import concerto3d.models.concerto as concerto
from concerto3d.models.concerto import ConcertoModel, StepState
from tests.models.test_concerto import tiny_batch, tiny_cfg


def _whole_head(head):
    """The reference: the projection head on every point, then the means (what the fast path factorises)."""
    return head, torch.nn.Identity()


def _losses_and_grads(model, batch):
    torch.manual_seed(1)  # the same distillation subset and InfoNCE negatives in both runs
    out = model(batch, StepState(0, 0.04))
    model.zero_grad(set_to_none=True)
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in out.items()}, grads


def test_projection_after_pooling_equals_projection_of_every_point(monkeypatch):
    torch.manual_seed(0)
    fast = ConcertoModel(tiny_cfg("objective.kind=joint", "objective.max_negatives=8",
                                  "objective.pool_then_project=false"))  # the form that projects every point
    ref = copy.deepcopy(fast)
    batch = tiny_batch()
    out_fast, grads_fast = _losses_and_grads(fast, batch)
    monkeypatch.setattr(concerto, "_split_last_linear", _whole_head)
    out_ref, grads_ref = _losses_and_grads(ref, batch)
    assert out_fast["loss_dense"] > 0 and out_fast["loss_scene"] > 0
    for key in out_ref:
        torch.testing.assert_close(out_fast[key], out_ref[key], rtol=1e-5, atol=1e-6)
    assert grads_fast.keys() == grads_ref.keys() and "heads.point_proj.net.2.weight" in grads_fast
    for name in grads_ref:
        torch.testing.assert_close(grads_fast[name], grads_ref[name], rtol=1e-4, atol=1e-6, msg=name)


def test_split_last_linear_commutes_with_the_mean():
    torch.manual_seed(0)
    head = concerto.ProjectionHead(8, 16, 4)
    before, last = concerto._split_last_linear(head)
    x = torch.randn(50, 8)
    torch.testing.assert_close(last(before(x).mean(0)), head(x).mean(0))
    other = torch.nn.Linear(8, 4)  # any other head is used whole
    assert concerto._split_last_linear(other)[0] is other


def test_pool_then_project_projects_the_patch_means_of_the_encoder_features():
    """The default form: the encoder's features are averaged per (image, patch) and the whole head maps the means;
    its dense loss is the cosine / InfoNCE of those projections, unlike projecting every point first."""
    torch.manual_seed(0)
    pooled = ConcertoModel(tiny_cfg("objective.kind=joint", "objective.max_negatives=8"))
    per_point = copy.deepcopy(pooled)
    per_point.objective = dataclasses.replace(pooled.objective, pool_then_project=False)
    batch = tiny_batch()
    calls = []
    hook = pooled.heads["point_proj"].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    a, _ = _losses_and_grads(pooled, batch)
    hook.remove()
    b, _ = _losses_and_grads(per_point, batch)
    assert a["loss_dense"] > 0 and a["loss_scene"] > 0
    assert max(calls) == int(a["patches"])  # the head saw the patch means (and the crop means), not the points
    assert not torch.allclose(a["loss_dense"], b["loss_dense"])  # the ReLU makes the two forms differ

"""PointNet on dense neighbour tables: the set abstraction's shared MLP and max, without an edge list.

PyG's ``PointNetConv`` (the reference, ``SetAbstraction``'s ``conv``) gathers ``[x_j, pos_j - pos_i]`` for every
edge, runs its MLP on each, and takes a scatter max per query point. This computes the same numbers (up to float
rounding) for an MLP of ``[Linear, LayerNorm, ReLU] * L`` on an (M, K) neighbour table (``ops.radius_table``):

* the first Linear is linear, so ``W [x_j, p_j - p_i] + b = (W_x x_j + W_p p_j + b) - W_p p_i``: it runs once per
  point of ``x`` and once per query, and the edges get a gather and an add (PointNeXt does the same);
* ReLU is monotone, so ``max_j relu(z_j) = relu(max_j z_j)`` with the same gradient (both are 0 where the max is
  <= 0): the last ReLU runs on the (M, C) maxima, not on the (M, K, C) block;
* the max over a row of the table is a ``max(dim=1)``; the padding repeats one of the row's neighbours, which leaves
  the max alone and (the repeated entries being identical) sums to the same gradient;
* with gradients on, one autograd function does the per-edge part: it saves only what its backward reads, and the
  backward writes the max's gradient and each Linear's input gradient into saved (E, C) tensors it is done with
  instead of fresh ones. On CPU a fresh tensor of tens of MB costs about as much in page faults as the arithmetic on
  it (2-3 us a 4 KiB page on the benchmark VM; glibc maps every block over 32 MB anew). The LayerNorm kernels still
  allocate their outputs (their ``.out`` forms compute into a temporary and copy).

The max picks one entry where several are equal (``max(dim=1)``), where the scatter max splits the gradient among
them; the two differ only for a query that has two distinct neighbours with equal features and positions (duplicate
points), and then only in how the gradient is split between those two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["grouped_mlp_max", "supports_grouped_mlp"]

_aten = torch.ops.aten


def supports_grouped_mlp(local_nn: nn.Module) -> bool:
    """Whether ``local_nn`` is a ``Sequential`` of ``[Linear, LayerNorm, ReLU] * L`` (L >= 1) that
    :func:`grouped_mlp_max` knows how to factor."""
    layers = list(local_nn) if isinstance(local_nn, nn.Sequential) else []
    if not layers or len(layers) % 3:
        return False
    return all(isinstance(lin, nn.Linear) and isinstance(norm, nn.LayerNorm) and isinstance(act, nn.ReLU)
               and norm.elementwise_affine and norm.normalized_shape == (lin.out_features,)
               for lin, norm, act in zip(layers[0::3], layers[1::3], layers[2::3]))


def grouped_mlp_max(local_nn: nn.Sequential, x: Tensor, pos: Tensor, pos_dst: Tensor, table: Tensor) -> Tensor:
    """``max_j local_nn([x_j, pos_j - pos_dst_i])`` over the neighbours ``j`` of every query ``i``.

    Args:
        local_nn: ``[Linear, LayerNorm, ReLU] * L`` (see :func:`supports_grouped_mlp`), input width ``C + 3``.
        x: (N, C) float, features of the searched points.
        pos: (N, 3) float, their positions.
        pos_dst: (M, 3) float, the query points.
        table: (M, K) long, neighbours of each query in ``x``, padded with repeats (``ops.radius_table``); every
            row holds at least one neighbour.

    Returns:
        (M, C_out) float, the value of PyG's ``PointNetConv(local_nn)`` with max aggregation.
    """
    layers = list(local_nn)
    first = layers[0]
    c = x.size(1)
    m, k = table.shape
    # First layer per point and per query: W [x_j, p_j - p_i] + b = (W [x_j, p_j] + b) - W_p p_i.
    per_point = F.linear(torch.cat([x, pos], dim=1), first.weight, first.bias)
    per_query = -F.linear(pos_dst, first.weight[:, c:])  # negated here: the edges add it, no (E, C) negation
    flat = table.reshape(-1)
    if torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type):
        params = [layers[1].weight, layers[1].bias]
        for lin, norm in zip(layers[3::3], layers[4::3]):
            params += [lin.weight, lin.bias, norm.weight, norm.bias]
        z = _GroupedMLPMax.apply(per_point, per_query, table, layers[1].eps, *params)
    else:  # no gradients (teacher, embedding) or autocast: the same ops through the modules
        h = per_point.index_select(0, flat)
        h = h.view(m, k, -1).add_(per_query.unsqueeze(1)).view(m * k, -1)
        for layer in layers[1:-1]:
            h = layer(h)
        z = h.view(m, k, -1).max(dim=1).values
    return torch.relu(z)


class _GroupedMLPMax(torch.autograd.Function):
    """The per-edge part of :func:`grouped_mlp_max`: gather, ``LayerNorm -> ReLU -> Linear`` ... ``LayerNorm``, max.

    Inputs: per_point (N, C1), per_query (M, C1), table (M, K), eps, then the parameters ``gamma_1, beta_1`` and
    ``W_l, b_l, gamma_l, beta_l`` for each further layer. Returns the (M, C_L) maxima before the last ReLU.
    """

    @staticmethod
    def forward(ctx, per_point, per_query, table, eps, *params):
        m, k = table.shape
        depth = (len(params) - 2) // 4 + 1
        a = per_point.index_select(0, table.reshape(-1))
        a.view(m, k, -1).add_(per_query.unsqueeze(1))
        inputs, hidden, stats = [], [], []
        for layer in range(depth):
            y, mean, rstd = _aten.native_layer_norm(a, [a.size(1)], params[4 * layer], params[4 * layer + 1], eps)
            inputs.append(a)
            stats += [mean, rstd]
            if layer < depth - 1:
                hidden.append(y.relu_())
                a = torch.addmm(params[4 * layer + 3], y, params[4 * layer + 2].t())
        out, arg = y.view(m, k, -1).max(dim=1)
        ctx.depth, ctx.num_points, ctx.spent = depth, per_point.size(0), False
        ctx.save_for_backward(table, y, arg, *inputs, *hidden, *stats, *params)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        if ctx.spent:  # the saved tensors hold this backward's buffers now
            raise RuntimeError("grouped_mlp_max: backward ran twice through the same graph (retain_graph=True); "
                               "run the forward again, or set SetAbstraction.fast = False for the PyG path")
        ctx.spent = True
        depth = ctx.depth
        table, y_last, arg, *rest = ctx.saved_tensors
        inputs, rest = rest[:depth], rest[depth:]
        hidden, rest = rest[:depth - 1], rest[depth - 1:]
        stats, params = rest[:2 * depth], rest[2 * depth:]
        m, k = table.shape
        free: list[Tensor] = []  # saved (E, C) tensors that are no longer needed: the next outputs go there

        def buffer(like: Tensor) -> Tensor:
            for i, t in enumerate(free):
                if t.numel() == like.numel() and t.dtype == like.dtype:
                    return free.pop(i).view(like.shape)
            return torch.empty_like(like)

        grad = y_last.zero_()  # the last LayerNorm's output is not needed any more
        grad.view(m, k, -1).scatter_(1, arg.unsqueeze(1), grad_out.unsqueeze(1))
        grads: list[Tensor | None] = [None] * len(params)
        for layer in reversed(range(depth)):
            a, gamma, beta = inputs[layer], params[4 * layer], params[4 * layer + 1]
            # a fresh output: the .out form of this op computes into a temporary and copies
            grad_a, grad_gamma, grad_beta = _aten.native_layer_norm_backward(
                grad, a, [a.size(1)], stats[2 * layer], stats[2 * layer + 1], gamma, beta, [True, True, True])
            grads[4 * layer], grads[4 * layer + 1] = grad_gamma, grad_beta
            free += [grad, a]
            grad = grad_a
            if layer > 0:  # back through Linear l and the ReLU before it
                h, weight = hidden[layer - 1], params[4 * layer - 2]
                grads[4 * layer - 2] = grad.t().mm(h)
                grads[4 * layer - 1] = grad.sum(0)
                grad_h = torch.mm(grad, weight, out=buffer(h))
                _aten.threshold_backward.grad_input(grad_h, h, 0, grad_input=grad_h)
                free += [grad, h]
                grad = grad_h
        grad_point = grad.new_zeros(ctx.num_points, grad.size(1)).index_add_(0, table.reshape(-1), grad)
        grad_query = grad.view(m, k, -1).sum(dim=1)
        return (grad_point, grad_query, None, None, *grads)

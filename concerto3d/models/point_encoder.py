"""PointNet++ point encoder with dense (per-point) output features.

The encoder downsamples the points level by level (set abstraction), summarises each cloud in one vector (global
set abstraction), then carries features back up to every input point (feature propagation)::

    input points (N, Cin) ──SA──> level 1 ──SA──> level 2 ──SA──> level 3 ──global SA──> scene_feat (B, G)
          │                       │               │               │ + scene_feat
          └── skip ──> FP <─ skip ┴─── FP <─ skip ┴──── FP <──────┘
                        │
                  point_feat (N, C_out)

* set abstraction = farthest point sampling (``ops.fps``) + radius grouping (``ops.radius``) + PyG
  ``PointNetConv`` (an MLP on ``[x_j, pos_j - pos_i]`` of every neighbour, max over the neighbours), computed on a
  dense neighbour table by ``models.grouped_mlp`` (same numbers; ``SetAbstraction.fast = False`` runs PyG's);
* global set abstraction = an MLP on ``[x, pos - centroid]`` + max over each cloud;
* feature propagation = ``ops.knn_interpolate`` (k = 3, inverse squared distance) + concatenation of the finer
  level's features (skip connection) + an MLP.

Normalisation is LayerNorm, per point: it does not depend on the batch size (training works with 1-4 clouds per
batch) and needs no synchronisation under DDP, unlike BatchNorm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

from concerto3d import ops
from concerto3d.models.grouped_mlp import grouped_mlp_max, supports_grouped_mlp

__all__ = ["PointEncoderConfig", "PointEncoderOutput", "PointEncoder", "mlp"]


@dataclass
class PointEncoderConfig:
    """Widths, depths and neighbourhoods of the PointNet++ encoder.

    The defaults train on a laptop CPU with 8-16k points per cloud: three levels keep 1/4, 1/16 and 1/64 of the
    points, grouped within 0.1, 0.2 and 0.4 m.

    Attributes:
        use_color: the input features hold RGB (in [-1, 1]) after xyz.
        use_normal: the input features hold the unit normal after xyz (and colour).
        ratios: fraction of points each set-abstraction level keeps, one per level.
        radii: grouping radius of each level, metres.
        max_neighbors: at most this many neighbours per sampled point.
        sa_channels: output width of each set-abstraction level.
        global_channels: width of the scene feature (global set abstraction).
        fp_channels: widths of the feature-propagation stages from the deepest level up, all but the last
            (one fewer entry than levels); the last stage gives ``out_channels``.
        out_channels: width of the per-point output features.
        mlp_layers: linear layers in every MLP (>= 1).
    """

    use_color: bool = True
    use_normal: bool = True
    ratios: tuple[float, ...] = (0.25, 0.25, 0.25)
    radii: tuple[float, ...] = (0.1, 0.2, 0.4)
    max_neighbors: int = 32
    sa_channels: tuple[int, ...] = (32, 64, 128)
    global_channels: int = 256
    fp_channels: tuple[int, ...] = (128, 96)
    out_channels: int = 96
    mlp_layers: int = 2

    def __post_init__(self):
        # YAML and JSON give lists; keep tuples so that configs compare and hash alike.
        for name in ("ratios", "radii", "sa_channels", "fp_channels"):
            setattr(self, name, tuple(getattr(self, name)))
        levels = len(self.ratios)
        if levels < 1:
            raise ValueError("PointEncoderConfig: expected at least one set-abstraction level, got ratios=()")
        if len(self.radii) != levels or len(self.sa_channels) != levels:
            raise ValueError(f"PointEncoderConfig: expected ratios, radii and sa_channels of one length, got "
                             f"{len(self.ratios)}, {len(self.radii)} and {len(self.sa_channels)}")
        if len(self.fp_channels) != levels - 1:
            raise ValueError(f"PointEncoderConfig: expected {levels - 1} fp_channels (levels - 1), got "
                             f"{len(self.fp_channels)}")
        if not all(0.0 < r <= 1.0 for r in self.ratios):
            raise ValueError(f"PointEncoderConfig: expected ratios in (0, 1], got {self.ratios}")
        if not all(r > 0 for r in self.radii):
            raise ValueError(f"PointEncoderConfig: expected positive radii, got {self.radii}")
        if self.mlp_layers < 1 or self.max_neighbors < 1:
            raise ValueError(f"PointEncoderConfig: expected mlp_layers >= 1 and max_neighbors >= 1, got "
                             f"{self.mlp_layers} and {self.max_neighbors}")

    @property
    def in_channels(self) -> int:
        """Width of the input features: xyz, then colour (3) and normal (3) when used."""
        return 3 + 3 * bool(self.use_color) + 3 * bool(self.use_normal)


@dataclass
class PointEncoderOutput:
    """What :class:`PointEncoder` returns.

    Attributes:
        point_feat: (N, out_channels) features of every input point.
        scene_feat: (B, global_channels) one feature per cloud (zeros for an empty cloud index).
    """

    point_feat: Tensor
    scene_feat: Tensor


def mlp(channels: list[int], plain_last: bool = False) -> nn.Sequential:
    """Per-point MLP: ``Linear -> LayerNorm -> ReLU`` for each consecutive pair of ``channels``.

    Args:
        channels: widths, input first, e.g. ``[12, 32, 32]``.
        plain_last: the last layer is a bare Linear (no norm, no activation).
    """
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        layers.append(nn.Linear(c_in, c_out))
        if not (plain_last and i == len(channels) - 2):
            layers += [nn.LayerNorm(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


# Set abstraction takes the dense-table path when at least this fraction of the table's entries are neighbours (not
# padding). Measured on 2 cores: at 86-95 % (indoor-like crops, default radii) the table path took 0.65x the edge
# list's time per level; on benchmarks/train.py's uniform random cubes, where the level-0 balls hold 3.5 points of
# a 13-wide table (27 %), it made the 3d step 9 % slower until this threshold sent that level to the edge list.
_MIN_TABLE_FILL = 0.5


def _widths(c_in: int, c_out: int, layers: int) -> list[int]:
    return [c_in] + [c_out] * layers


class SetAbstraction(nn.Module):
    """Sample with FPS, group within a radius, PointNet on each group (PyG ``PointNetConv``, max aggregation)."""

    def __init__(self, in_channels: int, out_channels: int, ratio: float, radius: float, max_neighbors: int,
                 mlp_layers: int):
        super().__init__()
        from torch_geometric.nn import PointNetConv  # PyG's import is slow; pay it when a model is built

        self.ratio, self.radius, self.max_neighbors = ratio, radius, max_neighbors
        local_nn = mlp(_widths(in_channels + 3, out_channels, mlp_layers))
        self.conv = PointNetConv(local_nn=local_nn, global_nn=None, add_self_loops=False)
        # True: the same maths on a dense neighbour table (models/grouped_mlp.py); False: PyG's PointNetConv
        self.fast = True

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(N, C) features, (N, 3) points, (N,) batch -> the same for the M sampled points."""
        with record_function("sampling"):
            idx = ops.fps(pos, batch, self.ratio).to(pos.device)
        pos_dst, batch_dst = pos[idx], batch[idx]
        if not (self.fast and supports_grouped_mlp(self.conv.local_nn)):
            with record_function("grouping"):
                row, col = ops.radius(pos, pos_dst, self.radius, batch, batch_dst, self.max_neighbors)
            return self._pointnet_conv(x, pos, pos_dst, row, col), pos_dst, batch_dst
        with record_function("grouping"):
            table, counts = ops.radius_table(pos, pos_dst, self.radius, batch, batch_dst, self.max_neighbors)
            edges = int(counts.sum())
        # The table pays for its padding: where the balls are mostly empty (fewer than half its entries are
        # neighbours), PyG's edge list is cheaper. A query without neighbours cannot happen while the queries are
        # points of x (each finds itself); PyG's max gives it zeros.
        if edges < _MIN_TABLE_FILL * table.numel() or bool((counts == 0).any()):
            with record_function("grouping"):
                row = torch.repeat_interleave(torch.arange(table.size(0), device=table.device), counts)
                col = table[torch.arange(table.size(1), device=table.device) < counts.unsqueeze(1)]  # radius' order
            return self._pointnet_conv(x, pos, pos_dst, row, col), pos_dst, batch_dst
        with record_function("edge_mlp"):
            x_dst = grouped_mlp_max(self.conv.local_nn, x, pos, pos_dst, table)
        return x_dst, pos_dst, batch_dst

    def _pointnet_conv(self, x: Tensor, pos: Tensor, pos_dst: Tensor, row: Tensor, col: Tensor) -> Tensor:
        """PyG's ``PointNetConv`` on the edge list of ``ops.radius`` (``row``: query, ``col``: neighbour in x)."""
        with record_function("edge_mlp"):
            return self.conv((x, None), (pos, pos_dst), torch.stack([col, row], dim=0))

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}, radius={self.radius}, max_neighbors={self.max_neighbors}"


class FeaturePropagation(nn.Module):
    """Interpolate coarse features onto finer points (k-NN, k = 3), concatenate the finer level's own, MLP.

    The interpolation is linear in the features (a weighted sum of rows) and the MLP starts with a Linear, so
    ``W [interp(x), x_skip] + b = interp(W_x x) + W_s x_skip + b``: the coarse part of the first layer runs on the
    coarse points (a quarter as many, at the default ratios) and no concatenation is made. ``fast = False`` runs
    the written-out form, the reference of the tests.
    """

    def __init__(self, coarse_channels: int, skip_channels: int, out_channels: int, mlp_layers: int,
                 plain_last: bool = False, k: int = 3):
        super().__init__()
        self.k = k
        self.mlp = mlp(_widths(coarse_channels + skip_channels, out_channels, mlp_layers), plain_last=plain_last)
        self.fast = True

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor, x_skip: Tensor, pos_skip: Tensor,
                batch_skip: Tensor) -> Tensor:
        """(M, Cc) coarse features at (M, 3) -> (N, out) features at the (N, 3) finer points."""
        if not self.fast:
            with record_function("interpolation"):
                x = ops.knn_interpolate(x, pos, pos_skip, batch, batch_skip, k=self.k)
            with record_function("point_mlp"):
                return self.mlp(torch.cat([x, x_skip], dim=1))
        first, c = self.mlp[0], x.size(1)
        with record_function("point_mlp"):
            x = F.linear(x, first.weight[:, :c])
        with record_function("interpolation"):
            x = ops.knn_interpolate(x, pos, pos_skip, batch, batch_skip, k=self.k)
        with record_function("point_mlp"):
            h = F.linear(x_skip, first.weight[:, c:], first.bias).add_(x)
            return self.mlp[1:](h)


class PointEncoder(nn.Module):
    """PointNet++ encoder: per-point features and one feature per cloud.

    Args:
        config: a :class:`PointEncoderConfig` (the defaults when None).

    Shapes:
        coord: (N, 3) float, metres; feat: (N, config.in_channels) float (xyz, colour, normal);
        batch: (N,) long sorted cloud index (None = one cloud).
        returns :class:`PointEncoderOutput` with point_feat (N, config.out_channels) and
        scene_feat (B, config.global_channels), B = batch.max() + 1.

    Example:
        >>> enc = PointEncoder(PointEncoderConfig())
        >>> out = enc(coord, feat, batch)
        >>> out.point_feat.shape   # (N, 96)
    """

    def __init__(self, config: PointEncoderConfig | None = None):
        super().__init__()
        cfg = config if config is not None else PointEncoderConfig()
        self.config = cfg
        self.in_channels, self.out_channels = cfg.in_channels, cfg.out_channels
        levels = len(cfg.ratios)

        widths = [cfg.in_channels, *cfg.sa_channels]
        self.down = nn.ModuleList(
            SetAbstraction(widths[i], widths[i + 1], cfg.ratios[i], cfg.radii[i], cfg.max_neighbors, cfg.mlp_layers)
            for i in range(levels))
        self.global_mlp = mlp(_widths(widths[-1] + 3, cfg.global_channels, cfg.mlp_layers))
        # The scene feature joins the deepest level before the way back up.
        self.global_fuse = mlp(_widths(widths[-1] + cfg.global_channels, widths[-1], 1))
        # Stage i carries level (levels - i) onto level (levels - i - 1); the last one reaches the input points.
        up_widths = [widths[-1], *cfg.fp_channels, cfg.out_channels]
        self.up = nn.ModuleList(
            FeaturePropagation(up_widths[i], widths[levels - 1 - i], up_widths[i + 1], cfg.mlp_layers,
                               plain_last=(i == levels - 1))
            for i in range(levels))

    def forward(self, coord: Tensor, feat: Tensor, batch: Tensor | None = None) -> PointEncoderOutput:
        n = coord.size(0) if coord.dim() == 2 else -1
        if coord.dim() != 2 or coord.size(1) != 3 or n == 0:
            raise ValueError(f"PointEncoder: expected coord of shape (N, 3) with N > 0, got {tuple(coord.shape)}")
        if feat.shape != (n, self.in_channels):
            raise ValueError(f"PointEncoder: expected feat of shape ({n}, {self.in_channels}) (xyz"
                             f"{' + colour' if self.config.use_color else ''}"
                             f"{' + normal' if self.config.use_normal else ''}), got {tuple(feat.shape)}")
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=coord.device)
        if batch.shape != (n,):
            raise ValueError(f"PointEncoder: expected batch of shape ({n},), got {tuple(batch.shape)}")
        num_clouds = int(batch.max()) + 1

        # Down: set abstraction, keeping every level for the skip connections.
        levels = [(feat, coord, batch)]
        for sa in self.down:
            levels.append(sa(*levels[-1]))

        # Global: one vector per cloud from the deepest level, positions relative to the cloud's centroid.
        with record_function("global"):
            x, pos, b = levels[-1]
            scene_feat = self.global_mlp(torch.cat([x, pos - _segment_mean(pos, b, num_clouds)[b]], dim=1))
            scene_feat = _segment_max(scene_feat, b, num_clouds)
            x = self.global_fuse(torch.cat([x, scene_feat[b]], dim=1))

        # Up: feature propagation back to every input point.
        for fp, (x_skip, pos_skip, b_skip) in zip(self.up, reversed(levels[:-1])):
            x = fp(x, pos, b, x_skip, pos_skip, b_skip)
            pos, b = pos_skip, b_skip
        return PointEncoderOutput(point_feat=x, scene_feat=scene_feat)


def _segment_mean(x: Tensor, batch: Tensor, size: int) -> Tensor:
    """(N, C), (N,) -> (size, C) mean per cloud (0 for an empty cloud)."""
    sums = x.new_zeros(size, x.size(1)).index_add(0, batch, x)
    counts = torch.bincount(batch, minlength=size).clamp_min(1).to(x.dtype)
    return sums / counts.unsqueeze(1)


def _segment_max(x: Tensor, batch: Tensor, size: int) -> Tensor:
    """(N, C), (N,) -> (size, C) max per cloud (0 for an empty cloud)."""
    index = batch.unsqueeze(1).expand_as(x)
    return x.new_zeros(size, x.size(1)).scatter_reduce(0, index, x, reduce="amax", include_self=False)

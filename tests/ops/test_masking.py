"""grid_mask: whole cells per crop, about the asked fraction of cells, independent crops."""

import pytest
import torch

from concerto3d.ops import grid_mask


def _grid_points(per_cell=5, cells=10, crops=2):
    """``per_cell`` points near the centre of each of cells**2 unit cells of a plane, for each crop."""
    ij = torch.cartesian_prod(torch.arange(cells), torch.arange(cells)).float() + 0.5
    coord = torch.cat([ij, torch.zeros(len(ij), 1)], 1).repeat_interleave(per_cell, 0)
    coord = coord + (torch.rand(coord.shape) - 0.5) * 0.02
    batch = torch.arange(crops).repeat_interleave(len(coord))
    return coord.repeat(crops, 1), batch


def test_points_of_one_cell_share_their_mask_and_the_ratio_holds():
    coord, batch = _grid_points(per_cell=5, cells=20)
    gen = torch.Generator().manual_seed(0)
    # cell 0.5 m: each unit cell's points (spread 2 cm around its centre) fall in one mask cell whatever the offset
    mask = grid_mask(coord, batch, cell=0.5, ratio=0.3, generator=gen)
    groups = mask.view(-1, 5)
    assert (groups.all(1) | ~groups.any(1)).all()
    assert 0.22 < groups[:, 0].float().mean() < 0.38


def test_crops_are_masked_independently():
    coord, batch = _grid_points(per_cell=1, cells=20, crops=2)
    mask = grid_mask(coord, batch, cell=0.5, ratio=0.5, generator=torch.Generator().manual_seed(1))
    first, second = mask[batch == 0], mask[batch == 1]
    assert first.any() and second.any() and not torch.equal(first, second)


def test_ratio_bounds_and_empty_input():
    coord, batch = _grid_points(cells=4)
    assert not grid_mask(coord, batch, 0.5, 0.0).any()
    assert grid_mask(coord, batch, 0.5, 1.0).all()
    assert grid_mask(coord[:0], batch[:0], 0.5, 0.5).numel() == 0
    with pytest.raises(ValueError, match="cell"):
        grid_mask(coord, batch, 0.0, 0.5)
    with pytest.raises(ValueError, match="ratio"):
        grid_mask(coord, batch, 0.5, 1.5)

"""``PretrainedModel.embed`` in spatial tiles, ``spatial_tiles``, and ``concerto3d embed`` on a PLY without colours."""

import json

import numpy as np
import pytest
import torch

from concerto3d.cli import main
from concerto3d.models.point_encoder import PointEncoder, PointEncoderConfig
from concerto3d.inference import PretrainedModel, load_model, spatial_tiles

SMALL = dict(ratios=(0.25, 0.25), radii=(0.3, 0.6), max_neighbors=8, sa_channels=(8, 16), global_channels=16,
             fp_channels=(8,), out_channels=6, mlp_layers=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(grid_size=0.0, seed=0):
    torch.manual_seed(seed)
    config = {"format": 1, "objective": "3d", "point_encoder": SMALL, "image_encoder": None,
              "input": {"use_color": True, "use_normal": True, "grid_size": grid_size, "feature_channels": 9}}
    return PretrainedModel(PointEncoder(PointEncoderConfig(**SMALL)), None, config)


def room(n, size=(6.0, 4.0, 2.5), seed=0):
    """n points on the floor and the four walls of a box room, shuffled."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 1, (n, 3)) * size
    side = rng.integers(0, 5, n)
    pts[side == 0, 2] = 0.0
    pts[side == 1, 0] = 0.0
    pts[side == 2, 0] = size[0]
    pts[side == 3, 1] = 0.0
    pts[side == 4, 1] = size[1]
    return pts.astype(np.float32)


def reference_embed(model, points, colors, normals):
    """The untiled computation: the whole cloud centred on its bounding box through the encoder at once."""
    from concerto3d.data.collate import point_features
    from concerto3d.data.point_cloud import PointCloud

    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    cloud = PointCloud.from_arrays(points - centre, colors, normals)
    feat = point_features(cloud)
    with torch.no_grad():
        out = model.point_encoder(torch.from_numpy(cloud.coord), torch.from_numpy(feat), None).point_feat
    return out.numpy()


def test_small_cloud_in_one_tile_equals_the_untiled_encoder():
    model = tiny_model()
    points = room(600)
    colors = np.random.default_rng(1).integers(0, 256, (600, 3)).astype(np.uint8)
    normals = np.tile(np.float32([0, 0, 1]), (600, 1))
    expected = reference_embed(model, points, colors, normals)
    got = model.embed(points, colors=colors, normals=normals, tile_points=600)
    assert got.shape == (600, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_grid_thinned_cloud_gives_every_point_its_cell_feature():
    model = tiny_model(grid_size=0.25)
    points = room(800)
    got = model.embed(points)
    cells = np.floor((points - (points.min(0) + points.max(0)) / 2) / 0.25).astype(np.int64)
    _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    assert counts.max() > 1  # some cells hold several points, which then share one feature
    inverse = inverse.reshape(-1)
    shared = np.flatnonzero(counts[inverse] > 1)
    first = shared[0]
    same_cell = shared[inverse[shared] == inverse[first]]
    np.testing.assert_array_equal(got[same_cell], np.repeat(got[first:first + 1], len(same_cell), axis=0))


def test_cloud_larger_than_a_tile_without_colours_gives_one_finite_row_per_point():
    model = tiny_model()
    points = room(3000)
    got = model.embed(points, tile_points=1024, margin=0.5)
    assert got.shape == (3000, 6) and np.isfinite(got).all()
    # Tiles see their own context only: the result differs from the whole cloud's, but stays close in kind.
    whole = model.embed(points, tile_points=3000)
    assert not np.allclose(got, whole)
    # A point's row is its tile's: re-encoding that tile alone (centred on its box) gives the same row.
    tiles = spatial_tiles(points - (points.min(0) + points.max(0)) / 2, 1024, 0.5)
    assert len(tiles) > 1
    core, context = tiles[0]
    alone = model.embed(points[context], tile_points=len(context))
    np.testing.assert_allclose(got[core], alone[np.searchsorted(context, core)], rtol=1e-4, atol=1e-5)


def test_spatial_tiles_partition_the_cloud_with_bounded_contexts():
    coord = room(5000, seed=3)
    tiles = spatial_tiles(coord, 1000, 0.4)
    cores = np.concatenate([core for core, _ in tiles])
    np.testing.assert_array_equal(np.sort(cores), np.arange(5000))  # every point in exactly one core
    for core, context in tiles:
        assert len(context) <= 1000
        assert np.isin(core, context).all()
        lo, hi = coord[core].min(0), coord[core].max(0)
        near = np.flatnonzero(np.all((coord >= lo - 0.4) & (coord <= hi + 0.4), axis=1))
        inside = near[np.linalg.norm(np.maximum(np.maximum(lo - coord[near], coord[near] - hi), 0), axis=1) <= 0.4]
        if len(inside) <= 1000:  # the context holds the whole margin unless it was capped
            np.testing.assert_array_equal(context, inside)
    assert spatial_tiles(coord, 5000, 0.4)[0][0].tolist() == list(range(5000))


def test_spatial_tiles_cap_a_dense_margin():
    # Everything piled into one spot: splitting cannot shrink the margin, so contexts are capped.
    coord = np.zeros((900, 3), np.float32)
    coord[:, 0] = np.linspace(0, 0.01, 900)
    tiles = spatial_tiles(coord, 200, 1.0)
    assert all(len(context) <= 200 and np.isin(core, context).all() for core, context in tiles)
    assert sorted(np.concatenate([core for core, _ in tiles]).tolist()) == list(range(900))


def write_model(tmp_path):
    from safetensors.torch import save_file

    model = tiny_model()
    folder = tmp_path / "run" / "model"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.point_encoder.state_dict().items()},
              str(folder / "point_encoder.safetensors"))
    (folder / "config.json").write_text(json.dumps(model.config))
    return tmp_path / "run", model


def write_ply_xyz(path, points):
    header = f"ply\nformat ascii 1.0\nelement vertex {len(points)}\nproperty float x\nproperty float y\n" \
             "property float z\nend_header\n"
    path.write_text(header + "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in points))


def test_embed_command_writes_one_row_per_point_of_a_ply_without_colours(tmp_path, capsys):
    run, model = write_model(tmp_path)
    points = room(1500, seed=5)
    ply = tmp_path / "cloud.ply"
    write_ply_xyz(ply, points)
    out = tmp_path / "out" / "features.npy"
    code = main(["embed", str(ply), "--model", str(run), "--out", str(out), "--tile-points", "1024",
                 "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    feats = np.load(out)
    assert feats.shape == (1500, 6) and feats.dtype == np.float32 and np.isfinite(feats).all()
    captured = capsys.readouterr()
    assert "1500 x 6" in captured.out
    # the model was trained with normals: the cloud's are estimated (facing the room), its colour input is zeros
    from concerto3d.inference import cloud_normals

    xyz = np.loadtxt(ply, skiprows=7, dtype=np.float32)
    normals = cloud_normals(xyz)
    floor = xyz[:, 2] < 0.01
    assert floor.any() and (normals[floor, 2] > 0.9).mean() > 0.95  # the floor's normals point up, into the room
    loaded = load_model(run)
    np.testing.assert_allclose(feats, loaded.embed(xyz, normals=normals, tile_points=1024), rtol=1e-5, atol=1e-6)
    zeros = tmp_path / "zeros.npy"
    assert main(["embed", str(ply), "--model", str(run), "--out", str(zeros), "--tile-points", "1024",
                 "--device", "cpu", "--missing-normals", "zeros"]) == 0
    np.testing.assert_allclose(np.load(zeros), loaded.embed(xyz, tile_points=1024), rtol=1e-5, atol=1e-6)


def test_embed_command_rejects_bad_input_in_one_line(tmp_path, capsys):
    run, _ = write_model(tmp_path)
    assert main(["embed", str(tmp_path / "missing.ply"), "--model", str(run), "--out", str(tmp_path / "f.npy")]) == 2
    assert "missing.ply" in capsys.readouterr().err
    ply = tmp_path / "cloud.ply"
    write_ply_xyz(ply, room(50))
    assert main(["embed", str(ply), "--model", str(run), "--out", str(tmp_path / "f.txt")]) == 2
    assert ".npy" in capsys.readouterr().err
    assert main(["embed", str(ply), "--model", str(tmp_path / "norun"), "--out", str(tmp_path / "f.npy")]) == 2
    assert "norun" in capsys.readouterr().err


def test_a_model_with_the_height_input_does_not_see_where_the_cloud_lies():
    """With ``position_feature="height"`` every input is relative (neighbourhoods, heights above the lowest point),
    so moving the whole cloud changes no feature; with the former xyz input a point's features follow the cloud's
    extent around it."""
    height, xyz = tiny_model(), tiny_model()
    height.config["input"]["position_feature"] = "height"
    points = room(3000)
    colors = np.random.default_rng(1).integers(0, 256, (3000, 3)).astype(np.uint8)
    moved = points + np.float32([37.0, -12.5, 3.0])
    np.testing.assert_allclose(height.embed(points, colors), height.embed(moved, colors), atol=1e-4)
    # a part of the room: the same points, the same heights, the same features up to what the lost context changes
    part = points[:, 0] < 3.0
    assert np.abs(xyz.embed(points, colors)[part] - xyz.embed(points[part], colors[part])).mean() > \
        np.abs(height.embed(points, colors)[part] - height.embed(points[part], colors[part])).mean()


def test_features_hardly_depend_on_the_tile_size():
    """With the height input (no tile-relative x, y), a point's features from 1024- or 2048-point tiles agree with
    the single-tile ones: median cosine >= 0.99, 99 % of the points >= 0.95 (issue 26; measured on this tiny random
    model: median 0.999, 1st percentile 0.983 / 0.990, minimum 0.94 / 0.96; on the benchmark's trained 3D model and a
    51k-point val room, 4096/8192-point tiles: median 0.996 / 0.999, 1st percentile 0.91 / 0.92)."""
    model = tiny_model()
    model.config["input"]["position_feature"] = "height"
    points = room(6000, seed=3)
    colors = np.random.default_rng(0).integers(0, 255, points.shape).astype(np.uint8)
    whole = model.embed(points, colors, tile_points=7000)
    for tile_points in (1024, 2048):
        tiled = model.embed(points, colors, tile_points=tile_points)
        cos = (whole * tiled).sum(1) / (np.linalg.norm(whole, axis=1) * np.linalg.norm(tiled, axis=1) + 1e-12)
        assert np.median(cos) >= 0.99 and np.percentile(cos, 1) >= 0.95, (tile_points, np.median(cos))
    # the former input, x, y, z of the tile: the same point's features change with the tiling
    model.config["input"]["position_feature"] = "xyz"
    whole, tiled = model.embed(points, colors, tile_points=7000), model.embed(points, colors, tile_points=1024)
    cos = (whole * tiled).sum(1) / (np.linalg.norm(whole, axis=1) * np.linalg.norm(tiled, axis=1) + 1e-12)
    assert np.median(cos) < 0.99

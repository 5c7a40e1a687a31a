import numpy as np
import pytest
from PIL import Image

from concerto3d.visualization.panel import (TITLE_HEIGHT, SCANNET20_PALETTE, Tile, compose_panel,
                                            correspondence_overlay, feature_panel, label_colors, label_legend,
                                            panel_size)

TILE = (160, 120)


def toy_scene(n=1500, seed=0):
    """A floor (label 1) with a box (label 4, chair) and a slab (label 6, table); features separate the parts."""
    rng = np.random.default_rng(seed)
    floor = np.concatenate([rng.uniform(-2, 2, (n, 2)), np.zeros((n, 1))], axis=1)
    box = rng.uniform([-1.5, -0.5, 0], [-0.5, 0.5, 0.8], (n // 3, 3))
    slab = rng.uniform([0.5, -0.8, 0.6], [1.6, 0.8, 0.7], (n // 3, 3))
    coord = np.concatenate([floor, box, slab]).astype(np.float32)
    labels = np.concatenate([np.full(n, 1), np.full(n // 3, 4), np.full(n // 3, 6)])
    labels[:50] = -1
    centres = rng.normal(size=(7, 8)) * 3
    feats = centres[np.maximum(labels, 0)] + rng.normal(size=(len(coord), 8)) * 0.5
    feats[:, :3] += coord  # a little geometry, so colours vary inside a part
    color = (rng.uniform(0.3, 0.9, (len(coord), 3)) * 255).astype(np.uint8)
    return coord, feats.astype(np.float32), labels, color


def tiles_of(panel, num_tiles):
    h = TILE[1]
    return [panel[TITLE_HEIGHT:TITLE_HEIGHT + h, i * TILE[0]:(i + 1) * TILE[0]] for i in range(num_tiles)]


def test_feature_panel_png_has_the_expected_size_and_no_blank_tile(tmp_path):
    coord, feats, labels, color = toy_scene()
    out = tmp_path / "figs" / "panel.png"
    panel = feature_panel(coord, feats, out, color=color, segment20=labels, tile_size=TILE, point_size=3)
    saved = np.asarray(Image.open(out).convert("RGB"))
    width, height = saved.shape[1], saved.shape[0]
    assert (width, height) == panel_size(4, TILE, footer_height=90)
    np.testing.assert_array_equal(saved, panel)
    for tile in tiles_of(saved, 4):
        assert tile.reshape(-1, 3).astype(float).std(axis=0).sum() > 15  # every tile shows something
    # the ground-truth tile shows the palette colours of the classes present
    gt = tiles_of(saved, 4)[1].reshape(-1, 3).astype(int)
    for c in (1, 4, 6):
        assert (np.abs(gt - SCANNET20_PALETTE[c]).sum(axis=1) < 12).sum() > 30


def test_culling_by_normals_leaves_the_hidden_points_out(tmp_path):
    coord, feats, labels, color = toy_scene(n=600)
    normal = np.zeros_like(coord)
    normal[:, 2] = 1.0
    normal[labels == 4] = [0, 0, -1.0]  # the box faces away from a camera above: culled
    labels = labels.copy()
    culled = feature_panel(coord, feats, color=color, segment20=labels, tile_size=TILE, normal=normal)
    gt = tiles_of(culled, 4)[1].reshape(-1, 3).astype(int)
    assert (np.abs(gt - SCANNET20_PALETTE[4]).sum(axis=1) < 12).sum() == 0
    assert (np.abs(gt - SCANNET20_PALETTE[6]).sum(axis=1) < 12).sum() > 30


def test_panel_without_colours_or_labels_has_two_tiles():
    coord, feats, _, _ = toy_scene(n=300)
    panel = feature_panel(coord, feats, tile_size=TILE, segment20=np.full(len(coord), -1))
    assert panel.shape[1] == 2 * TILE[0]


def test_compose_panel_sizes_and_checks():
    img = np.zeros((40, 60, 3), np.uint8)
    img[10:30, 10:50] = 255
    panel = compose_panel([Tile(img, "a"), Tile(img, "b")])
    assert panel.shape == (TITLE_HEIGHT + 40, 120, 3)
    with pytest.raises(ValueError, match="every tile"):
        compose_panel([Tile(img, "a"), Tile(img[:20], "b")])
    with pytest.raises(ValueError, match="at least one"):
        compose_panel([])


def test_label_colours_and_legend():
    seg = np.array([1, 1, 4, -1])
    colors = label_colors(seg)
    np.testing.assert_allclose(colors[0], SCANNET20_PALETTE[1] / 255.0)
    assert colors.min() >= 0 and colors.max() <= 1
    assert [name for name, _ in label_legend(seg)] == ["floor", "chair", "ignore"]
    with pytest.raises(ValueError, match="labels must lie"):
        label_colors(np.array([20]))


def test_correspondence_overlay(tmp_path):
    image = np.full((60, 80, 3), 200, np.uint8)
    uv = np.array([[10, 10], [70, 50]])
    out = correspondence_overlay(image, uv, np.array([1.0, 3.0]), tmp_path / "f.png", title="frame 0")
    assert out.shape[1] == 160 and (tmp_path / "f.png").is_file()
    right = out[TITLE_HEIGHT:TITLE_HEIGHT + 60, 80:]
    assert (np.abs(right.astype(int) - 200).sum(axis=2) > 60).any()  # the points are drawn on the image

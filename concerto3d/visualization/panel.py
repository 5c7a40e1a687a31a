"""A PNG panel of rendered tiles: input colours | ground-truth labels | PCA of features | similarity to a query.

:func:`compose_panel` lays out any list of :class:`Tile` (an image, a title, and optionally a legend or a colour bar
drawn beneath it) at an exact pixel size, see :func:`panel_size`. :func:`feature_panel` builds the standard panel of
one scene from its points, colours, labels and features, every tile rendered with the same camera.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from concerto3d.labels import IGNORE_INDEX, SCANNET20_NAMES

# ScanNet's benchmark colours for the 20 classes (util.py of the ScanNet repository), index = segment20
SCANNET20_PALETTE = np.array([
    (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120), (188, 189, 34),
    (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213), (148, 103, 189),
    (196, 156, 148), (23, 190, 207), (247, 182, 210), (219, 219, 141), (255, 127, 14),
    (158, 218, 229), (44, 160, 44), (112, 128, 144), (227, 119, 194), (82, 84, 163),
], dtype=np.uint8)
IGNORE_COLOR = np.array((60, 60, 60), dtype=np.uint8)  # dark grey for unlabelled points

TITLE_HEIGHT = 28  # pixels above each tile for its title


def label_colors(segment20) -> np.ndarray:
    """ScanNet-20 palette colours of labels.

    Args:
        segment20: (N,) integer labels 0..19, -1 = ignore.
    Returns:
        (N, 3) float32 in [0, 1]; ignored points dark grey.
    """
    seg = np.asarray(segment20)
    if seg.ndim != 1 or not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(f"expected (N,) integer labels, got shape {seg.shape} dtype {seg.dtype}")
    bad = (seg != IGNORE_INDEX) & ((seg < 0) | (seg >= len(SCANNET20_PALETTE)))
    if bad.any():
        raise ValueError(f"labels must lie in 0..{len(SCANNET20_PALETTE) - 1} or be {IGNORE_INDEX}, "
                         f"got {int(seg[bad][0])}")
    out = np.tile(IGNORE_COLOR, (len(seg), 1))
    known = seg != IGNORE_INDEX
    out[known] = SCANNET20_PALETTE[seg[known]]
    return out.astype(np.float32) / 255.0


def label_legend(segment20) -> list[tuple[str, tuple[float, float, float]]]:
    """(name, RGB in [0, 1]) of the classes present in ``segment20`` ((N,) int), most frequent first; "ignore" last
    when some points are unlabelled."""
    seg = np.asarray(segment20)
    counts = np.bincount(seg[seg != IGNORE_INDEX], minlength=len(SCANNET20_NAMES))
    entries = [(SCANNET20_NAMES[c], tuple((SCANNET20_PALETTE[c] / 255.0).tolist()))
               for c in np.argsort(-counts, kind="stable") if counts[c] > 0]
    if (seg == IGNORE_INDEX).any():
        entries.append(("ignore", tuple((IGNORE_COLOR / 255.0).tolist())))
    return entries


@dataclass
class Tile:
    """One image of a panel.

    Attributes:
        image: (H, W, 3) uint8.
        title: shown above the image.
        legend: (name, RGB in [0, 1]) swatches drawn beneath the image.
        colorbar: (matplotlib colormap name, low label, high label) drawn beneath the image.
        markers: (K, 2) pixel positions (x, y) to ring, e.g. the query point.
    """

    image: np.ndarray
    title: str
    legend: list[tuple[str, tuple[float, float, float]]] | None = None
    colorbar: tuple[str, str, str] | None = None
    markers: np.ndarray | None = field(default=None)


def panel_size(num_tiles: int, tile_size: tuple[int, int], footer_height: int) -> tuple[int, int]:
    """(width, height) in pixels of a panel of ``num_tiles`` tiles of ``tile_size`` (width, height) in one row, with
    the title strip above and a footer (legends, colour bars) of ``footer_height`` pixels below."""
    return num_tiles * tile_size[0], TITLE_HEIGHT + tile_size[1] + footer_height


def compose_panel(tiles: list[Tile], out_path: str | os.PathLike | None = None,
                  footer_height: int | None = None) -> np.ndarray:
    """Lay out tiles in one row with titles, legends and colour bars.

    Args:
        tiles: all with images of the same size (H, W, 3).
        out_path: write the panel here as PNG when given (parent folders are created).
        footer_height: pixels below the tiles for legends / colour bars; default about a third of H, 0 when no tile
            has either.
    Returns:
        (height, width, 3) uint8 panel, of :func:`panel_size`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not tiles:
        raise ValueError("expected at least one tile")
    h, w = tiles[0].image.shape[:2]
    for t in tiles:
        if t.image.shape != (h, w, 3):
            raise ValueError(f"every tile must be ({h}, {w}, 3), got {t.image.shape} for {t.title!r}")
    if footer_height is None:
        footer_height = max(90, h // 3) if any(t.legend or t.colorbar for t in tiles) else 0
    width, height = panel_size(len(tiles), (w, h), footer_height)
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    for i, tile in enumerate(tiles):
        # rectangles in figure fractions: (left, bottom, width, height)
        ax = fig.add_axes((i * w / width, footer_height / height, w / width, h / height))
        ax.imshow(tile.image, interpolation="nearest")
        ax.set_axis_off()
        # bold DejaVu Sans is about 0.65 em wide a character: shrink long titles to fit their tile
        fontsize = float(np.clip(0.95 * w / (0.65 * max(len(tile.title), 1)) * 72 / dpi, 6.0, 12.0))
        fig.text((i + 0.5) * w / width, 1 - TITLE_HEIGHT / 2 / height, tile.title, ha="center", va="center",
                 fontsize=fontsize, fontweight="bold")
        if tile.markers is not None and len(tile.markers):
            m = np.asarray(tile.markers, dtype=float).reshape(-1, 2)
            ax.scatter(m[:, 0], m[:, 1], s=160, facecolors="none", edgecolors="cyan", linewidths=2.0)
            ax.scatter(m[:, 0], m[:, 1], s=12, c="cyan")
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
        if footer_height and tile.legend:
            lax = fig.add_axes((i * w / width, 0, w / width, footer_height / height))
            lax.set_axis_off()
            handles = [Patch(facecolor=c, edgecolor="black", linewidth=0.3, label=n) for n, c in tile.legend]
            ncol = 3 if len(handles) > 4 else max(1, len(handles))
            rows = -(-len(handles) // ncol)
            # shrink the text when many classes must fit the footer (a row takes about 1.7 font sizes)
            fontsize = float(np.clip(footer_height / (rows * 1.7) * 72 / dpi, 5.0, 9.0))
            lax.legend(handles=handles, loc="upper center", ncol=ncol, fontsize=fontsize, frameon=False,
                       handlelength=1.2, columnspacing=0.8, handletextpad=0.4, borderaxespad=0.2,
                       labelspacing=0.3)
        if footer_height and tile.colorbar:
            cmap, lo_label, hi_label = tile.colorbar
            cax = fig.add_axes(((i + 0.15) * w / width, 0.55 * footer_height / height, 0.7 * w / width,
                                min(16, footer_height / 5) / height))
            cb = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=cmap), cax=cax, orientation="horizontal")
            cb.set_ticks([0, 1])
            cb.set_ticklabels([lo_label, hi_label])
            cb.ax.tick_params(labelsize=9)
            low, high = cb.ax.get_xticklabels()
            low.set_horizontalalignment("left")  # keep both labels inside the tile
            high.set_horizontalalignment("right")
    canvas.draw()
    panel = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
    if out_path is not None:
        from PIL import Image

        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(panel).save(out_path, format="PNG")
    return panel


def default_query_index(coord) -> int:
    """A deterministic query point: the point nearest the cloud's median position ((N, 3) -> index)."""
    coord = np.asarray(coord, dtype=np.float64)
    return int(np.argmin(np.linalg.norm(coord - np.median(coord, axis=0), axis=1)))


def feature_panel(coord, features, out_path: str | os.PathLike | None = None, color=None, segment20=None,
                  query_index: int | None = None, tile_size: tuple[int, int] = (480, 360), point_size: float = 3.0,
                  camera=None, normal=None) -> np.ndarray:
    """The standard panel of one scene: input colours | ground truth | PCA of features | similarity to a query.

    Args:
        coord: (N, 3) float points.
        features: (N, C) float point features.
        out_path: PNG to write (optional).
        color: (N, 3) uint8 input colours, or None to leave that tile out.
        segment20: (N,) int labels (-1 ignore), or None / all -1 to leave that tile out.
        query_index: the similarity query, 0..N-1; default :func:`default_query_index`.
        tile_size: (width, height) of each tile in pixels.
        point_size: rendered point diameter in pixels.
        camera: a ``render.Camera``; default fitted to the cloud.
        normal: (N, 3) float normals; when given, points whose back faces the camera (the ceiling and near walls of
            a room seen from outside) are left out of the tiles, see ``render.facing_camera``.
    Returns:
        (height, width, 3) uint8 panel.
    """
    from concerto3d.visualization.pca import pca_colors, similarity_colors
    from concerto3d.visualization.render import facing_camera, fit_camera, project, render_views

    coord = np.asarray(coord, dtype=np.float32)
    n = len(coord)
    if len(features) != n:
        raise ValueError(f"expected one feature row per point ({n}), got {len(features)}")
    query_index = default_query_index(coord) if query_index is None else int(query_index)
    if not 0 <= query_index < n:
        raise ValueError(f"query index must lie in 0..{n - 1}, got {query_index}")
    camera = camera or fit_camera(coord, aspect=tile_size[0] / tile_size[1])
    shown = np.ones(n, dtype=bool) if normal is None else facing_camera(coord, normal, camera)
    shown[query_index] = True

    colorings, tiles = [], []
    if color is not None:
        colorings.append(np.asarray(color, dtype=np.float32) / 255.0)
        tiles.append(Tile(None, "input colours"))
    if segment20 is not None and (np.asarray(segment20) != IGNORE_INDEX).any():
        colorings.append(label_colors(segment20))
        tiles.append(Tile(None, "ground truth", legend=label_legend(np.asarray(segment20)[shown])))
    colorings.append(pca_colors(features))
    tiles.append(Tile(None, "PCA of features"))
    cmap = "inferno"
    colorings.append(similarity_colors(features, query_index, cmap=cmap))
    marker, _ = project(coord[query_index:query_index + 1], camera, tile_size)
    tiles.append(Tile(None, f"similarity to point {query_index}", colorbar=(cmap, "least", "most similar"),
                      markers=marker))
    images = render_views(coord[shown], [c[shown] for c in colorings], camera, tile_size, point_size)
    for tile, image in zip(tiles, images):
        tile.image = image
    return compose_panel(tiles, out_path)


def correspondence_overlay(image, uv, depth, out_path: str | os.PathLike | None = None, title: str = "",
                           point_size: float = 4.0) -> np.ndarray:
    """Side-by-side figure to check 2D-3D alignment by eye: the frame, and the frame with the pixels of its
    corresponding points coloured by depth.

    Args:
        image: (H, W, 3) uint8 frame.
        uv: (M, 2) pixel column, row of each correspondence.
        depth: (M,) float depth of each point in the camera (metres).
        out_path: PNG to write (optional).
        title: figure title.
    Returns:
        (height, width, 3) uint8 figure of size (2 W, H + title and colour bar strips).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    depth = np.asarray(depth, dtype=np.float64).reshape(-1)
    if len(uv) != len(depth):
        raise ValueError(f"expected one depth per correspondence, got {len(uv)} pixels and {len(depth)} depths")
    h, w = image.shape[:2]
    top, bottom = TITLE_HEIGHT, 50
    width, height = 2 * w, h + top + bottom
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    fontsize = float(np.clip(0.95 * width / (0.65 * max(len(title), 1)) * 72 / dpi, 6.0, 11.0))
    fig.text(0.5, 1 - top / 2 / height, title, ha="center", va="center", fontsize=fontsize, fontweight="bold")
    for i in range(2):
        ax = fig.add_axes((i / 2, bottom / height, 0.5, h / height))
        ax.imshow(image, interpolation="nearest")
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_axis_off()
    if len(uv):
        # pixel (u, v) covers [u, u+1) x [v, v+1); imshow puts pixel centres at integers
        sc = ax.scatter(uv[:, 0], uv[:, 1], c=depth, cmap="turbo", s=point_size, linewidths=0, alpha=0.9)
        cax = fig.add_axes((0.6, 0.55 * bottom / height, 0.3, 12 / height))
        cb = fig.colorbar(sc, cax=cax, orientation="horizontal")
        cb.ax.tick_params(labelsize=8)
        fig.text(0.58, (0.55 * bottom + 6) / height, "point depth (m)", ha="right", va="center", fontsize=9)
    canvas.draw()
    out = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
    if out_path is not None:
        from PIL import Image

        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out).save(out_path, format="PNG")
    return out

"""A self-contained HTML viewer of a coloured point cloud (``visualize --html``), for machines without a display.

One file, plotly.js inlined, that any browser opens offline (over SSH: copy it, or serve the folder): rotate with the
left button, zoom with the wheel, pan with the right button, and a menu switches the colours between the input
colours, the labels, the PCA of the features and the similarity to the query point. Browsers hold a few hundred
thousand WebGL markers comfortably, so a larger cloud is shown as a random subsample (``max_points``, seeded); the
title says how many points are shown of how many.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_html_viewer", "DEFAULT_HTML_POINTS"]

DEFAULT_HTML_POINTS = 150_000


def _hex(colors: np.ndarray) -> list[str]:
    rgb = np.clip(np.round(np.asarray(colors, dtype=np.float64) * 255), 0, 255).astype(np.int64)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb]


def write_html_viewer(path: str | Path, coord: np.ndarray, colorings: dict[str, np.ndarray],
                      max_points: int = DEFAULT_HTML_POINTS, title: str = "", point_size: float = 2.0,
                      seed: int = 0, marked: int | None = None) -> int:
    """Write the viewer; returns the number of points it shows.

    Args:
        path: the .html file (written whole, then renamed).
        coord: (N, 3) float points, metres.
        colorings: {name: (N, 3) float colours in [0, 1]}, the first one shown first.
        max_points: show at most this many points (a random subsample, seeded by ``seed``).
        title: the page's title; the count of points shown is added to it.
        marked: a point index drawn as a larger marker (the similarity query), kept in any subsample.
    """
    import plotly.graph_objects as go

    from concerto3d.io.atomic import atomic_write_text

    coord = np.asarray(coord, dtype=np.float64)
    n = len(coord)
    if n == 0 or not colorings:
        raise ValueError("write_html_viewer: expected points and at least one colouring")
    for name, colors in colorings.items():
        if np.shape(colors) != (n, 3):
            raise ValueError(f"write_html_viewer: colouring {name!r} has shape {np.shape(colors)}, expected ({n}, 3)")
    rows = np.arange(n)
    if n > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    shown = np.round(coord[rows], 3)  # millimetres: a third of the file's coordinate text, nothing visible lost
    names = list(colorings)
    palettes = {name: _hex(np.asarray(colorings[name])[rows]) for name in names}
    figure = go.Figure(go.Scatter3d(x=shown[:, 0], y=shown[:, 1], z=shown[:, 2], mode="markers",
                                    marker={"size": point_size, "color": palettes[names[0]]},
                                    hoverinfo="skip", name="points"))
    if marked is not None:
        figure.add_trace(go.Scatter3d(x=[coord[marked, 0]], y=[coord[marked, 1]], z=[coord[marked, 2]],
                                      mode="markers", marker={"size": 8, "color": "#00e5ff", "symbol": "diamond"},
                                      name="query point", hovertext=[f"point {marked}"]))
    buttons = [{"label": name, "method": "restyle", "args": [{"marker.color": [palettes[name]]}, [0]]}
               for name in names]
    label = f"{title}: " if title else ""
    figure.update_layout(
        title={"text": f"{label}{len(rows):,} of {n:,} points"
                       + (" (random subsample)" if len(rows) < n else "")},
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 0.0, "y": 1.0, "xanchor": "left",
                      "yanchor": "top", "showactive": True}],
        scene={"aspectmode": "data", "xaxis": {"visible": False}, "yaxis": {"visible": False},
               "zaxis": {"visible": False}, "camera": {"eye": {"x": 0.9, "y": -0.9, "z": 1.1}}},
        margin={"l": 0, "r": 0, "t": 40, "b": 0}, showlegend=False, paper_bgcolor="#ffffff")
    html = figure.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    atomic_write_text(Path(path), html)
    return len(rows)

"""Colours that show point features: PCA to RGB, and cosine similarity to one query point as a heat map.

PCA colours follow the Sonata/Concerto demos: project the centred features on their first three principal
components and map each component to one colour channel, scaled by robust percentiles (so that a few outliers do not
wash out the rest). Points with similar features get similar colours; parts of one object share a hue.

Principal directions are only defined up to sign, so the sign is fixed: each direction is flipped so that the sum of
the projections cubed (the skew) is positive, with the largest-magnitude loading deciding when that sum is
(numerically) zero. The same features always give the same colours, whatever the SVD routine returns.
"""

from __future__ import annotations

import numpy as np


def _as_features(features) -> np.ndarray:
    if hasattr(features, "detach"):
        features = features.detach().float().cpu().numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected features (N, C) with N >= 1, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or inf")
    return x


def principal_components(features, num_components: int = 3) -> np.ndarray:
    """Projections of the centred features on their leading principal directions, with a fixed sign convention.

    Args:
        features: (N, C) float.
        num_components: P.
    Returns:
        (N, P) float64 projections, columns ordered by decreasing variance; columns beyond min(N, C) are zeros.
    """
    x = _as_features(features)
    x = x - x.mean(axis=0)
    # the C x C covariance is small next to N x C data: eigen-decompose it instead of taking the SVD of x
    cov = x.T @ x / max(len(x) - 1, 1)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1][:num_components]
    directions = eigvec[:, order]  # (C, p)
    proj = x @ directions
    for j in range(proj.shape[1]):
        skew = np.sum(proj[:, j] ** 3)
        scale = np.abs(proj[:, j]).max() ** 3 * len(x)
        if abs(skew) > 1e-9 * max(scale, 1e-300):
            sign = np.sign(skew)
        else:
            sign = np.sign(directions[np.argmax(np.abs(directions[:, j])), j]) or 1.0
        proj[:, j] *= sign
    if proj.shape[1] < num_components:
        proj = np.concatenate([proj, np.zeros((len(x), num_components - proj.shape[1]))], axis=1)
    return proj


def pca_colors(features, robust: bool = True, percentiles: tuple[float, float] = (1.0, 99.0),
               brightness: float = 1.0) -> np.ndarray:
    """RGB colours from the first three principal components of point features.

    Args:
        features: (N, C) float features (numpy or torch).
        robust: scale each component between the given percentiles (clipping the tails) instead of min..max.
        percentiles: (low, high) percentiles used when ``robust``.
        brightness: multiplies the colours before clipping to [0, 1].
    Returns:
        (N, 3) float32 in [0, 1]; a component with no spread maps to 0.5.
    """
    proj = principal_components(features, 3)
    if robust:
        lo, hi = np.percentile(proj, percentiles, axis=0)
    else:
        lo, hi = proj.min(axis=0), proj.max(axis=0)
    span = hi - lo
    flat = span <= 1e-12 * max(1.0, float(np.abs(proj).max()))
    colors = np.where(flat, 0.5, (proj - lo) / np.where(flat, 1.0, span))
    return np.clip(colors * brightness, 0.0, 1.0).astype(np.float32)


def cosine_similarity_to(features, query_index: int) -> np.ndarray:
    """Cosine similarity of every point's feature to the query point's.

    Args:
        features: (N, C) float.
        query_index: index of the query point, 0..N-1.
    Returns:
        (N,) float64 in [-1, 1]; 1 at the query.
    """
    x = _as_features(features)
    if not -len(x) <= query_index < len(x):
        raise ValueError(f"query index must lie in 0..{len(x) - 1}, got {query_index}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.clip(x @ x[query_index], -1.0, 1.0)


def similarity_colors(features, query_index: int, cmap: str = "inferno", stretch: bool = True) -> np.ndarray:
    """Heat map of the cosine similarity to one query point.

    Args:
        features: (N, C) float.
        query_index: the query point, 0..N-1.
        cmap: a matplotlib colormap name.
        stretch: map the observed similarity range (min..1) onto the whole colormap; otherwise map [-1, 1].
    Returns:
        (N, 3) float32 in [0, 1]; the query and the points most like it take the top colour of the map.
    """
    from matplotlib import colormaps

    sim = cosine_similarity_to(features, query_index)
    lo = sim.min() if stretch else -1.0
    t = (sim - lo) / max(1.0 - lo, 1e-12)
    return colormaps[cmap](np.clip(t, 0.0, 1.0))[:, :3].astype(np.float32)

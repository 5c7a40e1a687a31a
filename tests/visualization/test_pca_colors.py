import numpy as np
import pytest
import torch

from concerto3d.visualization.pca import (cosine_similarity_to, pca_colors, principal_components,
                                          similarity_colors)


def clustered_features(n=300, c=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, c)) * 5
    labels = rng.integers(0, 3, n)
    return (centres[labels] + rng.normal(size=(n, c))).astype(np.float32), labels


def test_pca_colours_in_unit_range_and_deterministic():
    x, _ = clustered_features()
    a = pca_colors(x)
    assert a.shape == (300, 3) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, pca_colors(x.copy()))
    np.testing.assert_array_equal(a, pca_colors(torch.from_numpy(x)))


def test_sign_convention_is_fixed():
    """The SVD may return any principal direction negated; the colours must not change. Negating the features
    negates every projection, which is exactly such a flip."""
    x, _ = clustered_features(seed=1)
    np.testing.assert_allclose(pca_colors(-x), pca_colors(x), atol=1e-6)
    np.testing.assert_allclose(principal_components(-x), principal_components(x), atol=1e-4)


def test_row_order_does_not_change_a_points_colour():
    x, _ = clustered_features(seed=2)
    perm = np.random.default_rng(0).permutation(len(x))
    np.testing.assert_allclose(pca_colors(x[perm]), pca_colors(x)[perm], atol=1e-6)


def test_clusters_get_distinct_colours_and_robust_scaling_resists_an_outlier():
    x, labels = clustered_features(seed=3)
    colors = pca_colors(x)
    means = np.stack([colors[labels == k].mean(0) for k in range(3)])
    assert min(np.linalg.norm(means[i] - means[j]) for i in range(3) for j in range(i + 1, 3)) > 0.2
    with_outlier = np.concatenate([x, 1000 * x[:1]])
    robust = pca_colors(with_outlier)[:-1]
    plain = pca_colors(with_outlier, robust=False)[:-1]
    # the outlier stretches the first component: min..max scaling squashes every other point into a sliver
    assert robust[:, 0].std() > 0.2 and plain[:, 0].std() < 0.01


def test_degenerate_inputs():
    assert np.allclose(pca_colors(np.ones((10, 4))), 0.5)  # no spread at all
    two = pca_colors(np.random.default_rng(0).normal(size=(20, 2)))  # fewer channels than colours
    assert two.shape == (20, 3) and np.allclose(two[:, 2], 0.5)
    assert pca_colors(np.zeros((1, 5))).shape == (1, 3)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        pca_colors(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        pca_colors(np.full((3, 3), np.nan))


def test_similarity_heat_map():
    x, labels = clustered_features(seed=4)
    sim = cosine_similarity_to(x, 5)
    assert sim[5] == pytest.approx(1.0)
    colors = similarity_colors(x, 5, cmap="inferno")
    assert colors.shape == (300, 3) and colors.min() >= 0 and colors.max() <= 1
    from matplotlib import colormaps

    np.testing.assert_allclose(colors[5], colormaps["inferno"](1.0)[:3], atol=1e-6)
    same = labels == labels[5]
    # points of the query's cluster are brighter (inferno runs dark -> bright)
    assert colors[same].sum(1).mean() > colors[~same].sum(1).mean() + 0.5
    with pytest.raises(ValueError, match="query index"):
        similarity_colors(x, 300)

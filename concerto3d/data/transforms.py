"""Point-side augmentations that keep track of which original point each output point is.

Every transform is a small class called as ``transform(cloud, rng) -> cloud``: it takes a PointCloud
(:mod:`.point_cloud`) and a ``numpy.random.Generator`` (all randomness comes from that generator, so a seeded
generator replays the same augmentation), returns a new cloud and never modifies its input's arrays.
Transforms print themselves, e.g. ``RandomRotateZ(angle=full, p=1.0)`` (base class in :mod:`.base_transform`), and
``Compose`` (:mod:`.compose`) prints as a list, so a run can log what it applied.

The index map: ``cloud.index[i]`` is the row of the *original* cloud (the one a pipeline started from, usually the
scene crop) that output point ``i`` came from. Transforms that move points keep it; transforms that drop points
(crops, grid sampling) compose it (``index_out = index_in[kept]``). Correspondences and the pairs matched between the
student and the teacher view are stated in original rows, so they survive any chain of transforms.

Conventions: ``coord`` is metres in a frame centred on the crop; a linear map ``A`` sends ``x -> A x`` (rows:
``coord @ A.T``) and normals go through the inverse transpose, renormalised, so they stay perpendicular to the
surface under any invertible map (rotations and flips: the same matrix). Colours are float in [0, 1].
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from concerto3d.data.base_transform import Transform, _check_p, _check_range
from concerto3d.data.point_cloud import PointCloud, grid_sample_rows, nearest_k


# ---------------------------------------------------------------------------------------------------------------
# pure functions


def rotation_z(angle: float) -> np.ndarray:
    """(3, 3) float64 rotation by ``angle`` radians about +z (counter-clockwise seen from above)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_x(angle: float) -> np.ndarray:
    """(3, 3) float64 rotation by ``angle`` radians about +x."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(angle: float) -> np.ndarray:
    """(3, 3) float64 rotation by ``angle`` radians about +y."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def apply_linear(cloud: PointCloud, matrix: np.ndarray) -> PointCloud:
    """Send every point ``x -> matrix @ x`` and every normal through ``inv(matrix).T``, renormalised.

    Args:
        cloud: N points.
        matrix: (3, 3) invertible.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    coord = cloud.coord @ matrix.T.astype(np.float32)
    normal_map = np.linalg.inv(matrix).astype(np.float32)  # rows: n @ inv(A) == (inv(A).T @ n).T
    normal = cloud.normal @ normal_map
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = normal / np.maximum(length, 1e-12)  # zero normals (unknown) stay zero
    return cloud.replace(coord=coord, normal=normal)


def smooth_noise_grid(shape: tuple[int, int, int], rng: np.random.Generator, passes: int = 2) -> np.ndarray:
    """(X, Y, Z, 3) float32 Gaussian noise blurred ``passes`` times by a 3-wide box filter along each axis
    (zero padding), as in the elastic distortion of Pointcept / MinkowskiEngine."""
    noise = rng.standard_normal((*shape, 3)).astype(np.float32)
    for _ in range(passes):
        for axis in range(3):
            padded = np.pad(noise, [(1, 1) if a == axis else (0, 0) for a in range(4)])
            n = noise.shape[axis]
            noise = (padded.take(range(0, n), axis=axis) + padded.take(range(1, n + 1), axis=axis)
                     + padded.take(range(2, n + 2), axis=axis)) / 3.0
    return noise


def trilinear(grid: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of a vector field on a unit grid.

    Args:
        grid: (X, Y, Z, C) values at integer positions.
        pos: (N, 3) positions in grid units, inside [0, X-1] x [0, Y-1] x [0, Z-1] (clipped).
    Returns:
        (N, C) interpolated values.
    """
    dims = np.array(grid.shape[:3])
    pos = np.clip(pos, 0, dims - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), dims - 2).clip(min=0)
    t = pos - lo
    out = np.zeros((len(pos), grid.shape[3]), dtype=np.float64)
    for dx in (0, 1):
        wx = t[:, 0] if dx else 1 - t[:, 0]
        for dy in (0, 1):
            wy = t[:, 1] if dy else 1 - t[:, 1]
            for dz in (0, 1):
                wz = t[:, 2] if dz else 1 - t[:, 2]
                ix = np.minimum(lo[:, 0] + dx, dims[0] - 1)
                iy = np.minimum(lo[:, 1] + dy, dims[1] - 1)
                iz = np.minimum(lo[:, 2] + dz, dims[2] - 1)
                out += (wx * wy * wz)[:, None] * grid[ix, iy, iz]
    return out


def elastic_displacement(coord: np.ndarray, granularity: float, magnitude: float,
                         rng: np.random.Generator) -> np.ndarray:
    """(N, 3) smooth random displacement: blurred noise on a grid of spacing ``granularity`` metres, interpolated
    at the points and scaled by ``magnitude``."""
    low = coord.min(axis=0)
    dims = ((coord - low).max(axis=0) // granularity).astype(np.int64) + 3
    noise = smooth_noise_grid(tuple(int(d) for d in dims), rng)
    # grid node j sits at low - granularity + j * granularity
    pos = (coord - low) / granularity + 1.0
    return (trilinear(noise, pos) * magnitude).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# transforms


class RandomRotateZ(Transform):
    """Rotate about the vertical axis by an angle drawn uniformly from [-angle, angle] degrees
    (``angle=None``: a full turn)."""

    def __init__(self, angle: float | None = None, p: float = 1.0):
        if angle is not None and not 0 <= angle <= 180:
            raise ValueError(f"RandomRotateZ angle: expected degrees in [0, 180] or None (full), got {angle}")
        self.angle, self.p = (None if angle is None else float(angle)), _check_p(p)

    def apply(self, cloud: PointCloud, rng):
        limit = math.pi if self.angle is None else math.radians(self.angle)
        return apply_linear(cloud, rotation_z(rng.uniform(-limit, limit)))

    def _repr_values(self):
        return {"angle": "full" if self.angle is None else f"{self.angle:g}deg"}


class RandomTilt(Transform):
    """Small rotations about x and y, each uniform in [-max_angle, max_angle] degrees (a tilted sensor)."""

    _repr_fields = ("max_angle",)

    def __init__(self, max_angle: float = 3.0, p: float = 1.0):
        if not 0 <= max_angle <= 90:
            raise ValueError(f"RandomTilt max_angle: expected degrees in [0, 90], got {max_angle}")
        self.max_angle, self.p = float(max_angle), _check_p(p)

    def apply(self, cloud: PointCloud, rng):
        a = math.radians(self.max_angle)
        ax, ay = rng.uniform(-a, a, size=2)
        return apply_linear(cloud, rotation_y(ay) @ rotation_x(ax))


class RandomScale(Transform):
    """Scale by a factor uniform in ``scale`` (one factor, or one per axis when ``anisotropic``)."""

    _repr_fields = ("scale", "anisotropic")

    def __init__(self, scale: Sequence[float] = (0.9, 1.1), anisotropic: bool = False, p: float = 1.0):
        self.scale = _check_range("RandomScale scale", scale, low=1e-6)
        self.anisotropic, self.p = bool(anisotropic), _check_p(p)

    def apply(self, cloud: PointCloud, rng):
        s = rng.uniform(*self.scale, size=3 if self.anisotropic else 1)
        return apply_linear(cloud, np.diag(np.broadcast_to(s, 3)))


class RandomFlip(Transform):
    """Mirror x -> -x with probability ``p``, and independently y -> -y with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = _check_p(p)

    def __call__(self, cloud: PointCloud, rng):  # the probability is per axis, not for the whole transform
        return self.apply(cloud, rng)

    def apply(self, cloud: PointCloud, rng):
        flip = rng.random(2) < self.p
        if not flip.any():
            return cloud.replace()
        return apply_linear(cloud, np.diag([-1.0 if flip[0] else 1.0, -1.0 if flip[1] else 1.0, 1.0]))


class RandomJitter(Transform):
    """Add Gaussian noise of std ``sigma`` metres to every coordinate, clipped to [-clip, clip]."""

    _repr_fields = ("sigma", "clip")

    def __init__(self, sigma: float = 0.005, clip: float = 0.02, p: float = 1.0):
        if sigma < 0 or clip < 0:
            raise ValueError(f"RandomJitter: expected sigma >= 0 and clip >= 0, got sigma={sigma}, clip={clip}")
        self.sigma, self.clip, self.p = float(sigma), float(clip), _check_p(p)

    def apply(self, cloud: PointCloud, rng):
        noise = np.clip(self.sigma * rng.standard_normal(cloud.coord.shape), -self.clip, self.clip)
        return cloud.replace(coord=(cloud.coord + noise).astype(np.float32))


class ElasticDistortion(Transform):
    """Smoothly bend space: for each (granularity, magnitude) pair in metres, add a blurred random displacement
    field of that spacing and size. Normals are left as they are (the bend is gentle)."""

    _repr_fields = ("params",)

    def __init__(self, params: Sequence[Sequence[float]] = ((0.2, 0.4), (0.8, 1.6)), p: float = 0.95):
        self.params = tuple((float(g), float(m)) for g, m in params)
        if any(g <= 0 or m < 0 for g, m in self.params):
            raise ValueError(f"ElasticDistortion params: expected (granularity > 0, magnitude >= 0) pairs, "
                             f"got {self.params}")
        self.p = _check_p(p)

    def apply(self, cloud: PointCloud, rng):
        if len(cloud) == 0:
            return cloud.replace()
        coord = cloud.coord
        for granularity, magnitude in self.params:
            coord = coord + elastic_displacement(coord, granularity, magnitude, rng)
        return cloud.replace(coord=coord.astype(np.float32))


class ColorJitter(Transform):
    """Brightness and contrast of the point colours: ``c -> clip((b c - m) k + m, 0, 1)`` with ``b`` uniform in
    [1 - brightness, 1 + brightness], ``k`` uniform in [1 - contrast, 1 + contrast] and ``m`` the mean of ``b c``."""

    _repr_fields = ("brightness", "contrast")

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, p: float = 0.8):
        if not (0 <= brightness < 1 and 0 <= contrast < 1):
            raise ValueError(f"ColorJitter: expected brightness and contrast in [0, 1), "
                             f"got {brightness}, {contrast}")
        self.brightness, self.contrast, self.p = float(brightness), float(contrast), _check_p(p)

    def apply(self, cloud: PointCloud, rng):
        b = rng.uniform(1 - self.brightness, 1 + self.brightness)
        k = rng.uniform(1 - self.contrast, 1 + self.contrast)
        color = cloud.color * b
        mean = color.mean() if len(color) else 0.0
        color = np.clip((color - mean) * k + mean, 0.0, 1.0)
        return cloud.replace(color=color.astype(np.float32))


class ColorDrop(Transform):
    """Zero the colours and mark them dropped (the model then sees zeros in the colour channels)."""

    def __init__(self, p: float = 0.2):
        self.p = _check_p(p)

    def apply(self, cloud: PointCloud, rng):
        return cloud.replace(color=np.zeros_like(cloud.color), has_color=False)


class NormalDrop(Transform):
    """Zero the normals and mark them dropped."""

    def __init__(self, p: float = 0.2):
        self.p = _check_p(p)

    def apply(self, cloud: PointCloud, rng):
        return cloud.replace(normal=np.zeros_like(cloud.normal), has_normal=False)


class RandomCrop(Transform):
    """Keep the points nearest to a random point of the cloud: a ball (``shape="sphere"``) or a vertical square
    column (``"box"``) holding a fraction of the points drawn uniformly from ``fraction``, never fewer than
    ``min_points`` (a cloud smaller than that is kept whole). Drops points: the index map is composed."""

    _repr_fields = ("shape", "fraction", "min_points")

    def __init__(self, shape: str = "sphere", fraction: Sequence[float] = (0.6, 1.0), min_points: int = 1,
                 p: float = 1.0):
        if shape not in ("sphere", "box"):
            raise ValueError(f"RandomCrop shape: expected 'sphere' or 'box', got {shape!r}")
        self.fraction = _check_range("RandomCrop fraction", fraction, low=0.0)
        if self.fraction[1] > 1:
            raise ValueError(f"RandomCrop fraction: expected values in [0, 1], got {self.fraction}")
        if min_points < 1:
            raise ValueError(f"RandomCrop min_points: expected >= 1, got {min_points}")
        self.shape, self.min_points, self.p = shape, int(min_points), _check_p(p)

    def apply(self, cloud: PointCloud, rng):
        n = len(cloud)
        if n <= self.min_points:
            return cloud.replace()
        centre = cloud.coord[rng.integers(n)]
        k = max(self.min_points, int(round(rng.uniform(*self.fraction) * n)))
        return cloud.take(nearest_k(cloud.coord, centre, k, self.shape))


class GridSample(Transform):
    """Keep one random point per cubic cell of side ``grid_size`` metres. Drops points: the index map is
    composed."""

    _repr_fields = ("grid_size",)

    def __init__(self, grid_size: float, p: float = 1.0):
        if not grid_size > 0:
            raise ValueError(f"GridSample grid_size: expected metres > 0, got {grid_size}")
        self.grid_size, self.p = float(grid_size), _check_p(p)

    def apply(self, cloud: PointCloud, rng):
        if len(cloud) == 0:
            return cloud.replace()
        return cloud.take(grid_sample_rows(cloud.coord, self.grid_size, rng))

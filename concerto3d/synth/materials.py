"""Procedural materials: colour palettes, fine texture patterns, Lambertian shading.

A material is a base colour (albedo, RGB in 0..1) plus a pattern that modulates it. Each pattern has a *fine*
component whose period is below 2 cm (wood grain, fabric weave, halftone print, insect screen, brushed metal) and
which averages to zero, and optionally a *coarse* one (tile or plank brightness, a slow paint wash). The fine periods
(8-19 mm; 12-19 mm for the classes told apart by texture) sit just under the 2 cm voxel, so that images resized
for an image encoder still resolve them up close (a 320x240 frame has about 7 mm per pixel at 2 m, so it resolves a
15 mm pattern within about 2 m; 640x480 within about 4 m). Every evaluation
takes a ``footprint`` in metres, the size of the surface patch one sample stands for, and fades each component whose
period is not at least twice that footprint (the Nyquist limit):

- rendered images use the footprint of one pixel (about 2 mm at 2 m in a 1296x968 frame), so they show the fine
  pattern;
- mesh vertices use :data:`MESH_COLOR_FOOTPRINT` (2 cm, the voxel of the point clouds), so their colours carry the
  base colour and the coarse components only - as the colour of a fused reconstruction would.

The palettes are shared on purpose: classes that look alike in shape draw their colours from one palette and differ
only in pattern (see docs/synthetic_scenes.md), so mean colour never gives their class away.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

MESH_COLOR_FOOTPRINT = 0.02  # metres: what one mesh vertex colour stands for


class Pattern(IntEnum):
    PAINT = 0      # smooth paint with a slow wash; no fine component
    WOOD = 1       # grain stripes along the part's grain axis, period 9-15 mm (doors: 12-19 mm)
    WEAVE = 2      # fabric: checker of over/under threads, period 8-12 mm (curtains: 12-19 mm)
    HALFTONE = 3   # printed picture: 45-degree dot screen, colour-shifted per channel, period 12-19 mm
    SCREEN = 4     # window: thin dark grid lines of an insect screen, period 12-19 mm
    TILES = 5      # floor tiles: per-tile brightness (coarse) + fine speckle
    PLANKS = 6     # floor planks: per-plank brightness (coarse) + wood grain
    BRUSHED = 7    # appliance metal: fine brushed lines, period 4-8 mm, low contrast


@dataclass(frozen=True)
class Material:
    """One surface appearance.

    Attributes:
        pattern: which :class:`Pattern`.
        color: (3,) albedo, RGB in 0..1.
        period: period of the fine component, metres (< 0.02).
        contrast: amplitude of the fine component, relative to the base colour.
        coarse: spacing of the coarse component (tile / plank size), metres; 0 when the pattern has none.
        phase: a random number that decorrelates two parts with the same material.
    """

    pattern: Pattern
    color: tuple[float, float, float]
    period: float = 0.008
    contrast: float = 0.2
    coarse: float = 0.0
    phase: float = 0.0


# Palettes (albedo RGB). PANEL is shared by every flat thing on a wall (wall paint, wall patches, doors, windows,
# pictures, curtains); WOOD by every piece of case furniture (tables, desks, counters, cabinets, bookshelves, chair
# frames, bed frames); FABRIC by upholstery.
PANEL_PALETTE = np.array([
    [0.88, 0.86, 0.82], [0.90, 0.84, 0.70], [0.74, 0.75, 0.77], [0.80, 0.72, 0.60], [0.66, 0.75, 0.82],
    [0.65, 0.72, 0.60], [0.74, 0.54, 0.44], [0.78, 0.62, 0.44], [0.60, 0.44, 0.30], [0.48, 0.49, 0.52],
])
WOOD_PALETTE = np.array([
    [0.80, 0.65, 0.45], [0.68, 0.50, 0.32], [0.46, 0.31, 0.20], [0.60, 0.35, 0.24], [0.88, 0.87, 0.84],
    [0.22, 0.21, 0.21], [0.56, 0.56, 0.55],
])
FABRIC_PALETTE = np.array([
    [0.30, 0.38, 0.55], [0.55, 0.55, 0.57], [0.62, 0.25, 0.22], [0.35, 0.50, 0.38], [0.80, 0.74, 0.62],
    [0.25, 0.25, 0.28], [0.70, 0.55, 0.35],
])
APPLIANCE_PALETTE = np.array([[0.90, 0.90, 0.89], [0.70, 0.71, 0.72], [0.20, 0.20, 0.21]])
CEILING_COLOR = (0.93, 0.93, 0.92)

# kind -> (pattern, palette, (period lo, hi), (contrast lo, hi))
_KINDS: dict[str, tuple[Pattern, np.ndarray, tuple[float, float], tuple[float, float]]] = {
    "wall": (Pattern.PAINT, PANEL_PALETTE, (0.01, 0.01), (0.0, 0.0)),
    "door": (Pattern.WOOD, PANEL_PALETTE, (0.012, 0.019), (0.22, 0.32)),
    "picture": (Pattern.HALFTONE, PANEL_PALETTE, (0.012, 0.019), (0.35, 0.50)),
    "window": (Pattern.SCREEN, PANEL_PALETTE, (0.012, 0.019), (0.30, 0.40)),
    "curtain": (Pattern.WEAVE, PANEL_PALETTE, (0.012, 0.019), (0.25, 0.35)),
    "wood": (Pattern.WOOD, WOOD_PALETTE, (0.009, 0.015), (0.15, 0.28)),
    "fabric": (Pattern.WEAVE, FABRIC_PALETTE, (0.008, 0.012), (0.15, 0.28)),
    "appliance": (Pattern.BRUSHED, APPLIANCE_PALETTE, (0.004, 0.008), (0.05, 0.10)),
}
MATERIAL_KINDS = tuple(_KINDS) + ("floor", "ceiling")


def sample_material(kind: str, rng: np.random.Generator, avoid: tuple[float, float, float] | None = None) -> Material:
    """Draw a material of one kind (a key of :data:`MATERIAL_KINDS`).

    Args:
        kind: "wall", "door", "picture", "window", "curtain", "wood", "fabric", "appliance", "floor" or "ceiling".
        rng: the scene's random generator.
        avoid: a colour not to draw again (e.g. the wall's own, for a patch on it); its palette entry is skipped.
    """
    if kind == "ceiling":
        return Material(Pattern.PAINT, CEILING_COLOR, contrast=0.0, phase=float(rng.uniform(0, 100)))
    if kind == "floor":
        pattern = Pattern(rng.choice([Pattern.TILES, Pattern.PLANKS, Pattern.WEAVE]))
        if pattern == Pattern.TILES:
            color = np.array([[0.82, 0.80, 0.76], [0.60, 0.58, 0.55], [0.70, 0.62, 0.52]])[rng.integers(3)]
            return _jittered(Material(pattern, tuple(color), period=0.003, contrast=0.08,
                                      coarse=float(rng.choice([0.3, 0.4, 0.6])), phase=float(rng.uniform(0, 100))), rng)
        if pattern == Pattern.PLANKS:
            color = WOOD_PALETTE[rng.integers(4)]
            return _jittered(Material(pattern, tuple(color), period=float(rng.uniform(0.009, 0.015)), contrast=0.2,
                                      coarse=float(rng.uniform(0.12, 0.2)), phase=float(rng.uniform(0, 100))), rng)
        color = FABRIC_PALETTE[rng.integers(len(FABRIC_PALETTE))] * 0.8
        return _jittered(Material(pattern, tuple(color), period=0.008, contrast=0.2,
                                  phase=float(rng.uniform(0, 100))), rng)
    if kind not in _KINDS:
        raise ValueError(f"unknown material kind {kind!r}; expected one of {MATERIAL_KINDS}")
    pattern, palette, (p0, p1), (c0, c1) = _KINDS[kind]
    choices = np.arange(len(palette))
    if avoid is not None:
        far = np.linalg.norm(palette - np.asarray(avoid), axis=1) > 0.08
        choices = choices[far] if far.any() else choices
    color = palette[rng.choice(choices)]
    return _jittered(Material(pattern, tuple(color), period=float(rng.uniform(p0, p1)),
                              contrast=float(rng.uniform(c0, c1)), phase=float(rng.uniform(0, 100))), rng)


def _jittered(m: Material, rng: np.random.Generator) -> Material:
    """The material with its colour varied by a few percent (no two objects exactly alike)."""
    color = np.clip(np.asarray(m.color) * rng.uniform(0.94, 1.06) + rng.normal(0, 0.015, 3), 0.02, 0.98)
    return Material(m.pattern, tuple(float(c) for c in color), m.period, m.contrast, m.coarse, m.phase)


@dataclass(frozen=True)
class MaterialTable:
    """The materials of all parts of a scene as arrays, for vectorised evaluation.

    Attributes (P = number of parts):
        pattern: (P,) int64; color: (P, 3) float32; period, contrast, coarse, phase: (P,) float32;
        grain_axis: (P,) int64, the part's local axis the pattern runs along (0, 1 or 2).
    """

    pattern: np.ndarray
    color: np.ndarray
    period: np.ndarray
    contrast: np.ndarray
    coarse: np.ndarray
    phase: np.ndarray
    grain_axis: np.ndarray

    @staticmethod
    def from_materials(materials: list[Material], grain_axes: list[int]) -> "MaterialTable":
        f32 = np.float32
        return MaterialTable(
            pattern=np.array([int(m.pattern) for m in materials], dtype=np.int64),
            color=np.array([m.color for m in materials], dtype=f32).reshape(-1, 3),
            period=np.array([m.period for m in materials], dtype=f32),
            contrast=np.array([m.contrast for m in materials], dtype=f32),
            coarse=np.array([m.coarse for m in materials], dtype=f32),
            phase=np.array([m.phase for m in materials], dtype=f32),
            grain_axis=np.array(grain_axes, dtype=np.int64),
        )


def texture_axes(face_axis, grain_axis):
    """The part's local axes that a face's texture coordinates "along" and "across" follow.

    "along" is the grain axis unless the face is normal to it (then the next axis); "across" is the remaining one.
    Works on ints or integer arrays alike.
    """
    along_axis = np.where(np.asarray(grain_axis) != face_axis, grain_axis, (np.asarray(face_axis) + 1) % 3)
    return along_axis, 3 - np.asarray(face_axis) - along_axis


def surface_coords(local: np.ndarray, face_axis: np.ndarray, grain_axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-plane texture coordinates of points on box faces.

    Args:
        local: (N, 3) points in their part's local frame, metres.
        face_axis: (N,) the local axis the face is normal to (0, 1, 2).
        grain_axis: (N,) the part's grain axis; used as "along" unless the face is normal to it.
    Returns:
        along, across: (N,) metres, the two in-plane coordinates.
    """
    along_axis, across_axis = texture_axes(face_axis, grain_axis)
    x, y, z = local[:, 0], local[:, 1], local[:, 2]
    pick = lambda axis: np.where(axis == 0, x, np.where(axis == 1, y, z))  # noqa: E731 (faster than fancy indexing)
    return pick(along_axis), pick(across_axis)


def _fade(period: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """How much of a component with this period survives sampling at this footprint (1 = all, 0 = none)."""
    return np.clip(1.0 - 2.0 * footprint / period, 0.0, 1.0)


def _hash(i: np.ndarray, j: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """A repeatable pseudo-random number in [0, 1) per integer cell (i, j)."""
    x = np.sin(i.astype(np.float64) * 12.9898 + j.astype(np.float64) * 78.233 + seed.astype(np.float64) * 3.17)
    return (x * 43758.5453) % 1.0


def _modulation(pattern: Pattern, a, c, p, k, ph, coarse, fp) -> np.ndarray:
    """Relative modulation of the base colour for points of one pattern: (n,) or, for halftone, (n, 3).

    a, c: in-plane coordinates; p, k, ph, coarse: period, contrast, phase, coarse size per point; fp: footprint.
    """
    two_pi = np.float32(2 * np.pi)
    fine = k * _fade(p, fp)  # amplitude left of the fine component
    if pattern == Pattern.PAINT:
        wash = np.sin(two_pi * a / 0.83 + ph) * np.sin(two_pi * c / 0.61 + 1.7 * ph)
        return 0.035 * wash * _fade(np.float32(0.61), fp)
    if pattern == Pattern.WOOD:
        warp = 0.004 * np.sin(two_pi * a / 0.21 + ph) + 0.0015 * np.sin(two_pi * a / 0.057 + 2 * ph)
        return fine * np.sin(two_pi * (c + warp) / p + ph)
    if pattern == Pattern.WEAVE:
        return fine * np.sin(two_pi * a / p) * np.sin(two_pi * c / p + ph)
    if pattern == Pattern.HALFTONE:
        u, v = (a + c) * np.float32(0.7071), (a - c) * np.float32(0.7071)
        shift = np.array([0.0, 2.1, 4.2], dtype=np.float32)  # per-channel screen offset: colour speckle
        dots = 0.5 * (np.cos(two_pi * u[:, None] / p[:, None] + shift) +
                      np.cos(two_pi * v[:, None] / p[:, None] + shift))
        return fine[:, None] * dots
    if pattern == Pattern.SCREEN:
        lu, lv = np.cos(np.pi * a / p) ** 8, np.cos(np.pi * c / p) ** 8  # thin lines, mean 35/128
        grid = 1.0 - (1.0 - lu) * (1.0 - lv)
        return -fine * (grid - 0.4715) / 0.53
    if pattern == Pattern.TILES:
        tile = _hash(np.floor(a / coarse), np.floor(c / coarse), ph)
        speckle = np.sin(two_pi * a / p * 1.3 + 5 * np.sin(two_pi * c / 0.017)) * np.sin(two_pi * c / p)
        return 0.12 * (tile - 0.5) + fine * speckle
    if pattern == Pattern.PLANKS:
        row = np.floor(c / coarse)
        plank = _hash(row, np.floor(a / 1.2 + row * 0.37), ph)
        warp = 0.004 * np.sin(two_pi * a / 0.23 + 7 * plank)
        return 0.2 * (plank - 0.5) + fine * np.sin(two_pi * (c + warp) / p + 11 * plank)
    if pattern == Pattern.BRUSHED:
        return fine * np.sin(two_pi * c / p + 3 * np.sin(two_pi * a / 0.031 + ph))
    raise ValueError(f"unknown pattern {pattern!r}")


def evaluate_albedo(table: MaterialTable, part: np.ndarray, along: np.ndarray, across: np.ndarray,
                    footprint: np.ndarray | float) -> np.ndarray:
    """Albedo of surface points, with every pattern component faded by the sampling footprint.

    Args:
        table: the scene's materials.
        part: (N,) int, part index of each point.
        along, across: (N,) in-plane coordinates from :func:`surface_coords`, metres.
        footprint: (N,) or scalar, metres of surface one sample stands for.
    Returns:
        (N, 3) float32 albedo in 0..1.
    """
    n = len(part)
    footprint = np.broadcast_to(np.asarray(footprint, dtype=np.float32), (n,))
    along, across = along.astype(np.float32, copy=False), across.astype(np.float32, copy=False)
    pattern = table.pattern[part]
    mod = np.zeros(n, dtype=np.float32)  # relative modulation, the same for R, G and B ...
    per_channel = []                     # ... except for patterns that tint: (indices, (k, 3) modulation)
    for pat in np.unique(table.pattern):
        idx = np.flatnonzero(pattern == pat)
        if len(idx) == 0:
            continue
        pi = part[idx]
        m = _modulation(Pattern(int(pat)), along[idx], across[idx], table.period[pi], table.contrast[pi],
                        table.phase[pi], table.coarse[pi], footprint[idx])
        if m.ndim == 2:
            per_channel.append((idx, m))
        else:
            mod[idx] = m
    mod += 1.0
    albedo = table.color[part] * mod[:, None]
    for idx, m in per_channel:
        albedo[idx] = table.color[part[idx]] * (1.0 + m)
    return np.clip(albedo, 0.0, 1.0, out=albedo)


@dataclass(frozen=True)
class Light:
    """A point light plus a sky-like ambient term.

    Attributes:
        position: (3,) world metres (near the ceiling).
        ambient: light every surface gets, scaled by 0.9 + 0.1 * normal_z (ceilings a little darker than floors).
        diffuse: strength of the point light at 1 m.
        falloff: the point light's strength at distance d is diffuse / (1 + falloff * d^2).
    """

    position: tuple[float, float, float]
    ambient: float = 0.42
    diffuse: float = 0.75
    falloff: float = 0.08


def light_intensity(normal_dot_to_light: np.ndarray, dist2: np.ndarray, normal_z: np.ndarray,
                    light: Light) -> np.ndarray:
    """Lambertian light a surface point receives (no shadows), from scalars only.

    Args:
        normal_dot_to_light: (N,) n . (light - point), unnormalised; dist2: (N,) |light - point|^2;
        normal_z: (N,) z of the unit outward normal.
    Returns:
        (N,) float32 factor for the albedo.
    """
    cos = normal_dot_to_light / np.sqrt(np.maximum(dist2, 1e-12))
    shade = (light.ambient * (0.9 + 0.1 * normal_z) +
             light.diffuse * np.maximum(cos, 0.0) / (1.0 + light.falloff * dist2))
    return shade.astype(np.float32, copy=False)


def to_rgb8(albedo: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """(N, 3) albedo times (N,) light -> (N, 3) uint8 RGB."""
    rgb = albedo * shade[:, None]
    return np.round(np.clip(rgb, 0.0, 1.0, out=rgb) * 255.0).astype(np.uint8)


def lambert(albedo: np.ndarray, normals: np.ndarray, points: np.ndarray, light: Light) -> np.ndarray:
    """Lambertian shading, no shadows: view-independent, so a vertex and a pixel of one point get the same colour.

    Args:
        albedo: (N, 3) in 0..1; normals: (N, 3) unit outward normals; points: (N, 3) world metres.
    Returns:
        (N, 3) uint8 RGB.
    """
    to_light = np.asarray(light.position, dtype=np.float32) - points.astype(np.float32)
    normals = normals.astype(np.float32)
    shade = light_intensity(np.einsum("ij,ij->i", normals, to_light), np.einsum("ij,ij->i", to_light, to_light),
                            normals[:, 2], light)
    return to_rgb8(albedo, shade)

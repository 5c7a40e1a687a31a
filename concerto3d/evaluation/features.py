"""Per-point features of preprocessed scenes from a frozen, trained model.

A preprocessed scene (data/README.md §3) holds ``coord.npy``, ``color.npy``, ``normal.npy`` and ``segment20.npy``.
:func:`extract_point_features` runs ``model.embed`` on the scene's points and returns one feature row per original
point. When a scene is too large to embed at once (``max_points``), a random subset is embedded and the features are
carried back to every point by inverse-distance interpolation over the ``k`` nearest embedded points.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from concerto3d.errors import FormatError, InputError

SCENE_ARRAYS = ("coord.npy", "color.npy", "normal.npy", "segment20.npy")


@dataclass
class Scene:
    """The arrays of one preprocessed scene.

    Attributes:
        name: folder name.
        coord: (N, 3) float32, metres.
        color: (N, 3) uint8 RGB.
        normal: (N, 3) float32, unit length.
        segment20: (N,) int64, 0..19 or -1 = ignore (all -1 when the file is missing).
    """

    name: str
    coord: np.ndarray
    color: np.ndarray
    normal: np.ndarray
    segment20: np.ndarray

    def __len__(self) -> int:
        return len(self.coord)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError("missing file; expected a preprocessed scene folder (data/README.md §3)", path) from None
    except (ValueError, OSError) as err:
        raise FormatError(f"not a readable .npy array ({err})", path) from None


def load_scene(scene_dir: str | os.PathLike) -> Scene:
    """Read and check one preprocessed scene folder.

    Raises:
        InputError: the folder or ``coord.npy`` is missing.
        FormatError: an array has the wrong shape, dtype or length.
    """
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise InputError("not a folder; expected a preprocessed scene folder with coord.npy, color.npy, ...",
                         scene_dir)
    coord = _load_npy(scene_dir / "coord.npy")
    if coord.ndim != 2 or coord.shape[1] != 3 or not np.issubdtype(coord.dtype, np.floating):
        raise FormatError(f"expected (N, 3) float coordinates, got shape {coord.shape} dtype {coord.dtype}",
                          scene_dir / "coord.npy")
    if not np.isfinite(coord).all():
        raise FormatError("coordinates contain NaN or inf", scene_dir / "coord.npy")
    n = len(coord)

    def optional(name: str, shape: tuple, default: np.ndarray) -> np.ndarray:
        path = scene_dir / name
        if not path.exists():
            return default
        arr = _load_npy(path)
        if arr.shape != shape:
            raise FormatError(f"expected shape {shape} to match coord.npy, got {arr.shape}", path)
        return arr

    color = optional("color.npy", (n, 3), np.full((n, 3), 128, np.uint8))
    if color.dtype != np.uint8:
        raise FormatError(f"expected uint8 colours, got dtype {color.dtype}", scene_dir / "color.npy")
    normal = optional("normal.npy", (n, 3), np.zeros((n, 3), np.float32)).astype(np.float32)
    segment = optional("segment20.npy", (n,), np.full(n, -1, np.int64))
    if not np.issubdtype(segment.dtype, np.integer):
        raise FormatError(f"expected integer labels, got dtype {segment.dtype}", scene_dir / "segment20.npy")
    return Scene(scene_dir.name, coord.astype(np.float32), color, normal, segment.astype(np.int64))


def read_split(data_dir: str | os.PathLike, split: str) -> list[Path]:
    """Scene folders listed in ``DATA/splits/<split>.txt`` (one name a line; blank lines and ``#`` comments skipped).

    Raises:
        InputError: the list is missing or empty, or names a scene folder that does not exist.
    """
    data_dir = Path(data_dir)
    path = data_dir / "splits" / f"{split}.txt"
    if not path.is_file():
        raise InputError(f"missing split list; expected a preprocessed dataset with splits/{split}.txt", path)
    names = [ln.strip() for ln in path.read_text().splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise InputError("split list is empty", path)
    scenes = [data_dir / n for n in names]
    missing = [s.name for s in scenes if not (s / "coord.npy").is_file()]
    if missing:
        raise InputError(f"lists {len(missing)} scene(s) with no coord.npy under {data_dir}, e.g. {missing[0]!r}",
                         path)
    return scenes


def interpolate_features(src_coord, src_feat, dst_coord, k: int = 3) -> torch.Tensor:
    """Carry features from sampled points back to all points by inverse-distance weighting of the k nearest.

    Args:
        src_coord: (M, 3) float, the points that have features.
        src_feat: (M, C) float features.
        dst_coord: (N, 3) float, the points that need features.
        k: neighbours (clamped to M).
    Returns:
        (N, C) float32 tensor on ``src_feat``'s device; a destination point that coincides with a source point gets
        that point's feature exactly.
    """
    import torch_cluster  # the knn of torch-geometric needs pyg-lib; torch-cluster's does not

    src_feat = torch.as_tensor(src_feat).float()
    device = src_feat.device
    src = torch.as_tensor(src_coord, device=device).float()
    dst = torch.as_tensor(dst_coord, device=device).float()
    if src.ndim != 2 or src.shape[1] != 3 or dst.ndim != 2 or dst.shape[1] != 3 or len(src) != len(src_feat):
        raise ValueError(f"expected src_coord (M, 3), src_feat (M, C), dst_coord (N, 3), got {tuple(src.shape)}, "
                         f"{tuple(src_feat.shape)}, {tuple(dst.shape)}")
    if len(src) == 0:
        raise ValueError("no source points to interpolate from")
    k = min(k, len(src))
    dst_idx, src_idx = torch_cluster.knn(src, dst, k)  # for each dst point, its k nearest src points
    d2 = (dst[dst_idx] - src[src_idx]).pow(2).sum(dim=1)
    w = 1.0 / d2.clamp_min(1e-16)  # an exact hit dominates every other neighbour
    out = torch.zeros(len(dst), src_feat.shape[1], device=device)
    out.index_add_(0, dst_idx, w[:, None] * src_feat[src_idx])
    norm = torch.zeros(len(dst), device=device).index_add_(0, dst_idx, w)
    return out / norm[:, None]


def freeze(model) -> None:
    """Eval mode and no gradients for the model's encoders (``.point_encoder`` / ``.image_encoder`` when present):
    features are always read from the frozen encoder."""
    for name in ("point_encoder", "image_encoder"):
        module = getattr(model, name, None)
        if module is not None:
            module.eval()
            module.requires_grad_(False)


@dataclass
class SceneFeatures:
    """Features of one scene, one row per original point.

    Attributes:
        name: scene folder name.
        features: (N, C) float32.
        labels: (N,) int64 segment20, -1 = ignore.
    """

    name: str
    features: np.ndarray
    labels: np.ndarray


def embed_scene(model, scene: Scene, max_points: int | None = None, seed: int = 0, k: int = 3) -> np.ndarray:
    """Features of every point of a loaded :class:`Scene` from ``model.embed(points, colors, normals)``.

    Args:
        model: a ``PretrainedModel`` (or anything with ``.embed(points (N,3), colors (N,3) uint8, normals (N,3))
            -> (N, C)``); its encoders are put in eval mode (:func:`freeze`).
        scene: the scene's arrays.
        max_points: embed at most this many points (a seeded random subset) and interpolate the rest; ``None`` =
            all points.
        seed: seeds that subset.
        k: neighbours for the interpolation.
    Returns:
        (N, C) float32 numpy array.
    """
    freeze(model)
    n = len(scene)
    if max_points is not None and n > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    else:
        keep = None
    sel = slice(None) if keep is None else keep
    with torch.no_grad():
        feats = model.embed(scene.coord[sel], colors=scene.color[sel], normals=scene.normal[sel])
    feats = feats.detach().float().cpu().numpy() if torch.is_tensor(feats) else np.asarray(feats, np.float32)
    expected = n if keep is None else len(keep)
    if feats.ndim != 2 or feats.shape[0] != expected:
        raise ValueError(f"model.embed returned shape {feats.shape}, expected ({expected}, C) for scene {scene.name}")
    if keep is not None:
        feats = interpolate_features(scene.coord[keep], feats, scene.coord, k=k).numpy()
    return feats.astype(np.float32, copy=False)


def extract_point_features(model, scene_dir: str | os.PathLike, max_points: int | None = None, seed: int = 0,
                           k: int = 3) -> SceneFeatures:
    """Load a preprocessed scene folder and embed it (see :func:`embed_scene`).

    Returns:
        :class:`SceneFeatures` with features (N, C) float32 and labels (N,) int64 for the N points of coord.npy.
    """
    scene = load_scene(scene_dir)
    return SceneFeatures(scene.name, embed_scene(model, scene, max_points, seed, k), scene.segment20)

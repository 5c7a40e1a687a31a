"""Pointcept's preprocessed ScanNet layout (data/README.md section 4), written by hand with numpy + PIL.

:func:`write_pointcept_scene` writes one scene the way Pointcept's scripts do: points under ``ROOT/<split>/<scene>/``,
frames under ``ROOT/images/<split>/<scene>/`` (full-resolution colour PNGs, ``.npy`` poses, one ``.npy`` colour
intrinsic, float ``(u, v, point)`` correspondence rows at the colour resolution, named by the frame's index) and
Pointcept's ``splits/<split>.json`` (chunks of 4 frames, paths under ``data/scannet``). :func:`make_pointcept_root`
makes a few tiny rooms of a few hundred labelled points seen by three frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOR_H, COLOR_W = 64, 96  # the colour resolution of the tiny rooms' frames


def look_at(eye, target) -> np.ndarray:
    """(4, 4) camera-to-world, OpenCV axes (x right, y down, z forward), z up in the world."""
    z = np.subtract(target, eye).astype(float)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    pose[:3, 3] = eye
    return pose


def write_pointcept_scene(root, split: str, name: str, points: dict, frames: list[dict], K: np.ndarray) -> Path:
    """Write one scene of Pointcept's layout.

    Args:
        points: ``{"coord": (N, 3), "color": (N, 3), "normal": ..., "segment20": ..., "instance": ...}``, each
            written as ``<key>.npy`` as given (missing keys: no file).
        frames: ``{"key": f, "color": (H, W, 3) uint8, "pose": (4, 4), "rows": (M, 3) (u, v, point)}`` each.
        K: (3, 3) colour intrinsics, written as Pointcept does: a (4, 4) float32 matrix.
    Returns:
        the scene's image folder ``ROOT/images/<split>/<name>``.
    """
    root = Path(root)
    points_dir = root / split / name
    points_dir.mkdir(parents=True)
    for key, arr in points.items():
        np.save(points_dir / f"{key}.npy", arr)
    images = root / "images" / split / name
    for sub in ("color", "pose", "intrinsic", "correspondence"):
        (images / sub).mkdir(parents=True)
    K4 = np.eye(4, dtype=np.float32)
    K4[:3, :3] = K
    np.save(images / "intrinsic" / "intrinsic.npy", K4)
    for frame in frames:
        f = frame["key"]
        Image.fromarray(frame["color"]).save(images / "color" / f"{f}.png")
        np.save(images / "pose" / f"{f}.npy", np.asarray(frame["pose"], np.float32))
        np.save(images / "correspondence" / f"{f}.npy", np.asarray(frame["rows"], np.float64))
    _add_to_split_json(root, split, name, [frame["key"] for frame in frames])
    return images


def _add_to_split_json(root: Path, split: str, name: str, keys: list[int]) -> None:
    """Pointcept's ``splits/<split>.json``: one entry per 4 frames, paths rewritten under ``data/scannet``."""
    path = root / "splits" / f"{split}.json"
    path.parent.mkdir(exist_ok=True)
    entries = json.loads(path.read_text()) if path.is_file() else {}
    keys = sorted(keys)
    for i in range(0, len(keys), 4):
        chunk = keys[i:i + 4]
        entries[f"{name}_{i // 4}"] = {
            "pointclouds": f"data/scannet/{split}/{name}",
            "images": [f"data/scannet/images/{split}/{name}/color/{f}.png" for f in chunk],
            "correspondences": [f"data/scannet/images/{split}/{name}/correspondence/{f}.npy" for f in chunk],
        }
    path.write_text(json.dumps(entries, indent=4))


def project_with_zbuffer(coord: np.ndarray, pose: np.ndarray, K: np.ndarray, size) -> np.ndarray:
    """(M, 3) rows (u, v, point): every pixel that a point lands on (pixel centres at integers) with the nearest such
    point, as Pointcept's rows hold one point per pixel."""
    h, w = size
    cam = (coord - pose[:3, 3]) @ pose[:3, :3]
    z = cam[:, 2]
    front = z > 1e-3
    u = np.floor(K[0, 0] * cam[:, 0] / np.where(front, z, 1) + K[0, 2] + 0.5).astype(np.int64)
    v = np.floor(K[1, 1] * cam[:, 1] / np.where(front, z, 1) + K[1, 2] + 0.5).astype(np.int64)
    ok = np.flatnonzero(front & (u >= 0) & (u < w) & (v >= 0) & (v < h))
    best = {}
    for i in ok[np.argsort(-z[ok])]:  # nearest last: it wins the pixel
        best[(u[i], v[i])] = i
    return np.array([(uu, vv, i) for (uu, vv), i in sorted(best.items())], np.int64).reshape(-1, 3)


def _room_points(rng: np.random.Generator) -> dict:
    """A floor (1), two walls (0), a table (6) and a chair (4): about 450 points with class colours."""
    parts = [
        (np.column_stack([rng.uniform(0, 3, 200), rng.uniform(0, 2, 200), np.zeros(200)]), 1, (0, 0, 1)),
        (np.column_stack([rng.uniform(0, 3, 80), np.full(80, 2.0), rng.uniform(0, 1.5, 80)]), 0, (0, -1, 0)),
        (np.column_stack([np.full(60, 3.0), rng.uniform(0, 2, 60), rng.uniform(0, 1.5, 60)]), 0, (-1, 0, 0)),
    ]
    for cls, lo in ((6, rng.uniform([0.5, 0.4], [1.2, 0.9])), (4, rng.uniform([1.8, 0.9], [2.2, 1.3]))):
        top = np.column_stack([lo[0] + rng.uniform(0, 0.6, 60), lo[1] + rng.uniform(0, 0.5, 60), np.full(60, 0.7)])
        parts.append((top, cls, (0, 0, 1)))
    coord = np.concatenate([p[0] for p in parts]).astype(np.float32)
    segment = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
    palette = {0: (180, 180, 170), 1: (120, 90, 60), 4: (40, 160, 60), 6: (200, 50, 40)}
    color = np.clip(np.array([palette[c] for c in segment]) + rng.normal(0, 8, coord.shape), 0, 255)
    normal = np.concatenate([np.tile(p[2], (len(p[0]), 1)) for p in parts]).astype(np.float32)
    segment[rng.random(len(segment)) < 0.05] = -1
    return {"coord": coord, "color": color.astype(np.uint8), "normal": normal, "segment20": segment.astype(np.int64),
            "segment200": segment.astype(np.int64), "instance": np.full(len(segment), -1, np.int64)}


def tiny_intrinsics() -> np.ndarray:
    return np.array([[60.0, 0, (COLOR_W - 1) / 2], [0, 60.0, (COLOR_H - 1) / 2], [0, 0, 1]])


def render_frame(points: dict, pose: np.ndarray, K: np.ndarray, key: int) -> dict:
    """A frame of a tiny room: each pixel a point lands on shows that point's colour (grey elsewhere)."""
    rows = project_with_zbuffer(points["coord"].astype(np.float64), pose, K, (COLOR_H, COLOR_W))
    image = np.full((COLOR_H, COLOR_W, 3), 90, np.uint8)
    image[rows[:, 1], rows[:, 0]] = points["color"][rows[:, 2]]
    return {"key": key, "color": image, "pose": pose, "rows": rows}


def make_pointcept_root(root, scenes=(("train", "scene0000_00"), ("train", "scene0001_00"), ("val", "scene0002_00")),
                        seed: int = 0) -> Path:
    """Tiny rooms in Pointcept's layout, three frames each (named 0, 75, 150: Pointcept's frame gap)."""
    rng = np.random.default_rng(seed)
    K = tiny_intrinsics()
    for split, name in scenes:
        points = _room_points(rng)
        eyes = ([0.2, -1.2, 1.6], [1.5, -1.5, 1.8], [2.8, -1.0, 1.5])
        frames = [render_frame(points, look_at(eye, [1.5, 1.0, 0.3]), K, 75 * i) for i, eye in enumerate(eyes)]
        write_pointcept_scene(root, split, name, points, frames, K)
    return Path(root)

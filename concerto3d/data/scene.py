"""The preprocessed dataset on disk (data/README.md section 3): the one module that knows its paths and files.

``concerto3d preprocess`` writes through it; training, probing, lifting and visualisation read through it::

    DATA/<scene>/coord.npy, color.npy, normal.npy, segment20.npy, ...   per-point arrays
    DATA/<scene>/images/<k>.jpg, poses.npy, intrinsics.npy               the kept frames
    DATA/<scene>/correspondences.npy                                     (M, 4) rows (k, u, v, point)
    DATA/<scene>/meta.json                                               how the scene was made
    DATA/<scene>/image_features/<digest>.npy                             a frozen image encoder's cached features
    DATA/splits/<split>.txt                                              one scene name a line

Split lists mean one thing everywhere: a split is the scenes its list names, in the list's order. A missing list,
an empty list, or a listed scene without a preprocessed folder is an :class:`InputError` naming the file
(``preprocess`` always writes ``splits/train.txt``; ``splits/val.txt`` when the input had one).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from concerto3d.errors import FormatError, InputError
from concerto3d.io.atomic import atomic_write_text
from concerto3d.labels import IGNORE_INDEX
from concerto3d.io.split_lists import read_split as read_split_list
from concerto3d.io.split_lists import write_split as write_split_list

__all__ = [
    "SCENE_ARRAYS", "SCENE_FILES", "DEFAULT_IMAGE_SIZE", "DEFAULT_PATCH_SIZE", "Scene", "split_path",
    "split_names",
    "split_scenes", "scene_folders", "write_split", "load_array", "check_array", "load_scene", "load_correspondences",
    "image_path", "image_features_path", "frame_count", "read_image", "labelled_points", "rescale_pixels", "read_meta", "write_meta", "write_arrays", "frame_cameras", "image_geometry",
    "write_correspondences", "write_scene_folder",
]

# the images of preprocessing and the image encoder's input: (H, W) and the ViT patch side, one source for both
DEFAULT_IMAGE_SIZE: tuple[int, int] = (240, 320)
DEFAULT_PATCH_SIZE: int = 16

SCENE_ARRAYS = ("coord.npy", "color.npy", "normal.npy", "segment20.npy")
SCENE_FILES = SCENE_ARRAYS + ("correspondences.npy",)


# ---------------------------------------------------------------------------------------------------------------
# split lists


def split_path(root: str | os.PathLike, split: str) -> Path:
    """``DATA/splits/<split>.txt``."""
    return Path(root) / "splits" / f"{split}.txt"


def split_names(root: str | os.PathLike, split: str) -> list[str]:
    """The scene names of ``DATA/splits/<split>.txt``, in order, duplicates dropped.

    Raises:
        InputError: the list is missing or empty. FormatError: it cannot be read.
    """
    path = split_path(root, split)
    if not path.is_file():
        raise InputError(f"missing split list; expected a preprocessed dataset with splits/{split}.txt (one scene "
                         "name a line; concerto3d preprocess writes splits/train.txt, and a rerun on a folder made "
                         "before it did adds it, keeping the finished scenes)", path)
    names = list(dict.fromkeys(read_split_list(path)))
    if not names:
        raise InputError("split list is empty", path)
    return names


def split_scenes(root: str | os.PathLike, split: str) -> list[Path]:
    """The scene folders of a split (see :func:`split_names`), each checked to hold ``coord.npy``.

    Raises:
        InputError: no dataset folder, a missing or empty list, or a listed scene without a preprocessed folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a folder; expected a preprocessed dataset (concerto3d preprocess OUT)", root)
    scenes = [root / name for name in split_names(root, split)]
    missing = [s.name for s in scenes if not (s / "coord.npy").is_file()]
    if missing:
        raise InputError(f"lists {len(missing)} scene(s) with no preprocessed folder (coord.npy) under {root}, "
                         f"e.g. {missing[0]!r}", split_path(root, split))
    return scenes


def write_split(root: str | os.PathLike, split: str, names) -> Path:
    """Write ``DATA/splits/<split>.txt`` (one name a line)."""
    path = split_path(root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_split_list(path, list(names))
    return path


# ---------------------------------------------------------------------------------------------------------------
# arrays


def load_array(path: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """``np.load`` without pickles; a missing or unreadable file is a one-line error naming it."""
    path = Path(path)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise InputError("missing file; expected a preprocessed scene folder (data/README.md section 3)",
                         path) from None
    except (ValueError, OSError) as err:
        raise FormatError(f"expected a .npy array, could not read it ({err})", path) from None


def check_array(arr: np.ndarray, path: str | os.PathLike, shape: tuple, kind: str) -> None:
    """Raise a FormatError naming ``path`` unless ``arr`` has ``shape`` (None = any) and a dtype kind in ``kind``."""
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not (ok and arr.dtype.kind in kind):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise FormatError(f"expected an array of shape {want} and dtype kind {kind!r}, got shape {arr.shape} "
                          f"dtype {arr.dtype}", path)


@dataclass
class Scene:
    """The per-point arrays of one preprocessed scene.

    Attributes:
        name: folder name.
        coord: (N, 3) float32, metres.
        color: (N, 3) uint8 RGB (grey 128 when the file is missing).
        normal: (N, 3) float32, unit length (zeros when the file is missing).
        segment20: (N,) int64, 0..19 or -1 = ignore (all -1 when the file is missing).
    """

    name: str
    coord: np.ndarray
    color: np.ndarray
    normal: np.ndarray
    segment20: np.ndarray

    def __len__(self) -> int:
        return len(self.coord)


def load_scene(scene_dir: str | os.PathLike) -> Scene:
    """Read and check the point arrays of one preprocessed scene folder.

    Raises:
        InputError: the folder or ``coord.npy`` is missing.
        FormatError: an array has the wrong shape, dtype or length, or coordinates are not finite.
    """
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise InputError("not a folder; expected a preprocessed scene folder with coord.npy, color.npy, ...",
                         scene_dir)
    coord = load_array(scene_dir / "coord.npy")
    check_array(coord, scene_dir / "coord.npy", (None, 3), "f")
    if not np.isfinite(coord).all():
        raise FormatError("coordinates contain NaN or inf", scene_dir / "coord.npy")
    n = len(coord)

    def optional(name: str, shape: tuple, kind: str, default: np.ndarray) -> np.ndarray:
        path = scene_dir / name
        if not path.exists():
            return default
        arr = load_array(path)
        check_array(arr, path, shape, kind)
        return arr

    color = optional("color.npy", (n, 3), "u", np.full((n, 3), 128, np.uint8))
    if color.dtype != np.uint8:
        raise FormatError(f"expected uint8 colours, got dtype {color.dtype}", scene_dir / "color.npy")
    normal = optional("normal.npy", (n, 3), "f", np.zeros((n, 3), np.float32))
    segment = optional("segment20.npy", (n,), "iu", np.full(n, -1, np.int64))
    return Scene(scene_dir.name, coord.astype(np.float32), color, normal.astype(np.float32),
                 segment.astype(np.int64))


def load_correspondences(scene_dir: str | os.PathLike, num_points: int | None = None,
                         mmap: bool = False) -> np.ndarray:
    """``correspondences.npy`` of a scene: (M, 4) integer rows (k, u, v, point), checked.

    Args:
        num_points: N of the scene; rows naming a point >= N are a FormatError (None: not checked).
        mmap: map the file instead of reading it.
    Returns:
        the array as stored (int32 from ``preprocess``); cast with ``astype(np.int64)`` before indexing maths.
    """
    path = Path(scene_dir) / "correspondences.npy"
    corr = load_array(path, mmap=mmap)
    check_array(corr, path, (None, 4), "iu")
    if len(corr) and (np.asarray(corr.min(axis=0)) < 0).any():
        raise FormatError("expected rows (k >= 0, u >= 0, v >= 0, point >= 0), found negative values", path)
    if num_points is not None and len(corr) and int(corr[:, 3].max()) >= num_points:
        raise FormatError(f"expected rows (k, u, v, point) with point < {num_points} (the scene's points), found "
                          f"point {int(corr[:, 3].max())}", path)
    return corr


def labelled_points(scene_dir: str | os.PathLike) -> int:
    """Points of a scene with a ScanNet-20 label (0 when it has no ``segment20.npy``)."""
    path = Path(scene_dir) / "segment20.npy"
    return int((load_array(path, mmap=True) != IGNORE_INDEX).sum()) if path.is_file() else 0


def write_arrays(scene_dir: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``{name: array}`` as ``<name>.npy`` files of a scene folder (preprocessing writes into a temporary
    folder that is renamed when complete, so these need no atomic rename of their own)."""
    for name, arr in arrays.items():
        np.save(Path(scene_dir) / f"{name}.npy", np.asarray(arr))


def write_correspondences(path: str | os.PathLike, frames: Iterable[tuple[int, np.ndarray]]) -> int:
    """Write ``correspondences.npy`` from one frame at a time, without holding them all in memory.

    Args:
        path: the file to write.
        frames: ``(k, rows)`` per frame in frame order, rows (M_k, 3) integers (u, v, point).
    Returns:
        M, the rows written: an (M, 4) int32 array of rows (k, u, v, point).
    """
    path = Path(path)
    spill = path.with_suffix(".spill")
    total = 0
    with open(spill, "wb") as raw:
        for k, corr in frames:
            rows = np.empty((len(corr), 4), np.int32)
            rows[:, 0] = k
            rows[:, 1:] = corr
            raw.write(rows.tobytes())
            total += len(corr)
    with open(path, "wb") as f, open(spill, "rb") as raw:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.dtype(np.int32).str, "fortran_order": False, "shape": (total, 4)})
        shutil.copyfileobj(raw, f, length=1 << 22)
    spill.unlink()
    return total


def write_scene_folder(out: str | os.PathLike, name: str, fill: Callable[[Path], dict]) -> dict:
    """Make ``out/<name>`` appear only when complete: ``fill(folder)`` writes the scene into
    ``out/.tmp-<name>-<pid>`` (``meta.json`` last) and returns its meta, then the folder is renamed.

    A scene another process finished meanwhile is kept (same content); on any failure the temporary folder is
    removed and the error raised.
    """
    out = Path(out)
    final = out / name
    tmp = out / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        meta = fill(tmp)
        try:
            os.rename(tmp, final)  # atomic; fails when ``final`` exists and is not empty
        except OSError:
            if not (final / "meta.json").is_file():
                raise
            shutil.rmtree(tmp)  # another process finished the same scene meanwhile: same content, keep theirs
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def frame_cameras(scene_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(poses (F, 4, 4), intrinsics (F, 3, 3))`` of the kept frames: camera-to-world, and the intrinsics of the
    stored (resized) images."""
    scene_dir = Path(scene_dir)
    poses = load_array(scene_dir / "poses.npy")
    intrinsics = load_array(scene_dir / "intrinsics.npy")
    check_array(poses, scene_dir / "poses.npy", (None, 4, 4), "f")
    check_array(intrinsics, scene_dir / "intrinsics.npy", (len(poses), 3, 3), "f")
    return poses, intrinsics


# ---------------------------------------------------------------------------------------------------------------
# images


def frame_count(scene_dir: str | os.PathLike) -> int:
    """F, the kept frames of a scene: its images ``images/000000.jpg`` ... in unbroken order."""
    count = 0
    while image_path(scene_dir, count).is_file():
        count += 1
    return count


def image_features_path(scene_dir: str | os.PathLike, digest: str) -> Path:
    """``<scene>/image_features/<digest>.npy``: the cached (F, Hp, Wp, C) float32 patch features of every kept frame
    under the frozen image encoder whose digest it is (``concerto3d.inference.feature_cache``)."""
    return Path(scene_dir) / "image_features" / f"{digest}.npy"


def image_path(scene_dir: str | os.PathLike, k: int) -> Path:
    """``<scene>/images/<k>.jpg`` (six digits)."""
    return Path(scene_dir) / "images" / f"{int(k):06d}.jpg"


def label_path(scene_dir: str | os.PathLike, k: int) -> Path:
    """``<scene>/labels/<k>.png``: frame k's 2D labels at the stored image size, 8-bit ScanNet-20 indices, 255 =
    unlabelled (written by preprocess when the input has per-frame labels)."""
    return Path(scene_dir) / "labels" / f"{int(k):06d}.png"


FRAME_LABEL_IGNORE = 255  # the value of an unlabelled pixel in labels/<k>.png


def read_frame_labels(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W) int64 ScanNet-20 indices of a ``labels/<k>.png``, -1 where unlabelled; resized to ``size`` = (H, W)
    by nearest neighbour (pixel centres) when given and different."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            values = np.asarray(image).astype(np.int64)
    except (OSError, ValueError) as err:
        raise FormatError(f"cannot read the frame labels ({type(err).__name__}: {err})", path) from None
    if values.ndim != 2:
        raise FormatError(f"expected a greyscale label image, got shape {values.shape}", path)
    labels = np.where(values == FRAME_LABEL_IGNORE, IGNORE_INDEX, values)
    return labels if size is None else resize_nearest(labels, size)


def resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (H', W', ...) array at ``size`` = (H, W) by nearest neighbour: each output pixel takes the input pixel under
    its centre (label images: no value is invented). Unchanged when already that size."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    rows = np.minimum((np.arange(h) + 0.5) * image.shape[0] / h, image.shape[0] - 1).astype(np.int64)
    cols = np.minimum((np.arange(w) + 0.5) * image.shape[1] / w, image.shape[1] - 1).astype(np.int64)
    return image[rows[:, None], cols[None, :]]


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Read an RGB image, resized (bilinear) to ``size`` = (H, W) when given and different.

    Returns:
        ((H, W, 3) uint8, (H0, W0) the stored size).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            stored = (im.height, im.width)
            if size is not None and stored != tuple(size):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8), stored
    except FileNotFoundError:
        raise InputError("missing image; correspondences.npy refers to it", path) from None
    except OSError as err:
        raise FormatError(f"expected an RGB image, could not read it ({err})", path) from None


def rescale_pixels(u: np.ndarray, v: np.ndarray, stored: tuple[int, int],
                   size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Map pixel columns/rows of an image of size ``stored`` = (H0, W0) to one resized to ``size`` = (H, W): the
    pixel whose centre lands on the old pixel's centre."""
    (h0, w0), (h, w) = stored, size
    u = np.minimum(np.floor((u + 0.5) * (w / w0)).astype(np.int64), w - 1)
    v = np.minimum(np.floor((v + 0.5) * (h / h0)).astype(np.int64), h - 1)
    return u, v


# ---------------------------------------------------------------------------------------------------------------
# meta.json


def read_meta(scene_dir: str | os.PathLike) -> dict:
    """A scene's ``meta.json`` as a dict."""
    path = Path(scene_dir) / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("missing meta.json; expected a finished preprocessed scene", path) from None
    except (OSError, ValueError) as err:
        raise FormatError(f"expected a JSON object, could not read it ({type(err).__name__})", path) from None
    if not isinstance(meta, dict):
        raise FormatError(f"expected a JSON object, got {type(meta).__name__}", path)
    return meta


def write_meta(scene_dir: str | os.PathLike, meta: dict) -> None:
    """Write a scene's ``meta.json`` (the marker of a finished scene: written last)."""
    atomic_write_text(Path(scene_dir) / "meta.json", json.dumps(meta, indent=2) + "\n")


def scene_folders(root: str | os.PathLike) -> list[Path]:
    """Every preprocessed scene folder (with ``coord.npy``) under ``root``, sorted by name."""
    root = Path(root)
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / "coord.npy").is_file())


def image_geometry(root: str | os.PathLike, split: str | None = "train") -> tuple[tuple[int, int], int] | None:
    """``((H, W), patch)`` of the images a dataset's split (every scene when ``split`` is None) was preprocessed
    with, from its scenes' ``meta.json``.

    Returns:
        None when no scene of the split records them (e.g. a hand-made dataset).
    Raises:
        InputError: the scenes disagree.
    """
    seen: dict[tuple, str] = {}
    for scene_dir in split_scenes(root, split) if split is not None else scene_folders(root):
        if not (scene_dir / "meta.json").is_file():
            continue
        meta = read_meta(scene_dir)
        if "image_size" not in meta or "patch_size" not in meta:
            continue
        key = (tuple(int(v) for v in meta["image_size"]), int(meta["patch_size"]))
        seen.setdefault(key, scene_dir.name)
    if len(seen) > 1:
        (a, sa), (b, sb) = list(seen.items())[:2]
        raise InputError(f"scenes were preprocessed with different image or patch sizes ({sa}: {a}, {sb}: {b}); "
                         "preprocess them again with one --image-size and --patch-size", root)
    return next(iter(seen), None)

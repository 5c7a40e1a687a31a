"""Digests of what a result came from: a preprocessed dataset (:func:`data_digest`) and a folder of files
(:func:`files_digest`).

The ablation pins its data with them (``OUT/ablation.json``), and a trained model folder records the digest of the
data it was trained on (``config.json`` ``training.data.sha256``, shown in its model card), so the two can be
compared: the same preprocessed data gives the same digest wherever it lies.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from concerto3d.data.scene import SCENE_ARRAYS, split_path, split_scenes

__all__ = ["data_digest", "present_splits", "files_digest", "DIGEST_SPLITS"]

# the splits a data digest covers by default: what the ablation trains and probes on
DIGEST_SPLITS = ("train", "val")
# what training writes into a scene folder (a frozen image encoder's feature cache, ``image_features_path``): derived
# from the data, not data, so outside the digest, or a second run on the same data would see other data
_DERIVED = ("image_features",)


def data_digest(data: str | os.PathLike, splits: tuple[str, ...] = DIGEST_SPLITS) -> str:
    """sha256 of a preprocessed dataset: the split lists, and for every scene they name the bytes of its points,
    colours, normals and labels (``SCENE_ARRAYS``) and the size of every other file (correspondences, images).

    ``meta.json`` is left out: it records absolute source paths, which move with the checkout; so is the feature
    cache training writes (``image_features/``). A copy of the data elsewhere has the same digest.

    Args:
        data: the preprocessed dataset (``DATA/splits/<split>.txt`` and the scene folders).
        splits: the split lists covered, in this order (default train and val, as the ablation sees the data).
    Raises:
        InputError: a split list is missing or names a scene without a preprocessed folder.
    """
    h = hashlib.sha256()
    for split in splits:
        folders = split_scenes(data, split)
        h.update(f"{split}:{','.join(f.name for f in folders)}\n".encode())
        for folder in folders:
            scene = folder.name
            for path in sorted(folder.rglob("*")):
                if not path.is_file() or path.name == "meta.json":
                    continue
                rel = path.relative_to(folder).as_posix()
                if rel.split("/", 1)[0] in _DERIVED:
                    continue
                if rel in SCENE_ARRAYS:
                    h.update(f"{scene}/{rel}:".encode() + hashlib.sha256(path.read_bytes()).digest())
                else:
                    h.update(f"{scene}/{rel}:{path.stat().st_size}\n".encode())
    return h.hexdigest()


def present_splits(data: str | os.PathLike, needed: str, splits: tuple[str, ...] = DIGEST_SPLITS) -> tuple[str, ...]:
    """The splits of ``splits`` whose list exists under ``data``, plus ``needed`` (the training split) if it is not
    among them: what :func:`data_digest` can cover for a dataset that may lack a val list."""
    found = tuple(s for s in splits if split_path(data, s).is_file())
    return found if needed in found else found + (needed,)


def files_digest(folder: str | os.PathLike, skip: tuple[str, ...] = ()) -> str:
    """sha256 over the relative paths and bytes of every file under ``folder``, except the top-level files named
    in ``skip`` (e.g. a model folder's ``README.md``, which people edit)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not (path.parent == folder and path.name in skip):
            h.update(path.relative_to(folder).as_posix().encode() + b"\0")
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 24), b""):
                    h.update(chunk)
    return h.hexdigest()

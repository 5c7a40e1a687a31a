"""ScanNet's per-frame 2D labels: ``<scene>_2d-label-filt.zip`` holding ``label-filt/<i>.png`` (or that folder
unpacked in the scene folder).

Each PNG is the label image of frame ``i`` of the ``.sens`` sequence: 16-bit, at the depth camera's resolution, each
pixel a ScanNet label id (the ``id`` column of ``scannetv2-labels.combined.tsv``; ScanNet's BenchmarkScripts map it
to NYU40 through that table), 0 = unannotated. ``concerto3d synth`` writes the same layout.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from concerto3d.errors import FormatError

__all__ = ["FrameLabels", "LABEL_FOLDER", "label_zip_name", "write_label_zip"]

LABEL_FOLDER = "label-filt"


def label_zip_name(scene: str) -> str:
    return f"{scene}_2d-label-filt.zip"


def _decode(data: bytes, where: str | os.PathLike) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as err:  # Pillow raises many kinds for a payload that is not an image
        raise FormatError(f"cannot decode the label image ({type(err).__name__}: {err})", where) from None
    if image.mode not in ("I;16", "I;16L", "I;16B", "I;16N", "I", "L", "P"):
        raise FormatError(f"expected a 16-bit (or 8-bit) greyscale label image, got Pillow mode {image.mode!r}",
                          where)
    values = np.asarray(image).astype(np.int64)
    if values.size and values.min() < 0:
        raise FormatError("expected label ids >= 0", where)
    return values


class FrameLabels:
    """The 2D label images of one ScanNet scene folder, from the unpacked ``label-filt/`` folder or the zip.

    Args:
        scene_dir: the scene folder (``scans/<scene>``).
        scene: the scene name (the zip is ``<scene>_2d-label-filt.zip``); the folder's name when None.
    """

    def __init__(self, scene_dir: str | os.PathLike, scene: str | None = None):
        self.scene_dir = Path(scene_dir)
        self.scene = scene or self.scene_dir.name
        self.folder = self.scene_dir / LABEL_FOLDER
        self.zip_path = self.scene_dir / label_zip_name(self.scene)
        self._members: dict[int, str] | None = None

    @property
    def available(self) -> bool:
        return self.folder.is_dir() or self.zip_path.is_file()

    def _zip_members(self) -> dict[int, str]:
        if self._members is None:
            try:
                with zipfile.ZipFile(self.zip_path) as archive:
                    names = archive.namelist()
            except (zipfile.BadZipFile, OSError) as err:
                raise FormatError(f"cannot read the label archive ({type(err).__name__}: {err})",
                                  self.zip_path) from None
            self._members = {}
            for name in names:
                stem, suffix = os.path.splitext(os.path.basename(name))
                if suffix.lower() == ".png" and stem.isdigit():
                    self._members[int(stem)] = name
        return self._members

    def read(self, index: int) -> np.ndarray | None:
        """(H, W) int64 ScanNet label ids of frame ``index``; None when that frame has no label image."""
        if self.folder.is_dir():
            path = self.folder / f"{index}.png"
            return _decode(path.read_bytes(), path) if path.is_file() else None
        if not self.zip_path.is_file():
            return None
        member = self._zip_members().get(int(index))
        if member is None:
            return None
        try:
            with zipfile.ZipFile(self.zip_path) as archive:
                data = archive.read(member)
        except (zipfile.BadZipFile, OSError, KeyError) as err:
            raise FormatError(f"cannot read {member} ({type(err).__name__}: {err})", self.zip_path) from None
        return _decode(data, f"{self.zip_path}:{member}")


def write_label_zip(path: str | os.PathLike, images: dict[int, np.ndarray]) -> None:
    """Write ``{frame index: (H, W) label ids}`` as ScanNet's ``label-filt/<i>.png`` 16-bit PNGs in a zip (entries
    dated 1980-01-01, so the same labels give the same bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for index, ids in sorted(images.items()):
            buffer = io.BytesIO()
            Image.fromarray(np.asarray(ids, dtype=np.uint16)).save(buffer, format="PNG")
            entry = zipfile.ZipInfo(f"{LABEL_FOLDER}/{index}.png", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(entry, buffer.getvalue())

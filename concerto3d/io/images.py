"""Colour and depth images: JPEG/PNG files and in-memory byte payloads (as stored in ``.sens`` files).

Colour is (H, W, 3) uint8 RGB. Depth files are 16-bit PNGs whose value divided by the depth scale is metres
(ScanNet and 7-Scenes: 1000, TUM: 5000), 0 = missing. An 8-bit depth PNG is refused: it cannot hold millimetres, so
reading it would give a silently wrong scene.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from concerto3d.errors import FormatError, InputError

class DepthBitDepthError(FormatError):
    """A depth image that is not 16-bit (e.g. an 8-bit PNG): a problem of the whole dataset, not of one frame."""


# everything Pillow raises for a file or payload that is not a decodable image (a decompression bomb included)
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)

# Pillow modes that hold 16-bit greyscale; "I" (int32) is what some Pillow versions give for 16-bit PNGs
_DEPTH_MODES_16 = ("I;16", "I;16L", "I;16B", "I;16N")


def _open_image(path: str | os.PathLike, what: str) -> Image.Image:
    """Open and fully decode an image file, turning every Pillow/OS failure into a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} image not found", path)
    if path.stat().st_size == 0:
        raise FormatError(f"{what} image is an empty file", path)
    try:
        image = Image.open(path)
        image.load()  # decode now, so that a truncated file fails here and not later
    except _DECODE_ERRORS as err:
        raise FormatError(f"cannot decode the {what} image ({type(err).__name__}: {err})", path) from None
    return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode not in ("RGB", "L", "P", "RGBA", "LA", "CMYK", "YCbCr"):
        raise ValueError(f"expected a colour or 8-bit grey image, got Pillow mode {image.mode!r}")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)  # a writable copy (converting an RGB image would copy it once more)


def _to_uint16_depth(image: Image.Image) -> np.ndarray:
    if image.mode in _DEPTH_MODES_16:
        return np.asarray(image).astype(np.uint16)
    if image.mode in ("I", "I;32"):
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"expected 16-bit depth values, found values in [{values.min()}, {values.max()}]")
        return values.astype(np.uint16)
    raise ValueError(f"expected a 16-bit greyscale depth image, got Pillow mode {image.mode!r}"
                     f"{' (8-bit depth cannot hold millimetres)' if image.mode in ('L', 'P', 'RGB', 'RGBA') else ''}")


def read_color(path: str | os.PathLike) -> np.ndarray:
    """Read a colour image (JPEG, PNG, ...).

    Returns:
        (H, W, 3) uint8 RGB. Greyscale and palette images are converted to RGB.
    Raises:
        InputError: the file does not exist. FormatError: it is empty, does not decode or is not a colour image.
    """
    image = _open_image(path, "colour")
    try:
        return _to_rgb(image)
    except ValueError as err:
        raise FormatError(str(err), path) from None


def read_depth_raw(path: str | os.PathLike) -> np.ndarray:
    """Read a 16-bit depth PNG without scaling.

    Returns:
        (H, W) uint16 raw values, 0 = missing.
    Raises:
        DepthBitDepthError (a FormatError): 8-bit or colour PNG. FormatError: empty or undecodable file.
        InputError: missing file.
    """
    image = _open_image(path, "depth")
    try:
        return _to_uint16_depth(image)
    except ValueError as err:
        raise DepthBitDepthError(str(err), path) from None


def read_depth(path: str | os.PathLike, depth_scale: float) -> np.ndarray:
    """Read a 16-bit depth PNG in metres.

    Args:
        path: the PNG file.
        depth_scale: raw value per metre (1000 for millimetres, 5000 for TUM).
    Returns:
        (H, W) float32 metres, 0 = missing.
    """
    depth_scale = check_depth_scale(depth_scale)
    return depth_to_metres(read_depth_raw(path), depth_scale)


def check_depth_scale(depth_scale: float) -> float:
    """Validate a depth scale (raw units per metre): a finite number > 0."""
    try:
        value = float(depth_scale)
    except (TypeError, ValueError):
        raise InputError(f"depth scale must be a number, got {depth_scale!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"depth scale must be a finite number > 0, got {depth_scale!r}")
    return value


def depth_to_metres(raw: np.ndarray, depth_scale: float) -> np.ndarray:
    """(H, W) raw integer depth -> (H, W) float32 metres (``raw / depth_scale``; 0 stays 0)."""
    return (np.asarray(raw, dtype=np.float32) / np.float32(depth_scale)).astype(np.float32)


def _check_color_array(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected a colour image (H, W, 3) uint8, got shape {rgb.shape} dtype {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def _check_depth_array(depth: np.ndarray) -> np.ndarray:
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype != np.uint16 or depth.size == 0:
        raise ValueError(f"expected a depth image (H, W) uint16, got shape {depth.shape} dtype {depth.dtype}")
    return np.ascontiguousarray(depth)


def encode_color_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes (4:4:4 chroma above quality 90, so that thin colour edges survive)."""
    rgb = _check_color_array(rgb)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buffer = io.BytesIO()
    subsampling = 0 if quality >= 90 else 2
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(quality), subsampling=subsampling)
    return buffer.getvalue()


def decode_color_bytes(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> (H, W, 3) uint8 RGB. Raises ValueError when the bytes do not decode."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except _DECODE_ERRORS as err:
        raise ValueError(f"colour payload does not decode ({type(err).__name__}: {err})") from None
    return _to_rgb(image)


def decode_color_bytes_reduced(data: bytes, min_size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """JPEG/PNG bytes -> the colour at ``1 / s`` of its size, s in {1, 2, 4, 8}: the largest that keeps both sides
    at least ``min_size`` (height, width). For an image that is about to be downscaled to ``min_size``.

    A JPEG is reduced while it is decoded (libjpeg's DCT scaling, through Pillow's ``Image.draft``), which costs a
    fraction of a full decode (about a fifth at 1/4). Pixel ``(u, v)`` of the result stands for the ``s x s`` block
    of full-size pixels starting at ``(s u, s v)``, as in a box reduction by ``s``, but the values are not the
    box means of a full decode: after the same resize to 320x240 they differ by 0.3 levels (of 255) on average on
    ScanNet-size renders (at most 12, at sharp edges with 4:2:0 chroma) and by 2 on pixel noise (bounds in
    ``tests/data/test_preprocess_reduced_decode.py``). Other formats, and JPEGs less than twice
    ``min_size``, are decoded in full (``s = 1``, the same pixels as :func:`decode_color_bytes`).

    Returns:
        rgb: (ceil(H / s), ceil(W / s), 3) uint8 RGB; s: the reduction, int.
    Raises:
        ValueError: the bytes do not decode, or ``min_size`` is not two positive ints.
    """
    h, w = (int(v) for v in min_size)
    if h <= 0 or w <= 0:
        raise ValueError(f"min_size: expected positive (height, width), got {min_size!r}")
    try:
        image = Image.open(io.BytesIO(data))
        full_width = image.size[0]
        drafted = image.draft("RGB", (w, h))  # None (nothing done) for formats other than JPEG
        image.load()
    except _DECODE_ERRORS as err:
        raise ValueError(f"colour payload does not decode ({type(err).__name__}: {err})") from None
    scale = 1 if drafted is None else round(full_width / drafted[1][2])  # Pillow's box is (0, 0, W / s, H / s)
    return _to_rgb(image), scale


def write_color_jpeg(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95) -> None:
    """Write (H, W, 3) uint8 RGB as a JPEG file."""
    Path(path).write_bytes(encode_color_jpeg(rgb, quality))


def write_color_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write (H, W, 3) uint8 RGB as a lossless PNG file."""
    Image.fromarray(_check_color_array(rgb)).save(Path(path), format="PNG")


def write_depth_png(path: str | os.PathLike, depth: np.ndarray) -> None:
    """Write (H, W) uint16 raw depth (e.g. millimetres) as a 16-bit greyscale PNG."""
    depth = _check_depth_array(depth)
    Image.fromarray(depth).save(Path(path), format="PNG")

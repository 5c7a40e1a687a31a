"""ScanNet's ``.sens`` stream (version 4): read frame by frame, and write (a FrameSource over it: ``sens_frames.py``).

Layout (little-endian, data/README.md §1): a header (version, sensor name, four 4x4 float32 matrices, compression
types, image sizes, depth shift, frame count), then per frame a 4x4 float32 camera-to-world matrix, four uint64
(colour and depth timestamps, colour and depth byte counts) and the two payloads. Colour is usually JPEG, depth
zlib-compressed uint16 in millimetres. ScanNet's own writer appends an IMU block after the frames: it is ignored.

The reader streams: it holds one frame's bytes at a time, read from the open file, so memory does not grow with the
number of frames. A file that ends early or whose sizes make no sense raises :class:`FormatError` naming the file and
the frame; a single frame whose payload does not decode is skipped by :class:`SensFrameSource` with a reason.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from concerto3d.errors import FormatError, InputError
from concerto3d.io.frames import check_step
from concerto3d.io.geometry_files import check_intrinsics
from concerto3d.io.images import decode_color_bytes, decode_color_bytes_reduced, encode_color_jpeg

log = logging.getLogger(__name__)

SENS_VERSION = 4
COLOR_COMPRESSION = {-1: "unknown", 0: "raw", 1: "png", 2: "jpeg"}
DEPTH_COMPRESSION = {-1: "unknown", 0: "raw_ushort", 1: "zlib_ushort", 2: "occi_ushort"}

_MATRIX = struct.Struct("<16f")
_FRAME_HEAD = struct.Struct("<16f4Q")  # camera_to_world, timestamp_color, timestamp_depth, color_size, depth_size
_AFTER_NAME = struct.Struct("<64f2i4IfQ")  # 4 matrices, compressions, sizes, depth_shift, num_frames
_MAX_NAME = 1 << 16
_MAX_SIDE = 1 << 15


@dataclass
class SensHeader:
    """The header of a ``.sens`` file.

    Attributes:
        intrinsic_color, extrinsic_color, intrinsic_depth, extrinsic_depth: (4, 4) float64 (stored as float32).
        color_width, color_height, depth_width, depth_height: image sizes in pixels.
        color_compression: -1 unknown, 0 raw, 1 png, 2 jpeg. depth_compression: -1 unknown, 0 raw_ushort,
            1 zlib_ushort, 2 occi_ushort.
        depth_shift: raw depth units per metre (1000 = millimetres).
        num_frames: frames in the file.
    """

    intrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    color_width: int
    color_height: int
    depth_width: int
    depth_height: int
    extrinsic_color: np.ndarray = field(default_factory=lambda: np.eye(4))
    extrinsic_depth: np.ndarray = field(default_factory=lambda: np.eye(4))
    color_compression: int = 2
    depth_compression: int = 1
    depth_shift: float = 1000.0
    num_frames: int = 0
    sensor_name: str = "concerto3d"
    version: int = SENS_VERSION

    @property
    def color_size(self) -> tuple[int, int]:
        """(width, height) of the colour images."""
        return self.color_width, self.color_height

    @property
    def depth_size(self) -> tuple[int, int]:
        """(width, height) of the depth images."""
        return self.depth_width, self.depth_height


@dataclass
class SensRawFrame:
    """One frame as stored: pose, timestamps and the still-compressed payloads."""

    index: int
    camera_to_world: np.ndarray  # (4, 4) float64
    timestamp_color: int
    timestamp_depth: int
    color_bytes: bytes
    depth_bytes: bytes


def _as_4x4(matrix, name: str) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape == (3, 3):
        out = np.eye(4)
        out[:3, :3] = matrix
        return out
    if matrix.shape != (4, 4):
        raise ValueError(f"{name}: expected a (3, 3) or (4, 4) matrix, got shape {matrix.shape}")
    return matrix.copy()


def _pack_header(h: SensHeader) -> bytes:
    name = h.sensor_name.encode("utf-8")
    matrices = np.concatenate([_as_4x4(m, n).ravel() for m, n in (
        (h.intrinsic_color, "intrinsic_color"), (h.extrinsic_color, "extrinsic_color"),
        (h.intrinsic_depth, "intrinsic_depth"), (h.extrinsic_depth, "extrinsic_depth"))])
    return (struct.pack("<IQ", h.version, len(name)) + name
            + _AFTER_NAME.pack(*matrices.astype(np.float32).tolist(), h.color_compression, h.depth_compression,
                               h.color_width, h.color_height, h.depth_width, h.depth_height,
                               float(h.depth_shift), h.num_frames))


class SensWriter:
    """Write a ``.sens`` file frame by frame (JPEG colour, zlib depth); ``num_frames`` is patched on close.

    Args:
        path: output file.
        header_fields: a :class:`SensHeader` or a mapping of its fields; at least ``intrinsic_color``,
            ``intrinsic_depth`` ((3, 3) or (4, 4)) and the four image sizes. The compression fields are forced to
            jpeg/zlib, which is what this writer produces.
        jpeg_quality: 1..100.

    Example::

        with SensWriter(path, dict(intrinsic_color=Kc, intrinsic_depth=Kd, color_width=1296, color_height=968,
                                   depth_width=640, depth_height=480)) as writer:
            writer.add_frame(pose, rgb, depth_mm)
    """

    def __init__(self, path: str | os.PathLike, header_fields: SensHeader | Mapping, jpeg_quality: int = 95):
        if isinstance(header_fields, SensHeader):
            header = dataclasses.replace(header_fields)
        else:
            known = {f.name for f in dataclasses.fields(SensHeader)}
            unknown = set(header_fields) - known
            if unknown:
                raise ValueError(f"unknown .sens header fields {sorted(unknown)}; known: {sorted(known)}")
            header = SensHeader(**header_fields)
        header.color_compression, header.depth_compression = 2, 1
        header.num_frames = 0
        header.version = SENS_VERSION
        for name in ("color_width", "color_height", "depth_width", "depth_height"):
            value = getattr(header, name)
            if not (isinstance(value, (int, np.integer)) and 0 < value <= _MAX_SIDE):
                raise ValueError(f"{name} must be an integer in 1..{_MAX_SIDE}, got {value!r}")
        self.header = header
        self.path = Path(path)
        self.jpeg_quality = int(jpeg_quality)
        self._file = open(self.path, "wb")
        self._file.write(_pack_header(header))
        self._num_frames_offset = self._file.tell() - 8

    def add_frame(self, camera_to_world: np.ndarray, color_uint8: np.ndarray, depth_uint16: np.ndarray,
                  timestamp: int | None = None) -> None:
        """Append one frame.

        Args:
            camera_to_world: (4, 4) pose; non-finite values are allowed (a failed pose, as in ScanNet).
            color_uint8: (color_height, color_width, 3) uint8 RGB.
            depth_uint16: (depth_height, depth_width) uint16 in units of ``1 / depth_shift`` metres.
            timestamp: microseconds, used for colour and depth; default: frame number * 33333.
        """
        if self._file is None:
            raise ValueError(f"{self.path}: writer is closed")
        h = self.header
        pose = np.asarray(camera_to_world, dtype=np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f"camera_to_world: expected shape (4, 4), got {pose.shape}")
        color = np.asarray(color_uint8)
        if color.shape != (h.color_height, h.color_width, 3) or color.dtype != np.uint8:
            raise ValueError(f"color: expected ({h.color_height}, {h.color_width}, 3) uint8, "
                             f"got {color.shape} {color.dtype}")
        depth = np.asarray(depth_uint16)
        if depth.shape != (h.depth_height, h.depth_width) or depth.dtype != np.uint16:
            raise ValueError(f"depth: expected ({h.depth_height}, {h.depth_width}) uint16, "
                             f"got {depth.shape} {depth.dtype}")
        color_bytes = encode_color_jpeg(color, self.jpeg_quality)
        depth_bytes = zlib.compress(np.ascontiguousarray(depth, dtype="<u2").tobytes(), 6)
        stamp = h.num_frames * 33333 if timestamp is None else int(timestamp)
        self._file.write(_FRAME_HEAD.pack(*pose.astype(np.float32).ravel().tolist(), stamp, stamp,
                                          len(color_bytes), len(depth_bytes)))
        self._file.write(color_bytes)
        self._file.write(depth_bytes)
        h.num_frames += 1

    def close(self) -> None:
        """Write the frame count into the header and close the file."""
        if self._file is None:
            return
        self._file.seek(self._num_frames_offset)
        self._file.write(struct.pack("<Q", self.header.num_frames))
        self._file.close()
        self._file = None

    def __enter__(self) -> "SensWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SensReader:
    """Read a ``.sens`` file frame by frame.

    Args:
        path: the ``.sens`` file.

    Attributes:
        header: the parsed :class:`SensHeader`.

    Use as a context manager; :meth:`iter_raw` streams :class:`SensRawFrame` objects, and :meth:`decode_color` /
    :meth:`decode_depth` decode their payloads.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(".sens file not found", self.path)
        self._file_size = self.path.stat().st_size
        if self._file_size == 0:
            raise FormatError(".sens file is empty", self.path)
        self._file = open(self.path, "rb")
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise
        self._data_offset = self._file.tell()

    # -- header ---------------------------------------------------------------------------------------------
    def _read_exact(self, size: int, what: str) -> bytes:
        data = self._file.read(size)
        if len(data) != size:
            raise FormatError(f"truncated .sens file: {what} needs {size} bytes, only {len(data)} left", self.path)
        return data

    def _read_header(self) -> SensHeader:
        version, name_len = struct.unpack("<IQ", self._read_exact(12, "header"))
        if version != SENS_VERSION:
            raise FormatError(f"not a ScanNet .sens v{SENS_VERSION} file (version field is {version})", self.path)
        if name_len > _MAX_NAME:
            raise FormatError(f"corrupt .sens header: sensor name length {name_len}", self.path)
        name = self._read_exact(name_len, "header").decode("utf-8", errors="replace")
        values = _AFTER_NAME.unpack(self._read_exact(_AFTER_NAME.size, "header"))
        m = np.asarray(values[:64], dtype=np.float64).reshape(4, 4, 4)
        color_c, depth_c, cw, ch, dw, dh, depth_shift, num_frames = values[64:]
        if color_c not in (0, 1, 2):
            raise FormatError(f"unsupported colour compression {color_c} "
                              f"({COLOR_COMPRESSION.get(color_c, 'invalid')}); expected raw, png or jpeg", self.path)
        if depth_c not in (0, 1):
            raise FormatError(f"unsupported depth compression {depth_c} "
                              f"({DEPTH_COMPRESSION.get(depth_c, 'invalid')}); expected raw_ushort or zlib_ushort",
                              self.path)
        for side in (cw, ch, dw, dh):
            if not 0 < side <= _MAX_SIDE:
                raise FormatError(f"corrupt .sens header: image sizes colour {cw}x{ch}, depth {dw}x{dh}", self.path)
        if not (np.isfinite(depth_shift) and depth_shift > 0):
            raise FormatError(f"corrupt .sens header: depth_shift {depth_shift}", self.path)
        check_intrinsics(m[0], self.path)
        check_intrinsics(m[2], self.path)
        if num_frames * _FRAME_HEAD.size > self._file_size:
            raise FormatError(f"corrupt or truncated .sens file: header says {num_frames} frames but the file has "
                              f"only {self._file_size} bytes", self.path)
        return SensHeader(intrinsic_color=m[0], extrinsic_color=m[1], intrinsic_depth=m[2], extrinsic_depth=m[3],
                          color_width=cw, color_height=ch, depth_width=dw, depth_height=dh,
                          color_compression=color_c, depth_compression=depth_c, depth_shift=float(depth_shift),
                          num_frames=num_frames, sensor_name=name, version=version)

    # -- frames ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.header.num_frames

    def iter_raw(self, step: int = 1) -> Iterator[SensRawFrame]:
        """Yield the frames whose ``index % step == 0`` in order, reading one frame's bytes at a time.

        Frames in between are skipped with a seek over their payloads.

        Raises:
            FormatError: the file ends inside a frame, or a frame's sizes point past the end of the file.
        """
        step = check_step(step)
        if self._file is None:
            raise ValueError(f"{self.path}: reader is closed")
        self._file.seek(self._data_offset)
        for index in range(self.header.num_frames):
            what = f"frame {index} of {self.header.num_frames}"
            head = _FRAME_HEAD.unpack(self._read_exact(_FRAME_HEAD.size, what))
            color_size, depth_size = head[18], head[19]
            left = self._file_size - self._file.tell()
            if color_size + depth_size > left:
                raise FormatError(f"truncated or corrupt .sens file: {what} claims {color_size + depth_size} "
                                  f"payload bytes, only {left} left", self.path)
            if index % step:
                self._file.seek(color_size + depth_size, os.SEEK_CUR)
                continue
            color_bytes = self._read_exact(color_size, what)
            depth_bytes = self._read_exact(depth_size, what)
            pose = np.asarray(head[:16], dtype=np.float64).reshape(4, 4)
            yield SensRawFrame(index, pose, head[16], head[17], color_bytes, depth_bytes)

    def decode_color(self, raw: SensRawFrame) -> np.ndarray:
        """A frame's colour -> (color_height, color_width, 3) uint8 RGB. FormatError when it does not decode."""
        return self.decode_color_reduced(raw, None)[0]

    def decode_color_reduced(self, raw: SensRawFrame, min_size: tuple[int, int] | None) -> tuple[np.ndarray, int]:
        """A frame's colour decoded at ``1 / s`` of its size (see
        :func:`concerto3d.io.images.decode_color_bytes_reduced`; JPEG only, other payloads and ``min_size=None``
        give ``s = 1``, the full decode).

        Returns:
            (ceil(color_height / s), ceil(color_width / s), 3) uint8 RGB, and s.
        Raises:
            FormatError: the payload does not decode or its size is not the header's.
        """
        h = self.header
        scale = 1
        try:
            if h.color_compression == 0:
                color = np.frombuffer(raw.color_bytes, dtype=np.uint8)
                if color.size != h.color_height * h.color_width * 3:
                    raise ValueError(f"raw colour has {color.size} bytes")
                color = color.reshape(h.color_height, h.color_width, 3).copy()
            elif min_size is None:
                color = decode_color_bytes(raw.color_bytes)
            else:
                color, scale = decode_color_bytes_reduced(raw.color_bytes, min_size)
        except ValueError as err:
            raise FormatError(f"frame {raw.index}: {err}", self.path) from None
        if color.shape[:2] != (-(-h.color_height // scale), -(-h.color_width // scale)):
            raise FormatError(f"frame {raw.index}: colour is {color.shape[1]}x{color.shape[0]} at 1/{scale}, "
                              f"header says {h.color_width}x{h.color_height}", self.path)
        return color, scale

    def decode_depth(self, raw: SensRawFrame) -> np.ndarray:
        """A frame's depth -> (depth_height, depth_width) uint16 raw units (metres = value / depth_shift).

        Raises FormatError when the payload does not decompress or has the wrong size.
        """
        h = self.header
        data = raw.depth_bytes
        if h.depth_compression == 1:
            try:
                data = zlib.decompress(data)
            except zlib.error as err:
                raise FormatError(f"frame {raw.index}: depth payload does not decompress (zlib: {err})",
                                  self.path) from None
        expected = h.depth_height * h.depth_width * 2
        if len(data) != expected:
            raise FormatError(f"frame {raw.index}: depth has {len(data)} bytes, expected {expected} "
                              f"({h.depth_width}x{h.depth_height} uint16)", self.path)
        return np.frombuffer(data, dtype="<u2").reshape(h.depth_height, h.depth_width).astype(np.uint16)

    # -- context manager ------------------------------------------------------------------------------------
    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "SensReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()

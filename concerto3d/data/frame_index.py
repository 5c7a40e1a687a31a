"""Reading only the frames a crop uses from a scene's ``correspondences.npy``.

The file holds (k, u, v, point) rows of every kept frame; ``preprocess`` writes them frame by frame (k ascending).
A scene of 1000 frames holds tens of millions of rows (888 MB for 1000 real 7-Scenes frames): reading it whole for
every training sample made a sample cost seconds and gigabytes. :class:`FrameIndex` is made once per scene and
process from one pass over the frame column (in chunks): where each frame's rows lie, and a small evenly spaced
sample of the points each frame sees. A crop then counts its points among the samples to choose its frames, and
reads only those frames' rows from the memory-mapped file: a sample's time and memory stay flat in the frames.

Small files (at most :data:`EXACT_ROWS` rows) and files not sorted by frame are read whole and counted exactly, as
before: for them reading is cheap, and the training of the built-in benchmark stays byte for byte what it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FrameIndex", "select_frames", "EXACT_ROWS", "SAMPLE_POINTS", "CHUNK_ROWS"]

EXACT_ROWS = 1 << 21      # up to this many rows (32 MB as int32) a crop reads the file whole and counts exactly
SAMPLE_POINTS = 256       # points kept per frame to estimate how much of a crop the frame sees
CHUNK_ROWS = 1 << 20      # rows read at a time when the index is made


def select_frames(frame_of_corr: np.ndarray, num_frames: int, max_frames: int) -> np.ndarray:
    """The frames with the most correspondences, at most ``max_frames`` and only those with at least one.

    Args:
        frame_of_corr: (m,) int frame of each correspondence (already restricted to the crop).
        num_frames: F, frames 0..F-1.
    Returns:
        (f,) int64 ascending frame ids; ties go to the lower id.
    """
    counts = np.bincount(frame_of_corr, minlength=num_frames)
    order = np.argsort(-counts, kind="stable")[:max_frames]
    return np.sort(order[counts[order] > 0]).astype(np.int64)


@dataclass
class FrameIndex:
    """Where each frame's rows lie in a frame-sorted ``correspondences.npy``, and a sample of each frame's points.

    Attributes:
        offsets: (F + 1,) int64; frame k owns rows ``offsets[k]:offsets[k + 1]`` (empty for a frame with none).
        sample: (F, S) int64 scene point ids, evenly spaced over each frame's rows; -1 pads frames with fewer.
        stride: (F,) int64, rows per sampled point of each frame (1 where the frame's rows are all sampled).
    """

    offsets: np.ndarray
    sample: np.ndarray
    stride: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def build(cls, corr: np.ndarray, sample_points: int = SAMPLE_POINTS,
              chunk_rows: int = CHUNK_ROWS) -> "FrameIndex | None":
        """The index of ``corr`` ((M, 4) rows, usually memory-mapped), or None when its rows are not sorted by
        frame. Reads the frame column in chunks of ``chunk_rows`` rows and ``sample_points`` rows of each frame."""
        counts = np.zeros(0, dtype=np.int64)
        last = -1
        for start in range(0, len(corr), chunk_rows):
            frames = np.asarray(corr[start:start + chunk_rows, 0], dtype=np.int64)
            if frames[0] < last or (np.diff(frames) < 0).any():
                return None
            last = int(frames[-1])
            chunk = np.bincount(frames)
            if len(chunk) > len(counts):
                counts = np.pad(counts, (0, len(chunk) - len(counts)))
            counts[:len(chunk)] += chunk
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        stride = np.maximum(1, -(-counts // sample_points)).astype(np.int64)  # ceil(n_k / S)
        sample = np.full((len(counts), sample_points), -1, dtype=np.int64)
        for k in np.flatnonzero(counts):
            points = np.asarray(corr[offsets[k]:offsets[k + 1]:stride[k], 3], dtype=np.int64)
            sample[k, :len(points)] = points
        return cls(offsets=offsets, sample=sample, stride=stride)

    def choose(self, in_crop: np.ndarray, max_frames: int) -> np.ndarray:
        """The frames that see the most crop points (estimated from the samples), at most ``max_frames`` and only
        those with a sampled crop point; (f,) int64 ascending frame ids, ties to the lower id.

        Args:
            in_crop: (N,) bool over the scene's points.
        """
        valid = self.sample >= 0
        hits = (in_crop[np.where(valid, self.sample, 0)] & valid).sum(axis=1) * self.stride
        order = np.argsort(-hits, kind="stable")[:max_frames]
        return np.sort(order[hits[order] > 0]).astype(np.int64)

    def rows(self, corr: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """The rows of ``frames`` (ascending) read from ``corr``: (m, 4) as stored."""
        parts = [np.asarray(corr[self.offsets[k]:self.offsets[k + 1]]) for k in frames]
        return np.concatenate(parts) if parts else np.zeros((0, 4), dtype=corr.dtype)

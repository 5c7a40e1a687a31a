"""The reduced JPEG decode of preprocessing (``PreprocessOptions.reduced_decode``, the fast path) against its
reference: a full decode, then the same resize.

The two are not bit-identical (libjpeg's DCT scaling is not a box mean of the fully decoded pixels), so the bounds
below are stated tolerances, set from measurements with some margin: at ScanNet's 1296x968 -> 320x240 (1/4) the
resized images differ by 0.25-0.36 levels (of 255) on average on smooth renders with sharp colour edges (at most 12)
and by 2 on average on pixel noise with 4:2:0 chroma (at most 23). Storing the resized image as a quality-90 JPEG,
as preprocessing does, changes it more than that (1.2 and 5 on average, at most 35-37). Everything geometric
(intrinsics, correspondences) is the same.
"""

import io
import json

import numpy as np
import pytest
from PIL import Image

import concerto3d.io.sens as sens
from concerto3d.data.correspondence import scale_intrinsics_to_size
from concerto3d.data.preprocess import preprocess
from concerto3d.data.scene_builder import resize_color
from concerto3d.io.images import decode_color_bytes, decode_color_bytes_reduced, encode_color_jpeg
from concerto3d.io.sens_frames import reduced_intrinsics
from rgbd_scenes import room_poses, write_scannet_scene

FULL = (968, 1296)
TARGET = (240, 320)


def _jpeg(rgb: np.ndarray, quality: int, subsampling: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return buffer.getvalue()


def _smooth(size=FULL) -> np.ndarray:
    """Gradients and a sharp-edged coloured rectangle, like a rendered room."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], axis=-1).astype(np.uint8)
    rgb[h // 3:2 * h // 3, w // 3:2 * w // 3] = (200, 30, 60)
    return rgb


def _noise(size=FULL) -> np.ndarray:
    """Independent pixels: the worst case for any reduction."""
    return np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)


def _resized_both_ways(data: bytes, size) -> tuple[np.ndarray, np.ndarray, int]:
    reference = resize_color(decode_color_bytes(data), size).astype(int)
    reduced, scale = decode_color_bytes_reduced(data, size)
    return reference, resize_color(reduced, size).astype(int), scale


@pytest.mark.parametrize("image, subsampling, mean_bound, max_bound", [
    (_smooth, 0, 0.5, 4), (_smooth, 2, 0.5, 16), (_noise, 0, 0.5, 4), (_noise, 2, 3.0, 32)])
def test_reduced_decode_then_resize_is_close_to_full_decode_then_resize(image, subsampling, mean_bound, max_bound):
    data = _jpeg(image(), 90, subsampling)
    reduced, scale = decode_color_bytes_reduced(data, TARGET)
    assert scale == 4 and reduced.shape == (242, 324, 3)
    reference, fast, _ = _resized_both_ways(data, TARGET)
    diff = np.abs(reference - fast)
    assert diff.mean() <= mean_bound and diff.max() <= max_bound, (diff.mean(), diff.max())
    # the difference stays below what storing the image as a quality-90 JPEG already does to it
    stored = decode_color_bytes(encode_color_jpeg(reference.astype(np.uint8), 90)).astype(int)
    assert diff.mean() < np.abs(stored - reference).mean()


def test_the_bounds_can_fail_a_misplaced_reduction():
    """A reduction off by one reduced pixel (the kind of bug a wrong scale or origin gives) is far outside them."""
    data = _jpeg(_smooth(), 90, 0)
    reference, fast, _ = _resized_both_ways(data, TARGET)
    shifted = np.abs(reference[:, 1:] - fast[:, :-1])
    assert shifted.max() > 16


def test_no_reduction_gives_the_full_decode_exactly():
    small = _jpeg(_smooth((100, 120)), 90, 2)  # less than twice the target: decoded in full
    png = io.BytesIO()
    Image.fromarray(_smooth()).save(png, format="PNG")
    for data, size in ((small, (60, 80)), (png.getvalue(), TARGET)):
        rgb, scale = decode_color_bytes_reduced(data, size)
        assert scale == 1 and np.array_equal(rgb, decode_color_bytes(data))
    with pytest.raises(ValueError, match="does not decode"):
        decode_color_bytes_reduced(b"not an image", TARGET)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_reduced_intrinsics_then_resize_equal_resizing_from_full_size(scale):
    K = np.array([[1170.2, 0.3, 647.7], [0, 1170.2, 483.8], [0, 0, 1]])
    reduced_size = (FULL[0] // scale, FULL[1] // scale)
    two_steps = scale_intrinsics_to_size(reduced_intrinsics(K, scale), reduced_size, TARGET)
    assert np.allclose(two_steps, scale_intrinsics_to_size(K, FULL, TARGET), rtol=0, atol=1e-10)


def test_preprocess_with_reduced_decode_matches_the_full_decode(tmp_path, monkeypatch):
    poses = room_poses(4)
    write_scannet_scene(tmp_path / "scans", "scene0000_00", poses, color_size=(192, 256), depth_size=(48, 64))
    scales = []
    real = sens.decode_color_bytes_reduced

    def spy(data, min_size):
        rgb, scale = real(data, min_size)
        scales.append(scale)
        return rgb, scale

    monkeypatch.setattr(sens, "decode_color_bytes_reduced", spy)
    common = dict(frame_skip=1, voxel=0.05, image_size=(48, 64), patch_size=16, progress=False)
    preprocess(tmp_path / "scans", tmp_path / "exact", reduced_decode=False, **common)
    assert scales == []
    preprocess(tmp_path / "scans", tmp_path / "fast", **common)
    assert scales == [4] * 4  # the fast path was taken, at 1/4
    exact, fast = tmp_path / "exact" / "scene0000_00", tmp_path / "fast" / "scene0000_00"
    for name in ("coord.npy", "color.npy", "normal.npy", "segment20.npy", "frame_ids.npy", "poses.npy",
                 "correspondences.npy"):
        assert np.array_equal(np.load(exact / name), np.load(fast / name)), name
    assert np.allclose(np.load(exact / "intrinsics.npy"), np.load(fast / "intrinsics.npy"), rtol=0, atol=1e-4)
    for k in range(4):
        a, b = (np.asarray(Image.open(d / "images" / f"{k:06d}.jpg")).astype(int) for d in (exact, fast))
        diff = np.abs(a - b)
        assert diff.mean() <= 1.0 and diff.max() <= 32, (k, diff.mean(), diff.max())
    assert json.loads((fast / "meta.json").read_text())["options"]["reduced_decode"] is True
    assert json.loads((exact / "meta.json").read_text())["options"]["reduced_decode"] is False

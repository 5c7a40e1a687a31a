"""The .sens writer and streaming reader: round trip, streaming, invalid poses."""

import struct
import tracemalloc

import numpy as np
import pytest

from concerto3d.io.frames import FrameSkip, RGBDFrame
from concerto3d.io.sens import SensHeader, SensReader, SensWriter
from concerto3d.io.sens_frames import SensFrameSource

KC = np.array([[40.0, 0, 31.5], [0, 41.0, 23.5], [0, 0, 1]])
KD = np.array([[20.0, 0, 15.5], [0, 20.5, 11.5], [0, 0, 1]])
FIELDS = dict(intrinsic_color=KC, intrinsic_depth=KD, color_width=64, color_height=48, depth_width=32,
              depth_height=24)


def smooth_color(seed, h=48, w=64):
    """A smooth image (JPEG keeps it within a few levels)."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 3 + seed, yy * 4 + 2 * seed, (xx + yy) * 2 + 3 * seed], axis=-1)
    return (rgb % 256).astype(np.uint8)


def pose(i):
    c, s = np.cos(0.1 * i), np.sin(0.1 * i)
    p = np.eye(4)
    p[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    p[:3, 3] = [0.5 * i, -0.25, 1.5]
    return p


def write_sens(path, n, bad_pose=(), rng=None):
    rng = rng or np.random.default_rng(0)
    depths = []
    with SensWriter(path, FIELDS) as writer:
        for i in range(n):
            depth = rng.integers(0, 5000, size=(24, 32)).astype(np.uint16)
            p = np.full((4, 4), -np.inf) if i in bad_pose else pose(i)
            writer.add_frame(p, smooth_color(i), depth, timestamp=1000 * i)
            depths.append(depth)
    return depths


def test_round_trip_header_poses_color_depth(tmp_path):
    path = tmp_path / "scene.sens"
    depths = write_sens(path, 3)
    with SensReader(path) as reader:
        h = reader.header
        assert isinstance(h, SensHeader)
        assert (h.num_frames, h.color_size, h.depth_size, h.depth_shift) == (3, (64, 48), (32, 24), 1000.0)
        assert (h.color_compression, h.depth_compression, h.version) == (2, 1, 4)
        np.testing.assert_allclose(h.intrinsic_color[:3, :3], KC, rtol=1e-6)
        np.testing.assert_allclose(h.intrinsic_depth[:3, :3], KD, rtol=1e-6)
        raws = list(reader.iter_raw())
        assert [r.index for r in raws] == [0, 1, 2]
        for i, raw in enumerate(raws):
            np.testing.assert_allclose(raw.camera_to_world, pose(i), atol=1e-6)
            assert raw.timestamp_color == raw.timestamp_depth == 1000 * i
            np.testing.assert_array_equal(reader.decode_depth(raw), depths[i])
            color = reader.decode_color(raw).astype(int)
            assert color.shape == (48, 64, 3)
            assert np.abs(color - smooth_color(i)).mean() < 3.0


def test_frame_source_gives_metres_and_intrinsics(tmp_path):
    path = tmp_path / "scene0000_00.sens"
    depths = write_sens(path, 4)
    source = SensFrameSource(path)
    assert source.name == "scene0000_00" and len(source) == 4
    frames = list(source.iter_frames(step=2))
    assert [f.index for f in frames] == [0, 2]
    f = frames[1]
    assert isinstance(f, RGBDFrame)
    assert f.depth.dtype == np.float32 and f.depth.shape == (24, 32)
    np.testing.assert_allclose(f.depth, depths[2] / 1000.0, rtol=1e-6)
    np.testing.assert_allclose(f.intrinsic_color, KC, rtol=1e-6)
    np.testing.assert_allclose(f.intrinsic_depth, KD, rtol=1e-6)
    np.testing.assert_allclose(f.camera_to_world, pose(2), atol=1e-6)


def test_invalid_poses_are_skipped_and_counted(tmp_path):
    path = tmp_path / "s.sens"
    write_sens(path, 5, bad_pose={1, 3})
    source = SensFrameSource(path)
    items = list(source.iter_frames())
    assert [type(x).__name__ for x in items] == ["RGBDFrame", "FrameSkip", "RGBDFrame", "FrameSkip", "RGBDFrame"]
    assert all(x.reason == "invalid pose" for x in items if isinstance(x, FrameSkip))
    assert source.num_skipped == 2


def test_reader_streams_one_frame_at_a_time(tmp_path):
    """200 frames: the file position advances by one frame per item, and memory stays far below the file size."""
    path = tmp_path / "long.sens"
    rng = np.random.default_rng(1)
    with SensWriter(path, FIELDS) as writer:
        for i in range(200):
            noise = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)  # incompressible-ish JPEG
            writer.add_frame(pose(i), noise, rng.integers(0, 60000, size=(24, 32)).astype(np.uint16))
    file_size = path.stat().st_size
    with SensReader(path) as reader:
        positions = []
        gen = reader.iter_raw()
        first = next(gen)
        positions.append(reader._file.tell())
        second = next(gen)
        positions.append(reader._file.tell())
        assert (first.index, second.index) == (0, 1)
        assert positions[0] < positions[1] < file_size / 50  # read only what the two frames needed
        gen.close()
    tracemalloc.start()
    with SensReader(path) as reader:
        count = sum(1 for raw in reader.iter_raw() if reader.decode_depth(raw) is not None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 200
    assert peak < file_size / 10, (peak, file_size)


def test_writer_checks_shapes_and_patches_frame_count(tmp_path):
    path = tmp_path / "s.sens"
    with SensWriter(path, FIELDS) as writer:
        with pytest.raises(ValueError, match="color"):
            writer.add_frame(pose(0), np.zeros((10, 10, 3), np.uint8), np.zeros((24, 32), np.uint16))
        with pytest.raises(ValueError, match="depth"):
            writer.add_frame(pose(0), smooth_color(0), np.zeros((24, 32), np.float32))
        writer.add_frame(pose(0), smooth_color(0), np.zeros((24, 32), np.uint16))
    with SensReader(path) as reader:
        assert reader.header.num_frames == 1
    with pytest.raises(ValueError, match="unknown"):
        SensWriter(tmp_path / "x.sens", dict(FIELDS, bogus=1))


def test_num_frames_field_is_at_the_documented_offset(tmp_path):
    """Layout check against data/README.md: uint32 version, uint64 name length + name, 64 float32, 2 int32,
    4 uint32, float32 depth_shift, then uint64 num_frames."""
    path = tmp_path / "s.sens"
    write_sens(path, 2)
    data = path.read_bytes()
    version, name_len = struct.unpack_from("<IQ", data, 0)
    offset = 12 + name_len + 64 * 4 + 2 * 4 + 4 * 4
    assert version == 4
    assert struct.unpack_from("<f", data, offset)[0] == 1000.0
    assert struct.unpack_from("<Q", data, offset + 4)[0] == 2

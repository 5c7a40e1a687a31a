"""Bad input at the io boundary: one-line FormatError/InputError naming the file, or a FrameSkip with a reason;
never a raw struct/zlib/PIL traceback."""

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from concerto3d.errors import FormatError, InputError
from concerto3d.io.frames import FrameSkip, RGBDFrame
from concerto3d.io.images import read_color, read_depth, write_color_jpeg
from concerto3d.io.sens import SensReader, SensWriter
from concerto3d.io.sens_frames import SensFrameSource

FIELDS = dict(intrinsic_color=np.diag([30.0, 30.0, 1.0]), intrinsic_depth=np.diag([15.0, 15.0, 1.0]),
              color_width=16, color_height=12, depth_width=8, depth_height=6)


def one_line(err, name):
    text = str(err.value)
    assert name in text, text
    assert "\n" not in text
    return text


def good_sens(path, n=3):
    with SensWriter(path, FIELDS) as w:
        for i in range(n):
            w.add_frame(np.eye(4), np.full((12, 16, 3), 40 * i, np.uint8), np.full((6, 8), i, np.uint16))
    return path.read_bytes()


def frame_offsets(path):
    """Byte offset of each frame's pose (after the header), from an independent walk over the file."""
    data = path.read_bytes()
    name_len = int.from_bytes(data[4:12], "little")
    pos = 12 + name_len + 64 * 4 + 8 + 16 + 4 + 8
    offsets = []
    while pos < len(data):
        offsets.append(pos)
        color_size = int.from_bytes(data[pos + 80:pos + 88], "little")
        depth_size = int.from_bytes(data[pos + 88:pos + 96], "little")
        pos += 96 + color_size + depth_size
    return offsets


def test_missing_and_empty_sens(tmp_path):
    with pytest.raises(InputError) as err:
        SensReader(tmp_path / "none.sens")
    one_line(err, "none.sens")
    (tmp_path / "empty.sens").write_bytes(b"")
    with pytest.raises(FormatError) as err:
        SensFrameSource(tmp_path / "empty.sens")
    one_line(err, "empty.sens")


def test_truncated_header_and_wrong_version(tmp_path):
    data = good_sens(tmp_path / "good.sens")
    (tmp_path / "head.sens").write_bytes(data[:100])
    with pytest.raises(FormatError, match="truncated") as err:
        SensReader(tmp_path / "head.sens")
    one_line(err, "head.sens")
    (tmp_path / "v3.sens").write_bytes(b"\x03" + data[1:])
    with pytest.raises(FormatError, match="version") as err:
        SensReader(tmp_path / "v3.sens")
    one_line(err, "v3.sens")


def test_truncated_mid_frame_keeps_the_good_frames_before_the_damage(tmp_path, caplog):
    """A file cut inside a frame (a copy stopped, a disk filled) keeps every frame before the damage, with a logged
    warning, instead of losing the scene (issue 27, item 9)."""
    path = tmp_path / "cut.sens"
    good_sens(path, 3)
    offsets = frame_offsets(path)
    whole = path.read_bytes()
    for cut, kept in ((offsets[2] + 120, 2), (len(whole) - 1, 2), (offsets[1] + 10, 1)):
        path.write_bytes(whole[:cut])  # inside frame 2's colour, its last byte, frame 1's header
        source = SensFrameSource(path)
        with caplog.at_level("WARNING"):
            frames = list(source.iter_frames())
        assert [f.index for f in frames] == list(range(kept)) and all(isinstance(f, RGBDFrame) for f in frames)
        assert source.truncated_at == kept and f"frame {kept}" in caplog.text and "cut.sens" in caplog.text
    path.write_bytes(whole)
    source = SensFrameSource(path)
    assert len(list(source.iter_frames(step=2))) == 2 and source.truncated_at is None


def test_corrupt_jpeg_and_zlib_payloads(tmp_path):
    path = tmp_path / "bad.sens"
    good_sens(path, 3)
    data = bytearray(path.read_bytes())
    offsets = frame_offsets(path)
    start1 = offsets[1] + 96  # frame 1's JPEG: clobber past its SOI marker
    data[start1 + 20:start1 + 60] = b"\x00" * 40
    data[start1:start1 + 4] = b"nope"
    color2 = int.from_bytes(data[offsets[2] + 80:offsets[2] + 88], "little")
    start2 = offsets[2] + 96 + color2  # frame 2's zlib stream
    data[start2:start2 + 2] = b"\x00\x00"
    path.write_bytes(bytes(data))
    source = SensFrameSource(path)
    items = list(source.iter_frames())
    assert isinstance(items[0], RGBDFrame)
    assert (items[1].reason, items[2].reason) == ("unreadable color", "unreadable depth")
    assert source.num_skipped == 2
    with SensReader(path) as reader:
        raws = list(reader.iter_raw())
        with pytest.raises(FormatError, match="frame 1") as err:
            reader.decode_color(raws[1])
        one_line(err, "bad.sens")
        with pytest.raises(FormatError, match="zlib") as err:
            reader.decode_depth(raws[2])
        one_line(err, "bad.sens")
        raws[0].depth_bytes = zlib.compress(b"\x00" * 10)  # decompresses, wrong size
        with pytest.raises(FormatError, match="expected 96"):
            reader.decode_depth(raws[0])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10_000), flip=st.integers(min_value=0, max_value=10_000),
       byte=st.integers(min_value=0, max_value=255))
def test_any_damage_gives_frames_skips_or_format_error(tmp_path, cut, flip, byte):
    """Truncate the file anywhere and/or change any byte: the reader yields frames or skips or raises
    FormatError, nothing else (no struct.error, zlib.error, MemoryError, PIL errors)."""
    data = bytearray(good_sens(tmp_path / "g.sens"))
    data[flip % len(data)] = byte
    path = tmp_path / "fuzz.sens"
    path.write_bytes(bytes(data[:len(data) - cut % len(data)]))
    try:
        items = list(SensFrameSource(path).iter_frames())
    except FormatError as err:
        assert "fuzz.sens" in str(err) and "\n" not in str(err)
    else:
        assert all(isinstance(x, (RGBDFrame, FrameSkip)) for x in items)


# -- images -------------------------------------------------------------------------------------------------
def test_image_errors(tmp_path):
    Image.fromarray(np.full((4, 5), 9, np.uint8)).save(tmp_path / "d8.png")
    with pytest.raises(FormatError, match="16-bit") as err:
        read_depth(tmp_path / "d8.png", 1000)
    one_line(err, "d8.png")
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "rgb_as_depth.png")
    with pytest.raises(FormatError, match="16-bit"):
        read_depth(tmp_path / "rgb_as_depth.png", 1000)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(FormatError, match="empty") as err:
        read_color(tmp_path / "empty.jpg")
    one_line(err, "empty.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"definitely not an image")
    with pytest.raises(FormatError) as err:
        read_color(tmp_path / "junk.jpg")
    one_line(err, "junk.jpg")
    write_color_jpeg(tmp_path / "cut.jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "cut.jpg").read_bytes()[:300])
    with pytest.raises(FormatError) as err:
        read_color(tmp_path / "cut.jpg")
    one_line(err, "cut.jpg")
    with pytest.raises(InputError, match="not found"):
        read_color(tmp_path / "missing.png")
    Image.fromarray(np.ones((4, 5), np.uint16) * 7).save(tmp_path / "d16.png")
    with pytest.raises(InputError, match="depth scale"):
        read_depth(tmp_path / "d16.png", -1)
    np.testing.assert_allclose(read_depth(tmp_path / "d16.png", 1000), 0.007)


def test_frames_whose_intrinsics_do_not_fit_their_images_are_named():
    """Issue 27, item 10: a principal point at 0 or outside the image, and colour and depth of different aspects,
    are found (preprocess skips such frames by reason) instead of giving silently wrong correspondences."""
    import numpy as np

    from concerto3d.io.frames import RGBDFrame, geometry_problem

    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])

    def frame(color_hw=(480, 640), depth_hw=(480, 640), kc=K, kd=K):
        return RGBDFrame(0, np.zeros((*color_hw, 3), np.uint8), np.ones(depth_hw, np.float32), np.eye(4), kc, kd)

    assert geometry_problem(frame()) is None
    assert geometry_problem(frame(color_hw=(968, 1296), kc=K * [[2.025], [2.0167], [1]])) is None  # ScanNet's sizes
    at_zero = K.copy()
    at_zero[0, 2] = 0.0
    assert "colour principal point (0.0, 240.0)" in geometry_problem(frame(kc=at_zero))
    assert "depth principal point" in geometry_problem(frame(depth_hw=(240, 320)))  # intrinsics of another size
    wide = K.copy()
    wide[:2, 2] = (640, 240)
    assert "different aspects" in geometry_problem(frame(color_hw=(480, 1280), kc=wide))

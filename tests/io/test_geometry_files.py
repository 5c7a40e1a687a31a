"""Matrices, intrinsics (and their per-axis scaling), poses: matrix and TUM."""

import numpy as np
import pytest

from concerto3d.errors import FormatError
from concerto3d.io.geometry_files import (read_intrinsics, read_matrix, read_pose, scale_intrinsics, tum_to_matrix,
                                          write_matrix)


def test_write_read_matrix_exact(tmp_path):
    M = np.random.default_rng(0).normal(size=(4, 4))
    M[3] = [-np.inf, 0, 0, 1]
    write_matrix(tmp_path / "m.txt", M)
    back = read_matrix(tmp_path / "m.txt", (4, 4))
    np.testing.assert_array_equal(back, M)
    assert len((tmp_path / "m.txt").read_text().splitlines()) == 4


@pytest.mark.parametrize("text", ["500 0 320\n0 510 240\n0 0 1\n",
                                  "500 0 320 0\n0 510 240 0\n0 0 1 0\n0 0 0 1\n",
                                  "500 510 320 240\n"])
def test_intrinsics_layouts(tmp_path, text):
    (tmp_path / "k.txt").write_text(text)
    np.testing.assert_array_equal(read_intrinsics(tmp_path / "k.txt"),
                                  [[500, 0, 320], [0, 510, 240], [0, 0, 1]])


@pytest.mark.parametrize("text", ["1 2 3 4 5\n", "1 0 0 0 1 0\n", "\n", "0 0 320\n0 510 240\n0 0 1\n"])
def test_bad_intrinsics(tmp_path, text):
    (tmp_path / "k.txt").write_text(text)
    with pytest.raises(FormatError, match="k.txt"):
        read_intrinsics(tmp_path / "k.txt")


def test_scale_intrinsics_per_axis():
    K = np.array([[1170.0, 0, 648], [0, 1160.0, 484], [0, 0, 1]])
    # 1296x968 colour -> 640x480: x and y ratios differ
    sx, sy = 640 / 1296, 480 / 968
    S = scale_intrinsics(K, sx, sy)
    np.testing.assert_allclose(S, [[1170 * sx, 0, 648 * sx], [0, 1160 * sy, 484 * sy], [0, 0, 1]])
    assert S[0, 0] / S[1, 1] != pytest.approx(K[0, 0] / K[1, 1])
    np.testing.assert_array_equal(K[0], [1170, 0, 648])  # input untouched
    with pytest.raises(ValueError):
        scale_intrinsics(K, 0, 1)


def test_tum_quaternion_against_hand_made_rotation():
    # 90 degrees about z: q = (0, 0, sin 45, cos 45); x -> y, y -> -x
    s = np.sqrt(0.5)
    M = tum_to_matrix([1.0, 2.0, 3.0, 0.0, 0.0, s, s])
    expected = np.array([[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]], dtype=float)
    np.testing.assert_allclose(M, expected, atol=1e-12)
    # 120 degrees about (1,1,1)/sqrt3 permutes axes x -> y -> z; q = (0.5, 0.5, 0.5, 0.5); a timestamp leads
    M = tum_to_matrix([1305031102.1, 0, 0, 0, 0.5, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(M[:3, :3], [[0, 0, 1], [1, 0, 0], [0, 1, 0]], atol=1e-12)
    # an unnormalised quaternion is normalised
    np.testing.assert_allclose(tum_to_matrix([0, 0, 0, 0, 0, 2 * s, 2 * s])[:3, :3], expected[:3, :3], atol=1e-12)


def test_read_pose_formats(tmp_path):
    (tmp_path / "p.txt").write_text("0.1 0.2 0.3 0 0 0 1")
    np.testing.assert_allclose(read_pose(tmp_path / "p.txt", "tum")[:3, 3], [0.1, 0.2, 0.3])
    (tmp_path / "q.txt").write_text("-inf -inf -inf -inf\n" * 4)
    assert not np.isfinite(read_pose(tmp_path / "q.txt")).any()
    (tmp_path / "r.txt").write_text("1 2 3")
    with pytest.raises(FormatError, match="r.txt"):
        read_pose(tmp_path / "r.txt", "tum")
    with pytest.raises(FormatError, match="16 numbers"):
        read_pose(tmp_path / "r.txt", "matrix")

"""PLY meshes, labels and point clouds."""

import numpy as np
import pytest

from concerto3d.errors import FormatError, InputError
from concerto3d.io.ply import (Mesh, read_mesh_ply, read_point_cloud, read_vertex_labels_ply, write_labels_ply,
                               write_mesh_ply)


def tiny_mesh():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.5]], dtype=np.float32)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
    faces = np.array([[0, 1, 2], [0, 1, 3], [1, 2, 3]], dtype=np.int32)
    return Mesh(vertices, colors, faces)


def test_mesh_round_trip_and_scannet_header(tmp_path):
    mesh = tiny_mesh()
    path = tmp_path / "scene_vh_clean_2.ply"
    write_mesh_ply(path, mesh)
    header = path.read_bytes().split(b"end_header")[0].decode()
    assert "format binary_little_endian 1.0" in header
    for line in ("property float x", "property uchar red", "property uchar alpha",
                 "property list uchar int vertex_indices", "element vertex 4", "element face 3"):
        assert line in header
    back = read_mesh_ply(path)
    np.testing.assert_array_equal(back.vertices, mesh.vertices)
    np.testing.assert_array_equal(back.colors, mesh.colors)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    assert back.faces.dtype == np.int32 and back.faces.flags.c_contiguous and back.colors.dtype == np.uint8


def test_labels_round_trip(tmp_path):
    mesh = tiny_mesh()
    path = tmp_path / "x.labels.ply"
    write_labels_ply(path, mesh, np.array([1, 2, 0, 40]))
    labels = read_vertex_labels_ply(path)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [1, 2, 0, 40])
    assert "property ushort label" in path.read_bytes().split(b"end_header")[0].decode()
    np.testing.assert_array_equal(read_mesh_ply(path).faces, mesh.faces)
    with pytest.raises(ValueError, match="nyu40"):
        write_labels_ply(path, mesh, np.array([1, 2, 3]))


@pytest.mark.parametrize("bad", [4, -1, 2**31 - 1])
def test_face_indices_outside_the_vertices_name_the_file(tmp_path, bad):
    path = tmp_path / "bad.ply"
    write_mesh_ply(path, tiny_mesh())
    data = bytearray(path.read_bytes())
    last_face = len(data) - 12  # the last triangle's three int32 indices end the file
    data[last_face:last_face + 4] = np.int32(bad).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="face indices .* outside 0..3"):
        read_mesh_ply(path)


def test_mesh_checks_its_arrays():
    with pytest.raises(ValueError, match="faces"):
        Mesh(np.zeros((2, 3)), np.zeros((2, 3), np.uint8), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="colors"):
        Mesh(np.zeros((2, 3)), np.zeros((2, 3), np.float32), np.zeros((0, 3)))


def test_point_cloud_ply_with_and_without_colours_and_normals(tmp_path):
    from plyfile import PlyData, PlyElement

    xyz = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    plain = np.array([tuple(p) for p in xyz], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(plain, "vertex")], text=True).write(str(tmp_path / "plain.ply"))
    got, colors, normals = read_point_cloud(tmp_path / "plain.ply")
    np.testing.assert_allclose(got, xyz, rtol=1e-6)
    assert colors is None and normals is None

    full = np.array([tuple(p) + (1, 2, 3, 0.0, 0.0, 1.0) for p in xyz],
                    dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                           ("nx", "f4"), ("ny", "f4"), ("nz", "f4")])
    PlyData([PlyElement.describe(full, "vertex")]).write(str(tmp_path / "full.ply"))
    got, colors, normals = read_point_cloud(tmp_path / "full.ply")
    np.testing.assert_array_equal(colors, np.tile([1, 2, 3], (5, 1)))
    np.testing.assert_array_equal(normals, np.tile([0, 0, 1], (5, 1)))


def test_point_cloud_xyz_text(tmp_path):
    (tmp_path / "a.xyz").write_text("0 0 0\n1 2 3\n")
    xyz, colors, normals = read_point_cloud(tmp_path / "a.xyz")
    np.testing.assert_array_equal(xyz, [[0, 0, 0], [1, 2, 3]])
    assert colors is None and normals is None
    (tmp_path / "b.xyz").write_text("0 0 0 255 128 0\n1 2 3 0 0 10\n")
    _, colors, _ = read_point_cloud(tmp_path / "b.xyz")
    np.testing.assert_array_equal(colors, [[255, 128, 0], [0, 0, 10]])
    (tmp_path / "c.xyzn").write_text("0 0 0 0 0 1\n")
    _, colors, normals = read_point_cloud(tmp_path / "c.xyzn")
    assert colors is None and normals.tolist() == [[0, 0, 1]]


def test_point_cloud_pcd_through_open3d(tmp_path):
    pytest.importorskip("open3d")
    (tmp_path / "a.pcd").write_text(
        "VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\n"
        "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\nDATA ascii\n0 0 0\n1 2 3\n")
    xyz, colors, normals = read_point_cloud(tmp_path / "a.pcd")
    np.testing.assert_allclose(xyz, [[0, 0, 0], [1, 2, 3]])
    assert colors is None and normals is None


@pytest.mark.parametrize("name, content, error", [
    ("empty.ply", b"", FormatError),
    ("junk.ply", b"this is not a ply file\n", FormatError),
    ("short.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\n"
                  b"property float y\nproperty float z\nend_header\n\x00\x00", FormatError),
    ("empty.xyz", b"", FormatError),
    ("ragged.xyz", b"0 0 0\n1 2\n", FormatError),
    ("words.xyz", b"a b c\n", FormatError),
    ("nan.xyz", b"0 nan 0\n", FormatError),
    ("cloud.obj", b"v 0 0 0\n", InputError),
])
def test_bad_point_clouds_name_the_file(tmp_path, name, content, error):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error) as info:
        read_point_cloud(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_labels_ply_without_label_property(tmp_path):
    write_mesh_ply(tmp_path / "m.ply", tiny_mesh())
    with pytest.raises(FormatError, match="label"):
        read_vertex_labels_ply(tmp_path / "m.ply")
    with pytest.raises(InputError, match="not found"):
        read_mesh_ply(tmp_path / "missing.ply")


def test_quads_and_ascii_ply_are_triangulated(tmp_path):
    from plyfile import PlyData, PlyElement

    vertex = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1)],
                      dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    face = np.empty(2, dtype=[("vertex_indices", "O")])
    face["vertex_indices"] = [np.array([0, 1, 2, 3], np.int32), np.array([0, 1, 4], np.int32)]
    for text in (True, False):
        PlyData([PlyElement.describe(vertex, "vertex"), PlyElement.describe(face, "face")],
                text=text).write(str(tmp_path / "q.ply"))
        mesh = read_mesh_ply(tmp_path / "q.ply")
        np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3], [0, 1, 4]])
        assert (mesh.colors == 128).all()

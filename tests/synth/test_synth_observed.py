"""A synthetic scan holds what its frames saw: the depth test of seen_by_depth and DenseMesh.observed."""

import numpy as np

from concerto3d.synth.mesh import DenseMesh, seen_by_depth

K = np.array([[50.0, 0, 20], [0, 50.0, 15], [0, 0, 1]])


def test_seen_by_depth_is_the_correspondence_depth_test():
    pose = np.eye(4)  # camera at the origin looking down +z
    depth = np.full((30, 40), 2000, np.uint16)  # a wall 2 m away
    depth[0:5, 0:5] = 0  # no reading there
    vertices = np.array([[0, 0, 2.0],      # on the wall: seen
                         [0, 0, 2.5],      # behind the wall: hidden
                         [0, 0, -2.0],     # behind the camera
                         [5, 0, 2.0],      # outside the image
                         [-0.78, -0.58, 2.0],  # on the wall where the depth is missing
                         [0.2, 0.1, 2.03]])    # within the 5 cm + 2 % tolerance
    assert seen_by_depth(vertices, pose, K, depth).tolist() == [True, False, False, False, False, True]


def test_observed_keeps_the_triangles_of_seen_vertices_and_renumbers():
    v = np.arange(15, dtype=np.float32).reshape(5, 3)
    mesh = DenseMesh(vertices=v, normals=v, colors=np.zeros((5, 3), np.uint8),
                     faces=np.array([[0, 1, 2], [2, 3, 4]], np.int32), object_index=np.arange(5, dtype=np.int32),
                     segment=np.array([7, 7, 9, 4, 4], np.int32))
    part = mesh.observed(np.array([True, True, True, False, True]))
    assert part.faces.tolist() == [[0, 1, 2]] and part.vertices.tolist() == v[:3].tolist()
    assert part.object_index.tolist() == [0, 1, 2] and part.segment.tolist() == [0, 0, 1]  # dense segment ids
    assert len(mesh.observed(np.ones(5, bool)).vertices) == 5

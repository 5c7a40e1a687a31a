"""Depth images rendered from a scene's mesh, for posed colour frames that have no depth of their own.

ScanNet-style folders sometimes hold a reconstruction and colour frames but no depth (a mesh made elsewhere, the
depth not kept); Concerto ray-casts the mesh for such frames. :class:`MeshDepth` does the same with Open3D's ray
caster: one ray per pixel centre, the depth along the optical axis of the first triangle hit, 0 where none is. The
correspondences then go through the same depth test as with sensor depth.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MeshDepth"]


class MeshDepth:
    """``MeshDepth(vertices, faces)(camera_to_world, K, (H, W))`` -> (H, W) float32 depth in metres, 0 = no hit.

    Args:
        vertices: (V, 3) float, metres (the frames' world).
        faces: (F, 3) int vertex indices.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        import open3d as o3d

        self._o3d = o3d
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
                                  o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)))

    def __call__(self, camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        K = np.asarray(K, dtype=np.float64)
        # pixel (u, v) is centred at image coordinate (u, v), as the correspondences' projection has it
        uu, vv = np.meshgrid((np.arange(w) - K[0, 2]) / K[0, 0], (np.arange(h) - K[1, 2]) / K[1, 1])
        camera = np.stack([uu, vv, np.ones_like(uu)], axis=-1).reshape(-1, 3)  # z = 1: t_hit is the depth
        pose = np.asarray(camera_to_world, dtype=np.float64)
        directions = camera @ pose[:3, :3].T
        origins = np.broadcast_to(pose[:3, 3], directions.shape)
        rays = np.concatenate([origins, directions], axis=1).astype(np.float32)
        t = self._scene.cast_rays(self._o3d.core.Tensor(rays))["t_hit"].numpy()
        return np.where(np.isfinite(t), t, 0.0).astype(np.float32).reshape(h, w)

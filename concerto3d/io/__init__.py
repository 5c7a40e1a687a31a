"""concerto3d.io: every on-disk format, read and write (no torch).

- :mod:`.frames`: ``RGBDFrame``, ``FrameSkip``, the ``FrameSource`` protocol.
- :mod:`.sens`: ScanNet ``.sens`` streams (``SensReader``, ``SensWriter``, ``SensFrameSource``).
- :mod:`.images`: colour JPEG/PNG and 16-bit depth PNG.
- :mod:`.geometry_files`: matrices, intrinsics, poses (4x4 or TUM).
- :mod:`.ply`: meshes, vertex labels, point clouds.
- :mod:`.scannet`: segments, aggregation, scene meta and scene folders.
- :mod:`.scannet_export`: ScanNet's exported frames as a FrameSource (``ScanNetExportSource``).
- :mod:`.label_table`: ScanNet's label table (``LabelTable``).
- :mod:`.split_lists`: split lists, one scene name a line.
- :mod:`.rgbd_folder`: generic RGB-D folders (7-Scenes, TUM, ...).
"""

from concerto3d.io.frames import FrameSkip, FrameSource, RGBDFrame, is_valid_pose
from concerto3d.io.geometry_files import (read_intrinsics, read_matrix, read_pose, scale_intrinsics, tum_to_matrix,
                                          write_matrix)
from concerto3d.io.images import read_color, read_depth, write_color_jpeg, write_depth_png
from concerto3d.io.rgbd_folder import RGBDFolderSource, looks_like_rgbd_folder
from concerto3d.io.ply import (Mesh, read_mesh_ply, read_point_cloud, read_vertex_labels_ply, write_labels_ply,
                               write_mesh_ply)
from concerto3d.io.label_table import LabelTable, read_label_table, write_label_table
from concerto3d.io.scannet import (ScanNetScene, SegGroup, find_scannet_scenes, instance_ids, read_aggregation_json,
                                   read_segs_json, write_aggregation_json, write_segs_json)
from concerto3d.io.scannet_export import ScanNetExportSource
from concerto3d.io.split_lists import read_split, write_split
from concerto3d.io.sens import SensHeader, SensRawFrame, SensReader, SensWriter
from concerto3d.io.sens_frames import SensFrameSource

__all__ = [
    "FrameSkip", "FrameSource", "RGBDFrame", "is_valid_pose",
    "read_intrinsics", "read_matrix", "read_pose", "scale_intrinsics", "tum_to_matrix", "write_matrix",
    "read_color", "read_depth", "write_color_jpeg", "write_depth_png",
    "Mesh", "read_mesh_ply", "read_point_cloud", "read_vertex_labels_ply", "write_labels_ply", "write_mesh_ply",
    "LabelTable", "ScanNetExportSource", "ScanNetScene", "SegGroup", "find_scannet_scenes", "instance_ids",
    "read_aggregation_json", "read_label_table", "read_segs_json", "read_split", "write_aggregation_json",
    "write_label_table", "write_segs_json", "write_split",
    "SensFrameSource", "SensHeader", "SensRawFrame", "SensReader", "SensWriter",
    "RGBDFolderSource", "looks_like_rgbd_folder",
]

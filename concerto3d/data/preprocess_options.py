"""What ``concerto3d preprocess`` does to every scene: :class:`PreprocessOptions`, the one source of its defaults.

The command line (``data/command.py``), :func:`concerto3d.data.preprocess.preprocess` and
:func:`concerto3d.data.scene_builder.process_scene` all take their defaults from here; the image size and patch
side come from :mod:`concerto3d.data.scene`, shared with the image encoder, and the depth-test tolerances from
:mod:`concerto3d.data.correspondence`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from concerto3d.data.correspondence import DEFAULT_ABS_TOL, DEFAULT_REL_TOL
from concerto3d.data.scene import DEFAULT_IMAGE_SIZE, DEFAULT_PATCH_SIZE
from concerto3d.errors import InputError

__all__ = ["PreprocessOptions"]


@dataclass(frozen=True)
class PreprocessOptions:
    """What ``preprocess`` does to every scene (all of it recorded in each scene's ``meta.json``).

    Attributes:
        frame_skip: keep frames whose index is a multiple of this.
        voxel: voxel edge in metres for mesh down-sampling and fusion.
        image_size: (height, width) of the written images.
        patch_size: the image encoder's patch side; must divide both image sides.
        max_frames: keep at most this many frames per scene (the first ones), None = all.
        abs_tol, rel_tol: depth test ``|z_point - z_depth| <= abs_tol + rel_tol * z_depth``.
        jpeg_quality: quality of the written images.
        fusion_max_depth: fusion ignores depth readings beyond this, metres.
        normal_radius: neighbourhood radius for estimated normals, in voxels.
        up: which way is up in the input world: ``auto`` (estimate it for RGB-D folders, keep ScanNet's z),
            or an axis (``z``, ``-y``, ...); the scene is stored rotated so that up is +z (``data/up_axis.py``).
        reduced_decode: decode JPEG colour of ``.sens`` files at 1/2, 1/4 or 1/8 scale when the image is that much
            larger than ``image_size`` (libjpeg's DCT scaling, about 5x cheaper than a full decode at ScanNet's
            1296x968 -> 320x240), then resize; False: full decode, then resize. The written images differ by at most
            a few levels of 255 (:func:`concerto3d.io.images.decode_color_bytes_reduced`); used only for scenes
            with a mesh (fusion takes its colours from the frames as decoded in full).
    """

    frame_skip: int = 10
    voxel: float = 0.02
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
    patch_size: int = DEFAULT_PATCH_SIZE
    max_frames: int | None = None
    abs_tol: float = DEFAULT_ABS_TOL
    rel_tol: float = DEFAULT_REL_TOL
    jpeg_quality: int = 90
    fusion_max_depth: float = 8.0
    normal_radius: float = 4.0
    reduced_decode: bool = True
    up: str = "auto"

    def check(self) -> "PreprocessOptions":
        """Raise InputError on an option that cannot work; return self."""
        h, w = self.image_size
        if not (isinstance(self.frame_skip, int) and self.frame_skip >= 1):
            raise InputError(f"frame skip must be an integer >= 1, got {self.frame_skip!r}")
        if not (np.isfinite(self.voxel) and self.voxel > 0):
            raise InputError(f"voxel must be a positive size in metres, got {self.voxel!r}")
        if h <= 0 or w <= 0:
            raise InputError(f"image size must be positive HxW, got {h}x{w}")
        if self.patch_size <= 0 or h % self.patch_size or w % self.patch_size:
            raise InputError(f"patch size must divide the image size {h}x{w}, got {self.patch_size}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"max frames must be >= 1, got {self.max_frames}")
        if self.abs_tol < 0 or self.rel_tol < 0:
            raise InputError(f"depth tolerances must be >= 0, got {self.abs_tol}, {self.rel_tol}")
        from concerto3d.data.up_axis import UP_CHOICES

        if self.up not in UP_CHOICES:
            raise InputError(f"up must be one of {', '.join(UP_CHOICES)}, got {self.up!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise InputError(f"JPEG quality must be in 1..100, got {self.jpeg_quality}")
        return self

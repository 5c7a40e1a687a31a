"""concerto3d: joint 2D-3D self-supervised learning on indoor RGB-D scans."""

__version__ = "0.1.0"

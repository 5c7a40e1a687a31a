"""Headless rendering of coloured point clouds to images.

The main path is Open3D's ``OffscreenRenderer`` (Filament; on machines without a GPU it runs on software Vulkan,
which needs the apt packages ``libvulkan1`` and ``mesa-vulkan-drivers``). When that renderer cannot start, the same
camera is reproduced with a numpy pinhole projection drawn by matplotlib (far points first), and one log line says
so. Every tile of a panel uses one camera, fitted to the cloud's bounding box and looking down at about 45 degrees,
so the tiles line up.

Set the environment variable ``CONCERTO3D_RENDERER=matplotlib`` to skip Open3D.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

_OPEN3D_FAILED: str | None = None  # why Open3D could not start, once we know
_RENDERERS: dict = {}  # (width, height) -> the one live OffscreenRenderer
_ATEXIT = [False]  # whether the clean-up at exit is registered


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking at ``center`` from ``eye``.

    Attributes:
        center: (3,) point looked at.
        eye: (3,) camera position.
        up: (3,) world up direction.
        fov_deg: vertical field of view in degrees.
    """

    center: tuple[float, float, float]
    eye: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fov_deg: float = 50.0


def _camera_axes(camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors forward, right and down (image x and y) of a camera."""
    eye, center, up = (np.asarray(a, dtype=np.float64) for a in (camera.eye, camera.center, camera.up))
    forward = center - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:  # looking straight along `up`
        right = np.cross(forward, [0.0, 1.0, 0.0] if abs(up[1]) < 0.9 else [1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    return forward, right, np.cross(forward, right)


def fit_camera(coord, elevation_deg: float = 45.0, azimuth_deg: float = -60.0, fov_deg: float = 50.0,
               aspect: float = 4 / 3, fill: float = 0.92, up=(0.0, 0.0, 1.0), max_points: int = 20000) -> Camera:
    """A camera that frames the cloud: looking from the given direction, centred on the cloud's image and at the
    distance where the cloud spans ``fill`` of the image in its tighter direction.

    Args:
        coord: (N, 3) float points (z up, as in ScanNet).
        elevation_deg: angle of the line of sight below the horizontal (45 = looking down at 45 degrees).
        azimuth_deg: direction of the camera around the vertical axis, from +x towards +y.
        fov_deg: vertical field of view.
        aspect: image width / height the camera will be used with.
        fill: fraction of the image the cloud should span, in (0, 1].
        max_points: fit on at most this many points (an even subsample).
    Returns:
        :class:`Camera`.
    """
    coord = np.asarray(coord, dtype=np.float64)
    if coord.ndim != 2 or coord.shape[1] != 3 or len(coord) == 0:
        raise ValueError(f"expected coord (N, 3) with N >= 1, got shape {coord.shape}")
    pts = coord[:: max(1, len(coord) // max_points)]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center = (lo + hi) / 2
    el, az = np.radians(elevation_deg), np.radians(azimuth_deg)
    direction = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    up = tuple(float(a) for a in up)
    size = (int(round(aspect * 1000)), 1000)
    focal = (size[1] / 2) / np.tan(np.radians(fov_deg) / 2)
    # start where the bounding sphere fits (every point in front of the camera), then refine
    distance = max(float(np.linalg.norm(hi - lo)) / 2, 1e-3) / np.sin(np.radians(fov_deg) / 2)

    def camera_at(c, d):
        return Camera(tuple(c.tolist()), tuple((c + d * direction).tolist()), up, float(fov_deg))

    for _ in range(4):
        cam = camera_at(center, distance)
        px, depth = project(pts, cam, size)
        if not (depth > 0).all():
            break
        pmin, pmax = px.min(axis=0), px.max(axis=0)
        _, right, down = _camera_axes(cam)
        # re-centre: move the target by the offset of the cloud's image centre, at the target's depth
        offset = (pmin + pmax) / 2 - np.array(size) / 2
        center = center + (offset[0] * right + offset[1] * down) * distance / focal
        spread = max((pmax[0] - pmin[0]) / size[0], (pmax[1] - pmin[1]) / size[1])
        distance = min(distance * 1.5, distance * spread / fill)  # never jump into the cloud
    return camera_at(center, distance)


def project(coord, camera: Camera, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of points through ``camera``.

    Args:
        coord: (N, 3) float points.
        camera: the view.
        size: (width, height) in pixels.
    Returns:
        pixels (N, 2) float (x right, y down) and depth (N,) float (distance along the viewing axis; <= 0 behind).
    """
    coord = np.asarray(coord, dtype=np.float64)
    width, height = size
    eye = np.asarray(camera.eye, dtype=np.float64)
    forward, right, down = _camera_axes(camera)
    rel = coord - eye
    depth = rel @ forward
    focal = (height / 2) / np.tan(np.radians(camera.fov_deg) / 2)
    safe = np.where(depth > 1e-9, depth, np.nan)
    px = np.stack([width / 2 + focal * (rel @ right) / safe, height / 2 + focal * (rel @ down) / safe], axis=1)
    return px, depth


def facing_camera(coord, normal, camera: Camera) -> np.ndarray:
    """Which points face the camera: the "dollhouse" view of a room seen from outside.

    Indoor scans orient normals towards the inside of the room (towards the cameras that saw each surface), so from
    a viewpoint outside the room the ceiling and the near walls show their backs and are hidden, while the floor,
    the furniture and the far walls stay.

    Args:
        coord: (N, 3) float points.
        normal: (N, 3) float normals; rows of zeros (unknown) count as facing.
        camera: the view.
    Returns:
        (N,) bool, True where ``dot(normal, eye - point) >= 0``.
    """
    coord = np.asarray(coord, dtype=np.float64)
    normal = np.asarray(normal, dtype=np.float64)
    if normal.shape != coord.shape:
        raise ValueError(f"expected normals of shape {coord.shape}, got {normal.shape}")
    to_eye = np.asarray(camera.eye, dtype=np.float64) - coord
    return np.einsum("ij,ij->i", normal, to_eye) >= 0


def _render_matplotlib(coord, colors_list, camera: Camera, size, point_size: float, background) -> list[np.ndarray]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = size
    px, depth = project(coord, camera, size)
    visible = np.isfinite(px).all(axis=1) & (depth > 0)
    order = np.argsort(-depth[visible])  # far to near: near points are drawn last, on top
    idx = np.flatnonzero(visible)[order]
    images = []
    for colors in colors_list:
        fig = Figure(figsize=(width / 100, height / 100), dpi=100)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.axis("off")
        fig.patch.set_facecolor(background)
        ax.scatter(px[idx, 0], px[idx, 1], c=np.asarray(colors)[idx], s=point_size ** 2, marker="s",
                   linewidths=0)
        canvas.draw()
        images.append(np.asarray(canvas.buffer_rgba())[:, :, :3].copy())
    return images


def _release_renderer() -> None:
    """Drop the cached renderer (its scene emptied first: Filament aborts the process when a renderer is destroyed
    while a material is still in use)."""
    while _RENDERERS:
        _, renderer = _RENDERERS.popitem()
        renderer.scene.clear_geometry()
        del renderer


def _open3d_renderer(size):
    """The cached OffscreenRenderer of this size, or None (the reason logged once) when it cannot start.

    One renderer is kept alive at a time (starting one costs seconds on software Vulkan); asking for another size
    replaces it.
    """
    global _OPEN3D_FAILED
    if _OPEN3D_FAILED is not None:
        return None
    if size in _RENDERERS:
        return _RENDERERS[size]
    _release_renderer()
    try:
        import open3d as o3d

        renderer = o3d.visualization.rendering.OffscreenRenderer(*size)
    except Exception as err:  # no Vulkan/EGL, missing libraries, ...: fall back, say why once
        _OPEN3D_FAILED = f"{type(err).__name__}: {err}".splitlines()[0]
        log.warning("Open3D offscreen renderer unavailable (%s); falling back to a matplotlib scatter render",
                    _OPEN3D_FAILED)
        return None
    if not _RENDERERS and not _ATEXIT[0]:
        atexit.register(_release_renderer)
        _ATEXIT[0] = True
    _RENDERERS[size] = renderer
    return renderer


def _render_open3d(renderer, coord, colors_list, camera: Camera, point_size: float, background) -> list[np.ndarray]:
    import open3d as o3d

    scene = renderer.scene
    scene.view.set_post_processing(False)  # no tone mapping / colour grading: the pixels keep the points' colours
    scene.set_background([*background, 1.0])
    material = o3d.visualization.rendering.MaterialRecord()
    material.shader = "defaultUnlit"
    material.point_size = float(point_size)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(coord, dtype=np.float64)))
    images = []
    try:
        for colors in colors_list:
            cloud.colors = o3d.utility.Vector3dVector(np.asarray(colors, dtype=np.float64))
            scene.clear_geometry()
            scene.add_geometry("cloud", cloud, material)
            # after add_geometry: the camera's near and far planes are fitted to the scene's bounds
            renderer.setup_camera(camera.fov_deg, np.asarray(camera.center, np.float32),
                                  np.asarray(camera.eye, np.float32), np.asarray(camera.up, np.float32))
            images.append(np.asarray(renderer.render_to_image())[:, :, :3].copy())
    finally:
        scene.clear_geometry()
    return images


def renderer_backend(size: tuple[int, int] = (640, 480)) -> str:
    """``"open3d"`` when the offscreen renderer starts here (at this size), else ``"matplotlib"``."""
    if os.environ.get("CONCERTO3D_RENDERER", "").lower() == "matplotlib":
        return "matplotlib"
    return "open3d" if _open3d_renderer((int(size[0]), int(size[1]))) is not None else "matplotlib"


def render_views(coord, colors_list, camera: Camera | None = None, size: tuple[int, int] = (640, 480),
                 point_size: float = 3.0, background=(1.0, 1.0, 1.0)) -> list[np.ndarray]:
    """Render one cloud several times, once per colouring, from the same camera.

    Args:
        coord: (N, 3) float points.
        colors_list: list of (N, 3) float colours in [0, 1].
        camera: the view; default :func:`fit_camera` of ``coord``.
        size: (width, height) in pixels.
        point_size: point diameter in pixels.
        background: RGB in [0, 1].
    Returns:
        list of (height, width, 3) uint8 images, one per colouring.
    """
    coord = np.asarray(coord, dtype=np.float64)
    if coord.ndim != 2 or coord.shape[1] != 3 or len(coord) == 0:
        raise ValueError(f"expected coord (N, 3) with N >= 1, got shape {coord.shape}")
    colors_list = [np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0) for c in colors_list]
    for c in colors_list:
        if c.shape != coord.shape:
            raise ValueError(f"expected colours of shape {coord.shape} in [0, 1], got {c.shape}")
    size = (int(size[0]), int(size[1]))
    camera = camera or fit_camera(coord, aspect=size[0] / size[1])
    renderer = None
    if os.environ.get("CONCERTO3D_RENDERER", "").lower() != "matplotlib":
        renderer = _open3d_renderer(size)  # None (logged once) when it cannot start
    if renderer is not None:
        return _render_open3d(renderer, coord, colors_list, camera, point_size, background)
    return _render_matplotlib(coord, colors_list, camera, size, point_size, background)


def render_point_cloud(coord, colors, camera: Camera | None = None, size: tuple[int, int] = (640, 480),
                       point_size: float = 3.0, background=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Render one coloured cloud: coord (N, 3), colors (N, 3) in [0, 1] -> (height, width, 3) uint8 image.
    See :func:`render_views` for the arguments."""
    return render_views(coord, [colors], camera, size, point_size, background)[0]

"""``concerto3d visualize SCENE --model RUN --out PNG [--ply PLY] [--interactive] [--query INDEX] [--frame K]``.

SCENE is one preprocessed scene folder (data/README.md §3). The trained model embeds its points; the panel shows
input colours | ground-truth labels | PCA colours of the features | cosine similarity to a query point, all from one
camera. ``--ply`` writes the PCA-coloured cloud; ``--frame K`` writes a second PNG with the correspondences of frame
K drawn on its image (points coloured by depth) and prints how far the stored pixels lie from the reprojected points;
``--interactive`` opens an Open3D window at the panel's camera with the same cut-away (keys 1-4 switch colourings,
C turns the cut-away on/off, P picks a new query point).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from concerto3d.errors import FormatError, InputError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scene", metavar="SCENE", help="a preprocessed scene folder (coord.npy, color.npy, ...)")
    parser.add_argument("--model", metavar="RUN", required=True, help="trained run folder (RUN/model/...)")
    parser.add_argument("--out", metavar="PNG", help="write the panel here")
    parser.add_argument("--ply", metavar="PLY", help="write the PCA-coloured point cloud here")
    parser.add_argument("--html", metavar="HTML",
                        help="write a self-contained interactive viewer here (rotate, zoom, switch between input "
                             "colours, labels, PCA and similarity; opens in any browser, no display needed)")
    parser.add_argument("--interactive", action="store_true",
                        help="open an Open3D window: keys 1-4 switch colourings, C turns the cut-away on/off, "
                        "P picks a query point")
    parser.add_argument("--query", metavar="INDEX", type=int, default=None,
                        help="point index of the similarity query (default: the point nearest the median)")
    parser.add_argument("--frame", metavar="K", type=int, default=None,
                        help="also draw the correspondences of kept frame K on its image (PNG next to --out)")
    parser.add_argument("--tile-size", metavar="WxH", default="480x360", help="pixels per panel tile")
    parser.add_argument("--point-size", type=float, default=3.0, help="rendered point size in pixels")
    parser.add_argument("--no-cull", action="store_true",
                        help="draw every point (default: hide points whose normal faces away from the camera, "
                        "i.e. the ceiling and near walls, for a look inside the room; in the --interactive window "
                        "the C key turns this cut-away on and off)")
    parser.add_argument("--max-points", type=int, default=None,
                        help="embed at most this many points and interpolate the rest (default: all)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--tile-size: expected WIDTHxHEIGHT such as 480x360, got {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise InputError(f"--tile-size: expected each side in 16..4096 pixels, got {text!r}")
    return w, h


def load_frame(scene_dir: Path, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frame K of a preprocessed scene: image (H, W, 3) uint8, camera_to_world (4, 4), intrinsics (3, 3) of the
    resized image, and the correspondences of that frame: pixels (M, 2) int (u, v), point indices (M,) int."""
    from concerto3d.data.scene import frame_cameras, image_path, load_correspondences, read_image

    if not (scene_dir / "correspondences.npy").is_file():
        raise InputError("missing file; --frame needs the scene's correspondences", scene_dir / "correspondences.npy")
    corr = load_correspondences(scene_dir)
    poses, intrinsics = frame_cameras(scene_dir)
    if not 0 <= k < len(poses):
        raise InputError(f"--frame {k}: the scene keeps frames 0..{len(poses) - 1}", scene_dir)
    if not image_path(scene_dir, k).is_file():
        raise InputError("missing image of --frame", image_path(scene_dir, k))
    image, _ = read_image(image_path(scene_dir, k))
    rows = corr[corr[:, 0] == k]
    return image, poses[k].astype(np.float64), intrinsics[k].astype(np.float64), rows[:, 1:3], rows[:, 3]


def reprojection(coord, camera_to_world, intrinsic) -> tuple[np.ndarray, np.ndarray]:
    """Project world points into a camera: coord (M, 3) -> pixels (M, 2) float (u, v) and depth (M,) metres."""
    world_to_camera = np.linalg.inv(camera_to_world)
    cam = np.asarray(coord, dtype=np.float64) @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    uv = (cam[:, :2] / np.where(np.abs(z) > 1e-9, z, np.nan)[:, None]) * np.diag(intrinsic)[:2] + intrinsic[:2, 2]
    return uv, z


def frame_overlay(scene_dir: Path, coord: np.ndarray, k: int, out_path: Path) -> float:
    """Write the correspondence check of frame K; returns the median distance in pixels between the stored pixels
    and the reprojected points (nan when the frame has no correspondences)."""
    from concerto3d.visualization.panel import correspondence_overlay

    image, pose, intrinsic, pixels, points = load_frame(scene_dir, k)
    if len(points) and (points.min() < 0 or points.max() >= len(coord)):
        raise FormatError(f"correspondences of frame {k} name points outside 0..{len(coord) - 1}",
                          scene_dir / "correspondences.npy")
    uv, depth = reprojection(coord[points], pose, intrinsic)
    error = float(np.median(np.linalg.norm(uv - pixels, axis=1))) if len(points) else float("nan")
    title = f"{scene_dir.name}, frame {k}: {len(points)} correspondences, median reprojection offset {error:.2f} px"
    correspondence_overlay(image, pixels, depth, out_path, title=title)
    return error


def write_ply(path: Path, coord, colors, normal=None) -> None:
    """Write a coloured point cloud (coord (N, 3), colors (N, 3) in [0, 1], optional normals) with Open3D."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(coord, dtype=np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(np.asarray(colors, dtype=np.float64))
    if normal is not None:
        cloud.normals = o3d.utility.Vector3dVector(np.asarray(normal, dtype=np.float64))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_point_cloud(str(path), cloud):
        raise InputError("could not write the point cloud (is the extension .ply?)", path)


def has_display() -> bool:
    """True when a window can be opened: a DISPLAY or WAYLAND_DISPLAY on Linux; assumed elsewhere."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


WINDOW_SIZE = (1280, 800)  # pixels of the interactive windows


def start_view(coord, normal, cull: bool = True, query_index: int | None = None,
               size: tuple[int, int] = WINDOW_SIZE):
    """The first view of the interactive window: the panel's camera (``render.fit_camera``, from outside the room
    looking down at 45 degrees) and which points its cut-away keeps (``render.facing_camera``: the ceiling and the
    near walls show their backs and are left out).

    Args:
        coord: (N, 3) float points.
        normal: (N, 3) float normals or None; rows of zeros count as facing the camera.
        cull: False keeps every point (``--no-cull``).
        query_index: a point kept in any case (the similarity query).
        size: (width, height) of the window.
    Returns:
        (``render.Camera``, (N,) bool points kept by the cut-away).
    """
    from concerto3d.visualization.render import facing_camera, fit_camera

    coord = np.asarray(coord, dtype=np.float64)
    camera = fit_camera(coord, aspect=size[0] / size[1])
    keep = np.ones(len(coord), dtype=bool)
    if cull and normal is not None:
        keep = facing_camera(coord, normal, camera)
    if query_index is not None:
        keep[query_index] = True
    return camera, keep


def view_control_parameters(camera, extent: float) -> dict:
    """Open3D ``ViewControl`` settings that reproduce ``camera`` (a ``render.Camera``).

    Open3D puts the eye at ``lookat + front * zoom * extent / tan(fov / 2)`` (``extent``: the largest side of the
    bounding box of the window's geometry; ``fov``: its own vertical field of view), so the zoom that shows the
    same height at the looked-at point as ``camera`` is ``distance * tan(camera.fov / 2) / extent``.

    Returns:
        {"front": (3,), "lookat": (3,), "up": (3,), "zoom": float}.
    """
    eye, center = np.asarray(camera.eye, dtype=np.float64), np.asarray(camera.center, dtype=np.float64)
    distance = float(np.linalg.norm(eye - center))
    zoom = distance * np.tan(np.radians(camera.fov_deg) / 2) / max(float(extent), 1e-9)
    return {"front": (eye - center) / distance, "lookat": center, "up": np.asarray(camera.up, dtype=np.float64),
            "zoom": float(np.clip(zoom, 0.02, 2.0))}  # Open3D's zoom range


def _set_view(vis, camera, points: np.ndarray) -> None:
    view = view_control_parameters(camera, float(np.max(points.max(axis=0) - points.min(axis=0))))
    control = vis.get_view_control()
    control.set_lookat(view["lookat"])
    control.set_front(view["front"])
    control.set_up(view["up"])
    control.set_zoom(view["zoom"])


def interactive_view(coord, normal, features, colorings: dict[str, np.ndarray], query_index: int,
                     cull: bool = True) -> bool:
    """Open3D viewer. Keys 1..n switch between ``colorings`` ((N, 3) in [0, 1] each); C turns the cut-away on and
    off; P closes the view and opens a picking window (shift + left click a point, then close it) whose last pick
    becomes the similarity query.

    The windows open at the panel's camera with the cut-away on (see :func:`start_view`): the points whose normals
    face away from that camera (the ceiling, the near walls) are left out so the inside of the room shows. With
    ``cull=False``, or normals all zero, every point is drawn. The picking window shows the points of the key
    window (cut away or not); its picks are mapped back to indices of ``coord``.
    Returns False when the window cannot be created.
    """
    import open3d as o3d

    from concerto3d.visualization.pca import similarity_colors

    coord = np.asarray(coord, dtype=np.float64)
    normal = np.asarray(normal, dtype=np.float64)
    names = list(colorings)
    camera, keep = start_view(coord, normal, cull, query_index)
    state = {"shown": 0, "pick": False, "cut": not keep.all()}
    cloud = o3d.geometry.PointCloud()

    def fill(i):
        """Put the points of the current cut-away state, coloured by colouring ``i``, into ``cloud``."""
        idx = np.flatnonzero(keep) if state["cut"] else np.arange(len(coord))
        cloud.points = o3d.utility.Vector3dVector(coord[idx])
        cloud.normals = o3d.utility.Vector3dVector(normal[idx])
        cloud.colors = o3d.utility.Vector3dVector(colorings[names[i]][idx].astype(np.float64))
        return idx

    keys = ", ".join(f"{i + 1} {n}" for i, n in enumerate(names))
    while True:
        fill(state["shown"])
        vis = o3d.visualization.VisualizerWithKeyCallback()
        if not vis.create_window(f"concerto3d: {keys}; C cut-away; P pick query; Q quit", *WINDOW_SIZE):
            return False

        def show(i):
            def callback(v):
                state["shown"] = i
                fill(i)
                v.update_geometry(cloud)
                return True
            return callback

        def toggle_cut(v):
            state["cut"] = not state["cut"]
            fill(state["shown"])
            v.update_geometry(cloud)
            return True

        def pick(v):
            state["pick"] = True
            v.close()
            return False

        for i in range(len(names)):
            vis.register_key_callback(ord(str(i + 1)), show(i))
        vis.register_key_callback(ord("C"), toggle_cut)
        vis.register_key_callback(ord("P"), pick)
        vis.add_geometry(cloud)
        _set_view(vis, camera, np.asarray(cloud.points))
        print(f"keys: {keys}; C: cut-away on/off (hides the ceiling and near walls); P: pick a new query point; "
              "Q: quit")
        vis.run()
        vis.destroy_window()
        if not state["pick"]:
            return True
        state["pick"] = False
        idx = fill(state["shown"])
        editor = o3d.visualization.VisualizerWithEditing()
        editor.create_window("concerto3d: shift + left click the query point, then close this window", *WINDOW_SIZE)
        editor.add_geometry(cloud)
        _set_view(editor, camera, np.asarray(cloud.points))
        editor.run()
        editor.destroy_window()
        picked = editor.get_picked_points()
        if picked:
            query_index = int(idx[picked[-1]])
            keep[query_index] = True
            colorings["similarity"] = similarity_colors(features, query_index)
            state["shown"] = names.index("similarity")
            print(f"query point: {query_index}")


def run(args: argparse.Namespace) -> int:
    from concerto3d.data.scene import load_scene
    from concerto3d.evaluation.features import embed_scene
    from concerto3d.io.paths import ensure_output_file
    from concerto3d.visualization.panel import default_query_index, feature_panel, label_colors
    from concerto3d.visualization.pca import pca_colors, similarity_colors

    if not (args.out or args.ply or args.html or args.interactive or args.frame is not None):
        raise InputError("nothing to do: give --out PNG, --ply PLY, --html HTML, --frame K and/or --interactive")
    if args.interactive and not has_display():  # the environment can't do what was asked: a usage error, exit 2
        raise InputError("no display (DISPLAY is not set); --interactive needs a desktop session (use --out PNG or "
                         "--ply PLY on a server)")
    tile_size = _parse_size(args.tile_size)
    for flag, value in (("--out", args.out), ("--ply", args.ply), ("--html", args.html)):
        if value:
            ensure_output_file(value, flag)  # before the work, not after it
    scene_dir = Path(args.scene)
    scene = load_scene(scene_dir)
    query = default_query_index(scene.coord) if args.query is None else args.query
    if not 0 <= query < len(scene):
        raise InputError(f"--query {args.query}: the scene has points 0..{len(scene) - 1}", scene_dir)
    frame_out = None
    if args.frame is not None:
        base = Path(args.out) if args.out else Path(f"{scene.name}.png")
        frame_out = ensure_output_file(base.with_name(f"{base.stem}_frame{args.frame:06d}.png"), "--frame's PNG")
        load_frame(scene_dir, args.frame)  # fail on a bad frame before the slow part

    if frame_out is not None:  # needs no features
        error = frame_overlay(scene_dir, scene.coord, args.frame, frame_out)
        print(f"wrote {frame_out} (median reprojection offset {error:.2f} px)")
    if not (args.out or args.ply or args.html or args.interactive):
        return 0

    from concerto3d.device import resolve_device
    from concerto3d.inference import load_model

    model = load_model(args.model, device=resolve_device(args.device))
    features = embed_scene(model, scene, max_points=args.max_points)
    log.info("embedded %d points of %s: features (%d, %d)", len(scene), scene.name, *features.shape)

    if args.out:
        normal = scene.normal if np.abs(scene.normal).sum() > 0 and not args.no_cull else None
        feature_panel(scene.coord, features, args.out, color=scene.color, segment20=scene.segment20,
                      query_index=query, tile_size=tile_size, point_size=args.point_size, normal=normal)
        print(f"wrote {args.out}")
    pca = pca_colors(features)
    if args.ply:
        write_ply(Path(args.ply), scene.coord, pca, scene.normal)
        print(f"wrote {args.ply}")
    colorings = {"input": scene.color.astype(np.float32) / 255.0, "labels": label_colors(scene.segment20),
                 "pca": pca, "similarity": similarity_colors(features, query)}
    if args.html:
        from concerto3d.visualization.html import write_html_viewer

        shown = write_html_viewer(args.html, scene.coord, {"PCA of features": pca, **{
            "input colours": colorings["input"], "labels": colorings["labels"],
            f"similarity to point {query}": colorings["similarity"]}}, title=scene.name, marked=query)
        print(f"wrote {args.html} ({shown} of {len(scene)} points)")
    if args.interactive:
        if not interactive_view(scene.coord, scene.normal, features, colorings, query, cull=not args.no_cull):
            raise InputError("could not open a window on this display")
    return 0

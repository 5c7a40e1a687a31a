"""Write generated scenes in ScanNet's on-disk layout (data/README.md section 1) through the ``concerto3d.io`` writers.

Each scene is drawn from its own generator seeded with ``(seed, scene index)``, so a dataset is the same byte for
byte whatever the number of workers, and scene k is the same whatever the number of scenes. A scene folder appears
only when complete: it is written under a hidden temporary name and renamed (``io.atomic.atomic_folder``).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from concerto3d.errors import InputError
from concerto3d.io.atomic import atomic_folder
from concerto3d.io.paths import LOCK_NAME, die_with_parent, output_lock
from concerto3d.synth.mesh import DenseMesh, build_mesh, seen_by_depth
from concerto3d.synth.render import Renderer, camera_path, scannet_intrinsics
from concerto3d.synth.room import sample_scene
from concerto3d.synth.scene import CATEGORY_NYU40, Scene

log = logging.getLogger(__name__)

JPEG_QUALITY = 92
VAL_FRACTION = 0.2


def scene_name(index: int) -> str:
    """ScanNet-style scene name: 0 -> ``scene0000_00``."""
    return f"scene{index:04d}_00"


def _check_size(size, what: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be (width, height), got {size!r}") from None
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise ValueError(f"{what} must be between 8x8 and 8192x8192 pixels, got {w}x{h}")
    return w, h


def split_scenes(names: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Deterministic ~80/20 train/val split; at least one val scene when there are two or more scenes.

    Returns:
        (train, val), each sorted.
    """
    n = len(names)
    n_val = 0 if n < 2 else max(1, int(round(VAL_FRACTION * n)))
    order = np.random.default_rng([seed, 0x5B117]).permutation(n)
    val = sorted(names[i] for i in order[:n_val])
    return sorted(set(names) - set(val)), val


# raw category -> ScanNet label id (the label table's ``id`` column; the values of the 2D label images)
CATEGORY_ID: dict[str, int] = {raw: i for i, raw in enumerate(CATEGORY_NYU40, start=1)}


def label_table_rows() -> list[dict]:
    """Rows of ``scannetv2-labels.combined.tsv`` for every raw category the generator uses."""
    return [{"id": CATEGORY_ID[raw], "raw_category": raw, "category": raw, "nyu40id": nyu40}
            for raw, nyu40 in CATEGORY_NYU40.items()]


def _scene_meta(name: str, scene: Scene, color_size, depth_size, Kc, Kd, num_frames: int) -> str:
    identity = " ".join(["1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "1"])
    items = [
        ("axisAlignment", identity), ("colorHeight", color_size[1]), ("colorToDepthExtrinsics", identity),
        ("colorWidth", color_size[0]), ("depthHeight", depth_size[1]), ("depthWidth", depth_size[0]),
        ("fx_color", Kc[0, 0]), ("fx_depth", Kd[0, 0]), ("fy_color", Kc[1, 1]), ("fy_depth", Kd[1, 1]),
        ("mx_color", Kc[0, 2]), ("mx_depth", Kd[0, 2]), ("my_color", Kc[1, 2]), ("my_depth", Kd[1, 2]),
        ("numColorFrames", num_frames), ("numDepthFrames", num_frames), ("numIMUmeasurements", 0),
        ("sceneType", scene.scene_type),
    ]
    return "".join(f"{k} = {float(v)!r}\n" if isinstance(v, (float, np.floating)) else f"{k} = {v}\n"
                   for k, v in items)


def _write_annotations(folder: Path, name: str, scene: Scene, mesh: DenseMesh) -> None:
    from concerto3d.io import Mesh, write_aggregation_json, write_labels_ply, write_mesh_ply, write_segs_json

    io_mesh = Mesh(mesh.vertices, mesh.colors, mesh.faces)
    write_mesh_ply(folder / f"{name}_vh_clean_2.ply", io_mesh)
    nyu40 = np.array([o.nyu40 for o in scene.objects], dtype=np.int64)[mesh.object_index]
    write_labels_ply(folder / f"{name}_vh_clean_2.labels.ply", io_mesh, nyu40)
    segs_file = f"{name}_vh_clean_2.0.010000.segs.json"
    write_segs_json(folder / segs_file, name, mesh.segment)
    # every segment lies in one object: the object of a segment is that of any of its vertices
    seg_object = np.zeros(int(mesh.segment.max()) + 1, dtype=np.int64)
    seg_object[mesh.segment] = mesh.object_index
    groups = [{"id": k, "objectId": k, "label": obj.category,
               "segments": np.flatnonzero(seg_object == k).tolist()} for k, obj in enumerate(scene.objects)]
    write_aggregation_json(folder / f"{name}.aggregation.json", name, groups)


def generate_scene(scans: str | os.PathLike, index: int, seed: int, num_frames: int,
                   color_size: tuple[int, int] = (1296, 968), depth_size: tuple[int, int] = (640, 480),
                   full_mesh: bool = False) -> dict:
    """Generate, render and write one scene as ``scans/scene<index>_00``.

    The mesh written is the part of the room the frames saw (``DenseMesh.observed`` of the vertices that pass the
    depth test of some frame), as a reconstruction from those frames would hold; ``full_mesh`` writes every surface.

    Returns:
        a summary: name, vertices, faces, frames, categories present, ``observed`` (the fraction of the full mesh's
        vertices some frame saw), seconds.
    """
    start = time.perf_counter()
    name = scene_name(index)
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng)
    mesh = build_mesh(scene)
    renderer = Renderer(scene)
    poses = camera_path(scene, num_frames, rng)

    scans = Path(scans)
    full = len(mesh.vertices)
    with atomic_folder(scans / name) as tmp:  # never leave a half-written scene for a reader to find
        render_seconds, mesh, observed = _write_scene(tmp, name, scene, mesh, renderer, poses, seed, index,
                                                      color_size, depth_size, full_mesh)
    return {"name": name, "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)),
            "observed": round(observed / max(full, 1), 4),
            "frames": int(len(poses)), "categories": sorted({o.category for o in scene.objects}),
            "dropped": list(scene.dropped), "render_seconds": render_seconds,
            "seconds": time.perf_counter() - start}


def _write_scene(tmp: Path, name: str, scene: Scene, mesh: DenseMesh, renderer: Renderer, poses: np.ndarray,
                 seed: int, index: int, color_size: tuple[int, int], depth_size: tuple[int, int],
                 full_mesh: bool = False) -> tuple[float, DenseMesh, int]:
    """Render the frames and write every file of one scene into ``tmp``; returns the seconds spent rendering, the
    mesh written (the observed part unless ``full_mesh``) and the number of vertices some frame saw."""
    from concerto3d.io import SensWriter, write_color_jpeg, write_depth_png, write_matrix
    from concerto3d.io.frame_labels import label_zip_name, write_label_zip

    Kc, Kd = scannet_intrinsics(color_size, "color"), scannet_intrinsics(depth_size, "depth")
    for sub in ("color", "depth", "pose", "intrinsic"):
        (tmp / sub).mkdir(parents=True)
    K4c, K4d = np.eye(4), np.eye(4)
    K4c[:3, :3], K4d[:3, :3] = Kc, Kd
    write_matrix(tmp / "intrinsic" / "intrinsic_color.txt", K4c)
    write_matrix(tmp / "intrinsic" / "intrinsic_depth.txt", K4d)
    write_matrix(tmp / "intrinsic" / "extrinsic_color.txt", np.eye(4))
    write_matrix(tmp / "intrinsic" / "extrinsic_depth.txt", np.eye(4))
    header = dict(intrinsic_color=K4c, intrinsic_depth=K4d, color_width=color_size[0], color_height=color_size[1],
                  depth_width=depth_size[0], depth_height=depth_size[1], sensor_name="concerto3d-synth")

    def write_frame(i: int, pose: np.ndarray, color: np.ndarray, depth: np.ndarray) -> None:
        sens.add_frame(pose, color, depth)
        write_color_jpeg(tmp / "color" / f"{i}.jpg", color, JPEG_QUALITY)
        write_depth_png(tmp / "depth" / f"{i}.png", depth)
        write_matrix(tmp / "pose" / f"{i}.txt", pose)

    render_seconds = 0.0
    seen = np.zeros(len(mesh.vertices), dtype=bool)
    # ScanNet label id of each object, 0 for nothing hit (index -1): the 2D label images, as <scene>_2d-label-filt.zip
    object_id = np.array([CATEGORY_ID[o.category] for o in scene.objects] + [0], dtype=np.uint16)
    labels: dict[int, np.ndarray] = {}
    # One writer thread encodes frame i (JPEG, PNG, zlib release the GIL) while frame i + 1 renders; frames are
    # written in order, and at most one waits, so memory stays at two frames.
    with SensWriter(tmp / f"{name}.sens", header, jpeg_quality=JPEG_QUALITY) as sens, \
            ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for i, pose in enumerate(poses):
            t0 = time.perf_counter()
            color = renderer.render_color(pose, Kc, color_size)
            depth, objects = renderer.render_depth_and_objects(pose, Kd, depth_size,
                                                               np.random.default_rng([seed, index, 1, i]))
            labels[i] = object_id[objects]
            render_seconds += time.perf_counter() - t0
            seen |= seen_by_depth(mesh.vertices, pose, Kd, depth)
            if pending is not None:
                pending.result()
            pending = writer.submit(write_frame, i, pose, color, depth)
        if pending is not None:
            pending.result()
    write_label_zip(tmp / label_zip_name(name), labels)
    if not full_mesh:
        mesh = mesh.observed(seen)
    _write_annotations(tmp, name, scene, mesh)
    (tmp / f"{name}.txt").write_text(_scene_meta(name, scene, color_size, depth_size, Kc, Kd, len(poses)),
                                     encoding="utf-8")
    return render_seconds, mesh, int(seen.sum())


def _generate_scene_star(args: tuple) -> dict:
    return generate_scene(*args)


SYNTH_MARKER = ".concerto3d-synth"  # in every folder synth made: only those does a rerun write into


def generate_dataset(out: str | os.PathLike, num_scenes: int, num_frames: int, seed: int,
                     color_size: tuple[int, int] = (1296, 968), depth_size: tuple[int, int] = (640, 480),
                     workers: int = 1, progress: bool = True, full_mesh: bool = False) -> dict:
    """Generate ``num_scenes`` synthetic scans in ScanNet's layout under ``out``.

    Writes ``out/scans/scene%04d_00/...`` (data/README.md section 1), ``out/scannetv2-labels.combined.tsv`` and
    ``out/scannetv2_{train,val}.txt``.

    Args:
        out: output folder (created).
        num_scenes: number of scenes (>= 1).
        num_frames: frames per scene (>= 1).
        seed: the dataset seed; scene k uses the generator seeded with (seed, k).
        color_size, depth_size: (width, height) of the colour and depth images.
        workers: processes generating scenes in parallel (the output does not depend on it).
        progress: show a tqdm bar over scenes.
        full_mesh: write every surface of each room, not only the part its frames saw (:func:`generate_scene`).
    Returns:
        a summary dict: out, scenes, train, val, frames, vertices (total), observed (mean fraction of each room's
        surface vertices its frames saw), categories, seconds,
        seconds_per_frame (rendering only), per-scene summaries under "per_scene".
    Raises:
        InputError: ``out`` holds files synth did not make (it writes only into a new, empty or synth-made folder).
    """
    from concerto3d.io import write_label_table, write_split

    if int(num_scenes) < 1 or int(num_frames) < 1:
        raise ValueError(f"need at least one scene and one frame, got scenes={num_scenes}, frames={num_frames}")
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    color_size, depth_size = _check_size(color_size, "color_size"), _check_size(depth_size, "depth_size")
    start = time.perf_counter()
    out = Path(out)
    foreign = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) if out.is_dir() else []
    if foreign and not (out / SYNTH_MARKER).is_file():
        # someone's ScanNet root (or anything else): its scenes, label table and split lists would be replaced
        raise InputError(f"holds files synth did not make (e.g. {foreign[0]!r}); give a new or empty folder", out)
    scans = out / "scans"
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out, "synth folder"):  # one writer: a second synth into OUT is refused
        scans.mkdir(exist_ok=True)
        (out / SYNTH_MARKER).write_text("made by concerto3d synth: a rerun into this folder may replace its scenes\n")
        jobs = [(scans, k, int(seed), int(num_frames), color_size, depth_size, bool(full_mesh))
                for k in range(int(num_scenes))]
        from concerto3d.io.progress import progress_bar

        bar = progress_bar(total=len(jobs), desc="synth", unit="scene", disable=not progress)
        results: list[dict] = []
        if workers == 1:
            for job in jobs:
                results.append(generate_scene(*job))
                bar.update()
        else:
            # spawn, not fork: Open3D's thread pool does not survive a fork
            with ProcessPoolExecutor(max_workers=int(workers), mp_context=get_context("spawn"),
                                     initializer=die_with_parent) as pool:
                for result in pool.map(_generate_scene_star, jobs):
                    results.append(result)
                    bar.update()
        bar.close()
        names = [r["name"] for r in results]
        train, val = split_scenes(names, int(seed))
        write_label_table(out / "scannetv2-labels.combined.tsv", label_table_rows())
        write_split(out / "scannetv2_train.txt", train)
        write_split(out / "scannetv2_val.txt", val)
    frames = sum(r["frames"] for r in results)
    return {"out": str(out), "scenes": names, "train": train, "val": val, "frames": frames,
            "vertices": sum(r["vertices"] for r in results),
            "observed": round(sum(r["observed"] for r in results) / len(results), 4),
            "categories": sorted({c for r in results for c in r["categories"]}),
            "seconds": time.perf_counter() - start,
            "seconds_per_frame": sum(r["render_seconds"] for r in results) / max(frames, 1),
            "per_scene": results}

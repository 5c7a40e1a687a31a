"""Benchmark of ``concerto3d preprocess``: frames/s, peak memory, and time relative to decoding the same frames.

For each size (frames in the ``.sens``) it builds one ScanNet-layout scene -- a 4 x 3 x 2.5 m box room with a box in
it, its mesh at 2 cm (about 150k vertices), colour 1296x968 and depth 640x480 as in ScanNet -- by rendering a few
distinct frames and repeating their ``.sens`` records (cheap to generate, same work per frame). Then, each in a fresh
process so that peak RSS is its own:

- decode: read and decode every frame (``SensFrameSource.iter_frames``), nothing else;
- preprocess: ``preprocess(..., frame_skip=1)``: every frame resized, depth-tested against all points, written.

Peak memory must not grow with the number of frames. Run::

    .venv/bin/python benchmarks/preprocess.py [--sizes 100 400 1600] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
COLOR_SIZE, DEPTH_SIZE = (968, 1296), (480, 640)
DISTINCT_FRAMES = 12
FRAME_HEAD = struct.Struct("<16f4Q")  # data/README.md §1: pose, timestamps, payload sizes


def _peak_rss_mib() -> float:
    """This process's peak resident memory. Linux's VmHWM, not ru_maxrss: ru_maxrss survives exec(), so a child
    would report its parent's peak when that was higher."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def build_scene(root: Path, num_frames: int) -> Path:
    """``root/scans/bench<N>/`` with a mesh and a ``.sens`` of ``num_frames`` frames; returns the ScanNet root."""
    sys.path.insert(0, str(REPO / "tests" / "data"))
    from rgbd_scenes import room_mesh, room_poses, write_scannet_scene

    from concerto3d.io import ply

    name = f"bench{num_frames:05d}"
    folder = root / "scans" / name
    if (folder / f"{name}.sens").exists():
        return root
    poses = room_poses(DISTINCT_FRAMES, seed=1)
    write_scannet_scene(root, name, poses, COLOR_SIZE, DEPTH_SIZE, mesh=False)
    v, c, f, nyu40, _ = room_mesh(step=0.02)
    mesh = ply.Mesh(v, c, f)
    ply.write_mesh_ply(folder / f"{name}_vh_clean_2.ply", mesh)
    ply.write_labels_ply(folder / f"{name}_vh_clean_2.labels.ply", mesh, nyu40)
    # repeat the distinct frames' records up to num_frames (the header ends with uint64 num_frames)
    sens = folder / f"{name}.sens"
    data = sens.read_bytes()
    records, pos = [], _frames_start(data)
    while pos < len(data):
        head = FRAME_HEAD.unpack_from(data, pos)
        end = pos + FRAME_HEAD.size + head[18] + head[19]
        records.append(data[pos:end])
        pos = end
    with open(sens, "wb") as out:
        out.write(data[:_frames_start(data) - 8] + struct.pack("<Q", num_frames))
        for i in range(num_frames):
            out.write(records[i % len(records)])
    return root


def _frames_start(data: bytes) -> int:
    """Byte offset of the first frame: version, name length, name, 64 floats, 2 ints, 4 uints, float, uint64."""
    (name_len,) = struct.unpack_from("<Q", data, 4)
    return 4 + 8 + name_len + 64 * 4 + 2 * 4 + 4 * 4 + 4 + 8


def child_decode(scans: Path) -> dict:
    from concerto3d.io.scannet import ScanNetScene, find_scannet_scenes

    source = ScanNetScene(find_scannet_scenes(scans)[0]).frame_source()
    start = time.perf_counter()
    n = sum(1 for _ in source.iter_frames(step=1))
    return {"frames": n, "seconds": time.perf_counter() - start, "peak_rss_mib": _peak_rss_mib()}


def child_preprocess(scans: Path, out: Path) -> dict:
    from concerto3d.data.preprocess import preprocess

    start = time.perf_counter()
    summary = preprocess(scans, out, frame_skip=1, voxel=0.02, image_size=(240, 320), progress=False)
    return {"frames": summary["frames"]["kept"], "points": summary["points"],
            "correspondences_per_frame": summary["correspondences"]["per_frame_mean"],
            "seconds": time.perf_counter() - start, "peak_rss_mib": _peak_rss_mib()}


def _run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400, 1600])
    parser.add_argument("--work", type=Path, default=None, help="folder for the generated scenes (default: temp)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *paths = args.child
        result = child_decode(Path(paths[0])) if kind == "decode" else child_preprocess(Path(paths[0]), Path(paths[1]))
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        print(f"{'frames':>6} {'decode f/s':>10} {'prep f/s':>9} {'ratio':>6} {'decode MiB':>10} {'prep MiB':>9} "
              f"{'points':>7} {'corr/frame':>10}")
        for n in args.sizes:
            scans = build_scene(work / f"scans{n}", n)
            dec = _run_child("decode", str(scans))
            out = work / f"out{n}"
            if out.exists():
                shutil.rmtree(out)
            pre = _run_child("preprocess", str(scans), str(out))
            print(f"{n:>6} {dec['frames'] / dec['seconds']:>10.1f} {pre['frames'] / pre['seconds']:>9.1f} "
                  f"{pre['seconds'] / dec['seconds']:>6.2f} {dec['peak_rss_mib']:>10.0f} {pre['peak_rss_mib']:>9.0f} "
                  f"{pre['points']:>7} {pre['correspondences_per_frame']:>10.0f}", flush=True)


if __name__ == "__main__":
    main()

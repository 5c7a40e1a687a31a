"""``kill -9`` of ``concerto3d preprocess`` at several moments of one job (soak marker: about a minute): after a
random delay (before, during or after the first scene), while a later scene is being written, and again in the
rerun. Each rerun of the same command keeps the finished scenes and removes the dead processes' ``.tmp-*``
folders; the last one finishes, and the output is byte-identical to an uninterrupted run's."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "data"))
from rgbd_scenes import room_poses, write_scannet_scene  # noqa: E402

SCENES = 6


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _finished(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if (p / "meta.json").exists()) if out.is_dir() else []


@pytest.mark.soak
def test_preprocess_killed_at_several_moments_finishes_byte_identical(tmp_path):
    scans = tmp_path / "scans"
    for i in range(SCENES):
        write_scannet_scene(scans, f"scene{i:04d}_00", room_poses(96, seed=i))
    (scans / "scannetv2_train.txt").write_text("".join(f"scene{i:04d}_00\n" for i in range(SCENES)))
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def command(out):
        return [sys.executable, "-m", "concerto3d", "preprocess", str(scans), str(out), "--frame-skip", "1",
                "--voxel", "0.04", "--image-size", "48x64", "--no-progress"]

    killed = tmp_path / "killed"
    rng = random.Random(0)
    kills = []  # the finished scenes at each kill
    # kill points: a random delay into the first run, then "one more scene finished" in each rerun
    for kill_point in (("delay", rng.uniform(0.5, 2.0)), ("scenes", 2), ("scenes", 4)):
        proc = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        if kill_point[0] == "delay":
            time.sleep(kill_point[1])
        else:
            while len(_finished(killed)) < kill_point[1] and proc.poll() is None:
                assert time.time() < deadline
                time.sleep(0.005)
        if proc.poll() is not None:  # finished before the kill point: nothing more to interrupt
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(_finished(killed))
        assert not (killed / "summary.json").exists()
        for folder in _finished(killed):  # a scene folder is there only when complete
            assert {"coord.npy", "correspondences.npy", "meta.json"} <= {p.name for p in (killed / folder).iterdir()}
    assert len(kills) >= 2 and len(kills[-1]) < SCENES, kills
    rerun = subprocess.run(command(killed), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    fresh = subprocess.run(command(tmp_path / "full"), env=env, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    a, b = _tree(killed), _tree(tmp_path / "full")
    print('kills at', kills)
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []
    assert not [p for p in killed.iterdir() if p.name.startswith(".tmp-")]

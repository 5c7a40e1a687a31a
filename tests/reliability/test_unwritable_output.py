"""A read-only or full output folder: ``concerto3d preprocess`` and ``concerto3d train`` stop with one error line
(no traceback) and exit status 2, and leave nothing half-written that looks finished.

Each command runs in a subprocess whose writes really fail, also when the tests run as root (CI does):

* read-only: the output folder is mode 0555; as root the child also loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
  (dropped from its capability bounding set before exec), so the kernel applies the file modes to it as to any user.
  (Switching to the ``nobody`` user instead would need the interpreter readable by nobody; under pyenv in /root it
  is not.)
* full: the child's file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) makes every write past ``LIMIT`` bytes fail
  with EFBIG, as a full disk fails with ENOSPC; both are the same error to concerto3d (concerto3d/io/paths.py).
"""

import ctypes
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "data"))
from rgbd_scenes import room_poses, write_scannet_scene  # noqa: E402

LIMIT = 32 * 1024  # bytes: more than the small files (meta.json, metrics.csv, config.yaml), less than a scene's
#                    coordinates (80 KB) or the tiny model's checkpoint

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: a preexec_fn should only make system calls


def _drop_permission_bypass() -> None:
    """preexec_fn: after exec, root no longer writes where the file modes forbid it (Linux)."""
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if _LIBC.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _file_size_limit() -> None:
    """preexec_fn: writes past LIMIT bytes fail with EFBIG instead of killing the process."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


@pytest.fixture(scope="module")
def read_only_preexec(tmp_path_factory):
    """The preexec_fn that makes a 0555 folder unwritable to the child (None when not root); skip where impossible."""
    if os.geteuid() != 0:
        return None
    folder = tmp_path_factory.mktemp("read_only_probe")
    folder.chmod(0o555)
    try:
        probe = subprocess.run([sys.executable, "-c", f"open({str(folder / 'x')!r}, 'w')"], capture_output=True,
                               text=True, preexec_fn=_drop_permission_bypass)
    except subprocess.SubprocessError as err:  # e.g. no CAP_SETPCAP in this container
        pytest.skip(f"cannot drop root's permission bypass here: {err}")
    finally:
        folder.chmod(0o755)
    if "PermissionError" not in probe.stderr:
        pytest.skip("root still writes into read-only folders after dropping CAP_DAC_OVERRIDE")
    return _drop_permission_bypass


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Two small ScanNet-layout scenes."""
    root = tmp_path_factory.mktemp("unwritable_scans")
    for i in range(2):
        write_scannet_scene(root, f"scene{i:04d}_00", room_poses(8, seed=i))
    (root / "scannetv2_train.txt").write_text("scene0000_00\nscene0001_00\n")
    return root


def _command(command, src, out):
    if command == "preprocess":
        return [sys.executable, "-m", "concerto3d", "preprocess", str(src), str(out), "--frame-skip", "1",
                "--voxel", "0.04", "--image-size", "48x64", "--no-progress"]
    return [sys.executable, "-m", "concerto3d", "train", str(src), "--out", str(out), "--steps", "2",
            *TINY_OVERRIDES, "checkpoint_every=1"]


def _run(args, preexec_fn=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(args, env=env, capture_output=True, text=True, preexec_fn=preexec_fn)


def _one_error_line(proc, command) -> str:
    """The single error line of a failed run (log lines may precede it); fails on a traceback or another status."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert errors == lines[-1:] and errors[0].startswith(f"concerto3d {command}: error: "), lines[-5:]
    return errors[0]


@pytest.mark.parametrize("command", ["preprocess", "train"])
def test_a_read_only_output_folder_is_one_line_before_any_work(command, read_only_preexec, scans, tiny_data,
                                                               tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        proc = _run(_command(command, scans if command == "preprocess" else tiny_data, out), read_only_preexec)
    finally:
        out.chmod(0o755)
    line = _one_error_line(proc, command)
    assert str(out) in line and "Permission denied" in line
    assert list(out.iterdir()) == []


def test_a_full_disk_stops_preprocess_with_one_line_and_no_finished_scene(scans, tmp_path):
    out = tmp_path / "out"
    line = _one_error_line(_run(_command("preprocess", scans, out), _file_size_limit), "preprocess")
    assert f"{out}: cannot write the output folder (File too large)" in line
    # no scene folder (complete or not), no temporary folder, no summary claiming a finished run
    assert list(out.iterdir()) == []
    rerun = _run(_command("preprocess", scans, out))  # with room again, the same command does the job
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert sorted(p.name for p in out.glob("scene*") if (p / "meta.json").is_file()) == ["scene0000_00",
                                                                                          "scene0001_00"]


def test_a_full_disk_stops_train_with_one_line_and_no_half_written_checkpoint(tiny_data, tmp_path):
    from concerto3d.training.checkpoint import checkpoint_dir, load_latest_checkpoint

    run = tmp_path / "run"
    line = _one_error_line(_run(_command("train", tiny_data, run), _file_size_limit), "train")
    assert "step_00000001.pt: cannot write the checkpoint (File too large)" in line
    assert list(checkpoint_dir(run).iterdir()) == []  # neither a checkpoint nor its temporary file
    assert not (run / "model").exists()
    rerun = _run(_command("train", tiny_data, run))  # with room again, the same command trains and checkpoints
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    state, path = load_latest_checkpoint(run)
    assert path.name == "step_00000002.pt" and state["step"] == 2

"""Nothing a user made is deleted, no model folder runs code, and outputs are checked before the work
(issue 27, items 1, 3 and 6; each test fails on c04cda9)."""

import builtins
import json

import numpy as np

import pytest

import concerto3d.demo as demo
import concerto3d.inference as inference
from concerto3d.cli import main
from concerto3d.errors import InputError


def _err(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # one line, no traceback
    return lines[0]


# -- 1. demo --fresh deletes only what a demo made ---------------------------------------------------------------

def test_demo_fresh_refuses_a_folder_it_did_not_make(tmp_path, capsys, monkeypatch):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    assert main(["demo", str(mine), "--fresh", "--scenes", "0"]) == 2
    assert "--fresh deletes only a folder an earlier demo made" in _err(capsys)
    assert (mine / "chapter1.tex").read_text() == "years of work"
    monkeypatch.chdir(mine)  # `concerto3d demo "" --fresh` named the current folder
    assert main(["demo", "", "--fresh"]) == 2
    assert (mine / "chapter1.tex").is_file()
    _err(capsys)
    assert main(["demo", str(mine)]) == 2  # nor does the demo write into it without --fresh
    assert "did not make" in _err(capsys) and sorted(p.name for p in mine.iterdir()) == ["chapter1.tex"]


def test_demo_fresh_starts_over_in_its_own_folder(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    stages = []

    class Stop(Exception):
        pass

    def first_stage(name, argv, done):
        stages.append((name, sorted(p.name for p in out.iterdir())))
        raise Stop

    monkeypatch.setattr(demo, "_stage", first_stage)
    with pytest.raises(Stop):
        main(["demo", str(out)])
    assert (out / demo.MARKER).is_file()
    (out / "scans").mkdir()
    (out / "scans" / "old.txt").write_text("from the last demo")
    with pytest.raises(Stop):
        main(["demo", str(out), "--fresh"])
    assert stages[-1] == ("synth", [demo.MARKER])  # the old outputs are gone, the folder is marked again


# -- 3. a model folder is data, never code -----------------------------------------------------------------------

def test_an_image_encoder_folder_with_code_is_refused_without_running_it(tmp_path, monkeypatch):
    from concerto3d.models.image_encoder import ImageEncoder, ImageEncoderConfig

    folder, ran = tmp_path / "evil", tmp_path / "code_ran"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil-vit", "architectures": ["EvilModel"],
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"}}))
    code = f"open({str(ran)!r}, 'w').write('ran')\nfrom transformers import PretrainedConfig\n"
    (folder / "configuration_evil.py").write_text(code + "class EvilConfig(PretrainedConfig):\n"
                                                  "    model_type = 'evil-vit'\n")
    (folder / "modeling_evil.py").write_text(code)
    monkeypatch.setattr(builtins, "input", lambda *a, **k: "y")  # a user who answers yes to a prompt
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    with pytest.raises(InputError, match="cannot load the image encoder"):
        ImageEncoder(ImageEncoderConfig(image_size=(32, 32), patch_size=16, pretrained_path=str(folder)))
    assert not ran.exists()


# -- 6. outputs are checked before the work ----------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["probe", "DATA", "--model", "RUN", "--out", "{file}/p.json"],
    ["probe", "DATA", "--model", "RUN", "--out", "{folder}"],
    ["embed", "INPUT.xyz", "--model", "RUN", "--out", "{file}/f.npy"],
    ["visualize", "SCENE", "--model", "RUN", "--out", "{file}/panel.png"],
    ["visualize", "SCENE", "--model", "RUN", "--ply", "{file}/cloud.ply"],
])
def test_an_output_that_cannot_be_written_fails_before_the_work(tmp_path, command, capsys, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    data = tmp_path / "data"
    scene = data / "scene0000_00"
    scene.mkdir(parents=True)
    np.save(scene / "coord.npy", np.random.default_rng(0).uniform(size=(100, 3)).astype(np.float32))
    (data / "splits").mkdir()
    (data / "splits" / "train.txt").write_text("scene0000_00\n")
    (data / "splits" / "val.txt").write_text("scene0000_00\n")
    cloud = tmp_path / "cloud.xyz"
    cloud.write_text("0 0 0\n1 0 0\n0 1 0\n0 0 1\n")
    work = []
    monkeypatch.setattr(inference, "load_model", lambda *a, **k: work.append("load_model") or 1 / 0)
    names = {"DATA": str(data), "SCENE": str(scene), "INPUT.xyz": str(cloud), "RUN": str(tmp_path / "run")}
    argv = [names.get(a, a).format(file=tmp_path / "a_file", folder=tmp_path / "a_folder") for a in command]
    assert main(argv) == 2
    err = _err(capsys)
    assert ("--out" in err or "--ply" in err) and work == []


# -- 2. synth and train do not overwrite what they did not make ----------------------------------------------------

def test_synth_refuses_a_folder_with_someone_elses_scans(tmp_path, capsys):
    root = tmp_path / "scannet"
    (root / "scans" / "scene0000_00").mkdir(parents=True)
    (root / "scans" / "scene0000_00" / "scene0000_00.sens").write_bytes(b"a real scan")
    (root / "scannetv2_train.txt").write_text("scene0000_00\n")
    assert main(["synth", str(root), "--scenes", "1", "--frames", "1", "--color-size", "32x24",
                 "--depth-size", "16x12"]) == 2
    assert "synth did not make" in _err(capsys)
    assert (root / "scans" / "scene0000_00" / "scene0000_00.sens").read_bytes() == b"a real scan"
    assert (root / "scannetv2_train.txt").read_text() == "scene0000_00\n"


@pytest.mark.parametrize("present", ["notes.txt", "model"])
def test_train_refuses_a_folder_it_would_overwrite_before_any_work(tmp_path, capsys, monkeypatch, present):
    import concerto3d.data.dataset as dataset

    run = tmp_path / "run"
    (run / present).mkdir(parents=True) if present == "model" else (run.mkdir(), (run / present).write_text("x"))
    monkeypatch.setattr(dataset.SceneDataset, "__init__", lambda *a, **k: 1 / 0)  # the work must not start
    assert main(["train", str(tmp_path / "data"), "--out", str(run), "--steps", "1"]) == 2
    assert ("does not write" if present == "notes.txt" else "already holds a trained model") in _err(capsys)
    assert (run / present).exists()


# -- 4. checkpoint retention keeps the newest readable checkpoint; 8. interrupted writes are cleaned up -----------

def test_retention_after_a_resume_from_a_damaged_checkpoint_keeps_the_good_ones(tmp_path):
    import torch

    from concerto3d.training.checkpoint import list_checkpoints, load_latest_checkpoint, save_checkpoint

    run = tmp_path / "run"
    for step in (4, 8):
        save_checkpoint(run, {"step": step, "w": torch.full((3,), float(step))}, step, keep=2)
    damaged = list_checkpoints(run)[-1]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    state, path = load_latest_checkpoint(run)
    assert state["step"] == 4  # the damaged step 8 is skipped: the run resumes at 4
    save_checkpoint(run, {"step": 5, "w": torch.full((3,), 5.0)}, 5, keep=1)
    assert [p.name for p in list_checkpoints(run)] == ["step_00000005.pt"]  # not the damaged step 8
    assert load_latest_checkpoint(run)[0]["step"] == 5


def test_a_new_run_removes_what_an_interrupted_write_left(tmp_path, tiny_data):
    from conftest import TINY_OVERRIDES

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / ".step_00000008.pt.abc123.tmp").write_bytes(b"\0" * 1000)
    (run / ".model-xyz").mkdir()
    (run / ".model-xyz" / "point_encoder.safetensors").write_bytes(b"half")
    assert main(["train", str(tiny_data), "--out", str(run), "--steps", "1", *TINY_OVERRIDES]) == 0
    assert not list((run / "checkpoints").glob(".*.tmp")) and not list(run.glob(".model-*"))


# -- 7. a damaged metrics.csv does not stop a resume -------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"\xff\xfe garbage \x00", b"step,loss\n1,0.5\nnot a step,0.4\n"])
def test_resume_with_an_empty_or_damaged_metrics_csv(tmp_path, tiny_data, content, caplog):
    from conftest import TINY_OVERRIDES

    from concerto3d.training.logging import read_metrics

    run = tmp_path / "run"
    common = [str(tiny_data), "--out", str(run), *TINY_OVERRIDES, "checkpoint_every=1"]
    assert main(["train", *common, "--steps", "2"]) == 0
    (run / "metrics.csv").write_bytes(content)
    assert main(["train", *common, "--steps", "3", "--resume"]) == 0
    assert [int(r["step"]) for r in read_metrics(run)] == [2]  # the resumed step, in a fresh file
    assert (run / "metrics.damaged-2.csv").read_bytes() == content  # the damaged one kept aside


# -- 11. inputs the CLI fuzz found tracebacks for: one line, exit 2 ----------------------------------------------

@pytest.mark.parametrize("argv, says", [
    (["ablate", "{tmp}", "--out", "{tmp}/abl", "--seeds", "99999999999"], "seed count in 1..1000"),
    (["ablate", "{tmp}", "--out", "{tmp}/abl", "--seeds", "1,99999999999"], "distinct seeds"),
    (["synth", "{tmp}/s", "--workers", "2147483648"], "--workers must be in 1..256"),
    (["synth", "{tmp}/s", "--frames", "9999999999999999999999999"], "--frames must be in"),
    (["probe", "{tmp}", "--model", "{tmp}", "--lr", "nan"], "--lr: expected a finite number"),
    (["preprocess", "{tmp}", "{tmp}/out", "--abs-tol", "inf"], "--abs-tol: expected a finite number"),
    (["train", "{tmp}", "--out", "{tmp}/run", "optim.lr=.nan"], "optim.lr: expected a finite number"),
    (["train", "{tmp}", "--out", "{tmp}/run", "objective.temperature=.inf"], "expected a finite number"),
    (["probe", "{tmp}", "--model", "{tmp}", "--out", "{tmp}/" + "a" * 300 + ".json"], "File name too long"),
    (["embed", "{tmp}/c.xyz", "--model", "{tmp}", "--out", "{tmp}/" + "a" * 300 + "/f.npy"], "File name too long"),
])
def test_bad_values_and_impossible_paths_are_one_line_errors(tmp_path, capsys, argv, says):
    try:
        code = main([a.format(tmp=tmp_path) for a in argv])
    except SystemExit as exit_:  # argparse's own refusal: its usage line, then the one-line reason
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and says in err[-1] and "Traceback" not in "\n".join(err)


# -- 5. one writer per output folder -----------------------------------------------------------------------------

def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys, tiny_data):
    import os
    import socket
    import subprocess
    import sys

    from conftest import TINY_OVERRIDES

    from concerto3d.io.paths import LOCK_NAME, output_lock

    run, syn = tmp_path / "run", tmp_path / "syn"
    run.mkdir()
    syn.mkdir()
    with output_lock(run, "run folder"), output_lock(syn):  # a live holder: this test's own process
        assert main(["train", str(tiny_data), "--out", str(run), "--steps", "1", *TINY_OVERRIDES]) == 2
        assert f"another concerto3d process (pid {os.getpid()}" in _err(capsys)
        assert main(["synth", str(syn), "--scenes", "1", "--frames", "1"]) == 2
        assert "another concerto3d process" in _err(capsys) and not (syn / "scans" / "scene0000_00").exists()
    assert not (run / LOCK_NAME).exists()  # released on the way out
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / LOCK_NAME).write_text(f"{dead.stdout.strip()} {socket.gethostname()}\n")  # left by a killed run
    assert main(["train", str(tiny_data), "--out", str(run), "--steps", "1", *TINY_OVERRIDES]) == 0
    assert not (run / LOCK_NAME).exists()


# -- 8. workers die with their parent ----------------------------------------------------------------------------

def _children(pid: int) -> set[int]:
    from pathlib import Path

    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return found


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="Linux process tree")
def test_synth_workers_end_when_synth_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "concerto3d", "synth", str(tmp_path / "out"), "--scenes", "6",
                             "--frames", "200", "--workers", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.time() + 60, set()
        while time.time() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = {c for c in _children(proc.pid) if "spawn_main" in open(f"/proc/{c}/cmdline").read()}
        assert len(workers) >= 2, "the workers did not start"
        time.sleep(2)  # let them import and start rendering
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 20
        while time.time() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
            time.sleep(0.5)
        alive = [w for w in workers if os.path.exists(f"/proc/{w}")]
        for w in alive:  # clean up before failing
            os.kill(w, signal.SIGKILL)
        assert not alive, f"workers {alive} outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_failed_demo_stage_exits_2_with_one_more_line(tmp_path, capsys, monkeypatch):
    import concerto3d.cli as cli

    real_main = cli.main
    monkeypatch.setattr(cli, "main", lambda argv: 2 if argv[0] == "synth" else real_main(argv))
    assert real_main(["demo", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("concerto3d demo: error: the synth stage failed (exit 2)")

"""Generated command lines: 200 argument lists per subcommand, built from the subcommand's own options, mixed with
bad values (negative, zero, NaN, inf, malformed sizes, unknown or ill-typed ``key=value`` overrides) and bad paths
(missing, empty, junk, a file where a folder belongs, scenes with junk arrays, a model folder with a junk config).

``concerto3d`` must answer each with a usage error from argparse or one line ``concerto3d CMD: error: ...``, both
exit 2: no traceback, no hang (20 s per case), and no file or folder changed anywhere but under the output paths the
command line named (``--out``, ``--ply``, the output positional). Every case is a bad input: no generated command
line can succeed, as none names usable scans or a usable model; ``synth`` and ``demo`` only get an output path that
is a file, lies under a file, or is a folder they did not make, so they can never start generating."""

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from concerto3d.cli import build_parser, main
from fuzzing import FUZZ, time_limit

COMMANDS = ("preprocess", "train", "probe", "visualize", "ablate", "synth", "embed", "demo")
CASES_PER_COMMAND = 200
VALUES = ["0", "-1", "1", "2", "nan", "inf", "-inf", "1e309", "0.5", "abc", "", "48x64", "50x64", "0x0", "-3x4",
          "1x", "x", "auto", "cpu", "cuda", "joint", "2d", "steps=nan", "steps=-5", "optim.lr=abc", "optim.lrr=1",
          "data.image_size=[1,2]", "data.image_size=oops", "batch_size=0", "bogus.key=1", "=", "a=b=c",
          "data.max_points=-1", "device=tpu", "objective.kind=4d"]
GOOD = ["1", "2", "0.5", "48x64", "32x48"]  # values most options accept, so that the subcommand judges the rest


@pytest.fixture(scope="module")
def bad_paths(tmp_path_factory):
    """Named bad inputs: {name: path}."""
    root = tmp_path_factory.mktemp("bad_paths")
    (root / "empty_dir").mkdir()
    (root / "empty_file").write_bytes(b"")
    (root / "junk.bin").write_bytes(bytes(range(256)) * 4)
    (root / "junk.yaml").write_text("steps: [unclosed\n  - : :\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    scenes = root / "junk_scenes"
    (scenes / "scene0000_00" / "images").mkdir(parents=True)
    for name in ("coord", "color", "normal", "segment20", "correspondences"):
        (scenes / "scene0000_00" / f"{name}.npy").write_bytes(b"\x93NUMPY junk")
    (scenes / "scene0000_00" / "meta.json").write_text("{not json")
    (scenes / "splits").mkdir()
    (scenes / "splits" / "train.txt").write_text("scene0000_00\nscene9999_00\n")
    (scenes / "splits" / "val.txt").write_text("scene0000_00\n")
    tiny = root / "one_point_scene"  # a scene of a single point, arrays otherwise valid
    (tiny / "scene0000_00" / "images").mkdir(parents=True)
    np.save(tiny / "scene0000_00" / "coord.npy", np.zeros((1, 3), np.float32))
    np.save(tiny / "scene0000_00" / "color.npy", np.zeros((1, 3), np.uint8))
    np.save(tiny / "scene0000_00" / "normal.npy", np.array([[0, 0, 1]], np.float32))
    np.save(tiny / "scene0000_00" / "segment20.npy", np.zeros(1, np.int16))
    np.save(tiny / "scene0000_00" / "correspondences.npy", np.zeros((0, 4), np.int32))
    (tiny / "scene0000_00" / "meta.json").write_text("{}")
    (tiny / "splits").mkdir()
    (tiny / "splits" / "train.txt").write_text("scene0000_00\n")
    (tiny / "splits" / "val.txt").write_text("scene0000_00\n")
    model = root / "junk_model" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"format": 1, "point_encoder": {"sa_channels": "x"}}')
    (model / "point_encoder.safetensors").write_bytes(b"junk")
    paths = {p.name: str(p) for p in root.iterdir()}
    paths["missing"] = str(root / "does_not_exist")
    paths["under_a_file"] = str(root / "empty_file" / "out")
    paths["scene_of_junk"] = str(scenes / "scene0000_00")
    paths["scene_of_one_point"] = str(tiny / "scene0000_00")
    paths["model_folder"] = str(model)
    return paths


def _options(command: str) -> list[argparse.Action]:
    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [a for a in sub._actions if a.option_strings and a.option_strings[0] not in ("-h", "--help")]


OPTIONS = {c: _options(c) for c in COMMANDS}


OUTPUT_OPTIONS = ("--out", "--ply", "--html")
OUTPUT_POSITIONAL = {"preprocess": 1, "synth": 0, "demo": 0}  # index among the positionals


def _tree(root: Path) -> dict[str, tuple]:
    """{path: (kind, size, mtime_ns)} of everything under ``root`` (links not followed)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st_ = os.lstat(path)
            out[path] = (name in dirs, st_.st_size if name in files else 0, st_.st_mtime_ns)
    return out


def _outputs(command: str, argv: list[str]) -> list[str]:
    """The output paths that ``argv`` names (absolute)."""
    outs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in OUTPUT_OPTIONS]
    positionals = [a for a in argv[1:] if not a.startswith("-") and "=" not in a]
    if command in OUTPUT_POSITIONAL and len(positionals) > OUTPUT_POSITIONAL[command]:
        outs.append(positionals[OUTPUT_POSITIONAL[command]])
    return [os.path.abspath(o) for o in outs if o]


@st.composite
def command_lines(draw, command: str, paths: list[str], not_generating: list[str]):
    path = st.sampled_from(paths)
    if command in ("synth", "demo"):  # never a folder they could generate into
        first = st.sampled_from(not_generating)
    elif command == "ablate":  # with a readable (one-point) scene it would fit a probe for its random row first
        first = st.sampled_from([p for p in paths if "one_point" not in p])
    else:
        first = path
    argv = [command, draw(first)]
    if command == "preprocess" and draw(st.integers(0, 4)):  # most runs get OUT, so preprocess judges SCANS
        argv.append(draw(path))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(OPTIONS[command]))
        argv.append(action.option_strings[0])
        if action.nargs == 0:
            continue
        if action.choices:
            argv.append(draw(st.sampled_from(list(action.choices) + ["bogus"])))
        else:
            argv.append(draw(path if action.metavar in ("RUN", "YAML", "JSON", "PNG", "PLY", "HTML", "DIR", "FEATURES.npy")
                             else st.sampled_from(GOOD) | st.sampled_from(VALUES)))
    if command in ("train", "ablate"):
        argv += draw(st.lists(st.sampled_from([v for v in VALUES if "=" in v]), max_size=1))
    if command in ("train", "ablate", "probe", "visualize", "embed") and draw(st.booleans()):
        # most runs get their required options, so the subcommand itself (not argparse) judges the rest
        argv += ["--out" if command in ("train", "ablate") else "--model", draw(path)]
        if command == "embed":
            argv += ["--out", draw(path)]
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(["--bogus", "-x", "--", "extra"])))
    return argv


@pytest.mark.parametrize("command", COMMANDS)
def test_generated_command_lines(command, bad_paths, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a relative path a command writes lands here, where the tree check sees it
    root = Path(bad_paths["empty_dir"]).parent
    paths = list(bad_paths.values())
    not_generating = [bad_paths[k] for k in ("junk.bin", "empty_file", "under_a_file", "junk_scenes",
                                             "model_folder")] + [""]
    outcomes = {"usage": 0, "error": 0}

    @settings(FUZZ, max_examples=CASES_PER_COMMAND)
    @given(argv=command_lines(command, paths, not_generating))
    def check(argv):
        before = {**_tree(root), **_tree(tmp_path)}
        with time_limit():
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse: usage line + error on stderr
                code = exit_.code
                err = capsys.readouterr().err
                assert code == 2 and "error:" in err and "Traceback" not in err, (argv, code, err)
                outcomes["usage"] += 1
            else:
                err = capsys.readouterr().err
                lines = [line for line in err.splitlines() if line.startswith("concerto3d ")]
                assert code == 2, (argv, code, err)
                assert len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, (argv, err)
                outcomes["error"] += 1
        after = {**_tree(root), **_tree(tmp_path)}
        allowed = _outputs(command, argv)
        changed = [p for p in before.keys() | after.keys() if before.get(p) != after.get(p)]
        outside = [p for p in changed if not any(p == o or p.startswith(o + os.sep) for o in allowed)]
        assert not outside, (argv, outside)

    check()
    # both paths are exercised: argparse's rejections and the subcommand's own checks
    assert outcomes["usage"] > 10 and outcomes["error"] > 10, outcomes

"""Generated command lines: 500 argument lists built from each subcommand's own options, mixed with bad values
(negative, zero, NaN, inf, malformed sizes, unknown or ill-typed ``key=value`` overrides) and bad paths (missing,
empty, junk, a file where a folder belongs, scenes with junk arrays, a model folder with a junk config).

``concerto3d`` must answer each with a usage error from argparse (exit 2) or one line ``concerto3d CMD: error:
...`` (exit 2): no traceback, no hang (20 s per case). ``demo`` is left out (with good arguments it runs the whole
pipeline); ``synth`` always gets an output path that is a file, so it can never start generating."""

import argparse

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from concerto3d.cli import build_parser, main
from fuzzing import FUZZ, time_limit

COMMANDS = ("preprocess", "train", "probe", "visualize", "ablate", "synth")
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


@st.composite
def command_lines(draw, paths: list[str]):
    command = draw(st.sampled_from(COMMANDS))
    path = st.sampled_from(paths)
    # synth's positional is always a file: with a usable folder it would start generating scenes
    # ablate with a readable (one-point) scene would fit a probe for its random row before it looks at the data
    first = st.sampled_from([p for p in paths if "one_point" not in p]) if command == "ablate" else path
    argv = [command, draw(st.just("FILE") if command == "synth" else first)]
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(OPTIONS[command]))
        argv.append(action.option_strings[0])
        if action.nargs == 0:
            continue
        if action.choices:
            argv.append(draw(st.sampled_from(list(action.choices) + ["bogus"])))
        else:
            argv.append(draw(path if action.metavar in ("RUN", "YAML", "JSON", "PNG", "PLY", "DIR")
                             else st.sampled_from(GOOD) | st.sampled_from(VALUES)))
    if command in ("train", "ablate"):
        argv += draw(st.lists(st.sampled_from([v for v in VALUES if "=" in v]), max_size=1))
    if command in ("train", "ablate", "probe", "visualize") and draw(st.booleans()):
        # most runs get their required option, so the subcommand itself (not argparse) judges the rest
        argv += ["--out" if command in ("train", "ablate") else "--model", draw(path)]
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(["--bogus", "-x", "--", "extra"])))
    return argv


def test_generated_command_lines(bad_paths, capsys):
    paths = [p for k, p in bad_paths.items() if k not in ("junk.yaml", "list.yaml")] + \
        [bad_paths["junk.yaml"], bad_paths["list.yaml"]]
    outcomes = {"usage": 0, "error": 0}

    @FUZZ
    @given(argv=command_lines(paths))
    def check(argv):
        argv = [bad_paths["junk.bin"] if a == "FILE" else a for a in argv]
        with time_limit():
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse: usage line + error on stderr
                assert exit_.code == 2, (argv, exit_.code)
                err = capsys.readouterr().err
                assert "error:" in err and "Traceback" not in err, (argv, err)
                outcomes["usage"] += 1
                return
        err = capsys.readouterr().err
        # 2: the user's mistake; 1: the environment cannot do it (visualize --interactive without a display)
        assert code in (1, 2), (argv, code, err)
        lines = [line for line in err.splitlines() if line.startswith("concerto3d ")]
        assert len(lines) == 1 and (code == 1 or ": error: " in lines[0]), (argv, err)
        assert "Traceback" not in err, (argv, err)
        outcomes["error"] += 1

    check()
    # both paths are exercised: argparse's rejections and the subcommands' own checks
    assert outcomes["usage"] > 25 and outcomes["error"] > 25, outcomes

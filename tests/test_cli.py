"""The command line contract: every subcommand has --help; a user's mistake is one line on stderr and exit 2."""

import subprocess
import sys

import pytest

from concerto3d import cli
from concerto3d.errors import InputError


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: concerto3d " + name in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_input_error_is_one_line_without_traceback(monkeypatch, capsys):
    class Broken:
        @staticmethod
        def add_arguments(parser):
            parser.add_argument("path")

        @staticmethod
        def run(args):
            raise InputError("expected a folder of scans,\n got a file", path=args.path)

    monkeypatch.setattr(cli, "_load", lambda name: Broken)
    assert cli.main(["synth", "some/file.txt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "some/file.txt: expected a folder of scans, got a file" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["synth", ""], ["preprocess", "scans", " "], ["probe", "data", "--model", ""], ["demo", ""]])
def test_an_empty_path_is_refused_before_any_work(argv, tmp_path, monkeypatch, capsys):
    """``synth ""`` (an unset shell variable) would otherwise generate into the current folder."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    assert "expected a value, got an empty argument" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_python_dash_m_runs_the_same_cli():
    result = subprocess.run([sys.executable, "-m", "concerto3d", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("concerto3d ")


@pytest.mark.parametrize("name", ["train", "ablate"])
def test_overrides_may_follow_options(name):
    args = cli.build_parser([name, "DATA", "--out", "RUN", "--steps", "3", "batch_size=4", "optim.lr=1e-3"]) \
        .parse_args([name, "DATA", "--out", "RUN", "--steps", "3", "batch_size=4", "optim.lr=1e-3"])
    assert args.overrides == ["batch_size=4", "optim.lr=1e-3"]
    assert args.steps == 3

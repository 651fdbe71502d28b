"""The `satsr` console script: --help for every subcommand, params errors exit cleanly."""

import subprocess
import sys

import pytest

from satsr.cli import build_parser, main

SUBCOMMANDS = ["source", "filter", "split", "png", "natural", "pretrain", "tune", "finetune", "evaluate", "select",
               "predict", "params"]


def test_every_subcommand_has_help(capsys):
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: satsr {name}" in out and "--params" in out
    choices = build_parser()._subparsers._group_actions[0].choices
    assert set(SUBCOMMANDS) <= set(choices)


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "satsr.cli", "--help"], capture_output=True, text=True, check=True)
    assert "source" in out.stdout and "png" in out.stdout


def test_bad_params_exit_2_with_key_path(tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text("source:\n  lr_size: 1\n")
    assert main(["params", "--params", str(bad)]) == 2
    assert "source.lr_size" in capsys.readouterr().err


def test_params_prints_a_section(capsys):
    assert main(["params", "split", "--flat"]) == 0
    assert '"seed": 42' in capsys.readouterr().out

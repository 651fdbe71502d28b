"""The `satsr` console script: --help for every subcommand, params errors exit cleanly."""

import subprocess
import sys

import pytest

from satsr.cli import build_parser, main

SUBCOMMANDS = ["source", "filter", "split", "png", "natural", "pretrain", "tune", "finetune", "evaluate", "select",
               "calibrate", "predict", "params"]


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


# ------------------------------------------------------------------------------------- errors
def _raise_from_source(monkeypatch, err: Exception) -> None:
    """`satsr source` fails with ``err`` (run from ``tmp_path``, whose params.yaml holds the defaults)."""
    import satsr.data.sources as sources

    def fail(*_args, **_kwargs):
        raise err

    monkeypatch.setattr(sources, "run_source", fail)


def _tmp_args(tmp_path) -> list[str]:
    (tmp_path / "params.yaml").write_text("{}\n")  # the defaults, whatever the repo's params.yaml holds
    return ["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "raw")]


def _user_errors():
    from satsr.data.geotiff import RasterError
    from satsr.data.natural import DownloadError
    from satsr.data.sources.gee import GeeAuthError

    return [GeeAuthError("No Earth Engine credentials found.\nHow to authenticate ..."),
            RasterError("data/raw/x_L8.tif: not a readable GeoTIFF"),
            DownloadError("div2k: cannot download https://example.invalid/x.zip (offline)")]


@pytest.mark.parametrize("index", range(3))
def test_user_errors_print_their_message_without_a_traceback(index, monkeypatch, tmp_path, capsys):
    from satsr.errors import SatsrError

    err = _user_errors()[index]
    assert isinstance(err, SatsrError)
    _raise_from_source(monkeypatch, err)
    assert main(["source", *_tmp_args(tmp_path)]) == 1
    text = capsys.readouterr().err
    assert f"satsr: {err}" in text and "Traceback" not in text


@pytest.mark.parametrize("argv", [["--debug", "source"], ["source", "--debug"]])
def test_debug_shows_the_traceback(argv, monkeypatch, tmp_path, capsys):
    err = _user_errors()[2]
    _raise_from_source(monkeypatch, err)
    assert main([*argv, *_tmp_args(tmp_path)]) == 1
    text = capsys.readouterr().err
    assert "Traceback (most recent call last)" in text and "DownloadError" in text and f"satsr: {err}" in text


def test_unexpected_errors_keep_their_traceback(monkeypatch, tmp_path):
    _raise_from_source(monkeypatch, KeyError("bug"))
    with pytest.raises(KeyError, match="bug"):
        main(["source", *_tmp_args(tmp_path)])


def test_every_error_class_of_satsr_is_a_satsr_error():
    """No user-facing error class outside the hierarchy (cli.py catches SatsrError, not names). Read from
    the source (no imports: TensorFlow, MLflow and Earth Engine stay unloaded)."""
    import ast
    from pathlib import Path

    import satsr

    internal = {"_NonFinite"}  # control flow inside the trainer, never reaches the user
    bases: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for path in sorted(Path(satsr.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
                where[node.name] = path.name

    def is_satsr_error(name: str, seen: frozenset = frozenset()) -> bool:
        return name == "SatsrError" or any(
            b in bases and b not in seen and is_satsr_error(b, seen | {name}) for b in bases.get(name, []))

    errors = [n for n in bases if n.endswith(("Error", "Exception")) and n not in internal | {"SatsrError"}]
    assert {"ParamsError", "GeeAuthError", "RasterError", "DownloadError", "PredictError"} <= set(errors)
    outside = [f"{where[n]}: {n}" for n in errors if not is_satsr_error(n)]
    assert not outside, f"error classes not deriving from satsr.errors.SatsrError: {outside}"


def test_missing_gee_credentials_end_with_the_help_not_a_traceback(tmp_path):
    """The real path: `satsr source` with provider gee and no credentials anywhere."""
    import os

    params = tmp_path / "params.yaml"
    params.write_text("source:\n  provider: gee\n  gee:\n    project: p\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("EE_SERVICE_ACCOUNT_KEY_FILE", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "satsr.cli", "source", "--params", str(params), "--out",
                           str(tmp_path / "raw")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "satsr: No Earth Engine credentials found." in proc.stderr and "Traceback" not in proc.stderr

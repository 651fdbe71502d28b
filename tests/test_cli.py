"""The `satsr` console script: --help for every subcommand, params errors exit cleanly."""

import errno
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from satsr.cli import build_parser, main

REPO_ROOT = Path(__file__).resolve().parents[1]
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
    """No user-facing error class outside the hierarchy (satsr.cli catches SatsrError, not names). Read from
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


# ------------------------------------------------------------ issue 13: params --check, machine errors, SATSR_DEBUG
def test_params_check_validates_in_one_line(tmp_path, capsys):
    good = tmp_path / "params.yaml"
    good.write_text("seed: 3\n")
    assert main(["params", "--check", "--params", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{good}: valid (") and out.count("\n") == 1
    dup = tmp_path / "dup.yaml"
    dup.write_text("split:\n  seed: 1\n  seed: 2\n")
    assert main(["params", "--check", "--params", str(dup)]) == 2
    err = capsys.readouterr().err
    assert err == f"satsr: {dup}: line 3: duplicate key 'seed' (expected each key once per section; " \
                  "it is first set at line 2)\n"


def test_params_check_needs_no_tensorflow(tmp_path):
    """Cheap enough to run before every `dvc repro` (make demo does)."""
    code = ("import sys; from satsr.cli import main; rc = main(['params', '--check']); "
            "assert 'tensorflow' not in sys.modules and 'mlflow' not in sys.modules; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_make_demo_checks_params_before_dvc_repro():
    demo = (REPO_ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert demo.index("satsr params --check") < demo.index("dvc repro")


@pytest.mark.parametrize("err, words", [
    (OSError(errno.ENOSPC, "No space left on device", "data/raw/manifest.csv"),
     "satsr: data/raw/manifest.csv: No space left on device (expected free space on that file system"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/raw"),
     "satsr: /ro/raw: Permission denied (expected read/write permission"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/x.tif"),
     "satsr: /mnt/x.tif: Read-only file system (expected a writable file system)"),
    (ConnectionError("Connection refused"),
     "satsr: source: network error: Connection refused (expected a reachable network service"),
    (socket.gaierror(-3, "Temporary failure in name resolution"),
     "satsr: source: network error: Temporary failure in name resolution (expected"),
    (TimeoutError("timed out"), "satsr: source: network error: timed out (expected"),
    (type("ConnectionError", (OSError,), {})("Max retries exceeded with url: /v1/projects"),  # requests' class
     "satsr: source: network error: Max retries exceeded with url: /v1/projects (expected"),
])
def test_machine_errors_are_one_line_without_a_traceback(err, words, monkeypatch, tmp_path, capsys):
    """A full disk, a missing permission or a network failure is the machine's state, not a bug."""
    _raise_from_source(monkeypatch, err)
    assert main(["source", *_tmp_args(tmp_path)]) == 1
    text = capsys.readouterr().err
    assert words in text and "Traceback" not in text
    assert len([line for line in text.splitlines() if line.startswith("satsr: ")]) == 1


def test_other_os_errors_keep_their_traceback(monkeypatch, tmp_path):
    """A FileNotFoundError that no stage turned into a MissingInputError is a bug: it must show where."""
    _raise_from_source(monkeypatch, FileNotFoundError(errno.ENOENT, "No such file or directory", "x"))
    with pytest.raises(FileNotFoundError):
        main(["source", *_tmp_args(tmp_path)])


@pytest.mark.parametrize("value, shown", [("1", True), ("true", True), ("0", False), ("", False)])
def test_satsr_debug_env_adds_the_traceback(value, shown, monkeypatch, tmp_path, capsys):
    """DVC runs stages/*.py without --debug; SATSR_DEBUG=1 dvc repro shows the traceback."""
    monkeypatch.setenv("SATSR_DEBUG", value)
    _raise_from_source(monkeypatch, OSError(errno.ENOSPC, "No space left on device", "f"))
    assert main(["source", *_tmp_args(tmp_path)]) == 1
    assert ("Traceback (most recent call last)" in capsys.readouterr().err) is shown

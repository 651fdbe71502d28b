"""Issue 13, item 11 (stage part): every DVC stage entry point (stages/*.py, run as DVC runs it) ends a user
mistake or a machine fault with ONE line ``satsr: <file or key>: <what is wrong> (<what was expected>)`` and a
non-zero exit, no traceback (``SATSR_DEBUG=1`` adds it): missing inputs of split / png / filter, an empty or
missing ``source.folder.path``, a full disk during ``source``."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from satsr.config import Params

REPO = Path(__file__).resolve().parents[2]
STAGES = sorted(p.stem for p in (REPO / "stages").glob("*.py"))
#: one user-facing line: "satsr: <file or key>: <what is wrong> (... expected ...)"
ONE_LINE = re.compile(r"^satsr: \S[^:]*: .+\(.*expected.*\)")
TINY = {"source": {"lr_size": 16, "demo": {"n_pairs": 4, "n_locations": 2, "n_regions": 2, "workers": 1,
                                           "bad_fraction": 0.0}},
        "png": {"workers": 1}, "split": {"allow_empty_test": True}}


def run_stage(name: str, cwd: Path, debug: bool = False) -> subprocess.CompletedProcess:
    """``python stages/<name>.py`` in ``cwd`` (its params.yaml, its data/), as ``dvc repro`` runs it."""
    env = {k: v for k, v in os.environ.items() if k != "SATSR_DEBUG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if debug:
        env["SATSR_DEBUG"] = "1"
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{name}.py")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("satsr: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert ONE_LINE.match(lines[0]), lines[0]
    return lines[0]


def write_params(folder: Path, text: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    import yaml

    doc = {**TINY, **(yaml.safe_load(text) or {})}
    (folder / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """data/raw, data/filter and data/split of 4 tiny demo pairs, made in-process (seconds)."""
    from satsr.data.filters import run_filter
    from satsr.data.sources import run_source
    from satsr.data.split import run_split

    root = tmp_path_factory.mktemp("stage_inputs")
    params = Params.model_validate(TINY)
    here = Path.cwd()
    os.chdir(root)  # relative paths, as under DVC: the report's lr_path/hr_path then point into each copy
    try:
        run_source(params, Path("data/raw"))
        run_filter(params, Path("data/raw"), Path("data/filter"))
        run_split(params, Path("data/raw"), Path("data/filter/report.csv"), Path("data/split"))
    finally:
        os.chdir(here)
    write_params(root)
    return root


def copy_of(pipeline: Path, tmp_path: Path, *keep: str) -> Path:
    """A fresh working folder with params.yaml and only the ``keep`` folders of ``pipeline``."""
    work = write_params(tmp_path / "w")
    for rel in keep:
        shutil.copytree(pipeline / rel, work / rel)
    return work


def test_every_stage_script_goes_through_the_one_cli_wrapper():
    """One implementation of "message, exit code, --debug": each thin stage script calls satsr.cli.main."""
    assert {"source", "filter", "split", "png", "evaluate", "finetune", "select_model"} <= set(STAGES)
    for name in STAGES:
        text = (REPO / "stages" / f"{name}.py").read_text()
        assert "from satsr.cli import main" in text and "sys.exit(main([" in text, name


# ---------------------------------------------------------------------------------- missing inputs
@pytest.mark.slow
def test_split_without_raw_data(tmp_path):
    line = one_error_line(run_stage("split", write_params(tmp_path / "w")))
    assert line.startswith("satsr: data/raw/manifest.csv: manifest not found (expected the source stage's")


@pytest.mark.slow
def test_split_without_the_filter_report(pipeline, tmp_path):
    line = one_error_line(run_stage("split", copy_of(pipeline, tmp_path, "data/raw")))
    assert line.startswith("satsr: data/filter/report.csv: filter report not found (expected the filter stage's")


@pytest.mark.slow
def test_png_without_the_split_table(pipeline, tmp_path):
    line = one_error_line(run_stage("png", copy_of(pipeline, tmp_path, "data/raw", "data/filter")))
    assert line.startswith("satsr: data/split/split.csv: split table not found (expected the split stage's")


@pytest.mark.slow
def test_png_with_raw_files_gone(pipeline, tmp_path):
    work = copy_of(pipeline, tmp_path, "data/raw", "data/filter", "data/split")
    gone = sorted((work / "data/raw").glob("*_S2_*.tif"))[0]
    gone.unlink()
    line = one_error_line(run_stage("png", work))
    assert f"{gone.name}: raw file not found (1 file(s) missing; expected the GeoTIFFs" in line
    assert "dvc checkout source" in line


@pytest.mark.slow
def test_filter_without_raw_data(tmp_path):
    line = one_error_line(run_stage("filter", write_params(tmp_path / "w")))
    assert line.startswith("satsr: data/raw/manifest.csv: manifest not found")


@pytest.mark.slow
def test_filter_with_a_manifest_but_no_files(pipeline, tmp_path):
    """Not 100 % 'missing_lr' rejections and an empty dataset three stages later: a missing input now."""
    work = copy_of(pipeline, tmp_path, "data/raw")
    for tif in (work / "data/raw").glob("*.tif"):
        tif.unlink()
    line = one_error_line(run_stage("filter", work))
    assert "raw file not found (none of the 4 pair(s) of data/raw/manifest.csv has its GeoTIFFs" in line


@pytest.mark.slow
def test_satsr_debug_adds_the_traceback_to_a_stage(tmp_path):
    proc = run_stage("split", write_params(tmp_path / "w"), debug=True)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "MissingInputError" in proc.stderr
    assert "satsr: data/raw/manifest.csv: manifest not found" in proc.stderr


# ---------------------------------------------------------------------------------- source.folder.path
@pytest.mark.slow
@pytest.mark.parametrize("value, words", [
    ("null", "source.folder.path: not set (expected the folder to import"),
    ("''", "source.folder.path: not set (expected the folder to import"),
    ("'   '", "source.folder.path: not set (expected the folder to import"),
    ("/nonexistent/seed_tifs", "source.folder.path: /nonexistent/seed_tifs: folder not found (expected a folder"),
    ("params.yaml", "source.folder.path: params.yaml: a file, not a folder (expected a folder"),
])
def test_source_folder_path_empty_or_missing(value, words, tmp_path):
    work = write_params(tmp_path / "w", f"source:\n  provider: folder\n  folder:\n    path: {value}\n")
    line = one_error_line(run_stage("source", work))
    assert line.startswith(f"satsr: {words}"), line
    assert not list((work / "data/raw").glob("*.tif"))


# ---------------------------------------------------------------------------------- Earth Engine
@pytest.mark.slow
def test_gee_without_credentials_as_a_stage_ends_without_a_traceback(tmp_path):
    """GeeAuthError's message (with its how-to lines) is the whole story when DVC runs the source stage."""
    work = write_params(tmp_path / "w", "source:\n  provider: gee\n  gee:\n    project: p\n    regions:\n"
                                        "      - {name: r, start: [-62.0, -3.5]}\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("EE_SERVICE_ACCOUNT_KEY_FILE", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG",
                        "SATSR_DEBUG")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "source.py")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("satsr: ")]
    assert len(lines) == 1 and "Earth Engine" in lines[0], proc.stderr[-3000:]


# ---------------------------------------------------------------------------------- full disk
@pytest.mark.slow
def test_full_disk_during_source_on_a_real_tmpfs(tmp_path):
    """A real full file system (a 40 KiB tmpfs under data/raw); skipped where mounting is not allowed."""
    work = write_params(tmp_path / "w")
    raw = work / "data/raw"
    raw.mkdir(parents=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", f"satsr-{uuid.uuid4().hex[:8]}", str(raw)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.strip() or mount.returncode}); the in-process "
                    "fault injection below covers the same code path")
    try:
        line = one_error_line(run_stage("source", work))
    finally:
        subprocess.run(["umount", str(raw)], check=False)
    assert "data/raw/" in line and ("full" in line or "No space left" in line), line
    assert "expected" in line


def test_full_disk_while_writing_the_manifest(monkeypatch, tmp_path, capsys):
    """In-process injection: ENOSPC from a plain file write (the manifest), not from GDAL."""
    from satsr.cli import main

    work = write_params(tmp_path / "w")
    monkeypatch.chdir(work)

    def full(self, path=None, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    assert main(["source"]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("satsr: ")]
    assert len(lines) == 1 and "Traceback" not in err
    assert ONE_LINE.match(lines[0]) and "No space left on device (expected free space on that file system" in lines[0]

"""Issue 13, item 10: a bad params.yaml followed by `dvc repro -s <stage>` costs the stage's outputs,
because DVC deletes them before the stage can refuse the parameters. The guard is `satsr params --check`
(which `make demo` runs first); the recovery the README documents is `dvc checkout <stage>` for the
cached outs and `git checkout -- metrics plots` for the uncached ones. Both are checked here with the real
DVC and git, on a one-stage repository whose stage validates params.yaml with satsr.config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
STAGE = """\
import json, pathlib, sys
from satsr.config import load_params
from satsr.errors import SatsrError
try:
    params = load_params("params.yaml")
except SatsrError as err:
    sys.exit(f"satsr: {err}")
pathlib.Path("out").mkdir(exist_ok=True)
pathlib.Path("out/split.csv").write_text(f"seed,{params.split.seed}\\n")
pathlib.Path("metrics").mkdir(exist_ok=True)
pathlib.Path("metrics/split.json").write_text(json.dumps({"seed": params.split.seed}))
"""
DVC_YAML = """\
stages:
  split:
    cmd: python stage.py
    deps: [stage.py]
    params: [split]
    outs: [out]
    metrics:
      - metrics/split.json:
          cache: false
"""


def sh(cwd: Path, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess:
    who = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    env = {**os.environ, **who, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


def test_check_guards_and_checkout_restores_cached_and_uncached_outs(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    sh(repo, "git", "init", "-q")
    sh(repo, "dvc", "init", "-q")
    (repo / "stage.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text("split:\n  seed: 7\n")
    sh(repo, "dvc", "repro", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "pipeline")
    good = {p: (repo / p).read_text() for p in ("out/split.csv", "metrics/split.json")}

    # a duplicate key: the check refuses it in one line, before DVC touches anything
    (repo / "params.yaml").write_text("split:\n  seed: 7\n  seed: 8\n")
    check = sh(repo, "satsr", "params", "--check", ok=False)
    assert check.returncode == 2
    assert check.stderr.strip() == ("satsr: params.yaml: line 3: duplicate key 'seed' (expected each key once per "
                                    "section; it is first set at line 2)")
    # (DVC's own YAML reader refuses a duplicate key too, before deleting anything; a wrong value it cannot see)
    (repo / "params.yaml").write_text("split:\n  seed: many\n")
    check = sh(repo, "satsr", "params", "--check", ok=False)
    assert check.returncode == 2 and "- split.seed: Input should be a valid integer" in check.stderr
    assert all((repo / p).read_text() == text for p, text in good.items())

    # without the check: DVC removes the outs first, then the stage refuses
    repro = sh(repo, "dvc", "repro", "-s", "split", ok=False)
    assert repro.returncode != 0 and "split.seed" in repro.stdout + repro.stderr
    lost = [p for p in good if not (repo / p).exists()]
    assert lost, "DVC kept the outs: the guard is no longer needed, update the README's recovery note"

    # the documented recovery: fix params.yaml, restore the cached outs and the committed uncached ones
    sh(repo, "git", "checkout", "--", "params.yaml")
    sh(repo, "dvc", "checkout", "split")
    sh(repo, "git", "checkout", "--", "metrics")
    assert {p: (repo / p).read_text() for p in good} == good
    assert json.loads((repo / "metrics/split.json").read_text()) == {"seed": 7}
    status = sh(repo, "dvc", "status")
    assert "up to date" in status.stdout, status.stdout

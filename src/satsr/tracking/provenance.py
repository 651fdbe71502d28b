"""Which code, data and DVC experiment produced a run, as tags (read from git and dvc.lock)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from satsr import __version__

#: Set by DVC for the stages of an experiment (``dvc exp run``).
ENV_DVC_EXP_NAME = "DVC_EXP_NAME"
ENV_DVC_BASELINE = "DVC_EXP_BASELINE_REV"
DEFAULT_DATA_PATH = "data/png"


def _git(*args: str, cwd: Path) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_tags(cwd: str | Path | None = None) -> dict[str, str]:
    """Commit of the code that ran, and whether tracked files differed from it."""
    cwd = Path(cwd or Path.cwd())
    commit = _git("rev-parse", "HEAD", cwd=cwd)
    if commit is None:
        return {}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return {"git_commit": commit, "mlflow.source.git.commit": commit,
            "git_dirty": "unknown" if status is None else str(bool(status)).lower()}


def _norm(path: str | Path) -> str:
    return Path(str(path).rstrip("/")).as_posix().removeprefix("./")


def dvc_lock_md5(path: str | Path, lock_file: str | Path = "dvc.lock") -> str | None:
    """The md5 DVC recorded for ``path`` in dvc.lock: the producing stage's out, else any dep.

    Read from the lock file rather than recomputed, because it is the hash `dvc` itself uses to
    identify (and fetch) exactly this dataset version. A stage's own entry is written only after it
    succeeds, so a running stage finds its inputs among the outs of the stages before it.
    """
    lock_file = Path(lock_file)
    try:
        stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {})
    except (OSError, yaml.YAMLError):
        return None
    want = _norm(path)
    for section in ("outs", "deps"):
        for stage in stages.values():
            for entry in stage.get(section) or []:
                if isinstance(entry, dict) and _norm(entry.get("path", "")) == want and entry.get("md5"):
                    return str(entry["md5"])
    return None


def provenance_tags(data_path: str | Path | None = DEFAULT_DATA_PATH, is_demo: bool | None = None,
                    cwd: str | Path | None = None) -> dict[str, str]:
    """Tags that say which code, data and DVC experiment produced a run."""
    cwd = Path(cwd or Path.cwd())
    tags = {"satsr_version": __version__, **git_tags(cwd)}
    if exp := os.environ.get(ENV_DVC_EXP_NAME):
        tags["dvc_exp_name"] = exp
    if baseline := os.environ.get(ENV_DVC_BASELINE):
        tags["dvc_exp_baseline_rev"] = baseline
    if data_path is not None:
        tags["data_path"] = _norm(data_path)
        if md5 := dvc_lock_md5(data_path, cwd / "dvc.lock"):
            tags["data_md5"] = md5
    if is_demo is not None:
        tags["is_demo"] = str(bool(is_demo)).lower()
    return tags

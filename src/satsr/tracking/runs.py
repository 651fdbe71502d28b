"""MLflow runs: one per run of a stage (resumed after a kill), tuning studies and their trials, and
what is logged into them.

Runs (``stage_run``)
--------------------
One MLflow run per run of a stage, named ``<stage>@<arch>`` (``finetune@rdn``). When a run-id file
is given (the training checkpoint folder keeps one) and names a run of the store whose params
agree, that run is RESUMED: a trainer killed with SIGKILL and rerun continues the same run, and a
metric step that was already logged is not logged twice. Params are the flattened stage section
plus ``arch``; anything whose key looks like a secret is logged as ``<redacted>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from satsr.config import flatten
from satsr.tracking.provenance import DEFAULT_DATA_PATH, provenance_tags
from satsr.tracking.store import configured_experiment_id
from satsr.util import redact, write_text_atomic

if TYPE_CHECKING:
    from pydantic import BaseModel

log = logging.getLogger(__name__)

#: MLflow's limit on a param value (MLflow 3: 6000 characters).
_MAX_PARAM_LEN = 6000


def _param_str(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MAX_PARAM_LEN else text[: _MAX_PARAM_LEN - 3] + "..."


# ------------------------------------------------------------------------------------ stage runs
@dataclass
class StageRun:
    """The run a stage is logging to. ``resumed`` is True when an earlier run id was continued."""

    run_id: str
    name: str
    resumed: bool
    #: metric key -> highest step already in the store (only steps above it are logged).
    last_steps: dict[str, int] = field(default_factory=dict)


#: The stage runs open in this process, innermost last (for log_metrics' resume bookkeeping).
_active: list[StageRun] = []


def _resumable(client: MlflowClient, run_id: str, stage: str, params: Mapping[str, str]) -> Any | None:
    """The stored run to continue, or None (missing, deleted, other experiment/stage/params)."""
    try:
        run = client.get_run(run_id)
    except MlflowException:
        log.warning("run id %s not found in %s: starting a new run", run_id, redact(mlflow.get_tracking_uri()))
        return None
    experiment_id = configured_experiment_id()
    if (run.info.lifecycle_stage != "active" or run.data.tags.get("stage") != stage
            or (experiment_id and run.info.experiment_id != experiment_id)):
        log.warning("run %s is deleted, of another stage or in another experiment: starting a new run", run_id)
        return None
    changed = {k for k, v in params.items() if k in run.data.params and run.data.params[k] != v}
    if changed:
        log.warning("run %s was logged with other values of %s: starting a new run", run_id, sorted(changed))
        return None
    return run


@contextlib.contextmanager
def stage_run(stage: str, arch: str | None, params_section: Mapping[str, Any] | BaseModel | None,
              run_id_file: str | Path | None = None, *, data_path: str | Path | None = DEFAULT_DATA_PATH,
              is_demo: bool | None = None, tags: Mapping[str, Any] | None = None) -> Iterator[StageRun]:
    """One MLflow run for one run of a stage; resumes the run named in ``run_id_file``.

    ``params_section`` (a mapping or a pydantic section) is flattened and logged as params, with
    ``arch``; secret-looking keys are redacted. The run id is written atomically to
    ``run_id_file`` as soon as the run is set up (params, tags), before the body runs, so a kill at
    any later moment can be resumed.
    Tags: stage, arch, git commit/dirty, DVC experiment name, dvc.lock md5 of ``data_path``,
    satsr version, ``is_demo`` (pass ``params.source.provider == "demo"``) and ``tags``.
    The run ends FINISHED, or FAILED when the body raises (KILLED on Ctrl-C).
    """
    name = f"{stage}@{arch}" if arch else stage
    params = {k: _param_str(v) for k, v in redact(flatten(params_section or {})).items()}
    if arch is not None:
        params["arch"] = arch
    all_tags = {"stage": stage, **({"arch": arch} if arch else {}),
                **provenance_tags(data_path, is_demo), **(tags or {})}
    client = MlflowClient()
    run_id_path = Path(run_id_file) if run_id_file is not None else None
    previous = None
    old_id = run_id_path.read_text().strip() if run_id_path is not None and run_id_path.is_file() else ""
    if old_id:
        previous = _resumable(client, old_id, stage, params)
    nested = mlflow.active_run() is not None
    if previous is not None:
        run_ctx = mlflow.start_run(run_id=previous.info.run_id, nested=nested)
    else:
        run_ctx = mlflow.start_run(run_name=name, nested=nested)
    with run_ctx as run:
        run_id = run.info.run_id
        state = StageRun(run_id=run_id, name=name, resumed=previous is not None)
        if previous is not None:
            for key in previous.data.metrics:
                history = client.get_metric_history(run_id, key)
                state.last_steps[key] = max((m.step for m in history), default=-1)
            new_params = {k: v for k, v in params.items() if k not in previous.data.params}
            all_tags["resumed"] = "true"
            log.info("MLflow: resuming run %s (%s)", run_id, name)
        else:
            new_params = params
        if new_params:
            mlflow.log_params(new_params)
        set_tags(all_tags)
        if run_id_path is not None:  # only once the run carries its stage tag and params
            write_text_atomic(run_id_path, run_id + "\n")
        _active.append(state)
        try:
            yield state
        finally:
            _active.pop()


def active_run_id() -> str | None:
    run = mlflow.active_run()
    return run.info.run_id if run else None


def run_exists(run_id: str) -> bool:
    """Whether ``run_id`` is an active (not deleted) run of the configured store."""
    try:
        return MlflowClient().get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


@contextlib.contextmanager
def existing_run(run_id: str) -> Iterator[str]:
    """Log into an EXISTING run (e.g. the fine-tuning run a model came from, to add its test
    metrics and figures); it is reopened and ends FINISHED again. Yields the run id."""
    nested = mlflow.active_run() is not None
    with mlflow.start_run(run_id=run_id, nested=nested) as run:
        yield run.info.run_id


# ---------------------------------------------------------------------------------------- logging
def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log numbers at ``step``. Within a resumed ``stage_run``, steps already stored are skipped,
    so redoing the epoch after the last checkpoint does not duplicate points in the history."""
    state = _active[-1] if _active else None
    values: dict[str, float] = {}
    for key, value in metrics.items():
        if value is None:
            continue
        if state is not None and step is not None and step <= state.last_steps.get(key, -1):
            log.debug("metric %s step %d already logged: skipped", key, step)
            continue
        values[key] = float(value)
    if values:
        mlflow.log_metrics(values, step=step)


def log_params(params: Mapping[str, Any]) -> None:
    """Extra params (flattened and redacted like the stage section)."""
    mlflow.log_params({k: _param_str(v) for k, v in redact(flatten(dict(params))).items()})


def set_tags(tags: Mapping[str, Any]) -> None:
    mlflow.set_tags({k: _param_str(v) for k, v in redact(tags).items() if v is not None})


def log_figure(fig: Any, artifact_file: str) -> None:
    """A matplotlib figure as an image artifact (``figures/sharpness.png``)."""
    mlflow.log_figure(fig, artifact_file)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """A file, or a whole folder, as artifacts of the active run."""
    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path)


def log_dict(data: Mapping[str, Any], artifact_file: str) -> None:
    """A JSON/YAML artifact (by extension), with secret-looking keys redacted."""
    mlflow.log_dict(redact(data), artifact_file)


# ----------------------------------------------------------------------------- tuning (Optuna)
@contextlib.contextmanager
def study_run(name: str, params: Mapping[str, Any] | None = None, *, run_id: str | None = None,
              tags: Mapping[str, Any] | None = None) -> Iterator[str]:
    """The parent run of a hyperparameter study (``tune@<arch>``); yields its run id.

    ``run_id`` (kept by the study, so every worker and every rerun logs under one parent) is
    continued when it exists in the store; otherwise a new run is started. Params already logged
    are not logged again.
    """
    client = MlflowClient()
    existing = None
    if run_id:
        try:
            existing = client.get_run(run_id)
            if existing.info.lifecycle_stage != "active":
                existing = None
        except MlflowException:
            existing = None
    ctx = (mlflow.start_run(run_id=existing.info.run_id) if existing is not None
           else mlflow.start_run(run_name=name))
    with ctx as run:
        flat = {k: _param_str(v) for k, v in redact(flatten(dict(params or {}))).items()}
        new = {k: v for k, v in flat.items() if existing is None or k not in existing.data.params}
        if new:
            mlflow.log_params(new)
        set_tags({"stage": "tune", **provenance_tags(None), **(tags or {})})
        yield run.info.run_id


@contextlib.contextmanager
def trial_run(trial_number: int, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None) -> Iterator[str]:
    """A nested run (``trial_<N>``) under the active study run; yields its run id."""
    with mlflow.start_run(run_name=f"trial_{trial_number}", nested=True) as run:
        if params:
            mlflow.log_params({k: _param_str(v) for k, v in redact(dict(params)).items()})
        set_tags({"trial_number": trial_number, **(tags or {})})
        yield run.info.run_id


def end_orphan_run(run_id: str, status: str = "KILLED") -> bool:
    """End ``run_id`` with ``status`` if it is still RUNNING (its process was killed, e.g. a tune
    trial's worker); True when it was ended. A missing run is a no-op."""
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False
    if run.info.status != "RUNNING":
        return False
    client.set_terminated(run_id, status=status)
    return True

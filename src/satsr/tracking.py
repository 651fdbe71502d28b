"""MLflow tracking for satsr: runs, metrics, figures and registered models.

This is the only module that imports mlflow, so the rest of satsr depends on a small, typed API
instead of on MLflow's (large, changing) one, and the tests can point all of it at any store.

Where runs go (``configure``)
-----------------------------
1. env ``MLFLOW_TRACKING_URI`` if set (wins, so a shared ``http://`` server needs no params change);
2. else ``tracking.uri`` from params.yaml;
3. else the embedded store at the repo root: ``sqlite:///<root>/mlflow.db``, with artifacts in
   ``<root>/mlartifacts/`` (set as the experiment's artifact location when it is created, because
   MLflow's own default, ``./mlruns`` relative to the working dir, would put the artifacts of a
   queued experiment inside a temporary folder that DVC deletes afterwards).

A relative ``sqlite:///name.db`` (params or env) is taken relative to the same root, for the same reason.

The root (``tracking_root``) is found so that ``dvc repro`` and ``dvc exp run --queue`` write to the
SAME store. DVC runs queued experiments in a throw-away copy of the repo at
``<repo>/.dvc/tmp/exps/[standalone/]tmpXXXXXXXX`` and sets ``DVC_ROOT`` to the *original* repo for
them (dvc/repo/experiments/queue/base.py); for ``dvc repro`` ``DVC_ROOT`` is the repo itself. So:

1. env ``SATSR_TRACKING_ROOT`` if set;
2. else env ``DVC_ROOT`` if set (set by DVC for every stage command);
3. else the working directory, walked up to the nearest folder holding ``.dvc/`` or ``dvc.yaml``
   (or ``.git``); the working directory itself when there is none;

and whichever path was chosen, if it lies inside ``<X>/.dvc/tmp/exps/``, the root is ``<X>``
(older DVC versions pointed ``DVC_ROOT`` at the temporary copy).

Runs (``stage_run``)
--------------------
One MLflow run per run of a stage, named ``<stage>@<arch>`` (``finetune@rdn``). When a run-id file
is given (the training checkpoint folder keeps one) and names a run of the store whose params
agree, that run is RESUMED: a trainer killed with SIGKILL and rerun continues the same run, and a
metric step that was already logged is not logged twice. Params are the flattened stage section
plus ``arch``; anything whose key looks like a secret is logged as ``<redacted>``.

A server with a login (``mlflow server --app-name basic-auth``, as the compose stack runs it)
------------------------------------------------------------------------------------------------
The client authenticates through MLflow's own variables ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``. A URI written with credentials (``http://user:pass@host:5000``) is
accepted, but ``configure`` moves them into those two variables and uses the bare URI, because MLflow
would otherwise export the password with ``MLFLOW_TRACKING_URI`` to every child process and print it
in its "View run at" links. Nothing satsr logs, tags or stores carries a password (``redact``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from satsr import __version__
from satsr.config import Params, TrackingParams, flatten
from satsr.errors import SatsrError
from satsr.util import redact, write_text_atomic

if TYPE_CHECKING:
    import numpy as np
    from pydantic import BaseModel

log = logging.getLogger(__name__)

ENV_URI = "MLFLOW_TRACKING_URI"
ENV_ROOT = "SATSR_TRACKING_ROOT"
ENV_DVC_ROOT = "DVC_ROOT"
ENV_DVC_EXP_NAME = "DVC_EXP_NAME"
ENV_DVC_BASELINE = "DVC_EXP_BASELINE_REV"
#: MLflow's client variables for a server's HTTP basic auth.
ENV_USERNAME = "MLFLOW_TRACKING_USERNAME"
ENV_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
#: Registered model names are ``satsr-<arch>``.
MODEL_PREFIX = "satsr-"
DEFAULT_DATA_PATH = "data/png"
#: MLflow's limit on a param value (MLflow 3: 6000 characters).
_MAX_PARAM_LEN = 6000
#: Timeouts for an http(s) server when the user set none: fail in about a minute instead of
#: MLflow's default of 7 retries with exponential backoff (several minutes per call).
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


#: The experiment chosen by the last ``configure`` (a run of another one is never resumed).
_experiment_id: str | None = None


class TrackingAuthError(SatsrError, PermissionError):
    """The MLflow server refused the login (401) or the account's permission (403)."""


# --------------------------------------------------------------------------------- where to log
def _outside_exp_tempdir(path: Path) -> Path:
    """``<X>/.dvc/tmp/exps/...`` -> ``<X>``; any other path unchanged."""
    parts = path.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return path


def tracking_root(cwd: str | Path | None = None) -> Path:
    """The repo root whose ``mlflow.db`` / ``mlartifacts`` hold the runs (rule in the module doc)."""
    if override := os.environ.get(ENV_ROOT):
        return Path(override).expanduser().resolve()
    if dvc_root := os.environ.get(ENV_DVC_ROOT):
        return _outside_exp_tempdir(Path(dvc_root).resolve())
    start = _outside_exp_tempdir(Path(cwd or Path.cwd()).resolve())
    for markers in ((".dvc", "dvc.yaml"), (".git",)):
        for folder in (start, *start.parents):
            if any((folder / m).exists() for m in markers):
                return folder
    return start


def _absolute_sqlite(uri: str, root: Path) -> str:
    """Anchor a relative ``sqlite:///file.db`` at ``root`` (absolute ones have four slashes)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and uri != prefix + ":memory:":
        return f"{prefix}{(root / uri[len(prefix):]).resolve()}"
    return uri


def resolve_uri(params: Params | TrackingParams | None = None, cwd: str | Path | None = None) -> str:
    """The tracking URI ``configure`` would use: env, then params, then the repo-root store."""
    root = tracking_root(cwd)
    if env := os.environ.get(ENV_URI):
        return _absolute_sqlite(env, root)
    tracking = params.tracking if isinstance(params, Params) else params
    if tracking is not None and tracking.uri:
        return _absolute_sqlite(tracking.uri, root)
    return f"sqlite:///{root / DB_FILE}"


def _artifact_location(uri: str, root: Path) -> str | None:
    """Where a new experiment keeps its artifacts.

    A server (``http(s)://``, ``databricks``) or a ``file:`` store decides itself (the compose stack's
    server proxies them to its ``--artifacts-destination``). A database store without a server
    would default to ``./mlruns`` under the working dir, so: beside a sqlite file, else in
    ``<root>/mlartifacts``.
    """
    if uri.startswith(("http://", "https://", "databricks", "file:")):
        return None
    if uri.startswith("sqlite:///") and not uri.endswith(":memory:"):
        return (Path(uri[len("sqlite:///"):]).parent / ARTIFACTS_DIR).as_uri()
    return (root / ARTIFACTS_DIR).as_uri()


def configure(params: Params | TrackingParams | None = None, cwd: str | Path | None = None) -> str:
    """Point MLflow at the store and experiment of these params; return the tracking URI.

    Call once per process before ``stage_run``. The experiment is created when missing, with its
    artifact location fixed at creation (MLflow cannot change it later). Note that MLflow exports
    the URI to ``os.environ["MLFLOW_TRACKING_URI"]``, so child processes inherit it (and, the env
    winning, use the same store).
    """
    tracking = params.tracking if isinstance(params, Params) else (params or TrackingParams())
    uri = resolve_uri(tracking, cwd)
    if uri.startswith(("http://", "https://")):
        uri = _credentials_out_of_uri(uri)
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
    if uri.startswith("sqlite:///") and not uri.endswith(":memory:"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    location = _artifact_location(uri, tracking_root(cwd))
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    try:
        experiment = client.get_experiment_by_name(tracking.experiment)
    except MlflowException as err:
        _raise_if_auth(err, uri, f"read the experiment {tracking.experiment!r}")
        raise
    if experiment is None:
        try:
            experiment_id = client.create_experiment(tracking.experiment, artifact_location=location)
        except MlflowException as err:  # another stage created it at the same moment
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                _raise_if_auth(err, uri, f"create the experiment {tracking.experiment!r}")
                raise
            experiment_id = client.get_experiment_by_name(tracking.experiment).experiment_id
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    global _experiment_id
    _experiment_id = experiment_id
    log.info("MLflow: %s, experiment %r", redact(uri), tracking.experiment)
    return uri


def _credentials_out_of_uri(uri: str) -> str:
    """``http://user:pass@host`` -> ``http://host``, the credentials moved to ``ENV_USERNAME`` /
    ``ENV_PASSWORD`` (module doc: MLflow would pass on and print a URI's password)."""
    parts = urllib.parse.urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    userinfo, _, host = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    os.environ[ENV_USERNAME] = urllib.parse.unquote(user)
    if has_password:
        os.environ[ENV_PASSWORD] = urllib.parse.unquote(password)
    log.info("MLflow: the login written in the tracking URI is used as %s/%s", ENV_USERNAME, ENV_PASSWORD)
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def _raise_if_auth(err: MlflowException, uri: str, action: str) -> None:
    """A 401/403 of the server as one clear :class:`TrackingAuthError` (no password in it)."""
    if err.error_code == "UNAUTHENTICATED":
        who = os.environ.get(ENV_USERNAME)
        raise TrackingAuthError(
            f"MLflow server {redact(uri)}: login refused for "
            f"{f'user {who!r}' if who else 'an anonymous client'} (set {ENV_USERNAME} and {ENV_PASSWORD} "
            "to an account the server's admin created; docker/README.md, 'Users and passwords')") from None
    if err.error_code == "PERMISSION_DENIED":
        raise TrackingAuthError(
            f"MLflow server {redact(uri)}: user {os.environ.get(ENV_USERNAME)!r} may not {action} "
            "(the admin grants EDIT or MANAGE on it, or the trainers' account creates it)") from None


def _param_str(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MAX_PARAM_LEN else text[: _MAX_PARAM_LEN - 3] + "..."


# ----------------------------------------------------------------------------------- provenance
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
    if (run.info.lifecycle_stage != "active" or run.data.tags.get("stage") != stage
            or (_experiment_id and run.info.experiment_id != _experiment_id)):
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


# ----------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelVersionInfo:
    """Where a logged model is: ``model_uri`` always; registry name and version when registered."""

    model_uri: str
    name: str | None
    version: int | None
    run_id: str | None

    @property
    def registry_uri(self) -> str | None:
        return f"models:/{self.name}/{self.version}" if self.name and self.version else None


def model_name(arch: str) -> str:
    """The registry name of an architecture's models: ``satsr-<arch>``."""
    return f"{MODEL_PREFIX}{arch}"


def _pip_requirements() -> list[str]:
    # Given explicitly: MLflow otherwise infers them by loading the model in a subprocess, which
    # re-imports TensorFlow (tens of seconds on two cores) for a list we know anyway.
    import cloudpickle
    import keras
    import numpy
    import tensorflow as tf

    return [f"mlflow=={mlflow.__version__}", f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}",
            f"numpy=={numpy.__version__}", f"cloudpickle=={cloudpickle.__version__}"]


def log_keras_model(model: Any, arch: str, input_example: np.ndarray, registered_name: str | None = None,
                    *, register: bool = True, name: str = "model") -> ModelVersionInfo:
    """Log a Keras 3 model with MLflow's TensorFlow flavour and register it as ``satsr-<arch>``.

    The signature is built from ``input_example`` but with every spatial dimension variable,
    ``(-1, -1, -1, C)`` float32 in and out: the networks are fully convolutional, and a signature
    fixed to the example's size would make MLflow reject any other tile size. Keep the example
    small (e.g. one 16 x 16 crop): it is stored as JSON and run once to validate the model.
    Loading needs satsr installed (its custom layers are registered on import).
    """
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    example = np.asarray(input_example, dtype=np.float32)
    if example.ndim == 3:
        example = example[None]
    if example.ndim != 4:
        raise ValueError(f"input_example must be (H, W, C) or (N, H, W, C), got shape {example.shape}")
    out_channels = model.output_shape[-1]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, example.shape[-1]))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, out_channels))]),
    )
    reg_name = (registered_name or model_name(arch)) if register else None
    info = mlflow.tensorflow.log_model(
        model, name=name, signature=signature, input_example=example, registered_model_name=reg_name,
        pip_requirements=_pip_requirements(), tags={"arch": arch, "satsr_version": __version__},
    )
    version = getattr(info, "registered_model_version", None)
    return ModelVersionInfo(model_uri=info.model_uri, name=reg_name,
                            version=int(version) if version is not None else None, run_id=info.run_id)


def load_model(uri: str) -> Any:
    """A callable model from ``models:/satsr-rdn/3``, ``models:/satsr-rdn@champion`` or ``runs:/...``.

    Keras-flavoured models come back as the Keras model itself (call it, or ``.predict``, on any
    tile size); any other flavour as an MLflow pyfunc model (use ``.predict``).
    """
    from mlflow.models import get_model_info

    import satsr.models  # noqa: F401  (registers the custom layers the .keras file refers to)

    if "tensorflow" in get_model_info(uri).flavors:
        return mlflow.tensorflow.load_model(uri)
    return mlflow.pyfunc.load_model(uri)


def model_provenance(uri: str) -> dict[str, str]:
    """Name, version and run id that a model URI tells (an alias or ``latest`` resolved in the registry).

    Provenance only (e.g. for output tags): what the registry cannot tell is left out, never raised.
    """
    info: dict[str, str] = {}
    if m := re.fullmatch(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?/?", uri):
        info["name"] = m["name"]
        try:
            version: Any = None
            if m["alias"]:
                version = alias_version(m["name"], m["alias"])
            elif m["version"] and m["version"].isdigit():
                version = m["version"]
            elif m["version"] and m["version"].lower() == "latest":
                version = latest_version(m["name"])
            if version is not None:
                info["version"] = str(version)
                info["run_id"] = get_version(m["name"], version).run_id
        except Exception as err:  # noqa: BLE001 (provenance only; the model itself loaded)
            log.debug("no registry version for %s: %s", uri, err)
    elif m := re.fullmatch(r"runs:/(?P<run>[0-9a-fA-F]+)/(?P<path>.+)", uri):
        info["run_id"] = m["run"]
        info["name"] = m["path"].rstrip("/")
    return {k: v for k, v in info.items() if v}


# --------------------------------------------------------------------------------------- registry
def set_alias(name: str, alias: str, version: int | str) -> None:
    """Point ``alias`` (e.g. ``champion``) at a version; it moves off any version that held it."""
    MlflowClient().set_registered_model_alias(name, alias, str(version))


def alias_version(name: str, alias: str) -> int | None:
    try:
        return int(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def list_registered_models(prefix: str | None = None) -> list[str]:
    """Names of the registered models (all pages), sorted; optionally only those with ``prefix``."""
    client = MlflowClient()
    names: list[str] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        names.extend(m.name for m in page)
        token = page.token
        if not token:
            break
    return sorted(n for n in names if prefix is None or n.startswith(prefix))


def latest_version(name: str) -> int | None:
    """The highest version number of a registered model, or None when it has none."""
    client = MlflowClient()
    versions: list[int] = []
    token = None
    while True:
        page = client.search_model_versions(f"name = '{name}'", max_results=1000, page_token=token)
        versions.extend(int(v.version) for v in page)
        token = page.token
        if not token:
            break
    return max(versions, default=None)


# --------------------------------------------------------------------- evaluation and selection
@dataclass(frozen=True)
class VersionInfo:
    """One registered model version: where its model is and what it carries."""

    name: str
    version: int
    source: str
    run_id: str | None
    model_id: str | None
    tags: dict[str, str]
    aliases: tuple[str, ...]


def _model_id_of(source: str) -> str | None:
    """MLflow 3 logged models live at ``models:/m-<id>``; their versions must name that id."""
    m = re.fullmatch(r"models:/(m-[0-9a-f]+)", source or "")
    return m.group(1) if m else None


def _version_info(mv: Any) -> VersionInfo:
    return VersionInfo(name=mv.name, version=int(mv.version), source=mv.source, run_id=mv.run_id or None,
                       model_id=getattr(mv, "model_id", None) or _model_id_of(mv.source), tags=dict(mv.tags or {}),
                       aliases=tuple(getattr(mv, "aliases", None) or ()))


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


def model_versions(name: str) -> list[VersionInfo]:
    """Every version of a registered model (all pages), by version number; [] when it does not exist."""
    client = MlflowClient()
    out: list[VersionInfo] = []
    token = None
    while True:
        try:
            page = client.search_model_versions(f"name = '{name}'", max_results=1000, page_token=token)
        except MlflowException:
            return []
        out.extend(_version_info(v) for v in page)
        token = page.token
        if not token:
            break
    return sorted(out, key=lambda v: v.version)


def get_version(name: str, version: int | str) -> VersionInfo:
    return _version_info(MlflowClient().get_model_version(name, str(version)))


def parse_registry_uri(uri: str) -> tuple[str, int] | None:
    """``models:/satsr-rdn/3`` -> ("satsr-rdn", 3); anything else (aliases, ``runs:/``) -> None."""
    m = re.fullmatch(r"models:/([^/@]+)/(\d+)", uri or "")
    return (m.group(1), int(m.group(2))) if m else None


def set_version_tags(name: str, version: int | str, tags: Mapping[str, Any]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        if value is not None:
            client.set_model_version_tag(name, str(version), key, _param_str(value))


def register_version(source_uri: str, name: str, *, run_id: str | None = None, model_id: str | None = None,
                     tags: Mapping[str, Any] | None = None, description: str | None = None) -> int:
    """Register ``source_uri`` (a model's storage location, e.g. another version's ``source``) as a
    version of ``name`` (created when missing) and return its number. A version of ``name`` with
    the same source is reused, so a rerun does not pile up identical versions."""
    client = MlflowClient()
    try:
        client.create_registered_model(name, description=description)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    for v in model_versions(name):
        if v.source == source_uri:
            if tags:
                set_version_tags(name, v.version, tags)
            return v.version
    mv = client.create_model_version(name, source_uri, run_id=run_id, model_id=model_id or _model_id_of(source_uri),
                                     tags={k: _param_str(v) for k, v in (tags or {}).items() if v is not None},
                                     description=description)
    return int(mv.version)


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



# ---------------------------------------------------------------------------------------- release
def register_release(params: Params, model_path: str | Path, doc: Mapping[str, Any], name: str,
                     alias: str) -> tuple[int, str | None]:
    """Log the released weights (``weights/release``) as an MLflow run and register them as ``name``
    with ``alias``; a file already registered (same sha256) is not registered again."""
    import keras
    import numpy as np

    import satsr.models  # noqa: F401  (custom layers)

    configure(params)
    sha = str(doc["sha256"])
    for v in model_versions(name) if name in list_registered_models() else []:
        if v.tags.get("sha256") == sha:
            set_alias(name, alias, v.version)
            return int(v.version), v.run_id
    model = keras.saving.load_model(model_path, compile=False)
    with stage_run("release", None, doc.get("recipe", {}), data_path=None, is_demo=False,
                   tags={"alpha": doc.get("alpha"), "sha256": sha}):
        metrics = {"alpha": float(doc["alpha"])}
        for setting, groups in doc.get("test", {}).items():
            for group, v in groups.items():
                key = re.sub(r"[^A-Za-z0-9_.-]", "_", f"test_{setting}_{group}")
                for m in ("psnr_gain", "cpsnr_gain"):
                    if v[m]["mean"] is not None:
                        metrics[f"{key}_{m}"] = float(v[m]["mean"])
        log_metrics(metrics)
        log_dict(dict(doc), "release_metrics.json")
        info = log_keras_model(model, "release", np.zeros((16, 16, model.input_shape[-1]), np.float32),
                               registered_name=name)
    set_version_tags(name, info.version, {"sha256": sha, "alpha": doc["alpha"]})
    set_alias(name, alias, info.version)
    return int(info.version), info.run_id

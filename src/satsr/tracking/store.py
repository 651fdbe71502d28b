"""Which MLflow store and experiment the runs go to, and the login a server asks for.

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

A server with a login (``mlflow server --app-name basic-auth``, as the compose stack runs it)
------------------------------------------------------------------------------------------------
The client authenticates through MLflow's own variables ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``. A URI written with credentials (``http://user:pass@host:5000``) is
accepted, but ``configure`` moves them into those two variables and uses the bare URI, because MLflow
would otherwise export the password with ``MLFLOW_TRACKING_URI`` to every child process and print it
in its "View run at" links. Nothing satsr logs, tags or stores carries a password (``redact``).
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from satsr.config import Params, TrackingParams
from satsr.errors import SatsrError
from satsr.util import redact

log = logging.getLogger(__name__)

ENV_URI = "MLFLOW_TRACKING_URI"
ENV_ROOT = "SATSR_TRACKING_ROOT"
ENV_DVC_ROOT = "DVC_ROOT"
#: MLflow's client variables for a server's HTTP basic auth.
ENV_USERNAME = "MLFLOW_TRACKING_USERNAME"
ENV_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
#: Timeouts for an http(s) server when the user set none: fail in about a minute instead of
#: MLflow's default of 7 retries with exponential backoff (several minutes per call).
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


#: The experiment chosen by the last ``configure`` (a run of another one is never resumed).
_experiment_id: str | None = None


class TrackingAuthError(SatsrError, PermissionError):
    """The MLflow server refused the login (401) or the account's permission (403)."""


def configured_experiment_id() -> str | None:
    """The experiment of the last ``configure`` in this process (None before the first)."""
    return _experiment_id


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


# ------------------------------------------------------------------------------------- login
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

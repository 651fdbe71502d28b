"""MLflow tracking for satsr: runs, metrics, figures and registered models.

This is the only package that imports mlflow (ruff's TID251 enforces it), so the rest of satsr depends
on a small, typed API instead of on MLflow's (large, changing) one, and the tests can point all of it
at any store. Callers use the names re-exported here (``from satsr import tracking``); each module
owns one part:

``store``       which store and experiment runs go to (``configure``), and a server's login
``provenance``  git and dvc.lock tags saying which code and data produced a run
``runs``        stage runs (resumed after a kill), study and trial runs, and what is logged into them
``registry``    Keras models logged and loaded, registered versions, aliases, the release
"""

from __future__ import annotations

from satsr.tracking.provenance import (
    DEFAULT_DATA_PATH,
    ENV_DVC_BASELINE,
    ENV_DVC_EXP_NAME,
    dvc_lock_md5,
    git_tags,
    provenance_tags,
)
from satsr.tracking.registry import (
    MODEL_PREFIX,
    ModelVersionInfo,
    VersionInfo,
    alias_version,
    get_version,
    latest_version,
    list_registered_models,
    load_model,
    log_keras_model,
    model_name,
    model_provenance,
    model_versions,
    parse_registry_uri,
    register_release,
    register_version,
    set_alias,
    set_version_tags,
)
from satsr.tracking.runs import (
    StageRun,
    active_run_id,
    end_orphan_run,
    existing_run,
    log_artifact,
    log_dict,
    log_figure,
    log_metrics,
    log_params,
    run_exists,
    set_tags,
    stage_run,
    study_run,
    trial_run,
)
from satsr.tracking.store import (
    ARTIFACTS_DIR,
    DB_FILE,
    ENV_DVC_ROOT,
    ENV_PASSWORD,
    ENV_ROOT,
    ENV_URI,
    ENV_USERNAME,
    TrackingAuthError,
    configure,
    configured_experiment_id,
    resolve_uri,
    tracking_root,
)

__all__ = [
    "ARTIFACTS_DIR",
    "DB_FILE",
    "DEFAULT_DATA_PATH",
    "ENV_DVC_BASELINE",
    "ENV_DVC_EXP_NAME",
    "ENV_DVC_ROOT",
    "ENV_PASSWORD",
    "ENV_ROOT",
    "ENV_URI",
    "ENV_USERNAME",
    "MODEL_PREFIX",
    "ModelVersionInfo",
    "StageRun",
    "TrackingAuthError",
    "VersionInfo",
    "active_run_id",
    "alias_version",
    "configure",
    "configured_experiment_id",
    "dvc_lock_md5",
    "end_orphan_run",
    "existing_run",
    "get_version",
    "git_tags",
    "latest_version",
    "list_registered_models",
    "load_model",
    "log_artifact",
    "log_dict",
    "log_figure",
    "log_keras_model",
    "log_metrics",
    "log_params",
    "model_name",
    "model_provenance",
    "model_versions",
    "parse_registry_uri",
    "provenance_tags",
    "register_release",
    "register_version",
    "resolve_uri",
    "run_exists",
    "set_alias",
    "set_tags",
    "set_version_tags",
    "stage_run",
    "study_run",
    "tracking_root",
    "trial_run",
]

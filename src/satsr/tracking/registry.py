"""The model registry: Keras models logged to and loaded from MLflow, registered versions with their
aliases and tags, and the released weights. Registered names are ``satsr-<arch>``."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from satsr import __version__
from satsr.config import Params
from satsr.tracking.runs import _param_str, log_dict, log_metrics, stage_run
from satsr.tracking.store import configure

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: Registered model names are ``satsr-<arch>``.
MODEL_PREFIX = "satsr-"


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

"""Loading saved models: ``.keras`` files here, registry/run URIs through ``satsr.tracking``.

``load(path)`` reads one ``.keras`` file (satsr's custom layers are registered by importing
``satsr.models``). ``resolve(ref)`` takes whatever a user names a model by (a file, a folder holding
``model.keras`` or an MLflow model, ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``,
``runs:/RUN_ID/model``, or an in-memory object) and returns the model with its provenance; only
``satsr.tracking`` talks to MLflow.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satsr.models.export import ModelError
from satsr.util import redact, sha256_file

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")
#: ``models:/NAME@ALIAS``: a registered model by alias (it moves; ``identity`` resolves it to a version).
ALIAS_URI = re.compile(r"^models:/([^/@]+)@([^/@]+)$")
#: URI schemes resolved through the tracking store (anything else, e.g. s3:// or file:, is loaded directly).
REGISTRY_SCHEMES = ("models:/", "runs:/")
#: How a model may be named, for error messages.
REFS = "a .keras file, a folder with model.keras, or a URI such as models:/satsr-rdn@champion or runs:/RUN_ID/model"


@dataclass
class ModelRef:
    """A loaded model (a Keras model, or any object with ``predict``) and where it came from."""

    model: Any
    uri: str
    name: str
    version: str | None = None
    run_id: str | None = None

    @property
    def is_keras(self) -> bool:
        keras = sys.modules.get("keras")  # a Keras model implies Keras is imported; do not import TF otherwise
        return keras is not None and isinstance(self.model, keras.Model)


def load(path: str | Path) -> Any:
    """Load a saved ``.keras`` model (no compile); importing satsr.models registers satsr's layers."""
    import keras

    import satsr.models  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(path, compile=False)


def load_file(path: str | Path) -> Any:
    """``load`` with a clear error for a missing or damaged file (Keras says "File not found" for a file
    that exists but is not a complete zip archive, e.g. a truncated download)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found (expected {REFS})")
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a loadable Keras model: the file exists ({path.stat().st_size} bytes) but is "
                         "not a complete .keras zip archive, e.g. a truncated download or copy (expected a .keras "
                         "file saved by Keras 3; copy or download it again)")
    try:
        return load(path)
    except Exception as err:  # noqa: BLE001 -- keras raises many types for a damaged file
        raise ModelError(f"{path}: not a loadable Keras model ({type(err).__name__}: {err})") from None


def _check_store(uri: str, tracking_params: Any) -> None:
    """A registry/run URI needs a tracking store that exists: never let MLflow create an empty
    ``mlflow.db`` in whatever folder predict runs from."""
    from satsr import tracking

    store = tracking.resolve_uri(tracking_params)
    if not store.startswith("sqlite:///") or store.endswith(":memory:"):
        return
    db = Path(store[len("sqlite:///"):])
    if db.is_file():
        return
    configured = os.environ.get(tracking.ENV_URI) or getattr(getattr(tracking_params, "tracking", tracking_params),
                                                             "uri", None)
    what = (f"the configured tracking store {redact(store)} does not exist" if configured else
            f"no MLflow tracking store is configured (no {tracking.ENV_URI}, no tracking.uri in params, and no "
            f"{tracking.DB_FILE} at the project root {db.parent})")
    raise ModelError(f"model {uri!r}: {what} (expected {tracking.ENV_URI}=http://HOST:PORT or sqlite:///PATH/"
                     f"{tracking.DB_FILE} naming the store that holds the model, or a .keras file)")


def _load_uri(uri: str, tracking_params: Any, local: bool = False) -> ModelRef:
    """A model by MLflow URI (``local``: an MLflow model folder or artifact URI, which needs no tracking store)."""
    from satsr import tracking

    if local:
        try:
            model = tracking.load_model(uri)
        except Exception as err:  # noqa: BLE001 (MLflow raises many types; the message carries the cause)
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(f"{redact(uri)}: not a loadable MLflow model ({first_line}) (expected an MLflow model "
                             f"folder with MLmodel, or {REFS})") from None
        return ModelRef(model, uri, Path(uri).name or type(model).__name__)
    _check_store(uri, tracking_params)
    store = tracking.configure(tracking_params)
    try:
        model = tracking.load_model(uri)
    except Exception as err:  # noqa: BLE001 (MLflow raises many types; the message carries the cause)
        try:
            names = tracking.list_registered_models()
            listing = f"registered models: {', '.join(names)}" if names else "no registered models"
        except Exception as list_err:  # noqa: BLE001
            listing = f"could not list the registered models ({list_err})"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = redact(store)
        raise ModelError(f"model {uri!r} could not be loaded from {where}: {first_line}; {listing} (use "
                         "models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model, or a .keras file)") from None
    info = tracking.model_provenance(uri)
    return ModelRef(model, uri, info.get("name") or getattr(model, "name", None) or type(model).__name__,
                    info.get("version"), info.get("run_id"))


def resolve(ref: Any, tracking_params: Any = None) -> ModelRef:
    """The model named by ``ref`` (see the module doc) with its provenance.

    ``tracking_params``: Params or TrackingParams for registry URIs (default: the environment's store).
    """
    if isinstance(ref, ModelRef):
        return ref
    if not isinstance(ref, (str, os.PathLike)):
        if not (hasattr(ref, "predict") or callable(ref)):
            raise ModelError(f"model {ref!r}: not a Keras model and has no predict()")
        return ModelRef(ref, f"<in-memory {type(ref).__name__}>", getattr(ref, "name", None) or type(ref).__name__)
    text = os.fspath(ref)
    path = Path(text).expanduser()
    if URI_SCHEME.match(text) and not path.exists():  # only models:/ and runs:/ need a tracking store
        return _load_uri(text, tracking_params, local=not text.startswith(REGISTRY_SCHEMES))
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            path = path / MODEL_FILE
        elif (path / "MLmodel").is_file():
            return _load_uri(str(path.resolve()), tracking_params, local=True)
        else:
            raise ModelError(f"{path}: folder holds no {MODEL_FILE} (nor an MLflow MLmodel)")
    model = load_file(path)
    return ModelRef(model, str(path), path.parent.name if path.name == MODEL_FILE else path.stem)


def _folder_digest(folder: Path) -> str:
    """sha256 over the relative names and bytes of every file below ``folder`` (an MLflow model folder)."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(folder).as_posix()}:{sha256_file(f)};".encode())
    return h.hexdigest()


def identity(ref: Any, tracking_params: Any = None) -> str | None:
    """What ``ref`` names, found without loading it (``predict --skip-existing`` compares it with the
    one an existing output records): ``sha256:<hex>`` of a model file's (or model folder's) bytes,
    ``models:/NAME/VERSION`` for a registered model (an alias resolved to its version now, since aliases
    move), a ``runs:/`` URI as given. None when it cannot be known: an in-memory object, a missing
    file, an unreachable store or an unknown alias (then no existing output can be shown to be its)."""
    if not isinstance(ref, (str, os.PathLike)):
        return None
    text = os.fspath(ref)
    path = Path(text).expanduser()
    if URI_SCHEME.match(text) and not path.exists():
        if not text.startswith("models:/"):
            return text if text.startswith("runs:/") else None
        if not (m := ALIAS_URI.match(text)):
            return text
        from satsr import tracking

        try:
            _check_store(text, tracking_params)
            tracking.configure(tracking_params)
            version = tracking.alias_version(m.group(1), m.group(2))
        except Exception as err:  # noqa: BLE001 (MLflow raises many types; loading reports them properly)
            log.info("model %s: alias not resolved (%s); no identity", redact(text), err)
            return None
        return f"models:/{m.group(1)}/{version}" if version is not None else None
    if path.is_dir():
        return f"sha256:{sha256_file(path / MODEL_FILE)}" if (path / MODEL_FILE).is_file() else (
            f"sha256:{_folder_digest(path)}" if (path / "MLmodel").is_file() else None)
    return f"sha256:{sha256_file(path)}" if path.is_file() else None

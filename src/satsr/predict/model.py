"""The model as ``predict`` runs it: a batch function on reflectance tiles, its range and settings.

Models are loaded by ``satsr.models.loading`` (files) and ``satsr.tracking`` (registry URIs). A model
saved by satsr's trainer is exported (``satsr.models.export``): reflectance in, reflectance out, with
its range (lo, hi), harmonization and, where it has one, detail strength inside. ``predict`` reads
them from the model, never from params.yaml. Two fallbacks keep older things working:

* a bare network saved before export existed (png16 / 65535 units) is wrapped with params'
  ``png.reflectance_min/max``, with a ``PredictWarning``;
* any other object with ``predict`` (e.g. an MLflow pyfunc model) is called on reflectance tiles and
  clipped to params' png range; it has no harmonization or detail strength to set.

``settings(model, harmonize=..., detail=...)`` sets ``--harmonize`` / ``--detail`` on the loaded
model for one run and restores the model's own values afterwards.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from satsr.config import Params
from satsr.models.harmonize import Harmonization, HarmonizeError
from satsr.models.harmonize import resolve as resolve_harmonization
from satsr.models.loading import ModelRef, resolve
from satsr.predict.errors import PredictError, PredictWarning

log = logging.getLogger(__name__)

TAG = "SATSR_"
#: Where an SRModel's range came from.
FROM_MODEL = "model"


@dataclass
class SRModel:
    """A x3 model as a batch function: (n, h, w, 3) float32 reflectance -> (n, 3h, 3w, 3) reflectance.

    ``lo, hi``: the reflectance range the model encodes (outputs are clipped into it);
    ``keras_model``: the exported Keras model, whose layers ``settings`` sets (None for other objects).
    """

    fn: Callable[[np.ndarray], np.ndarray]
    uri: str
    name: str
    lo: float
    hi: float
    version: str | None = None
    run_id: str | None = None
    arch: str | None = None
    keras_model: Any = None
    normalization: str = FROM_MODEL

    def tags(self) -> dict[str, str]:
        tags = {"MODEL_URI": self.uri, "MODEL_NAME": self.name, "MODEL_VERSION": self.version,
                "MODEL_RUN_ID": self.run_id, "MODEL_ARCH": self.arch,
                "MODEL_NORMALIZATION": f"{self.normalization}: reflectance range [{self.lo:g}, {self.hi:g}]"}
        return {f"{TAG}{k}": str(v) for k, v in tags.items() if v is not None}


@dataclass(frozen=True)
class ModelSettings:
    """What one run used: the harmonization map and the detail strength (None: the model has none)."""

    harmonize: Harmonization | None
    detail: float | None

    def tags(self) -> dict[str, str]:
        import json

        tags = {}
        if self.harmonize is not None:
            tags[f"{TAG}HARMONIZE"] = json.dumps(self.harmonize.as_dict())
        if self.detail is not None:
            tags[f"{TAG}DETAIL_STRENGTH"] = f"{self.detail:g}"
        return tags


def _keras_fn(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    channels = model.input_shape[-1]
    if channels not in (None, 3):
        raise PredictError(f"model {model.name!r} takes {channels} channels; satsr predict needs a red,green,blue "
                           "(3-channel) model")
    # One trace for every tile shape and batch size (a scene's last batch of a row is often partial).
    call = tf.function(lambda x: model(x, training=False),
                       input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])

    def fn(batch: np.ndarray) -> np.ndarray:
        return call(tf.convert_to_tensor(batch, dtype=tf.float32)).numpy()

    return fn


def _from_ref(ref: ModelRef, params: Params) -> SRModel:
    lo, hi = params.png.reflectance_min, params.png.reflectance_max
    info = {"version": ref.version, "run_id": ref.run_id}
    if not ref.is_keras:
        obj = ref.model
        call = obj.predict if hasattr(obj, "predict") else obj
        return SRModel(lambda b: np.asarray(call(b), dtype=np.float32), ref.uri, ref.name, lo, hi,
                       normalization="params png range (not a Keras model: called on reflectance)", **info)
    from satsr.models.export import as_exported, model_range

    keras_model, exported = as_exported(ref.model, lo, hi)
    normalization = FROM_MODEL
    if not exported:
        normalization = "params png range (model saved without its normalization)"
        msg = (f"model {ref.uri}: saved without its normalization (from before satsr exported its models); using "
               f"params png.reflectance_min/max [{lo:g}, {hi:g}], which must be the range it was trained with. "
               "Re-save it with satsr.models.export.export_model to make it self-describing")
        log.warning(msg)
        warnings.warn(msg, PredictWarning, stacklevel=3)
    else:
        lo, hi = model_range(keras_model)
    return SRModel(_keras_fn(keras_model), ref.uri, ref.name, lo, hi, arch=keras_model.name, keras_model=keras_model,
                   normalization=normalization, **info)


def load_model(model: Any, params: Params | None = None) -> SRModel:
    """``model``: an MLflow URI (``models:/satsr-rdn@champion``, ``runs:/<id>/model``), a ``.keras``
    file or a folder holding ``model.keras`` (or an MLflow model folder), a Keras model, or an object
    with ``predict`` (called on reflectance)."""
    from satsr.models.export import ModelError

    params = params or Params()
    if isinstance(model, SRModel):
        return model
    try:
        return _from_ref(resolve(model, params), params)
    except ModelError as err:
        raise PredictError(str(err)) from None


@contextmanager
def settings(model: SRModel, harmonize: str | Harmonization | None = None,
             detail: float | None = None) -> Iterator[ModelSettings]:
    """Set ``harmonize`` (``none`` | ``hls`` | a YAML/JSON file) and ``detail`` (alpha in [0, 1]) on the
    model for the ``with`` block (None: the model's own), yield what is used, then restore the model."""
    from satsr.models import export

    km = model.keras_model
    if km is None:
        if harmonize is not None or detail is not None:
            raise PredictError(f"model {model.uri}: --harmonize and --detail need a satsr Keras model (with "
                               f"'{export.HARMONIZE}' / '{export.DETAIL}' layers); this one is a "
                               f"{model.name} object")
        yield ModelSettings(None, None)
        return
    try:
        wanted = resolve_harmonization(harmonize, 3)
    except HarmonizeError as err:
        raise PredictError(f"--harmonize: {err}") from None
    saved_h, saved_d = export.get_harmonization(km), export.get_detail(km)
    try:
        try:
            if wanted is not None:
                export.set_harmonization(km, wanted)
            if detail is not None:
                export.set_detail(km, detail)
        except export.ModelError as err:
            raise PredictError(f"{model.uri}: {err}") from None
        used = ModelSettings(export.get_harmonization(km), export.get_detail(km))
        log.info("%s: harmonization %s%s", model.name, used.harmonize.describe() if used.harmonize else "-",
                 f", detail strength {used.detail:g}" if used.detail is not None else "")
        yield used
    finally:
        export.set_harmonization(km, saved_h)
        if saved_d is not None:
            export.set_detail(km, saved_d)


def configure_threads(threads: int) -> None:
    """TensorFlow CPU threads (0 = its default, all cores); only possible before TF starts running."""
    if threads <= 0:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError as err:  # TF already initialised in this process
        log.debug("TensorFlow threads not changed: %s", err)

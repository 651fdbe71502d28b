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

Two measurements size the tiling (satsr.predict.stream):

* ``measure_reach``: how far a tile edge changes the output. A random input is run whole and cut at
  one column (left and right cuts); the reach is the LR distance from the cut beyond which every
  output differs from the whole image's by at most the tolerance (the tile-edge error the blending
  must hide). Measured, not derived from the layer count: the nominal receptive field (EDSR-baseline:
  ~36 LR px) is far wider than the distance where the effect becomes negligible.
* ``activation_bytes_per_px``: memory per LR input px of one model call, 2.5 x the largest tensor
  the traced graph makes (per LR px): the largest layer's input and output are alive together, plus
  oneDNN's layout copies and scratch. Fitted to EDSR-baseline's measured peak RSS growth per tile
  (``/proc`` VmHWM): 4.75 KB/px at 384² and 512² tiles, 2.06 x its largest tensor (the upsampler
  conv's 576 channels, 2,304 B/px); the rule gives 5.76 KB/px.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    #: What the model is (``satsr.models.loading.identity``: a file's sha256 or a registered version),
    #: recorded in every output for ``--skip-existing``; None for an in-memory model.
    identity: str | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def reach(self, tol: float) -> int:
        """LR px a tile edge affects beyond ``tol`` (``measure_reach``), for the current settings."""
        key = ("reach", tol, *self._state())
        if key not in self._cache:
            self._cache[key] = measure_reach(self.fn, tol)
        return self._cache[key]

    def bytes_per_px(self) -> float:
        """Activation bytes per LR px of one model call (``activation_bytes_per_px``)."""
        if "bytes" not in self._cache:
            self._cache["bytes"] = activation_bytes_per_px(self.keras_model)
        return self._cache["bytes"]

    def _state(self) -> tuple:
        """What changes the model's output for a given input: its detail strength and harmonization."""
        if self.keras_model is None:
            return ()
        from satsr.models import export

        try:
            return export.get_detail(self.keras_model), export.get_harmonization(self.keras_model)
        except export.ModelError:
            return ()

    def tags(self) -> dict[str, str]:
        tags = {"MODEL_URI": self.uri, "MODEL_NAME": self.name, "MODEL_VERSION": self.version,
                "MODEL_RUN_ID": self.run_id, "MODEL_ARCH": self.arch, "MODEL_ID": self.identity,
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


def load_model(model: Any, params: Params | None = None, identity: str | None = None) -> SRModel:
    """``model``: an MLflow URI (``models:/satsr-rdn@champion``, ``runs:/<id>/model``), a ``.keras``
    file or a folder holding ``model.keras`` (or an MLflow model folder), a Keras model, or an object
    with ``predict`` (called on reflectance). ``identity``: the caller's ``satsr.models.loading.identity``
    of ``model`` (found here when not given)."""
    from satsr.models.export import ModelError
    from satsr.models.loading import identity as identify

    params = params or Params()
    if isinstance(model, SRModel):
        return model
    try:
        loaded = _from_ref(resolve(model, params), params)
        loaded.identity = identity or identify(model, params)
        return loaded
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


#: Reach measurement: probe rows, first probe width, and the widest probed (LR px).
REACH_PROBE_ROWS, REACH_START, REACH_MAX = 16, 48, 384
#: Activation memory of a model that is not a Keras model (unknown graph): a conservative guess.
UNKNOWN_BYTES_PER_PX = 16384.0
#: Peak memory of a model call relative to its largest tensor (input + output + oneDNN copies; see
#: the module doc for the measurement).
LIVE_TENSORS = 2.5


def measure_reach(fn: Callable[[np.ndarray], np.ndarray], tol: float, scale: int = 3, seed: int = 0) -> int:
    """LR px from a tile edge within which the tile's output differs from the whole image's by more
    than ``tol`` (reflectance); 0 when the model is pixel-local.

    A random reflectance strip (uniform in [0, 0.5]: more high-frequency content than any scene, so
    an upper bound) is predicted whole and with ``n`` columns cut off on the left, and on the right;
    the last HR column (counted from the cut) that differs by more than ``tol`` gives the reach. The
    probe widens until the differences die out inside it (at most ``REACH_MAX``; a model reaching
    further gets ``REACH_MAX``, logged).
    """
    rng = np.random.default_rng(seed)
    n = REACH_START
    while True:
        x = rng.uniform(0.0, 0.5, (1, REACH_PROBE_ROWS, 2 * n, 3)).astype(np.float32)
        whole = np.asarray(fn(x), dtype=np.float32)[0]
        left = np.asarray(fn(x[:, :, n:]), dtype=np.float32)[0]  # cut at column n: edge on the left
        right = np.asarray(fn(x[:, :, :n]), dtype=np.float32)[0]  # cut at column n: edge on the right
        d_left = np.abs(left - whole[:, n * scale:]).max(axis=(0, 2))  # by HR column from the cut
        d_right = np.abs(right - whole[:, :n * scale]).max(axis=(0, 2))[::-1]
        bad = np.flatnonzero(np.maximum(d_left, d_right) > tol)
        reach = 0 if bad.size == 0 else math.ceil((bad[-1] + 1) / scale)
        # Trust it when the probe's far half is clean (the whole image's own border is n px away).
        if reach <= n // 2 or n >= REACH_MAX:
            if reach > n // 2:
                log.warning("the model's tile-edge effect exceeds %g beyond %d LR px; using %d", tol, n // 2, reach)
            return reach
        n *= 2


def activation_bytes_per_px(keras_model: Any, probe: int = 37) -> float:
    """Memory of one model call per LR input px: ``LIVE_TENSORS`` x the largest tensor of the traced
    graph, per px of a ``probe`` x ``probe`` input (only tensors with a side that is a multiple of
    ``probe`` count, so weights do not). ``UNKNOWN_BYTES_PER_PX`` for a non-Keras model."""
    if keras_model is None:
        return UNKNOWN_BYTES_PER_PX
    import tensorflow as tf

    spec = tf.TensorSpec((1, probe, probe, keras_model.input_shape[-1] or 3), tf.float32)
    graph = tf.function(lambda x: keras_model(x, training=False)).get_concrete_function(spec).graph
    largest = 0
    for op in graph.get_operations():
        for t in op.outputs:
            shape = t.shape
            if shape.rank is None or shape.rank < 3 or not shape.is_fully_defined():
                continue
            if not any(d % probe == 0 for d in shape.as_list()[1:3]):
                continue
            largest = max(largest, shape.num_elements() * t.dtype.size)
    return LIVE_TENSORS * largest / probe ** 2 if largest else UNKNOWN_BYTES_PER_PX

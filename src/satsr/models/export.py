"""A trained network -> the saved model users run: reflectance in, reflectance out.

Networks train on png16 / 65535 units in [0, 1] (``PngParams``: lo, hi). ``export_model`` wraps one
into::

    reflectance -> harmonize (BandLinear) -> encode (lo, hi) -> network -> decode (lo, hi) -> reflectance

so the saved ``.keras`` file records its own input/output normalization and its harmonization, and
evaluate and predict read them from the model, never from today's params.yaml. The network stays a
nested model (``unwrap`` gets it back for fine-tuning). A ``detail_strength`` layer, where the network
has one (``DetailStrength``, SR = base + alpha * detail), is reached through ``find_layer``.

Models saved before export existed (the bare network) still load: ``as_exported`` wraps them with a
given range, and callers say so with a warning.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from satsr.errors import SatsrError
from satsr.models.blocks import BandLinear, ReflectanceDecode, ReflectanceEncode
from satsr.models.harmonize import Harmonization

HARMONIZE, ENCODE, DECODE, DETAIL = "harmonize", "encode", "decode", "detail_strength"
#: The input of an exported model.
INPUT = "reflectance"


class ModelError(SatsrError, ValueError):
    """A model lacks what is asked of it (layers, range) or cannot be loaded; the message says which."""


def export_model(net: keras.Model, lo: float, hi: float, harmonize: Harmonization | None = None) -> keras.Model:
    """``net`` (input/output in [0, 1] png16 units) wrapped to reflectance in / reflectance out.

    ``lo, hi``: the training PNGs' reflectance range (``png.reflectance_min/max``); ``harmonize``: the
    LR map the network was trained behind (None: identity). The result keeps ``net``'s name, which
    is the architecture's.
    """
    if is_exported(net):
        raise ModelError(f"model {net.name!r} is already exported (it has {ENCODE}/{DECODE} layers)")
    channels = net.input_shape[-1]
    x = keras.Input(shape=(None, None, channels), name=INPUT)
    y = BandLinear(channels, name=HARMONIZE)(x)
    y = ReflectanceEncode(lo, hi, name=ENCODE)(y)
    y = net(y)
    y = ReflectanceDecode(lo, hi, name=DECODE, dtype="float32")(y)
    model = keras.Model(x, y, name=net.name)
    if harmonize is not None:
        set_harmonization(model, harmonize)
    return model


def is_exported(model: Any) -> bool:
    """True for a model made by ``export_model`` (reflectance in/out)."""
    names = {layer.name: layer for layer in getattr(model, "layers", ())}
    return isinstance(names.get(ENCODE), ReflectanceEncode) and isinstance(names.get(DECODE), ReflectanceDecode)


def unwrap(model: keras.Model) -> keras.Model:
    """The png-unit network inside an exported model (a bare network is returned as is)."""
    if not is_exported(model):
        return model
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(inner) != 1:
        raise ModelError(f"model {model.name!r}: expected one nested network between {ENCODE} and {DECODE}, "
                         f"found {len(inner)}")
    return inner[0]


def as_exported(model: keras.Model, lo: float, hi: float) -> tuple[keras.Model, bool]:
    """(an exported model, whether ``model`` already was): a bare network is wrapped with ``lo, hi``."""
    if is_exported(model):
        return model, True
    return export_model(model, lo, hi), False


def model_range(model: keras.Model) -> tuple[float, float]:
    """The reflectance range (lo, hi) an exported model encodes and decodes with."""
    layers = {layer.name: layer for layer in model.layers}
    if not is_exported(model):
        raise ModelError(f"model {model.name!r} carries no normalization ({ENCODE}/{DECODE} layers); "
                         "export it with satsr.models.export.export_model")
    enc, dec = layers[ENCODE], layers[DECODE]
    if (enc.lo, enc.hi) != (dec.lo, dec.hi):
        raise ModelError(f"model {model.name!r}: {ENCODE} range [{enc.lo:g}, {enc.hi:g}] differs from {DECODE} "
                         f"range [{dec.lo:g}, {dec.hi:g}]")
    return enc.lo, enc.hi


def find_layer(model: Any, name: str) -> Any | None:
    """The layer called ``name`` in ``model`` or any model nested in it (None if absent)."""
    for layer in getattr(model, "layers", ()):
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            found = find_layer(layer, name)
            if found is not None:
                return found
    return None


def _harmonize_layer(model: keras.Model) -> BandLinear:
    layer = find_layer(model, HARMONIZE)
    if not isinstance(layer, BandLinear):
        raise ModelError(f"model {model.name!r} has no {HARMONIZE!r} layer (BandLinear); export it with "
                         "satsr.models.export.export_model to give it one")
    return layer


def get_harmonization(model: keras.Model) -> Harmonization:
    """The map the model's ``harmonize`` layer holds, named by the layer's ``source``."""
    layer = _harmonize_layer(model)
    h = Harmonization(layer.source, tuple(float(v) for v in np.asarray(layer.gain)),
                      tuple(float(v) for v in np.asarray(layer.offset)))
    return Harmonization("none", h.gain, h.offset) if h.is_identity else h


def set_harmonization(model: keras.Model, h: Harmonization) -> None:
    """Write ``h`` (weights and source name) into the model's ``harmonize`` layer."""
    layer = _harmonize_layer(model)
    if h.bands != layer.bands:
        raise ModelError(f"harmonization {h.source}: {h.bands} bands, model {model.name!r} takes {layer.bands}")
    layer.gain.assign(np.asarray(h.gain, np.float32))
    layer.offset.assign(np.asarray(h.offset, np.float32))
    layer.source = h.source


def _alpha(model: keras.Model) -> Any:
    layer = find_layer(model, DETAIL)
    if layer is None:
        raise ModelError(f"model {model.name!r} has no {DETAIL!r} layer, so its detail strength cannot be set "
                         "(only models built with a DetailStrength layer, such as the released model, have one)")
    alpha = getattr(layer, "alpha", None)
    if alpha is None:
        alpha = next((w for w in layer.weights if w.name.split("/")[-1].split(":")[0] == "alpha"), None)
    if alpha is None:
        raise ModelError(f"model {model.name!r}: its {DETAIL!r} layer has no 'alpha' weight")
    return alpha


def get_detail(model: keras.Model) -> float | None:
    """The detail strength alpha stored in the model (None when it has no ``detail_strength`` layer)."""
    if find_layer(model, DETAIL) is None:
        return None
    return float(np.asarray(_alpha(model)).reshape(()))


def set_detail(model: keras.Model, alpha: float) -> None:
    """Set the ``detail_strength`` layer's alpha: 0 = bicubic, 1 = all the detail the network adds."""
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ModelError(f"detail strength {alpha:g}: expected a number in [0, 1] (0 = bicubic, 1 = full detail)")
    var = _alpha(model)
    var.assign(np.full(tuple(var.shape), alpha, np.float32))

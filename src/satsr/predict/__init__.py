"""Georeferenced super-resolution of whole Landsat scenes (GeoTIFF / C2 L2 band files -> 10 m COG).

``predict(inputs, model, output)`` is the library call behind ``satsr predict``; see
satsr.predict.scene for inputs, encodings and outputs, and satsr.predict.tiles for the
overlap-blended tiling.
"""

from satsr.predict.scene import (
    PredictError,
    PredictWarning,
    SceneInput,
    SRModel,
    load_model,
    predict,
    predict_scene,
    resolve_inputs,
)
from satsr.predict.tiles import TileGrid, axis_starts, axis_weights, predict_array

__all__ = [
    "PredictError",
    "PredictWarning",
    "SRModel",
    "SceneInput",
    "TileGrid",
    "axis_starts",
    "axis_weights",
    "load_model",
    "predict",
    "predict_array",
    "predict_scene",
    "resolve_inputs",
]

"""Georeferenced super-resolution of whole Landsat scenes (GeoTIFF / C2 L2 band files -> 10 m COG).

``predict(inputs, model, output)`` is the library call behind ``satsr predict``. One module per
concern: inputs (which scenes and bands), encoding (DN -> reflectance), aoi (area -> window), scene
(an opened input), model (the loaded model, its range, harmonization and detail strength), writer
(the output GeoTIFF/COG), tiles (overlap-blended tiling) and run (the orchestration).
"""

from satsr.predict.errors import PredictError, PredictWarning
from satsr.predict.inputs import SceneInput, resolve_inputs
from satsr.predict.model import ModelSettings, SRModel, configure_threads, load_model, settings
from satsr.predict.run import SceneStats, predict, predict_scene
from satsr.predict.scene import OpenScene, open_scene
from satsr.predict.tiles import TileGrid, axis_starts, axis_weights, predict_array

__all__ = [
    "ModelSettings",
    "OpenScene",
    "PredictError",
    "PredictWarning",
    "SRModel",
    "SceneInput",
    "SceneStats",
    "TileGrid",
    "axis_starts",
    "axis_weights",
    "configure_threads",
    "load_model",
    "open_scene",
    "predict",
    "predict_array",
    "predict_scene",
    "resolve_inputs",
    "settings",
]

"""Super-resolution architectures at native x3 (30 m Landsat -> 10 m Sentinel-2-like).

Every model is functional Keras 3 and fully convolutional: input ``(None, None, C)`` holding
png16 / 65535 in [0, 1], output 3x larger in the same encoding (linear; clip when predicting).
Use ``build(arch, params)``; ``ARCHS`` lists the names and ``preset(name)`` the published sizes.
Saved ``.keras`` files need satsr's custom layers registered: import this package, or use ``load``.
What training saves is the network wrapped by ``export.export_model``: reflectance in and out, with
its normalization and harmonization inside (``loading`` reads it back, ``export.unwrap`` unwraps it).
"""

from satsr.models.blocks import (
    BandLinear,
    PixelShuffle,
    ReflectanceDecode,
    ReflectanceEncode,
    Scale,
    Upsample,
)
from satsr.models.export import ModelError, export_model, is_exported, model_range, unwrap
from satsr.models.loading import load
from satsr.models.registry import (
    ARCHS,
    GAN_ARCHS,
    PRESETS,
    Preset,
    build,
    build_discriminator,
    params_for,
    preset,
)
from satsr.models.srgan import discriminator_features, feature_layer_names

__all__ = [
    "ARCHS",
    "GAN_ARCHS",
    "PRESETS",
    "BandLinear",
    "ModelError",
    "PixelShuffle",
    "Preset",
    "ReflectanceDecode",
    "ReflectanceEncode",
    "Scale",
    "Upsample",
    "build",
    "build_discriminator",
    "discriminator_features",
    "export_model",
    "feature_layer_names",
    "is_exported",
    "load",
    "model_range",
    "params_for",
    "preset",
    "unwrap",
]

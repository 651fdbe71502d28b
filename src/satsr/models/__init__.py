"""Super-resolution architectures at native x3 (30 m Landsat -> 10 m Sentinel-2-like).

Every model is functional Keras 3 and fully convolutional: input ``(None, None, C)`` holding
png16 / 65535 in [0, 1], output 3x larger in the same encoding (linear; clip when predicting).
Use ``build(arch, params)``; ``ARCHS`` lists the names and ``preset(name)`` the published sizes.
Saved ``.keras`` files need satsr's custom layers registered: import this package, or use ``load``.
"""

from satsr.models.blocks import PixelShuffle, Scale, Upsample
from satsr.models.registry import (
    ARCHS,
    GAN_ARCHS,
    PRESETS,
    Preset,
    build,
    build_discriminator,
    load,
    params_for,
    preset,
)
from satsr.models.srgan import discriminator_features, feature_layer_names

__all__ = [
    "ARCHS",
    "GAN_ARCHS",
    "PRESETS",
    "PixelShuffle",
    "Preset",
    "Scale",
    "Upsample",
    "build",
    "build_discriminator",
    "discriminator_features",
    "feature_layer_names",
    "load",
    "params_for",
    "preset",
]

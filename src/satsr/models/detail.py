"""The release ("detail") model: bicubic plus a bounded, radiometry-equivariant detail branch.

    SR = bicubic(x) + alpha * HighPass_out( D( HighPass_in(x) ) )

- ``D`` is an EDSR-style trunk and an ESPCN-style x3 sub-pixel tail, all WITHOUT biases, so with ReLU it is
  positively homogeneous: D(k x) = k D(x). Its input is the LR minus its local level, so the detail
  does not depend on a per-band offset either. Together: SR(k x + c) = k SR(x) + c, per band. The
  same weights therefore behave the same on C2 L2 reflectance, an 8-bit stretch or Landsat-5 DN;
  nothing in the network was fitted to one radiometry (the failure GUIDE.md lists first among
  users' complaints).
- ``HighPass_out`` is the low-frequency constraint: the detail has no content below roughly half
  the LR Nyquist, so the SR keeps the bicubic image's low frequencies (SEN2SR's hard constraint).
- ``alpha`` (``DetailStrength``) scales the detail; alpha = 0 is bicubic exactly.
"""

from __future__ import annotations

import keras

from satsr.config import SCALE, DetailParams
from satsr.models import blocks


def detail_edsr(num_blocks: int = 8, num_filters: int = 48, channels: int = 3, scale: int = SCALE,
                input_highpass_sigma: float = 2.0, output_highpass_sigma: float = 2.0,
                alpha: float = 1.0, kernel_size: int = 3) -> keras.Model:
    """Build the detail model; input (None, None, channels) in any linear radiometry, output x``scale``."""
    lr = blocks.lr_input(channels)
    x = blocks.HighPass(input_highpass_sigma, name="input_highpass")(lr)
    x = head = blocks.conv(x, num_filters, kernel_size, name="head", use_bias=False)
    for b in range(1, num_blocks + 1):
        y = blocks.conv(x, num_filters, kernel_size, name=f"rb{b}_conv1", activation="relu", use_bias=False)
        y = blocks.conv(y, num_filters, kernel_size, name=f"rb{b}_conv2", use_bias=False)
        x = keras.layers.Add(name=f"rb{b}_add")([x, y])
    x = blocks.conv(x, num_filters, kernel_size, name="body_end", use_bias=False)
    x = keras.layers.Add(name="long_skip")([head, x])
    # ESPCN-style tail: one conv straight to channels * scale^2, then the pixel shuffle. Zero-initialised,
    # so the untrained model is exactly bicubic.
    x = blocks.conv(x, channels * scale * scale, kernel_size, name="tail_conv", use_bias=False,
                    kernel_initializer="zeros")
    x = blocks.PixelShuffle(scale, name="up_shuffle")(x)
    detail = blocks.HighPass(output_highpass_sigma, name="lowfreq_constraint")(x)
    base = blocks.Upsample(scale, "bicubic", name="lr_upsampled")(lr)
    sr = blocks.DetailStrength(alpha, name="detail_strength")([base, detail])
    sr = keras.layers.Activation("linear", dtype="float32", name="sr")(sr)
    return keras.Model(lr, sr, name="detail_edsr")


def detail(params: DetailParams | None = None, channels: int = 3, scale: int = SCALE) -> keras.Model:
    """The registry's builder (``models.detail``): the detail model at alpha = 1."""
    p = params or DetailParams()
    return detail_edsr(p.num_blocks, p.num_filters, channels, scale, p.input_highpass_sigma,
                       p.output_highpass_sigma, kernel_size=p.kernel_size)

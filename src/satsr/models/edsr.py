"""EDSR (Lim et al. 2017, arXiv:1707.02921), in krasserm's small functional style.

Head conv, N residual blocks without BN (optionally scaled, 0.1 for the large model), a body conv
with a long skip, the standard x3 upsampler (conv F -> F*9, one pixel shuffle) and a conv to RGB.
Sizes at x3, checked in tests/models: baseline 16 x 64 = 1,554,499 parameters (the published
1.55 M); large 32 x 256 = 43,680,003 (the published 43 M).
"""

from __future__ import annotations

import keras

from satsr.config import SCALE, EDSRParams
from satsr.models import blocks


def edsr_body(x, num_filters: int, num_blocks: int, res_scale: float = 1.0, kernel_size: int = 3):
    """Head conv, residual blocks, body conv and long skip: the trunk shared with the SRGAN generator."""
    x = head = blocks.conv(x, num_filters, kernel_size, name="head")
    for b in range(1, num_blocks + 1):
        x = blocks.residual_block(x, num_filters, kernel_size, res_scale, name=f"rb{b}")
    x = blocks.conv(x, num_filters, kernel_size, name="body_end")
    x = keras.layers.Add(name="long_skip")([head, x])
    return x


def edsr(params: EDSRParams | None = None, channels: int = 3, scale: int = SCALE) -> keras.Model:
    """Build an EDSR from ``params``; input (None, None, channels) in [0, 1], output x``scale``."""
    p = params or EDSRParams()
    lr = blocks.lr_input(channels)
    x = edsr_body(lr, p.num_filters, p.num_blocks, p.res_scale, p.kernel_size)
    x = blocks.upsampler(x, p.num_filters, scale)
    sr = blocks.sr_output(x, lr, channels, p.kernel_size, p.global_residual, scale)
    return keras.Model(lr, sr, name="edsr")

"""Residual Dense Network (Zhang et al. 2018, arXiv:1802.08797).

Layout of the authors' code (EDSR-PyTorch ``model/rdn.py``): two shallow 3x3 convs, D residual
dense blocks, global feature fusion (1x1 over the concatenated block outputs, then 3x3), global
residual to the first conv, and for x2/x3 a conv G0 -> G*s^2, one pixel shuffle, conv G -> 3.
The paper's D16 C8 G64 G0 64 has 22,308,035 parameters at x3 (checked in tests/models).
"""

from __future__ import annotations

import keras

from satsr.config import SCALE, RDNParams
from satsr.models import blocks


def rdn(params: RDNParams | None = None, channels: int = 3, scale: int = SCALE) -> keras.Model:
    """Build an RDN from ``params``; input (None, None, channels) in [0, 1], output x``scale``."""
    p = params or RDNParams()
    k = p.kernel_size
    lr = blocks.lr_input(channels)
    f_m1 = blocks.conv(lr, p.G0, k, name="sfe1")
    x = blocks.conv(f_m1, p.G0, k, name="sfe2")
    outs = []
    for d in range(1, p.D + 1):
        x = blocks.rdb(x, p.G0, p.G, p.C, k, name=f"rdb{d}")
        outs.append(x)
    x = keras.layers.Concatenate(name="gff_cat")(outs) if len(outs) > 1 else outs[0]
    x = blocks.conv(x, p.G0, 1, name="gff1")
    x = blocks.conv(x, p.G0, k, name="gff2")
    x = keras.layers.Add(name="grl")([x, f_m1])
    x = blocks.upsampler(x, p.G, scale)
    sr = blocks.sr_output(x, lr, channels, k, p.global_residual, scale)
    return keras.Model(lr, sr, name="rdn")

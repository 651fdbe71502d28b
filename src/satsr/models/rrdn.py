"""idealo ISR's Residual-in-Residual Dense Network (ISR ``ISR/models/rrdn.py``).

ISR's variant of ESRGAN's RRDB (Wang et al. 2018): each dense block uses ReLU and a 3x3 local
fusion conv, blocks are added with weight beta, and the whole RRDB output is scaled by beta
before its skip. Then a 3x3 conv, a global residual to the first conv, a conv G0 -> 3*s^2, one
pixel shuffle and a 3x3 conv 3 -> 3. ISR's published 'gans' size (T10 D3 C4 G32 G0 32) has
4,170,031 parameters at x3 (4,176,100 at ISR's x4), checked in tests/models.
"""

from __future__ import annotations

import keras

from satsr.config import SCALE, RRDNParams
from satsr.models import blocks


def rrdn(params: RRDNParams | None = None, channels: int = 3, scale: int = SCALE) -> keras.Model:
    """Build an RRDN from ``params``; input (None, None, channels) in [0, 1], output x``scale``."""
    p = params or RRDNParams()
    k = p.kernel_size
    lr = blocks.lr_input(channels)
    pre = blocks.conv(lr, p.G0, k, name="pre_blocks")
    x = pre
    for t in range(1, p.T + 1):
        x = blocks.rrdb(x, p.G0, p.G, p.C, p.D, p.beta, k, name=f"rrdb{t}")
    x = blocks.conv(x, p.G0, 3, name="post_blocks")
    x = keras.layers.Add(name="grl")([x, pre])
    x = blocks.upsampler(x, channels, scale)
    sr = blocks.sr_output(x, lr, channels, k, p.global_residual, scale)
    return keras.Model(lr, sr, name="rrdn")

"""SRGAN (Ledig et al. 2017, arXiv:1609.04802): generator, discriminator, discriminator features.

Generator: SRResNet (9x9 head, residual blocks with BN and PReLU, one x3 sub-pixel stage + PReLU,
9x9 tail) or the EDSR trunk (no BN, which avoids BN's colour and grid artifacts under a GAN loss).
PReLU shares its slope over H and W, so the generator stays fully convolutional.

Discriminator: the paper's VGG-style stack (3x3 convs, stride 2 every second conv, filters doubling
per stage, BN, LeakyReLU 0.2), but the flatten + dense head is replaced by global average pooling,
so one network judges any patch size and still gives one logit per image (no sigmoid: use
``from_logits=True``). Its intermediate activations feed a "discriminator feature matching"
perceptual loss, the offline stand-in for VGG features (ImageNet weights cannot be downloaded
here, and VGG features of RGB photos are a poor match for reflectance anyway).
"""

from __future__ import annotations

import keras

from satsr.config import SCALE, SRGANParams
from satsr.models import blocks
from satsr.models.edsr import edsr_body

FEATURE_PREFIX = "d_feat"


def _prelu(name: str):
    return keras.layers.PReLU(shared_axes=[1, 2], name=name)


def _bn(name: str):
    return keras.layers.BatchNormalization(momentum=0.9, name=name)


def srresnet_body(x, num_filters: int, num_blocks: int):
    """SRResNet trunk: 9x9 head + PReLU, B residual blocks (conv-BN-PReLU-conv-BN), conv-BN, skip."""
    x = head = _prelu("head_prelu")(blocks.conv(x, num_filters, 9, name="head"))
    for b in range(1, num_blocks + 1):
        y = _prelu(f"rb{b}_prelu")(_bn(f"rb{b}_bn1")(blocks.conv(x, num_filters, 3, name=f"rb{b}_conv1")))
        y = _bn(f"rb{b}_bn2")(blocks.conv(y, num_filters, 3, name=f"rb{b}_conv2"))
        x = keras.layers.Add(name=f"rb{b}_add")([x, y])
    x = _bn("body_end_bn")(blocks.conv(x, num_filters, 3, name="body_end"))
    return keras.layers.Add(name="long_skip")([head, x])


def generator(params: SRGANParams | None = None, channels: int = 3, scale: int = SCALE) -> keras.Model:
    """The SRGAN generator selected by ``params.generator``; x``scale`` in one pixel-shuffle stage."""
    p = params or SRGANParams()
    lr = blocks.lr_input(channels)
    if p.generator == "srresnet":
        x = srresnet_body(lr, p.num_filters, p.num_blocks)
        x = _prelu("up_prelu")(blocks.upsampler(x, p.num_filters, scale))
        tail_kernel = 9
    else:
        x = edsr_body(lr, p.num_filters, p.num_blocks, p.res_scale)
        x = blocks.upsampler(x, p.num_filters, scale)
        tail_kernel = 3
    sr = blocks.sr_output(x, lr, channels, tail_kernel, p.global_residual, scale)
    return keras.Model(lr, sr, name=f"srgan_{p.generator}")


def discriminator(params: SRGANParams | None = None, channels: int = 3) -> keras.Model:
    """VGG-style discriminator on HR (or SR) patches of any size -> (batch, 1) logits."""
    p = params or SRGANParams()
    hr = keras.Input(shape=(None, None, channels), name="hr")
    x = blocks.conv(hr, p.disc_filters, 3, name="d_conv1")
    x = keras.layers.LeakyReLU(0.2, name=f"{FEATURE_PREFIX}1")(x)
    n = 1
    for stage in range(p.disc_stages):
        filters = p.disc_filters * 2**stage
        for strides in ((2,) if stage == 0 else (1, 2)):
            n += 1
            x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", name=f"d_conv{n}",
                                    use_bias=not p.disc_batch_norm)(x)
            if p.disc_batch_norm:
                x = _bn(f"d_bn{n}")(x)
            x = keras.layers.LeakyReLU(0.2, name=f"{FEATURE_PREFIX}{n}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="d_pool")(x)
    x = keras.layers.LeakyReLU(0.2, name="d_dense_act")(keras.layers.Dense(p.disc_dense, name="d_dense")(x))
    logit = keras.layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(hr, logit, name="srgan_discriminator")


def feature_layer_names(disc: keras.Model) -> list[str]:
    """Names of the discriminator's activation layers usable for feature matching, shallow first."""
    return [layer.name for layer in disc.layers if layer.name.startswith(FEATURE_PREFIX)]


def discriminator_features(disc: keras.Model, layers: list[str] | None = None) -> keras.Model:
    """A model sharing ``disc``'s weights that returns its intermediate feature maps (a list).

    For a feature-matching perceptual loss: compare ``f(sr)`` with ``f(hr)`` layer by layer.
    ``layers`` defaults to every activation (see ``feature_layer_names``).
    """
    names = layers or feature_layer_names(disc)
    outputs = [disc.get_layer(name).output for name in names]
    return keras.Model(disc.input, outputs, name=f"{disc.name}_features")

"""Layers and blocks shared by the architectures.

Every custom layer is registered with Keras so that a saved ``.keras`` file loads back without
``custom_objects`` and without ``safe_mode=False`` (no Lambda layers anywhere). Layers call
``tf`` ops directly, which Keras 3 allows with the TensorFlow backend; nothing here imports
private ``tensorflow.python.keras`` (krasserm's models break on Keras 3 because of that).

Normalisation: inputs are 16-bit PNG / 65535, i.e. reflectance already encoded into [0, 1] with a
fixed, dataset-independent range (see ``PngParams``). There is deliberately no DIV2K-style mean
shift: a photo-dataset mean is wrong for reflectance, and the global residual (the network adds
detail to the input upsampled x3) already centres the learning target on zero. Saved models wrap
the network in ``harmonize`` (BandLinear) -> ``encode`` -> network -> ``decode`` (satsr.models.export),
so what users run takes and returns reflectance.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from satsr.config import SCALE

PACKAGE = "satsr"


@keras.saving.register_keras_serializable(package=PACKAGE)
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel upsampling: (H, W, C*s*s) -> (H*s, W*s, C) by ``tf.nn.depth_to_space``.

    A single x3 stage gives the product's native 30 m -> 10 m factor; x3 cannot be built from
    x2 stages, which is why published x2/x4 weights do not transfer.
    """

    def __init__(self, scale: int = SCALE, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, x):
        return tf.nn.depth_to_space(x, self.scale)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        s = self.scale
        return (b, None if h is None else h * s, None if w is None else w * s, c // (s * s))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Upsample(keras.layers.Layer):
    """Fixed (weightless) x``scale`` resize of the input, for the global residual.

    Works on dynamic shapes, unlike ``keras.layers.Resizing`` which needs a fixed output size.
    ``bicubic`` is ``tf.image.resize``'s Keys kernel (a = -0.5) without antialiasing.
    """

    def __init__(self, scale: int = SCALE, method: str = "bicubic", **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        self.method = method

    def call(self, x):
        hw = tf.shape(x)[1:3] * self.scale
        y = tf.image.resize(x, hw, method=self.method)
        return tf.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        s = self.scale
        return (b, None if h is None else h * s, None if w is None else w * s, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "method": self.method}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Scale(keras.layers.Layer):
    """Multiply by a constant: residual scaling (EDSR 0.1, ISR's beta) that keeps deep stacks stable."""

    def __init__(self, factor: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, x):
        return x * tf.cast(self.factor, x.dtype)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


# --------------------------------------------------- normalization carried by exported models
def _check_range(lo: float, hi: float) -> tuple[float, float]:
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        raise ValueError(f"reflectance range needs hi > lo, got lo={lo:g}, hi={hi:g}")
    return lo, hi


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReflectanceEncode(keras.layers.Layer):
    """Reflectance -> the network's [0, 1] units: ``(clip(r, lo, hi) - lo) / (hi - lo)``.

    Exactly the training PNGs' mapping (``PngParams``: png16 / 65535), stored in the saved model as
    its ``encode`` layer, so the model is fed reflectance and needs no params.yaml to be used.
    """

    def __init__(self, lo: float = -0.1, hi: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.lo, self.hi = _check_range(lo, hi)

    def call(self, x):
        lo, hi = tf.cast(self.lo, x.dtype), tf.cast(self.hi, x.dtype)
        return (tf.clip_by_value(x, lo, hi) - lo) / (hi - lo)

    def get_config(self):
        return {**super().get_config(), "lo": self.lo, "hi": self.hi}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReflectanceDecode(keras.layers.Layer):
    """The network's [0, 1] units -> reflectance: ``lo + y * (hi - lo)`` (the ``decode`` layer).

    Linear and unclipped, the inverse of ``ReflectanceEncode`` on [lo, hi]; whoever shows or scores
    the output clips it to [lo, hi] (read them from this layer: ``satsr.models.export.model_range``).
    """

    def __init__(self, lo: float = -0.1, hi: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.lo, self.hi = _check_range(lo, hi)

    def call(self, x):
        return tf.cast(self.lo, x.dtype) + x * tf.cast(self.hi - self.lo, x.dtype)

    def get_config(self):
        return {**super().get_config(), "lo": self.lo, "hi": self.hi}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BandLinear(keras.layers.Layer):
    """Per-band ``y = gain * x + offset`` with fixed (non-trainable) weights ``gain``, ``offset``.

    The ``harmonize`` layer of exported models: a radiometric map of the LR reflectance (e.g. HLS
    OLI -> MSI, see satsr.models.harmonize) applied before ``encode``. Identity when built; the
    values live in the weights, so ``satsr predict --harmonize`` can set them on a loaded model;
    ``source`` names the map (``none``, ``hls``, a file) for provenance.
    """

    def __init__(self, bands: int = 3, source: str = "none", **kwargs):
        super().__init__(**kwargs)
        self.bands = int(bands)
        self.source = str(source)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels != self.bands:
            raise ValueError(f"{self.name}: input has {channels} bands, the layer {self.bands}")
        self.gain = self.add_weight(name="gain", shape=(self.bands,), initializer="ones", trainable=False)
        self.offset = self.add_weight(name="offset", shape=(self.bands,), initializer="zeros", trainable=False)

    def call(self, x):
        return x * tf.cast(self.gain, x.dtype) + tf.cast(self.offset, x.dtype)

    def get_config(self):
        return {**super().get_config(), "bands": self.bands, "source": self.source}


def conv(x, filters: int, kernel_size: int = 3, name: str | None = None, **kwargs):
    """'same'-padded convolution: keeps H x W, so every model stays fully convolutional."""
    return keras.layers.Conv2D(filters, kernel_size, padding="same", name=name, **kwargs)(x)


def lr_input(channels: int = 3) -> keras.KerasTensor:
    """Input of any size: (None, None, channels), png16 / 65535 in [0, 1]."""
    return keras.Input(shape=(None, None, channels), name="lr")


def upsampler(x, channels_out: int, scale: int = SCALE, name: str = "up"):
    """conv(C -> channels_out * s^2) + one pixel shuffle: the standard EDSR/RDN sub-pixel upsampler."""
    x = conv(x, channels_out * scale * scale, 3, name=f"{name}_conv")
    return PixelShuffle(scale, name=f"{name}_shuffle")(x)


def sr_output(body, lr, channels: int, kernel_size: int = 3, global_residual: str = "bicubic",
              scale: int = SCALE, name: str = "tail"):
    """Last conv to image channels, plus the optional global residual on the upsampled input.

    With a residual, the last conv starts at zero so an untrained model outputs exactly the
    bicubic (or nearest) upsample: training starts from the baseline it has to beat, which is
    what lets the small CPU demo models get past bicubic in minutes. The output is linear (not
    clipped) so losses keep their gradients; callers clip to [0, 1] at prediction time. The final
    identity layer is float32 so mixed-precision training still returns float32 images.
    """
    init = "zeros" if global_residual != "none" else "glorot_uniform"
    x = conv(body, channels, kernel_size, name=f"{name}_conv", kernel_initializer=init)
    if global_residual != "none":
        base = Upsample(scale, global_residual, name="lr_upsampled")(lr)
        x = keras.layers.Add(name="global_residual")([x, base])
    return keras.layers.Activation("linear", dtype="float32", name="sr")(x)


def residual_block(x, filters: int, kernel_size: int = 3, res_scale: float = 1.0, name: str = "rb"):
    """EDSR block: conv-ReLU-conv, scaled, added to the input. No BN (EDSR's key change vs SRResNet)."""
    y = conv(x, filters, kernel_size, name=f"{name}_conv1", activation="relu")
    y = conv(y, filters, kernel_size, name=f"{name}_conv2")
    if res_scale != 1.0:
        y = Scale(res_scale, name=f"{name}_scale")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def dense_layers(x, G: int, C: int, kernel_size: int = 3, name: str = "dl"):
    """C conv-ReLU layers of G filters, each fed the concatenation of all previous outputs."""
    for c in range(1, C + 1):
        y = conv(x, G, kernel_size, name=f"{name}_conv{c}", activation="relu")
        x = keras.layers.Concatenate(name=f"{name}_cat{c}")([x, y])
    return x


def rdb(x, G0: int, G: int, C: int, kernel_size: int = 3, name: str = "rdb"):
    """Residual dense block (RDN): dense layers, 1x1 local feature fusion to G0, local residual."""
    y = dense_layers(x, G, C, kernel_size, name=name)
    y = conv(y, G0, 1, name=f"{name}_lff")
    return keras.layers.Add(name=f"{name}_add")([x, y])


def rrdb(x, G0: int, G: int, C: int, D: int, beta: float, kernel_size: int = 3, name: str = "rrdb"):
    """ISR's residual-in-residual dense block.

    D dense blocks, each fused by a 3x3 conv (ISR's difference from RDN's 1x1) and added with
    weight beta; the block's result is scaled by beta again and added to the block input,
    exactly as ISR's ``RRDN._RRDB``.
    """
    y = x
    for d in range(1, D + 1):
        f = dense_layers(y, G, C, kernel_size, name=f"{name}_d{d}")
        f = conv(f, G0, 3, name=f"{name}_d{d}_lff")
        f = Scale(beta, name=f"{name}_d{d}_beta")(f)
        y = keras.layers.Add(name=f"{name}_d{d}_add")([y, f])
    y = Scale(beta, name=f"{name}_beta")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


# ------------------------------------------------------------------ detail (release) model layers
def gaussian_kernel_1d(sigma: float) -> tuple[list[float], int]:
    """Normalised 1-D Gaussian taps out to 3 sigma, and the radius."""
    import math

    radius = max(1, int(math.ceil(3.0 * sigma)))
    taps = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    total = sum(taps)
    return [t / total for t in taps], radius


def _pad_mirror(x, r: int):
    """Reflect-pad H and W by ``r`` for ANY size: REFLECT needs the pad below the side, so small inputs
    (a scene's last strip of tiles) are padded in steps, and a 1-px side by SYMMETRIC steps. An input
    larger than ``r`` gets exactly one REFLECT pad."""
    zero = tf.zeros(2, tf.int32)
    for axis in (1, 2):
        rem = tf.constant(r)
        for mode, room in (("REFLECT", 1), ("SYMMETRIC", 0)):
            for _ in range(r):
                p = tf.minimum(rem, tf.maximum(tf.shape(x)[axis] - room, 0))
                pp = tf.stack([p, p])
                pads = tf.stack([zero, pp if axis == 1 else zero, pp if axis == 2 else zero, zero])
                x = tf.cond(p > 0, lambda x=x, pads=pads, mode=mode: tf.pad(x, pads, mode=mode), lambda x=x: x)
                rem = rem - p
    return x


def gaussian_blur(x, sigma: float):
    """Separable per-channel Gaussian low-pass with reflect padding (no zero-padding edge)."""
    taps, r = gaussian_kernel_1d(sigma)
    c = tf.shape(x)[-1]
    k = tf.constant(taps, dtype=x.dtype)
    ky = tf.tile(tf.reshape(k, (-1, 1, 1, 1)), tf.stack([1, 1, c, 1]))
    kx = tf.tile(tf.reshape(k, (1, -1, 1, 1)), tf.stack([1, 1, c, 1]))
    y = _pad_mirror(x, r)
    y = tf.nn.depthwise_conv2d(y, ky, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(y, kx, [1, 1, 1, 1], "VALID")


@keras.saving.register_keras_serializable(package=PACKAGE)
class HighPass(keras.layers.Layer):
    """x - Gaussian(x): removes the local level, so what follows sees only local contrast.

    Fed to a bias-free network this makes the predicted detail independent of any per-band
    offset of the input (stretch, product, atmosphere); as the last step of a detail branch it is
    the low-frequency constraint: the network cannot move the image's low frequencies away from
    the bicubic ones (SEN2SR's idea).
    """

    def __init__(self, sigma: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.sigma = float(sigma)

    def call(self, x):
        return x - gaussian_blur(x, self.sigma)

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DetailStrength(keras.layers.Layer):
    """``base + alpha * detail``: alpha = 0 is exactly the base (bicubic), alpha = 1 the trained model.

    ``alpha`` is a non-trainable weight stored in the model, calibrated on a real validation pair;
    ``satsr predict --detail`` overrides it.
    """

    def __init__(self, alpha: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_alpha = float(alpha)

    def build(self, input_shape):
        self.alpha = self.add_weight(name="alpha", shape=(), trainable=False,
                                     initializer=keras.initializers.Constant(self.initial_alpha))
        super().build(input_shape)

    def call(self, inputs):
        base, detail = inputs
        return base + tf.cast(self.alpha, detail.dtype) * detail

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "alpha": self.initial_alpha}

"""Training losses: pixel (L1 / MSE, plain or registered), perceptual (VGG19 or discriminator
features), adversarial.

Every loss returns one value PER EXAMPLE (shape ``(batch,)``, float32), so the trainer can average
over the *global* batch with ``tf.nn.compute_average_loss`` under any ``tf.distribute`` strategy.
Images are png16 / 65535 in [0, 1] (see satsr.data.pipeline).

Registered pixel losses (``registered_l1`` / ``registered_mse``)
----------------------------------------------------------------
For real Landsat / Sentinel-2 pairs, whose sub-pixel misregistration and per-scene radiometric
offset are not something the network should learn (WorldStrat's "registered loss"; the PROBA-V
cMSE convention, the training twin of evaluate's cPSNR). Per example: HR is cropped by ``N``
(``loss_max_shift``) px on every side; for every integer shift (dy, dx) within +-N the same-size
window of SR starting (dy, dx) px further down / right is compared after removing the per-band mean
of (HR - SR) over that window; the shift with the smallest bias-free MSE is kept (evaluate's
cPSNR rule, found by one correlation) and the L1 / MSE at that shift is the loss (the gradient goes
to that shift only). With N = 0 it is the plain loss after per-band bias removal. Caveat: the loss is
blind to a constant per-band offset of the SR patch, so nothing in it holds the output's mean
level; use it with a model whose low frequencies are tied to the input (global bicubic residual,
low-frequency constraint) or mix it with plain-loss data.

Perceptual terms
----------------
* ``vgg19``: SRGAN's VGG loss (Ledig et al. 2017): MSE between VGG19 feature maps of SR and HR at
  ``vgg_layer`` (``block5_conv4`` = phi_5,4), features divided by 12.75 as in krasserm's SRGAN.
  It needs the ImageNet weights: from ``$SATSR_VGG19_WEIGHTS``, from the Keras cache
  (``~/.keras/models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``), or downloaded when
  there is network. Otherwise :class:`PerceptualWeightsError` says how to fix it.
* ``disc_features``: feature matching on the discriminator's intermediate activations
  (L1 between SR and HR features, HR side without gradient, averaged over layers). Needs nothing
  from the network, and the features are learnt on the target domain (reflectance, not photos).

Adversarial terms
-----------------
``standard``: the original GAN with binary cross-entropy on logits (SRGAN).
``relativistic``: the relativistic average GAN (Jolicoeur-Martineau 2018; ESRGAN), where D judges
whether a real image is more realistic than the average fake and vice versa::

    D: BCE(1, C(hr) - E[C(sr)]) + BCE(0, C(sr) - E[C(hr)])
    G: BCE(0, C(hr) - E[C(sr)]) + BCE(1, C(sr) - E[C(hr)])

(each term halved). The expectations are taken over the (per-replica) batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import tensorflow as tf

from satsr.errors import SatsrError

VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + VGG19_FILE)
VGG19_MD5 = "253f8cb515780f3b799900260a226db6"
#: Environment variable naming a VGG19 no-top weights file explicitly.
ENV_VGG19 = "SATSR_VGG19_WEIGHTS"
#: krasserm's SRGAN scales VGG features by 1 / 12.75 so the MSE has a sensible magnitude.
VGG_FEATURE_SCALE = 1.0 / 12.75


class PerceptualWeightsError(SatsrError, RuntimeError):
    """The ImageNet VGG19 weights are neither cached nor downloadable; the message says how to fix it."""


# ------------------------------------------------------------------------------------ pixel
def _per_example_mean(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def l1(hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
    """Mean absolute error per example."""
    return _per_example_mean(tf.abs(tf.cast(hr, tf.float32) - tf.cast(sr, tf.float32)))


def mse(hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
    """Mean squared error per example."""
    return _per_example_mean(tf.square(tf.cast(hr, tf.float32) - tf.cast(sr, tf.float32)))


def _bias_free(d: tf.Tensor, square: bool) -> tf.Tensor:
    d = d - tf.reduce_mean(d, axis=[1, 2], keepdims=True)
    return _per_example_mean(tf.square(d) if square else tf.abs(d))


def shift_mse(hr: tf.Tensor, sr: tf.Tensor, max_shift: int) -> tf.Tensor:
    """Bias-free MSE of every shift, ``(batch, 2N+1, 2N+1)`` (index ``[b, dy + N, dx + N]``), at the
    cost of one correlation: ``mean(g^2) - 2 mean(g q) + mean(q^2) - (mean(g) - mean(q))^2`` with the
    cross term as a depthwise convolution of SR by the HR window and SR's window sums from
    cumulative sums. Both are centred on HR's per-band mean first (float32 precision). No gradient."""
    n = int(max_shift)
    hr = tf.stop_gradient(tf.cast(hr, tf.float32))
    sr = tf.stop_gradient(tf.cast(sr, tf.float32))
    b, h, w, c = tf.shape(hr)[0], tf.shape(hr)[1], tf.shape(hr)[2], tf.shape(hr)[3]
    hh, ww, k = h - 2 * n, w - 2 * n, 2 * n + 1
    mu = tf.reduce_mean(hr, axis=[1, 2], keepdims=True)
    g = hr[:, n:h - n, n:w - n, :] - mu
    x = sr - mu
    image = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, b * c])
    kernel = tf.reshape(tf.transpose(g, [1, 2, 0, 3]), [hh, ww, b * c, 1])
    gq = tf.nn.depthwise_conv2d(image, kernel, [1, 1, 1, 1], "VALID")  # (1, k, k, b * c)
    gq = tf.transpose(tf.reshape(gq, [k, k, b, c]), [2, 0, 1, 3])

    def window_sums(v: tf.Tensor) -> tf.Tensor:
        s = tf.pad(tf.cumsum(tf.cumsum(v, axis=1), axis=2), [[0, 0], [1, 0], [1, 0], [0, 0]])
        return s[:, hh:hh + k, ww:ww + k] - s[:, :k, ww:ww + k] - s[:, hh:hh + k, :k] + s[:, :k, :k]

    npx = tf.cast(hh * ww, tf.float32)
    g_mean = tf.reduce_sum(g, axis=[1, 2])[:, None, None, :] / npx
    g2_mean = tf.reduce_sum(g * g, axis=[1, 2])[:, None, None, :] / npx
    q_mean, q2_mean = window_sums(x) / npx, window_sums(x * x) / npx
    return tf.reduce_mean(g2_mean - 2.0 * gq / npx + q2_mean - tf.square(g_mean - q_mean), axis=3)


def registered(hr: tf.Tensor, sr: tf.Tensor, max_shift: int = 3, square: bool = False) -> tf.Tensor:
    """Registered, bias-free L1 (``square``: MSE) per example (module doc).

    The shift is the one with the smallest bias-free MSE (``shift_mse``, no gradient; the same
    registration rule as evaluate's cPSNR; ties go to the smallest shift), and the loss and its
    gradient are computed at that shift only. For ``registered_mse`` this is exactly the minimum
    over the shifts; for ``registered_l1`` it is the L1 at the MSE-registered shift (0 for a pure
    integer shift + bias, like the minimum). Graph-safe in ``tf.function``; a step costs one plain
    loss plus one correlation."""
    hr = tf.cast(hr, tf.float32)
    sr = tf.cast(sr, tf.float32)
    n = int(max_shift)
    h, w = tf.shape(hr)[1], tf.shape(hr)[2]
    tf.debugging.assert_greater(tf.minimum(h, w), 2 * n,
                                message=f"registered loss: patches must be larger than 2 x loss_max_shift ({2 * n} px)")
    g = hr[:, n:h - n, n:w - n, :]
    if n == 0:
        return _bias_free(g - sr, square)
    k = 2 * n + 1
    mse = tf.reshape(shift_mse(hr, sr, n), [-1, k * k])
    r = tf.range(-n, n + 1, dtype=tf.float32)
    dist = tf.reshape(r[:, None] ** 2 + r[None, :] ** 2, [1, k * k])
    scale = tf.reduce_mean(tf.square(g - tf.reduce_mean(g, axis=[1, 2], keepdims=True)), axis=[1, 2, 3])
    best = tf.argmin(mse + 1e-6 * (scale[:, None] + 1e-12) * dist, axis=1, output_type=tf.int32)
    rows = (best // k)[:, None] + tf.range(h - 2 * n)[None, :]  # SR window start n + dy = best // k
    cols = (best % k)[:, None] + tf.range(w - 2 * n)[None, :]
    window = tf.gather(tf.gather(sr, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    return _bias_free(g - window, square)


PIXEL_LOSSES = ("l1", "mse", "registered_l1", "registered_mse")


def pixel_loss(name: str, max_shift: int = 3):
    """The pixel loss ``name`` as ``fn(hr, sr) -> (batch,)``; ``max_shift`` (HR px) is the shift
    range of the registered losses (``loss_max_shift``)."""
    if name == "l1":
        return l1
    if name == "mse":
        return mse
    if name in ("registered_l1", "registered_mse"):
        if max_shift < 0:
            raise ValueError(f"loss_max_shift must be >= 0, got {max_shift}")
        square = name == "registered_mse"

        def loss(hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
            return registered(hr, sr, max_shift, square)

        loss.__name__ = name
        return loss
    raise ValueError(f"unknown pixel loss {name!r}; valid: {', '.join(PIXEL_LOSSES)}")


# -------------------------------------------------------------------------------------- VGG19
def keras_cache_dirs() -> list[Path]:
    """Where Keras keeps downloaded weights: $KERAS_HOME/models, ~/.keras/models, /tmp/.keras/models."""
    homes = []
    if env := os.environ.get("KERAS_HOME"):
        homes.append(Path(env))
    homes += [Path.home() / ".keras", Path("/tmp/.keras")]
    seen, out = set(), []
    for home in homes:
        d = (home / "models").expanduser()
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def _download_vgg19() -> Path:
    """Download the weights into the Keras cache (keras.utils.get_file checks the md5)."""
    return Path(keras.utils.get_file(VGG19_FILE, VGG19_URL, cache_subdir="models", file_hash=VGG19_MD5))


def vgg19_weights_path(download: bool = True) -> Path:
    """The local VGG19 ImageNet (no-top) weights file: env, Keras cache, or a fresh download."""
    if env := os.environ.get(ENV_VGG19):
        path = Path(env).expanduser()
        if not path.is_file():
            raise PerceptualWeightsError(f"{ENV_VGG19}={env}: file not found (expected {VGG19_FILE})")
        return path
    searched = keras_cache_dirs()
    for d in searched:
        if (d / VGG19_FILE).is_file():
            return d / VGG19_FILE
    error = "download disabled"
    if download:
        try:
            return _download_vgg19()
        except Exception as err:  # noqa: BLE001 -- any network/SSL/hash failure means the same thing
            error = f"{type(err).__name__}: {err}"
    raise PerceptualWeightsError(
        f"perceptual: vgg19 needs the ImageNet VGG19 weights {VGG19_FILE}, which are not in the Keras cache "
        f"({', '.join(str(d) for d in searched)}) and could not be downloaded from {VGG19_URL} ({error}). "
        f"Fix: on a machine with network run `python -c \"import keras; keras.applications.VGG19("
        f"include_top=False, weights='imagenet')\"` and copy ~/.keras/models/{VGG19_FILE} into the cache "
        f"(or point {ENV_VGG19} at the file); or use the offline alternative `perceptual: disc_features` "
        f"(e.g. `dvc exp run -S finetune.srgan.perceptual=disc_features`)."
    )


def vgg19_features(layer: str = "block5_conv4", download: bool = True) -> keras.Model:
    """Frozen VGG19 (ImageNet) from its input up to ``layer``, on images of any size."""
    path = vgg19_weights_path(download)
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    try:
        vgg.load_weights(str(path))
    except Exception as err:
        raise PerceptualWeightsError(f"{path}: cannot load the VGG19 weights ({err}); delete the file and "
                                     "let it download again, or use `perceptual: disc_features`") from err
    names = [lyr.name for lyr in vgg.layers]
    if layer not in names:
        raise ValueError(f"vgg_layer {layer!r} is not a VGG19 layer; valid: {', '.join(names[1:])}")
    model = keras.Model(vgg.input, vgg.get_layer(layer).output, name=f"vgg19_{layer}")
    model.trainable = False
    return model


class VGGPerceptual:
    """SRGAN's VGG loss: MSE of scaled VGG19 features of SR vs HR, per example."""

    def __init__(self, layer: str = "block5_conv4", download: bool = True):
        self.model = vgg19_features(layer, download)

    def _features(self, x: tf.Tensor) -> tf.Tensor:
        x = keras.applications.vgg19.preprocess_input(tf.cast(x, tf.float32) * 255.0)
        return tf.cast(self.model(x, training=False), tf.float32) * VGG_FEATURE_SCALE

    def __call__(self, hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
        f_hr = tf.stop_gradient(self._features(tf.clip_by_value(hr, 0.0, 1.0)))
        f_sr = self._features(sr)
        return _per_example_mean(tf.square(f_hr - f_sr))


# ------------------------------------------------------------------------------ feature matching
def feature_matching(hr_features: list[tf.Tensor], sr_features: list[tf.Tensor]) -> tf.Tensor:
    """Mean over layers of the per-example L1 between SR and HR features (HR without gradient)."""
    if len(hr_features) != len(sr_features) or not hr_features:
        raise ValueError("feature_matching needs the same, non-empty list of layers for HR and SR")
    terms = [l1(tf.stop_gradient(tf.cast(h, tf.float32)), tf.cast(s, tf.float32))
             for h, s in zip(hr_features, sr_features, strict=True)]
    return tf.add_n(terms) / float(len(terms))


# ---------------------------------------------------------------------------------- adversarial
def _bce(labels_one: bool, logits: tf.Tensor) -> tf.Tensor:
    logits = tf.reshape(tf.cast(logits, tf.float32), [-1])
    labels = tf.ones_like(logits) if labels_one else tf.zeros_like(logits)
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)


def generator_adversarial(hr_logits: tf.Tensor, sr_logits: tf.Tensor, kind: str = "standard") -> tf.Tensor:
    """The generator's adversarial loss per example (``kind``: standard | relativistic)."""
    if kind == "standard":
        return _bce(True, sr_logits)
    if kind == "relativistic":
        hr_l = tf.reshape(tf.cast(hr_logits, tf.float32), [-1])
        sr_l = tf.reshape(tf.cast(sr_logits, tf.float32), [-1])
        return 0.5 * (_bce(False, hr_l - tf.reduce_mean(sr_l)) + _bce(True, sr_l - tf.reduce_mean(hr_l)))
    raise ValueError(f"unknown adversarial loss {kind!r}; valid: standard, relativistic")


def discriminator_loss(hr_logits: tf.Tensor, sr_logits: tf.Tensor, kind: str = "standard") -> tf.Tensor:
    """The discriminator's loss per example (``kind``: standard | relativistic)."""
    if kind == "standard":
        return _bce(True, hr_logits) + _bce(False, sr_logits)
    if kind == "relativistic":
        hr_l = tf.reshape(tf.cast(hr_logits, tf.float32), [-1])
        sr_l = tf.reshape(tf.cast(sr_logits, tf.float32), [-1])
        return 0.5 * (_bce(True, hr_l - tf.reduce_mean(sr_l)) + _bce(False, sr_l - tf.reduce_mean(hr_l)))
    raise ValueError(f"unknown adversarial loss {kind!r}; valid: standard, relativistic")

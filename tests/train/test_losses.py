"""Losses: pixel, feature matching, adversarial (standard / relativistic), the VGG19 weights error,
and the learning-rate schedules."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from satsr.config import ScheduleParams
from satsr.train import losses
from satsr.train.schedule import StageSchedule


def test_pixel_losses_are_per_example():
    hr = tf.zeros((3, 6, 6, 3))
    sr = tf.concat([tf.zeros((1, 6, 6, 3)), tf.fill((1, 6, 6, 3), 0.5), tf.fill((1, 6, 6, 3), -1.0)], axis=0)
    np.testing.assert_allclose(losses.l1(hr, sr).numpy(), [0.0, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(losses.mse(hr, sr).numpy(), [0.0, 0.25, 1.0], rtol=1e-6)
    assert losses.pixel_loss("mse") is losses.mse
    with pytest.raises(ValueError, match="unknown pixel loss"):
        losses.pixel_loss("huber")



def _texture(seed: int, size: int) -> np.ndarray:
    """(1, size, size, 3) smooth random texture in [0, 1] units."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    g = gaussian_filter(rng.normal(size=(size, size)), 2.0)
    return (0.3 + 0.1 * np.tanh(g / g.std()))[None, :, :, None] * np.array([1.0, 0.8, 0.6], np.float32)


@pytest.mark.parametrize("name", ["registered_l1", "registered_mse"])
@pytest.mark.parametrize("dy,dx", [(0, 0), (2, -1), (-3, 3)])
def test_registered_loss_is_zero_at_a_planted_integer_shift_and_bias(name, dy, dx):
    big = _texture(abs(7 * dy + dx), 60)
    hr = big[:, 10:46, 10:46]
    # SR pixel (y + dy, x + dx) shows HR pixel (y, x), with a per-band offset on top
    sr = big[:, 10 - dy:46 - dy, 10 - dx:46 - dx] + np.array([0.05, -0.02, 0.01], np.float32)
    loss = losses.pixel_loss(name, max_shift=3)
    hr_t, sr_t = tf.constant(hr, tf.float32), tf.constant(sr, tf.float32)
    assert float(loss(hr_t, sr_t)[0]) == pytest.approx(0.0, abs=1e-6)
    plain = losses.pixel_loss(name.removeprefix("registered_"))
    assert float(plain(hr_t, sr_t)[0]) > 5e-4  # the plain loss pays for the shift and the bias
    if (dy, dx) != (0, 0):  # out of range: no longer zero
        assert float(losses.pixel_loss(name, max_shift=max(abs(dy), abs(dx)) - 1)(hr_t, sr_t)[0]) > 1e-4


def test_registered_loss_without_shift_range_is_the_plain_loss_without_bias():
    rng = np.random.default_rng(0)
    hr = tf.constant(rng.random((4, 12, 12, 3)), tf.float32)
    noise = rng.normal(0, 0.05, (4, 12, 12, 3))
    sr_unbiased = tf.constant(hr.numpy() + noise - noise.mean(axis=(1, 2), keepdims=True), tf.float32)
    for name, plain in (("registered_l1", losses.l1), ("registered_mse", losses.mse)):
        got = losses.pixel_loss(name, max_shift=0)(hr, sr_unbiased).numpy()
        np.testing.assert_allclose(got, plain(hr, sr_unbiased).numpy(), rtol=1e-5)
    # with a bias, MSE drops by exactly the mean squared per-band bias
    bias = np.array([0.1, -0.05, 0.02], np.float32)
    sr = sr_unbiased + bias
    got = losses.pixel_loss("registered_mse", max_shift=0)(hr, sr).numpy()
    np.testing.assert_allclose(got, losses.mse(hr, sr).numpy() - np.mean(bias**2), rtol=1e-4)
    assert losses.pixel_loss("registered_l1", 3).__name__ == "registered_l1"



def test_registered_mse_is_the_minimum_over_shifts_and_l1_is_taken_there():
    rng = np.random.default_rng(4)
    hr = rng.random((3, 20, 22, 3)).astype(np.float32)
    sr = (hr + rng.normal(0, 0.3, hr.shape)).astype(np.float32)
    n = 2
    g = hr[:, n:-n, n:-n]
    brute = np.empty((3, 2 * n + 1, 2 * n + 1))
    l1_at = np.empty_like(brute)
    for dy in range(-n, n + 1):
        for dx in range(-n, n + 1):
            d = g - sr[:, n + dy:20 - n + dy, n + dx:22 - n + dx]
            d = d - d.mean(axis=(1, 2), keepdims=True)
            brute[:, dy + n, dx + n] = (d**2).mean(axis=(1, 2, 3))
            l1_at[:, dy + n, dx + n] = np.abs(d).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(losses.shift_mse(hr, sr, n).numpy(), brute, rtol=1e-4)
    np.testing.assert_allclose(losses.pixel_loss("registered_mse", n)(hr, sr).numpy(), brute.min(axis=(1, 2)),
                               rtol=1e-5)
    at = brute.reshape(3, -1).argmin(axis=1)
    np.testing.assert_allclose(losses.pixel_loss("registered_l1", n)(hr, sr).numpy(),
                               l1_at.reshape(3, -1)[np.arange(3), at], rtol=1e-5)

def test_registered_loss_gradients_flow_in_tf_function():
    hr = tf.constant(_texture(1, 30), tf.float32)
    sr = tf.Variable(tf.constant(_texture(2, 30), tf.float32))
    loss_fn = losses.pixel_loss("registered_l1", max_shift=2)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(hr, sr))
        return loss, tape.gradient(loss, sr)

    loss, grad = step()
    assert float(loss) > 0 and grad is not None
    g = grad.numpy()
    assert np.isfinite(g).all() and np.abs(g).sum() > 0
    # a step along the gradient lowers the loss
    sr.assign_sub(0.5 * grad / (np.abs(g).max() + 1e-12) * 0.01)
    assert float(step()[0]) < float(loss)
    with pytest.raises(tf.errors.InvalidArgumentError, match="larger than 2 x loss_max_shift"):
        losses.pixel_loss("registered_mse", max_shift=3)(tf.zeros((1, 6, 6, 3)), tf.zeros((1, 6, 6, 3)))

def test_feature_matching_is_zero_for_identical_features_and_stops_hr_gradient():
    f_hr = [tf.Variable(tf.ones((2, 4, 4, 8))), tf.Variable(tf.ones((2, 2, 2, 16)))]
    f_sr = [tf.Variable(tf.ones((2, 4, 4, 8))), tf.Variable(tf.ones((2, 2, 2, 16)) * 3.0)]
    assert losses.feature_matching(f_hr[:1], f_sr[:1]).numpy().tolist() == [0.0, 0.0]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(losses.feature_matching(f_hr, f_sr))
    grads = tape.gradient(loss, f_hr + f_sr)
    assert grads[0] is None and grads[1] is None  # no gradient into the HR side
    assert float(tf.reduce_sum(tf.abs(grads[3]))) > 0
    np.testing.assert_allclose(losses.feature_matching(f_hr, f_sr).numpy(), [1.0, 1.0])  # (0 + 2) / 2 layers


@pytest.mark.parametrize("kind", ["standard", "relativistic"])
def test_adversarial_losses_reward_the_right_side(kind):
    confident = (tf.constant([[5.0], [6.0]]), tf.constant([[-5.0], [-6.0]]))  # D separates real / fake
    fooled = (tf.constant([[-5.0], [-6.0]]), tf.constant([[5.0], [6.0]]))
    d_good = float(tf.reduce_mean(losses.discriminator_loss(*confident, kind)))
    d_bad = float(tf.reduce_mean(losses.discriminator_loss(*fooled, kind)))
    g_losing = float(tf.reduce_mean(losses.generator_adversarial(*confident, kind)))
    g_winning = float(tf.reduce_mean(losses.generator_adversarial(*fooled, kind)))
    assert d_good < 0.01 and d_bad > 1.0
    assert g_winning < 0.01 and g_losing > 1.0
    assert losses.discriminator_loss(*confident, kind).shape == (2,)
    with pytest.raises(ValueError, match="unknown adversarial"):
        losses.discriminator_loss(*confident, "wgan")


def test_vgg19_without_cached_weights_or_network_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(losses.ENV_VGG19, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(losses, "keras_cache_dirs", lambda: [tmp_path / "keras" / "models"])

    def offline():
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(losses, "_download_vgg19", offline)
    with pytest.raises(losses.PerceptualWeightsError) as err:
        losses.VGGPerceptual("block5_conv4")
    msg = str(err.value)
    assert losses.VGG19_FILE in msg and str(tmp_path / "keras" / "models") in msg
    assert "name resolution" in msg and "perceptual: disc_features" in msg
    # an explicit file that does not exist is named too
    monkeypatch.setenv(losses.ENV_VGG19, str(tmp_path / "nope.h5"))
    with pytest.raises(losses.PerceptualWeightsError, match="nope.h5"):
        losses.vgg19_weights_path()


def test_vgg19_weights_found_in_the_cache_without_download(tmp_path, monkeypatch):
    cache = tmp_path / "models"
    cache.mkdir()
    (cache / losses.VGG19_FILE).write_bytes(b"")
    monkeypatch.delenv(losses.ENV_VGG19, raising=False)
    monkeypatch.setattr(losses, "keras_cache_dirs", lambda: [cache])
    monkeypatch.setattr(losses, "_download_vgg19", lambda: pytest.fail("must not download"))
    assert losses.vgg19_weights_path() == cache / losses.VGG19_FILE


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (ScheduleParams(), {0: 1.0, 50: 1.0, 99: 1.0}),
        (ScheduleParams(name="step", decay_steps=10, decay_rate=0.5), {0: 1.0, 9: 1.0, 10: 0.5, 25: 0.25}),
        (ScheduleParams(name="cosine", decay_rate=0.0), {0: 1.0, 50: 0.5, 100: 0.0, 150: 0.0}),
        (ScheduleParams(name="cosine", decay_steps=20, decay_rate=0.1), {0: 1.0, 20: 0.1}),
        (ScheduleParams(warmup_steps=4), {0: 0.25, 1: 0.5, 3: 1.0, 10: 1.0}),
    ],
)
def test_learning_rate_schedules(schedule, expected):
    scale = tf.Variable(1.0)
    sched = StageSchedule(2e-3, schedule, total_steps=100, scale=scale)
    for step, factor in expected.items():
        assert float(sched(step)) == pytest.approx(2e-3 * factor, rel=1e-5, abs=1e-9), step
    scale.assign(0.5)
    assert float(sched(0)) == pytest.approx(2e-3 * 0.5 * expected[0], rel=1e-5)

"""Losses: pixel, feature matching, adversarial (standard / relativistic), the VGG19 weights error,
and the learning-rate schedules."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from satsr.config import ScheduleParams
from satsr.train import losses
from satsr.train.trainer import StageSchedule


def test_pixel_losses_are_per_example():
    hr = tf.zeros((3, 6, 6, 3))
    sr = tf.concat([tf.zeros((1, 6, 6, 3)), tf.fill((1, 6, 6, 3), 0.5), tf.fill((1, 6, 6, 3), -1.0)], axis=0)
    np.testing.assert_allclose(losses.l1(hr, sr).numpy(), [0.0, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(losses.mse(hr, sr).numpy(), [0.0, 0.25, 1.0], rtol=1e-6)
    assert losses.pixel_loss("mse") is losses.mse
    with pytest.raises(ValueError, match="unknown pixel loss"):
        losses.pixel_loss("huber")


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

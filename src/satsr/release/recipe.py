"""Train the release (detail) model on simulated pairs from real Sentinel-2 plus real pairs.

Each batch mixes ``real_fraction`` random crops of the real pairs' train parts with crops of
simulated pairs (real S2 HR, Landsat partner from the one sensor model). The loss is the
registered L1 (best over small shifts, per-band bias removed), because real pairs carry
misregistration and a radiometric offset the network must not learn. Training resumes from the
last checkpoint in ``work_dir`` (one process at a time: ``<work_dir>.lock``, satsr.locks); the best
validation step (mean cPSNR gain over bicubic on the validation parts at alpha = 1) is kept.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from satsr import locks
from satsr.config import SCALE, Params, ReleaseParams
from satsr.data import sensor
from satsr.release import corpus
from satsr.util import write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class Corpus:
    """Everything the recipe trains and scores on, by role."""

    train_pairs: list[corpus.PairArrays]
    train_sim: list[tuple[np.ndarray, np.ndarray]]  # (lr, hr) chips with the sensor margin applied
    val: dict[str, list[tuple[np.ndarray, np.ndarray]]]   # group name -> chips
    test: dict[str, list[tuple[np.ndarray, np.ndarray]]]
    files: list[Path]


def sensor_params(rp: ReleaseParams) -> sensor.SensorParams:
    return sensor.from_amplitudes(rp.sensor, rp.sensor.psf_sigma_hr_px)


def build_corpus(rp: ReleaseParams, root: Path | None = None, include_train_sim: bool = True) -> Corpus:
    root = Path(root or rp.data_root)
    if not root.exists():
        raise corpus.CorpusError(f"{root}: the real-imagery folder (release.data_root) does not exist; "
                                 "the release recipe needs the real Landsat / Sentinel-2 files listed in params.yaml")
    rng = np.random.default_rng(rp.seed)
    sp = sensor_params(rp)
    files: list[Path] = []
    train_pairs: list[corpus.PairArrays] = []
    val: dict[str, list] = {}
    test: dict[str, list] = {}
    for pr in rp.pairs:
        pair = corpus.load_pair(root / pr.lr, root / pr.hr, pr.pseudo_scale, pr.name)
        files += [root / pr.lr, root / pr.hr]
        train_pairs += [corpus.rows_region(pair, r) for r in pr.train]
        for role, target in (("val", val), ("test", test)):
            chips = [c for r in getattr(pr, role) for c in corpus.pair_chips(corpus.rows_region(pair, r), rp.eval_chip)]
            if chips:
                target[f"pair:{pr.name}"] = chips
    train_sim: list = []
    for path in corpus.expand(rp.s2_train, root):
        files += corpus.source_files(path)
        if not include_train_sim:
            continue
        img = corpus.load_s2(path, rp.s2_fallback_scale)
        for _ in range(rp.sim_draws):
            train_sim += corpus.simulate_chips(img, rp.lr_patch, sp, rng)
    for pats, target in ((rp.s2_val, val), (rp.s2_test, test)):
        for path in corpus.expand(pats, root):
            img = corpus.load_s2(path, rp.s2_fallback_scale)
            files += corpus.source_files(path)
            chips = corpus.simulate_chips(img, min(rp.eval_chip, _largest_chip(img, sp)), sp, rng)
            if chips:
                target[f"s2sim:{path.name}"] = chips
    log.info("release corpus: %d train pair parts, %d simulated train chips, val %s, test %s", len(train_pairs),
             len(train_sim), {k: len(v) for k, v in val.items()}, {k: len(v) for k, v in test.items()})
    return Corpus(train_pairs, train_sim, val, test, sorted(set(files)))


def _largest_chip(img: np.ndarray, sp: sensor.SensorParams) -> int:
    return max(8, (min(img.shape[:2]) - 2 * sp.margin()) // SCALE)


class Sampler:
    """Random (lr, hr) training batches: crops of the real train parts and of simulated chips,
    with flips and 90-degree rotations."""

    def __init__(self, data: Corpus, rp: ReleaseParams, seed: int):
        self.data, self.rp = data, rp
        self.rng = np.random.default_rng(seed)
        self.weights = np.array([p.lr.shape[0] * p.lr.shape[1] for p in data.train_pairs], float)
        if len(self.weights):
            self.weights /= self.weights.sum()

    def _pair_crop(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.data.train_pairs[self.rng.choice(len(self.data.train_pairs), p=self.weights)]
        n = self.rp.lr_patch
        y = self.rng.integers(0, p.lr.shape[0] - n + 1)
        x = self.rng.integers(0, p.lr.shape[1] - n + 1)
        return p.lr[y:y + n, x:x + n], p.hr[SCALE * y:SCALE * (y + n), SCALE * x:SCALE * (x + n)]

    def _sim_crop(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.train_sim[self.rng.integers(len(self.data.train_sim))]

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        lrs, hrs = [], []
        for _ in range(self.rp.batch_size):
            real = self.data.train_pairs and (not self.data.train_sim or self.rng.random() < self.rp.real_fraction)
            lr, hr = self._pair_crop() if real else self._sim_crop()
            k = int(self.rng.integers(4))
            lr, hr = np.rot90(lr, k), np.rot90(hr, k)
            if self.rng.random() < 0.5:
                lr, hr = lr[:, ::-1], hr[:, ::-1]
            lrs.append(lr)
            hrs.append(hr)
        return np.stack(lrs).astype(np.float32), np.stack(hrs).astype(np.float32)


def train_release(params: Params, work_dir: Path | None = None) -> dict:
    """Train (or resume) the release model; returns the training summary. One process at a time."""
    work = Path(work_dir or params.release.work_dir)
    with locks.dir_lock(work, f"release work folder {work}", params.locks.stale_after_s):
        work.mkdir(parents=True, exist_ok=True)
        return _train_release(params, work)


def _train_release(params: Params, work: Path) -> dict:
    """The training itself, under the lock; heavy imports stay inside."""
    import keras
    import tensorflow as tf

    from satsr.models.detail import detail
    from satsr.release import alpha as alpha_mod
    from satsr.train.losses import pixel_loss

    rp = params.release
    keras.utils.set_random_seed(rp.seed)
    data = build_corpus(rp)
    net = detail(rp.model)
    schedule = keras.optimizers.schedules.CosineDecay(rp.lr, rp.steps, alpha=0.05)
    opt = keras.optimizers.Adam(schedule)
    loss_fn = pixel_loss("registered_l1", rp.loss_max_shift)
    ckpt = tf.train.Checkpoint(model=net, optimizer=opt, step=tf.Variable(0, dtype=tf.int64))
    manager = tf.train.CheckpointManager(ckpt, str(work / "ckpt"), max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        log.info("resuming the release run at step %d", int(ckpt.step))
    state_file = work / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() and manager.latest_checkpoint else \
        {"best_gain": None, "best_step": None, "history": []}
    sampler = Sampler(data, rp, rp.seed + int(ckpt.step))
    scoring = alpha_mod.Scoring.of(params.evaluate)

    @tf.function(reduce_retracing=True)
    def step(lr, hr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(hr, net(lr, training=True)))
        grads = tape.gradient(loss, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables))
        return loss

    best_path = work / "best.weights.h5"
    t0, losses = time.time(), []
    while int(ckpt.step) < rp.steps:
        lr, hr = sampler.batch()
        losses.append(float(step(tf.constant(lr), tf.constant(hr))))
        ckpt.step.assign_add(1)
        s = int(ckpt.step)
        if s % rp.checkpoint_every == 0 or s == rp.steps:
            manager.save(checkpoint_number=s)
        if s % rp.validate_every == 0 or s == rp.steps:
            gain = alpha_mod.mean_gain(net, data.val, 1.0, scoring)
            state["history"].append({"step": s, "loss": float(np.mean(losses)), "val_cpsnr_gain_alpha1": gain,
                                     "seconds": round(time.time() - t0, 1)})
            log.info("step %d loss %.5f val cPSNR gain (alpha 1) %+.3f dB (%.0f s)", s, np.mean(losses), gain,
                     time.time() - t0)
            losses = []
            if state["best_gain"] is None or gain > state["best_gain"]:
                state["best_gain"], state["best_step"] = gain, s
                net.save_weights(best_path)
            manager.save(checkpoint_number=s)
            write_text_atomic(state_file, json.dumps(state, indent=1))
    if best_path.exists():
        net.load_weights(best_path)
    net.save(work / "trained.keras")
    state["files"] = [str(f) for f in data.files]
    write_text_atomic(state_file, json.dumps(state, indent=1))
    return state

"""Where a training stage runs: the tf.distribute strategy, which worker is the chief, the Keras
mixed-precision policy, and the wrapper that turns a per-replica train step into one distributed
``tf.function``.

``train.strategy``: default (the current device), mirrored (all local GPUs, MirroredStrategy) or
multi_worker (MultiWorkerMirroredStrategy over the hosts in ``TF_CONFIG``). Only the chief writes
outputs and logs to MLflow; the other workers take part in the collective steps and saves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import keras
import tensorflow as tf

from satsr.config import TrainParams
from satsr.train.errors import TrainError


def precision_policy(mode: str) -> str:
    """The Keras dtype policy for ``train.mixed_precision`` (auto = mixed_float16 only on a GPU)."""
    if mode == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    return "float32" if mode == "off" else mode


@contextmanager
def dtype_policy(name: str) -> Iterator[str]:
    """Keras' global dtype policy set to ``name`` inside the block, restored after it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)


def make_strategy(train: TrainParams) -> tf.distribute.Strategy:
    """default: the current device; mirrored: all local GPUs; multi_worker: hosts from TF_CONFIG."""
    if train.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if train.strategy == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise TrainError("train.strategy multi_worker needs the TF_CONFIG environment variable "
                             "(cluster spec and this worker's task); see README 'Scaling out'")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one worker that writes outputs (the chief, else worker 0; always when local)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    spec = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in spec


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This worker's task id in the cluster (0 when local)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(getattr(resolver, "task_id", 0) or 0)


def is_distributed(train: TrainParams, strategy: tf.distribute.Strategy) -> bool:
    """Whether batches must go through ``experimental_distribute_dataset``."""
    return train.strategy != "default" or strategy.num_replicas_in_sync > 1


def distributed_step(strategy: tf.distribute.Strategy, replica_fn: Callable) -> Callable:
    """``replica_fn(lr, hr, weights) -> {name: loss}`` run on every replica, the values summed over
    the replicas (each is already averaged over the GLOBAL batch), as one ``tf.function``."""

    @tf.function
    def step(lr, hr, weights):
        per_replica = strategy.run(replica_fn, args=(lr, hr, weights))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    return step

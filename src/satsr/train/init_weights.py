"""The weights a training stage starts from (``init_weights`` of train_stage).

Fine-tuning starts from the pretrained model (``models/pretrain/<arch>/model.keras``), the released
weights (``finetune.detail.init: release``) or any ``--init`` file; pretraining, ``init: none`` and
``--no-init`` start from a fresh initialisation. The start is
part of the checkpoint fingerprint (:func:`init_hash`), so a different start never resumes an old
run. Start weights are copied only into a fresh run, never over a resumed checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras

from satsr import paths
from satsr.models import load, unwrap
from satsr.train.errors import TrainError
from satsr.util import sha256_file

log = logging.getLogger(__name__)

#: The architecture of the released weights (satsr.models.detail).
RELEASE_ARCH = "detail"


def start_weights(arch: str, init: str, override: Path | None = None, no_init: bool = False) -> Path | None:
    """The file fine-tuning starts from: ``--init`` / ``--no-init`` first, else ``finetune.<arch>.init``
    (pretrain | release | none)."""
    if no_init:
        return None
    if override is not None:
        return Path(override)
    if init == "none":
        return None
    if init == "release":
        if arch != RELEASE_ARCH:
            raise TrainError(f"finetune.{arch}.init: release: the released weights ({paths.release_model()}) are the "
                             f"`{RELEASE_ARCH}` architecture; fine-tune `{RELEASE_ARCH}` from them, or set "
                             f"finetune.{arch}.init to pretrain or none")
        return paths.release_model()
    return paths.model_file("pretrain", arch)


def check_init_weights(path: Path | None, name: str, arch: str) -> None:
    """Fail before any work when the start weights are named but absent."""
    if path is not None and not Path(path).is_file():
        raise TrainError(f"{name}: {path}: pretrained weights not found; run `dvc repro pretrain@{arch}` "
                         f"(or `satsr pretrain {arch}`) first, or use --no-init")


def init_hash(path: Path | None) -> str | None:
    """sha256 of the start weights (None: fresh initialisation), for the checkpoint fingerprint."""
    return sha256_file(path) if path is not None and Path(path).is_file() else None


def load_init_weights(model: keras.Model, path: str | Path, arch: str) -> None:
    """Copy the weights of a saved model (``model.keras``) or weights file into ``model``."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{path}: pretrained weights not found; run `dvc repro pretrain@{arch}` "
                         f"(or `satsr pretrain {arch}`) first, or fine-tune from scratch with --no-init")
    try:
        if path.name.endswith(".weights.h5"):
            model.load_weights(str(path))
            return
        source = unwrap(load(path))  # an exported model.keras holds the network inside
    except Exception as err:
        raise TrainError(f"{path}: cannot read the pretrained model ({type(err).__name__}: {err}); the file "
                         f"is corrupt or not a satsr model; rerun `dvc repro pretrain@{arch}`") from err
    src, dst = source.get_weights(), model.get_weights()
    if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst, strict=False)):
        raise TrainError(f"{path}: its architecture ({source.name}, {source.count_params():,} params) differs "
                         f"from models.{arch} in params.yaml ({model.name}, {model.count_params():,} params); "
                         f"rerun the pretrain stage after changing models.{arch}")
    model.set_weights(src)

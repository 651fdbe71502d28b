"""The MLflow UI serves a registered model with its `champion` alias, checked with a real headless
Debian chromium against a real `mlflow server` (the README's "Choosing and downloading a model in
the MLflow UI" walk-through)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from fixtures_mlflow import isolated_mlflow_env
from PIL import Image

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

MODEL = "satsr-uitest"
#: Headless flags that work as root in a container without a display or network (GUIDE section 5).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (skips only when apt-get fails)."""
    exe = shutil.which("chromium")
    if exe:
        return exe
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        proc = subprocess.run("apt-get update -qq && apt-get install -y -qq chromium", shell=True, env=env,
                              check=False, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"chromium is not installed and apt-get could not install it ({err})")
    exe = shutil.which("chromium")
    if proc.returncode != 0 or exe is None:
        pytest.skip(f"chromium is not installed and `apt-get install chromium` failed ({proc.returncode}): "
                    f"{(proc.stderr or proc.stdout)[-400:]}")
    return exe


def run_chromium(exe: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args],
                              check=False, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def registered_url(mlflow_server_started, tmp_path_factory):
    """A tiny real model logged by a run, registered as satsr-uitest with the alias champion."""
    import keras

    from satsr import models, tracking
    from satsr.config import Params

    url = mlflow_server_started.wait_healthy()
    root = tmp_path_factory.mktemp("ui_root")
    with isolated_mlflow_env(MLFLOW_TRACKING_URI=url, SATSR_TRACKING_ROOT=str(root)):
        tracking.configure(Params())
        keras.utils.set_random_seed(0)
        model = models.build("edsr", {"num_blocks": 1, "num_filters": 8})
        with tracking.stage_run("finetune", "uitest", {"epochs": 1}, data_path=None):
            info = tracking.log_keras_model(model, "uitest", np.zeros((1, 8, 8, 3), np.float32), MODEL)
        tracking.set_alias(MODEL, "champion", info.version)
    return f"{url}/#/models/{MODEL}"


def test_registered_model_page_shows_the_champion(chromium, registered_url):
    proc = run_chromium(chromium, "--dump-dom", registered_url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert MODEL in dom, dom[:2000]
    assert "champion" in dom  # the alias column of the versions table


def test_registered_model_page_screenshot_is_not_blank(chromium, registered_url, tmp_path):
    shot = tmp_path / "mlflow_ui.png"
    proc = run_chromium(chromium, f"--screenshot={shot}", "--window-size=1400,900", registered_url)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    grey = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert grey.shape == (900, 1400)
    assert grey.std() > 10 and (grey < 128).mean() > 0.005  # text and widgets, not a blank page

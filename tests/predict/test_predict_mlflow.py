"""predict() with models from a real (sqlite) MLflow store: models:/ and runs:/ URIs, unknown names."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from conftest import c2_dn, textured, write_tif  # tests/predict/conftest.py
from fixtures_mlflow import isolated_mlflow_env

from satsr import tracking
from satsr.config import Params, TrackingParams
from satsr.predict import PredictError, predict


@pytest.fixture
def store(tmp_path):
    """A sqlite store in tmp, reached through MLFLOW_TRACKING_URI as a user would; env restored after."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with isolated_mlflow_env(MLFLOW_TRACKING_URI=uri):
        tracking.configure(TrackingParams(uri=uri, experiment="predict-test"))
        yield uri


def test_registry_and_run_uris_load_and_unknown_names_list_the_registered_models(store, tmp_path,
                                                                                 random_model_path):
    from satsr.models import load

    model = load(random_model_path)
    with tracking.stage_run("finetune", "edsr", {"lr": 1e-3}, None, data_path=None):
        info = tracking.log_keras_model(model, "edsr", np.zeros((8, 8, 3), np.float32))
    tracking.set_alias(info.name, "champion", info.version)
    params = Params(tracking=TrackingParams(experiment="predict-test"))

    src = write_tif(tmp_path / "s.tif", c2_dn(textured(np.random.default_rng(0), 24, 24)), nodata=0)
    local = predict(src, random_model_path, tmp_path / "local.tif", params=params, output_dtype="float32")[0]
    out = predict(src, "models:/satsr-edsr@champion", tmp_path / "reg.tif", params=params,
                  output_dtype="float32")[0]
    with rasterio.open(out) as sr, rasterio.open(local) as ref:
        tags = sr.tags()
        assert tags["SATSR_MODEL_URI"] == "models:/satsr-edsr@champion"
        assert tags["SATSR_MODEL_NAME"] == "satsr-edsr" and tags["SATSR_MODEL_VERSION"] == str(info.version)
        assert tags["SATSR_MODEL_RUN_ID"] == info.run_id
        np.testing.assert_allclose(sr.read(), ref.read(), atol=1e-6)  # the same weights

    out = predict(src, f"runs:/{info.run_id}/model", tmp_path / "run.tif", params=params)[0]
    with rasterio.open(out) as sr:
        assert sr.tags()["SATSR_MODEL_RUN_ID"] == info.run_id

    with pytest.raises(PredictError, match=r"models:/satsr-nope@champion.*registered models: satsr-edsr"):
        predict(src, "models:/satsr-nope@champion", tmp_path / "x.tif", params=params)

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


def test_skip_existing_follows_an_alias_to_the_version_it_names_now(store, tmp_path, random_model_path,
                                                                    bicubic_model_path, monkeypatch, caplog):
    import logging

    from satsr.models import load

    versions = []
    for lr, path in ((1e-3, random_model_path), (2e-3, bicubic_model_path)):
        with tracking.stage_run("finetune", "edsr", {"lr": lr}, None, data_path=None):
            versions.append(tracking.log_keras_model(load(path), "edsr", np.zeros((8, 8, 3), np.float32)).version)
    assert versions[0] != versions[1]
    tracking.set_alias("satsr-edsr", "champion", versions[0])
    params = Params(tracking=TrackingParams(experiment="predict-test"))
    src = write_tif(tmp_path / "s.tif", c2_dn(textured(np.random.default_rng(0), 24, 24)), nodata=0)
    out = tmp_path / "sr.tif"
    predict(src, "models:/satsr-edsr@champion", out, params=params)
    with rasterio.open(out) as sr:
        assert sr.tags()["SATSR_MODEL_ID"] == f"models:/satsr-edsr/{versions[0]}"
    first = out.stat().st_ino

    def no_load(*_a, **_k):
        raise AssertionError("the model was loaded although the output is finished")

    # The alias still names that version, and the version named directly is the same model: kept, no load.
    with monkeypatch.context() as m:
        m.setattr("satsr.predict.run.load_model", no_load)
        for ref in ("models:/satsr-edsr@champion", f"models:/satsr-edsr/{versions[0]}"):
            predict(src, ref, out, params=params, skip_existing=True)
            assert out.stat().st_ino == first
    # The alias moved to another version: the output is that of another model now, and is predicted again.
    tracking.set_alias("satsr-edsr", "champion", versions[1])
    with caplog.at_level(logging.WARNING, logger="satsr.predict.run"):
        predict(src, "models:/satsr-edsr@champion", out, params=params, skip_existing=True)
    assert out.stat().st_ino != first
    assert f"made with another model 'models:/satsr-edsr/{versions[0]}'" in caplog.text
    with rasterio.open(out) as sr:
        assert sr.tags()["SATSR_MODEL_ID"] == f"models:/satsr-edsr/{versions[1]}"

"""The real EarthEngineBackend's expressions, offline: ee's own test API (ee.apitestcase: the
library initialised from its bundled algorithm list, no network) with computeValue and
computePixels captured. Checks each method builds a valid expression graph (every algorithm it
calls exists), makes one request, and asks for what the provider needs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import ee
import numpy as np
import pytest
from ee import apitestcase, serializer

from satsr.data import grids
from satsr.data.sources import gee
from satsr.data.sources.gee.auth import EeAuth

LR = grids.Grid("EPSG:32622", 333075.0, -353595.0, 30.0, 16, 16)
HR = grids.Grid("EPSG:32622", 333075.0, -353595.0, 10.0, 48, 48)
WKT = ('PARAM_MT["Affine", PARAMETER["num_row", 3], PARAMETER["num_col", 3], PARAMETER["elt_0_0", 30.0], '
       'PARAMETER["elt_0_2", 273885.0], PARAMETER["elt_1_1", -30.0], PARAMETER["elt_1_2", -191985.0]]')


@pytest.fixture
def offline_ee(monkeypatch: pytest.MonkeyPatch):
    case = apitestcase.ApiTestCase("setUp")
    case.setUp()
    sent: dict[str, list[Any]] = {"values": [], "pixels": []}
    answers: list[Any] = []

    def compute_value(obj: Any) -> Any:
        sent["values"].append(json.dumps(serializer.encode(obj, for_cloud_api=True)))
        return answers.pop(0)

    def compute_pixels(params: dict[str, Any]) -> Any:
        sent["pixels"].append({**params, "expression": json.dumps(serializer.encode(params["expression"],
                                                                                    for_cloud_api=True))})
        names = ("SR_B4", "SR_B3", "SR_B2") if "SR_B4" in sent["pixels"][-1]["expression"] else ("B4", "B3", "B2")
        g = params["grid"]["dimensions"]
        return {n: np.full((g["height"], g["width"]), 7, np.uint16) for n in names}

    monkeypatch.setattr(ee.data, "computeValue", compute_value)
    monkeypatch.setattr(ee.data, "computePixels", compute_pixels)
    backend = gee.EarthEngineBackend(EeAuth(project="p"))
    backend._ee = ee  # initialised by the test API
    try:
        yield backend, sent, answers
    finally:
        case.tearDown()


def test_search_is_one_request_with_scene_projections(offline_ee) -> None:
    backend, sent, answers = offline_ee
    answers.append([["LANDSAT/LC08/C02/T1_L2/LC08_225063_20200226", 1582713000000, 4.4, "EPSG:32622", WKT, ""]])
    rows = backend.search_scenes(["LANDSAT/LC08/C02/T1_L2", "LANDSAT/LC09/C02/T1_L2"], LR, dt.date(2020, 1, 1),
                                 dt.date(2020, 3, 31), "CLOUD_COVER", 20.0, "SR_B4")
    assert len(sent["values"]) == 1
    expr = sent["values"][0]
    for part in ("Collection.reduceColumns", "Projection.transform", "Projection.crs", "Collection.merge",
                 "LANDSAT/LC09/C02/T1_L2", "Filter.greaterThan", "CLOUD_COVER", "2020-04-01"):
        assert part in expr, part
    assert rows == [{"id": "LANDSAT/LC08/C02/T1_L2/LC08_225063_20200226", "time": 1582713000000, "cloud": 4.4,
                     "crs": "EPSG:32622", "transform": [30.0, 0.0, 273885.0, 0.0, -30.0, -191985.0], "mgrs": None}]


def test_parse_transform_wkt() -> None:
    assert gee.parse_transform_wkt(WKT) == [30.0, 0.0, 273885.0, 0.0, -30.0, -191985.0]
    assert gee.parse_transform_wkt('PARAM_MT["Affine", PARAMETER["num_row", 3]]') == [1, 0, 0, 0, 1, 0]
    assert gee.parse_transform_wkt("") is None and gee.parse_transform_wkt("GEOGCS[...]") is None


def test_clear_fractions_are_one_request_for_all_candidates(offline_ee) -> None:
    backend, sent, answers = offline_ee
    answers += [[["L_a", 1.0], ["L_b", 0.5]], [["S_a", None]]]
    assert backend.landsat_clear_fractions(["L_a", "L_b"], LR) == {"L_a": 1.0, "L_b": 0.5}
    assert backend.s2_clear_fractions(["S_a"], HR, "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED", 0.6) == {"S_a": 0.0}
    assert len(sent["values"]) == 2
    landsat, s2 = sent["values"]
    for part in ("Image.reduceRegion", "Collection.reduceColumns", "Image.bitwiseAnd", "QA_PIXEL", "L_b",
                 "EPSG:32622"):
        assert part in landsat, part
    assert "Image.linkCollection" in s2 and "cs_cdf" in s2 and "CLOUD_SCORE_PLUS" in s2


def test_compute_pixels_keeps_landsat_native_and_resamples_sentinel2(offline_ee) -> None:
    backend, sent, _ = offline_ee
    lr = backend.compute_pixels("LANDSAT/LC08/C02/T1_L2/X", ("SR_B4", "SR_B3", "SR_B2"), LR, None)
    hr = backend.compute_pixels("COPERNICUS/S2_SR_HARMONIZED/Y", ("B4", "B3", "B2"), HR, "bicubic")
    assert lr.shape == (3, 16, 16) and hr.shape == (3, 48, 48) and lr.dtype == np.uint16
    lr_req, hr_req = sent["pixels"]
    assert lr_req["grid"] == gee.ee_grid(LR) and hr_req["grid"] == gee.ee_grid(HR)
    assert "Image.resample" not in lr_req["expression"]  # nearest on its own lattice = the native pixels
    assert "Image.resample" in hr_req["expression"] and "bicubic" in hr_req["expression"]
    assert lr_req["fileFormat"] == "NUMPY_NDARRAY"


def test_scene_projection(offline_ee) -> None:
    backend, sent, answers = offline_ee
    answers.append({"type": "Projection", "crs": "EPSG:32622", "transform": [30, 0, 273885, 0, -30, -191985]})
    assert backend.scene_projection("LANDSAT/X", "SR_B4") == {"crs": "EPSG:32622",
                                                             "transform": [30.0, 0, 273885.0, 0, -30.0, -191985.0]}
    assert "Image.projection" in sent["values"][0]

"""params.yaml validation: bad values fail before any work, naming the key path."""

from pathlib import Path

import pytest
import yaml

from satsr.config import Params, ParamsError, flatten, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_yaml_is_valid_and_complete():
    params = load_params(REPO / "params.yaml")
    assert params.source.provider == "demo"
    assert params.source.hr_size == 3 * params.source.lr_size
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    # every default-bearing key of the data sections is spelled out in params.yaml
    for section in ("source", "filter", "split", "png"):
        missing = set(flatten(getattr(Params(), section))) - set(flatten(raw[section]))
        assert not {k for k in missing if not k.startswith("gee.regions")} , f"{section}: {missing}"


@pytest.mark.parametrize(
    "raw, key, words",
    [
        ({"source": {"lr_size": -5}}, "source.lr_size", "greater than or equal"),
        ({"source": {"provider": "ftp"}}, "source.provider", "'demo', 'gee' or 'folder'"),
        ({"source": {"demo": {"n_pairz": 3}}}, "source.demo.n_pairz", "unknown key"),
        ({"filter": {"max_cloud_fraction": 1.5}}, "filter.max_cloud_fraction", "less than or equal"),
        ({"split": {"train": "lots"}}, "split.train", "valid number"),
        ({"split": {"train": 0.9, "val": 0.1, "test": 0.1}}, "split", "sum to 1"),
        ({"source": {"gee": {"regions": [{"name": "x", "mode": "between", "start": [0, 0]}]}}},
         "source.gee.regions.0", "needs 'end'"),
        ({"source": {"gee": {"start_date": "2020-01-01", "end_date": "2019-01-01"}}}, "source.gee", "after"),
        ({"png": {"reflectance_min": 1.0, "reflectance_max": 0.5}}, "png", "greater than"),
        ({"source": {"scale": 4}}, "source.scale", "3"),
    ],
)
def test_invalid_values_name_the_key(raw, key, words):
    with pytest.raises(ParamsError) as info:
        parse_params(raw, origin="params.yaml")
    text = str(info.value)
    assert f"- {key}" in text and words in text, text
    assert text.startswith("params.yaml:")


def test_all_problems_reported_at_once():
    with pytest.raises(ParamsError) as info:
        parse_params({"source": {"lr_size": 0}, "bogus": 1})
    assert "2 problem(s)" in str(info.value)
    assert "- bogus: unknown key" in str(info.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ParamsError, match="mapping"):
        load_params(scalar)


def test_flatten_dotted_keys():
    flat = flatten(Params().split)
    assert flat["seed"] == 42 and flat["group_cell_m"] == 20000.0
    assert "source.demo.n_pairs" in flatten(Params())

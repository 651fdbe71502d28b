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
        ({"source": {"provider": "ftp"}}, "source.provider", "'demo', 'gee', 'folder' or 's2sim'"),
        ({"source": {"demo": {"n_pairz": 3}}}, "source.demo.n_pairz", "unknown key"),
        ({"filter": {"max_cloud_fraction": 1.5}}, "filter.max_cloud_fraction", "less than or equal"),
        ({"split": {"train": "lots"}}, "split.train", "valid number"),
        ({"split": {"train": 0.9, "val": 0.1, "test": 0.1}}, "split", "sum to 1"),
        ({"source": {"gee": {"regions": [{"name": "x", "mode": "between", "start": [0, 0]}]}}},
         "source.gee.regions.0", "needs 'end'"),
        ({"source": {"gee": {"start_date": "2020-01-01", "end_date": "2019-01-01"}}}, "source.gee", "after"),
        ({"png": {"reflectance_min": 1.0, "reflectance_max": 0.5}}, "png", "greater than"),
        ({"source": {"scale": 4}}, "source.scale", "3"),
        ({"finetune": {"edsr": {"loss": "registered_l1", "loss_max_shift": 8, "input": {"lr_patch": 4}}}},
         "finetune.edsr", "below half the HR patch"),
        ({"select": {"criterion": "cpsnr"}}, "select.criterion", "cpsnr_gain"),
        ({"source": {"folder": {"coregister_hr_px": -1}}}, "source.folder.coregister_hr_px", "greater than or equal"),
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


# ------------------------------------------------------------------------------- architectures
def test_per_architecture_sections_follow_the_registry():
    from satsr.config import ARCH_NAMES, ARCHITECTURES, GAN_ARCH_NAMES

    p = Params()
    for section in (p.models, p.pretrain, p.finetune):
        assert tuple(type(section).model_fields) == ARCH_NAMES
    for arch, spec in ARCHITECTURES.items():
        assert isinstance(getattr(p.models, arch), spec.params)
    assert GAN_ARCH_NAMES == ("srgan",) and p.pretrain.srgan.gan[0].name == "generator"
    assert p.archs == list(ARCH_NAMES) == p.select.archs
    with pytest.raises(ParamsError, match="finetune.esrgan: unknown key"):
        parse_params({"finetune": {"esrgan": {"lr": 1e-4}}})


def test_archs_is_the_one_list_and_select_defaults_to_it():
    p = parse_params({"archs": ["edsr", "rdn"]})
    assert p.archs == p.select.archs == ["edsr", "rdn"]
    assert parse_params({"archs": ["edsr", "rdn"], "select": {"archs": ["rdn"]}}).select.archs == ["rdn"]
    with pytest.raises(ParamsError, match=r"- archs.1: Input should be 'rdn', 'rrdn', 'edsr', 'srgan' or 'detail'"):
        parse_params({"archs": ["edsr", "esrgan"]})
    with pytest.raises(ParamsError, match="archs must be unique"):
        parse_params({"archs": ["edsr", "edsr"]})
    with pytest.raises(ParamsError, match=r"select.archs \['rdn'\] are not in archs \['edsr'\]"):
        parse_params({"archs": ["edsr"], "select": {"archs": ["rdn"]}})


def test_dvc_stages_per_architecture_come_from_params_archs():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    per_arch = [name for name, stage in dvc["stages"].items() if "foreach" in stage]
    assert set(per_arch) == {"pretrain", "finetune", "tune", "evaluate"}
    assert all(dvc["stages"][name]["foreach"] == "${archs}" for name in per_arch)
    assert load_params(REPO / "params.yaml").archs  # the list those stages expand


# ------------------------------------------------------------------ issue 13, item 4: empty file, duplicate keys
@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_an_empty_params_file_is_an_error_not_all_defaults(tmp_path, text):
    empty = tmp_path / "params.yaml"
    empty.write_text(text)
    with pytest.raises(ParamsError) as info:
        load_params(empty)
    assert str(info.value) == (f"{empty}: the file is empty (expected a YAML mapping of parameters; "
                               "write {} to use every default)")


def test_an_explicit_empty_mapping_means_every_default(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("{}\n")
    assert load_params(path) == Params()


@pytest.mark.parametrize("text, key, line, first", [
    ("seed: 1\nsource:\n  lr_size: 16\n  provider: demo\n  lr_size: 32\n", "lr_size", 5, 3),
    ("seed: 1\nseed: 2\n", "seed", 2, 1),
    ("source:\n  demo:\n    seed: 1\nsplit:\n  seed: 2\nsource:\n  lr_size: 32\n", "source", 6, 1),
])
def test_a_duplicate_key_is_an_error_naming_key_and_line(tmp_path, text, key, line, first):
    """PyYAML keeps the last of two equal keys silently; load_params refuses. Equal keys in different
    sections (source.demo.seed, split.seed) are fine."""
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as info:
        load_params(path)
    message = str(info.value)
    assert message == (f"{path}: line {line}: duplicate key {key!r} (expected each key once per section; "
                       f"it is first set at line {first})")
    assert "\n" not in message


def test_the_repo_params_yaml_has_no_duplicate_keys():
    load_params(REPO / "params.yaml")  # the strict loader: raises on a duplicate


def test_a_yaml_syntax_error_is_one_line_with_the_line_number(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("source:\n  lr_size: [16\nsplit: {}\n")
    with pytest.raises(ParamsError) as info:
        load_params(bad)
    assert str(info.value).startswith(f"{bad}: line ") and "not valid YAML" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("raw, words", [
    ({"split": {"train": 0.9, "val": 0.0, "test": 0.1}}, "val must be > 0"),
    ({"split": {"train": 0.0, "val": 0.5, "test": 0.5}}, "train must be > 0"),
    ({"split": {"train": 0.9, "val": 0.1, "test": 0.0}}, "allow_empty_test: true"),
])
def test_split_fractions_that_leave_train_val_or_test_empty(raw, words):
    with pytest.raises(ParamsError, match=words):
        parse_params(raw)
    assert parse_params({"split": {"train": 0.9, "val": 0.1, "test": 0.0, "allow_empty_test": True}}).split.test == 0

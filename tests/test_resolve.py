"""satsr.resolve: one precedence for the effective parameters of a stage. An explicit params.yaml value
(what `dvc exp run -S` writes) beats the tuned one, an untouched one takes the tuned value, the
command line beats both, and effective_params.yaml records every value with its source."""

from __future__ import annotations

import pytest
import yaml

from satsr import resolve
from satsr.config import Params
from satsr.tune import spaces


def _best(tmp_path, overrides, base, arch="edsr", tuned=True):
    meta = {"tuned": tuned, "study": "satsr-edsr-abc", "best_trial": 2}
    if base is not None:
        meta["base"] = base
    return spaces.write_best(tmp_path / "best_params.yaml", arch, overrides, meta)


def _params(**finetune_edsr) -> Params:
    return Params.model_validate({"finetune": {"edsr": finetune_edsr}} if finetune_edsr else {})


DEFAULT_LR = Params().finetune.edsr.lr
DEFAULT_BATCH = Params().finetune.edsr.input.batch_size


def test_explicit_params_yaml_value_wins_over_the_tuned_one(tmp_path):
    # the study ran with the defaults; afterwards the user ran `dvc exp run -S finetune.edsr.lr=1e-5`
    best = _best(tmp_path, {"finetune.lr": 9.8e-4, "finetune.input.batch_size": 16},
                 {"finetune.lr": DEFAULT_LR, "finetune.input.batch_size": DEFAULT_BATCH})
    eff = resolve.effective_params(_params(lr=1e-5), "finetune", "edsr", best_params=best)
    assert eff.params.finetune.edsr.lr == 1e-5
    assert eff.params.finetune.edsr.input.batch_size == 16  # untouched key: tuned value
    by_key = {d.key: d for d in eff.decisions}
    lr = by_key["finetune.edsr.lr"]
    assert lr.source == "params.yaml" and lr.tuned == 9.8e-4 and lr.base == DEFAULT_LR
    assert "changed since the study" in lr.reason and "not used" in lr.reason
    assert by_key["finetune.edsr.input.batch_size"].source == "tune"
    assert [d.key for d in eff.overridden] == ["finetune.edsr.input.batch_size"]


def test_tuned_value_applies_when_params_yaml_is_untouched(tmp_path):
    best = _best(tmp_path, {"finetune.lr": 9.8e-4}, {"finetune.lr": DEFAULT_LR})
    eff = resolve.effective_params(Params(), "finetune", "edsr", best_params=best)
    assert eff.params.finetune.edsr.lr == 9.8e-4
    assert eff.sources["finetune.edsr.lr"] == "tune"
    assert eff.sources["finetune.edsr.epochs"] == "params.yaml"
    assert eff.params.finetune.rdn == Params().finetune.rdn  # other architectures untouched


def test_effective_params_yaml_records_values_and_sources(tmp_path):
    best = _best(tmp_path, {"finetune.lr": 9.8e-4, "finetune.input.batch_size": 16},
                 {"finetune.lr": DEFAULT_LR, "finetune.input.batch_size": DEFAULT_BATCH})
    eff = resolve.effective_params(_params(lr=2e-4), "finetune", "edsr", best_params=best)
    path = resolve.write_effective(eff, tmp_path / "model")
    assert path.name == "effective_params.yaml"
    doc = yaml.safe_load(path.read_text())
    assert doc["stage"] == "finetune" and doc["arch"] == "edsr" and "params.yaml" in doc["precedence"]
    assert doc["values"]["finetune.edsr.lr"] == 2e-4 and doc["sources"]["finetune.edsr.lr"] == "params.yaml"
    assert doc["values"]["finetune.edsr.input.batch_size"] == 16
    assert doc["sources"]["finetune.edsr.input.batch_size"] == "tune"
    assert doc["sources"]["models.edsr.num_filters"] == "params.yaml"
    assert doc["decisions"]["finetune.edsr.lr"] == {
        "value": 2e-4, "source": "params.yaml", "params_yaml": 2e-4, "tuned": 9.8e-4, "study_base": DEFAULT_LR,
        "reason": doc["decisions"]["finetune.edsr.lr"]["reason"]}


def test_disabled_or_missing_study_means_params_yaml(tmp_path):
    best = _best(tmp_path, {"finetune.lr": 9.8e-4}, {"finetune.lr": DEFAULT_LR})
    off = Params.model_validate({"tune": {"enabled": False}})
    eff = resolve.effective_params(off, "finetune", "edsr", best_params=best)
    assert eff.params == off and not eff.decisions and "tune.enabled is false" in eff.notes[0]
    eff = resolve.effective_params(Params(), "finetune", "edsr", best_params=tmp_path / "missing.yaml")
    assert eff.params == Params() and "not found" in eff.notes[0]


def test_best_params_without_base_or_with_an_unknown_key_stops_with_a_clear_message(tmp_path):
    best = _best(tmp_path, {"finetune.lr": 9.8e-4}, None)
    with pytest.raises(resolve.ResolveError, match=r"no 'base'.*dvc repro tune@edsr"):
        resolve.effective_params(Params(), "finetune", "edsr", best_params=best)
    best = _best(tmp_path, {"finetune.nope": 1}, {"finetune.nope": 0})
    with pytest.raises(resolve.ResolveError, match=r"'finetune.nope' names no parameter of finetune.edsr"):
        resolve.effective_params(Params(), "finetune", "edsr", best_params=best)


def test_a_list_item_picked_by_name_says_where_to_set_it(tmp_path):
    best = _best(tmp_path, {"finetune.gan.gan.perceptual_weight": 0.5},
                 {"finetune.gan.gan.perceptual_weight": 0.1}, arch="srgan")
    eff = resolve.effective_params(Params(), "finetune", "srgan", best_params=best)
    (d,) = eff.decisions
    assert d.source == "tune" and d.value == 0.5 and "under finetune.srgan" in d.reason
    assert [p.perceptual_weight for p in eff.params.finetune.srgan.gan if p.name == "gan"] == [0.5]


def test_command_line_beats_params_yaml_for_the_tune_budget():
    params = Params.model_validate({"tune": {"n_trials": 3}})
    eff = resolve.effective_params(params, "tune", "rdn", cli={"tune.n_trials": 20, "tune.timeout_s": None})
    assert eff.params.tune.n_trials == 20 and eff.sources["tune.n_trials"] == "command line"
    assert eff.sources["tune.timeout_s"] == "params.yaml"
    with pytest.raises(resolve.ResolveError, match="n_trials"):
        resolve.effective_params(params, "tune", "rdn", cli={"tune.n_trials": 0})

"""Search spaces and study settings: validation errors name file and key; sampling respects
ranges, log scales and choices; sampled values become validated overrides (GAN phases by name)."""

from __future__ import annotations

import math

import optuna
import pytest
import yaml

from satsr.config import Params
from satsr.tune import spaces

ARCHS = ("rdn", "rrdn", "edsr", "srgan")


@pytest.mark.parametrize("arch", ARCHS)
def test_committed_spaces_are_valid(arch):
    space, settings = spaces.load_all(spaces.Path(__file__).resolve().parents[2] / "experiments", arch)
    assert space.arch == arch and "lr" in space.finetune and space.finetune["lr"].log
    assert settings.direction == "maximize" and settings.objective == "val_psnr_gain"
    assert settings.sampler.name == "tpe" and settings.sampler.seed is not None
    assert settings.pruner.name in ("hyperband", "successive_halving")


def _write(tmp_path, doc, name="rdn.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(("doc", "needle"), [
    ({"arch": "rdn", "finetune": {"lr": {"type": "float", "low": 1e-2, "high": 1e-4}}}, "finetune.lr"),
    ({"arch": "rdn", "finetune": {"lr": {"type": "float", "low": 0.0, "high": 1e-2, "log": True}}}, "log"),
    ({"arch": "rdn", "finetune": {"lr": {"type": "gauss", "low": 0.0, "high": 1.0}}}, "finetune.lr"),
    ({"arch": "rdn", "finetune": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "lg": True}}}, "lg"),
    ({"arch": "rdn", "finetune": {"input.batch_size": {"type": "categorical", "choices": []}}}, "choices"),
    ({"arch": "rdn", "finetun": {}}, "finetun"),
    ({"arch": "vdsr", "finetune": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}}}, "arch"),
    ({"arch": "rdn", "finetune": {"input.lr_pach": {"type": "int", "low": 8, "high": 16}}}, "input.lr_pach"),
    ({"arch": "rdn"}, "varies nothing"),
])
def test_space_errors_name_file_and_key(tmp_path, doc, needle):
    path = _write(tmp_path, doc)
    with pytest.raises(spaces.SpaceError) as err:
        spaces.load_space(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_study_settings_errors_and_missing_file(tmp_path):
    path = _write(tmp_path, {"pruner": {"name": "asha"}, "sampler": {"seed": "x"}}, "study.yaml")
    with pytest.raises(spaces.SpaceError) as err:
        spaces.load_study_settings(path)
    assert str(path) in str(err.value) and "pruner.name" in str(err.value) and "sampler.seed" in str(err.value)
    with pytest.raises(spaces.SpaceError, match="not found"):
        spaces.load_space(tmp_path / "nope.yaml")
    with pytest.raises(spaces.SpaceError, match="study is for"):
        spaces.load_space(_write(tmp_path, {"arch": "edsr", "finetune": {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2}}}), "rdn")


def test_sampling_respects_ranges_log_steps_and_choices(tmp_path):
    space = spaces.load_space(_write(tmp_path, {"arch": "srgan", "finetune": {
        "lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "input.lr_patch": {"type": "int", "low": 16, "high": 32, "step": 8},
        "input.batch_size": {"type": "categorical", "choices": [4, 8, 16]},
        "schedule.name": {"type": "categorical", "choices": ["constant", "cosine"]},
        "gan.gan.perceptual_weight": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
    }}, "srgan.yaml"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(200):
        trial = study.ask()
        v = spaces.suggest(trial, space)
        study.tell(trial, 0.0)
        seen.append(v)
        assert 1e-5 <= v["finetune.lr"] <= 1e-2
        assert v["finetune.input.lr_patch"] in (16, 24, 32)
        assert v["finetune.input.batch_size"] in (4, 8, 16)
        assert v["finetune.schedule.name"] in ("constant", "cosine")
        assert 0.01 <= v["finetune.gan.gan.perceptual_weight"] <= 1.0
    dist = study.trials[0].distributions
    assert dist["finetune.lr"].log and dist["finetune.input.lr_patch"].step == 8
    # log scale: about half the draws below the geometric midpoint (a linear draw gives ~1 %)
    mid = math.sqrt(1e-5 * 1e-2)
    share = sum(v["finetune.lr"] < mid for v in seen) / len(seen)
    assert 0.35 < share < 0.65
    assert {v["finetune.input.lr_patch"] for v in seen} == {16, 24, 32}


def test_overrides_validate_and_address_gan_phases_by_name():
    params = Params()
    tuned = spaces.apply_overrides(params, "srgan", {"finetune.lr": 3e-4, "finetune.input.batch_size": 4,
                                                     "finetune.gan.gan.adversarial_weight": 5e-3})
    sp = tuned.finetune.srgan
    assert sp.lr == 3e-4 and sp.input.batch_size == 4
    assert [p.adversarial_weight for p in sp.gan if p.name == "gan"] == [5e-3]
    assert tuned.finetune.rdn == params.finetune.rdn  # other architectures untouched
    with pytest.raises(spaces.SpaceError, match="lr"):
        spaces.apply_overrides(params, "rdn", {"finetune.lr": 5.0})  # out of range (le=1)
    with pytest.raises(spaces.SpaceError, match="nope"):
        spaces.apply_overrides(params, "rdn", {"finetune.nope": 1})


def test_best_params_round_trip(tmp_path):
    path = spaces.write_best(tmp_path / "best.yaml", "rdn", {"finetune.lr": 2e-4},
                             {"tuned": True, "base": {"finetune.lr": 5e-4}})
    doc = spaces.read_best_doc(path, "rdn")
    assert doc["overrides"] == {"finetune.lr": 2e-4} and doc["base"] == {"finetune.lr": 5e-4}
    empty = spaces.write_best(tmp_path / "fixed.yaml", "rdn", {}, {"tuned": False})
    assert spaces.read_best(empty, "rdn") == {}
    with pytest.raises(spaces.SpaceError, match="expected 'edsr'"):
        spaces.read_best(path, "edsr")


def test_study_yaml_holds_no_budget(tmp_path):
    """The budget is params.yaml tune.n_trials / timeout_s only: a value in study.yaml is an error naming
    the key and where it belongs (it used to win silently); null is accepted."""
    ok = _write(tmp_path, {"objective": "val_psnr_gain", "n_trials": None, "timeout_s": None}, "study.yaml")
    assert spaces.load_study_settings(ok).objective == "val_psnr_gain"
    bad = _write(tmp_path, {"n_trials": 50}, "study.yaml")
    with pytest.raises(spaces.SpaceError, match=r"n_trials: 50: the study budget is params.yaml tune.n_trials"):
        spaces.load_study_settings(bad)


def test_searched_values_are_masked_and_recorded_as_base():
    params = Params()
    space = spaces.SearchSpace.model_validate({"arch": "srgan", "finetune": {
        "lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "gan.gan.perceptual_weight": {"type": "float", "low": 0.01, "high": 1.0}}})
    base = spaces.base_values(params, "srgan", space)
    assert base == {"finetune.lr": params.finetune.srgan.lr, "finetune.gan.gan.perceptual_weight": 0.1}
    masked = spaces.masked_section(params, "finetune", "srgan", space)
    assert masked["lr"] == "<searched>" and masked["epochs"] == params.finetune.srgan.epochs
    assert spaces.get_value(params, "srgan", "finetune.gan.gan.perceptual_weight") == (0.1, True)
    assert spaces.get_value(params, "srgan", "finetune.input.batch_size") == (8, False)

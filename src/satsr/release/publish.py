"""Publish the release model: calibrate alpha on validation parts, score the held-out test parts,
and write the weights, ``metrics.json`` and ``MODEL_CARD.md`` to ``release.out_dir``.

The card's numbers are those of ``metrics.json``, which ``benchmarks/bench_real.py`` recomputes from
the committed weights, so a test can check that the card, the JSON and the benchmark agree.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from satsr import __version__
from satsr.config import Params
from satsr.evaluate.stats import json_safe
from satsr.release import alpha as alpha_mod
from satsr.release import recipe
from satsr.util import sha256_file, write_text_atomic

log = logging.getLogger(__name__)

MODEL_FILE = "satsr_release_x3.keras"
METRICS_FILE = "metrics.json"
CARD_FILE = "MODEL_CARD.md"
REGISTERED_NAME = "satsr-release"
ALIAS = "release"
COMMAND = "make setup && .venv/bin/satsr release all"


def save_model_atomic(model: Any, dest: Path) -> None:
    """Keras needs a ``.keras`` suffix, so the temporary file is a ``.keras`` in a sibling temp dir."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".tmp-") as tmp:
        path = Path(tmp) / dest.name
        model.save(path)
        os.replace(path, dest)


def evaluate_release(net: Any, data: recipe.Corpus, grid: list[float], sc: alpha_mod.Scoring,
                     seed: int = 0) -> dict[str, Any]:
    """alpha from validation; test scores at that alpha and at alpha = 1 (the raw network)."""
    cal = alpha_mod.calibrate_alpha(net, data.val, grid, seed=seed, sc=sc)
    a = cal["alpha"]
    alphas = sorted({0.0, a, 1.0})
    s = alpha_mod.score_chips(net, data.test, alphas, sc)
    test = {f"alpha_{v:g}": alpha_mod.summarize(s, alphas.index(v), seed=seed) for v in alphas}
    return {"calibration": cal, "test": test,
            "test_chip_cpsnr_gain": {"group": s["group"].tolist(),
                                     "gain": (s["cpsnr"][:, alphas.index(a)] - s["bic_cpsnr"]).round(4).tolist()}}


def publish(params: Params, use_mlflow: bool = True) -> dict[str, Any]:
    import keras

    from satsr.models import harmonize
    from satsr.models.export import export_model

    rp = params.release
    work, out = Path(rp.work_dir), Path(rp.out_dir)
    trained = work / "trained.keras"
    if not trained.exists():
        raise recipe.corpus.CorpusError(f"{trained}: no trained release network; run `satsr release train` first")
    net = keras.saving.load_model(trained, compile=False)
    data = recipe.build_corpus(rp, include_train_sim=False)
    state = json.loads((work / "state.json").read_text())
    sc = alpha_mod.Scoring.of(params.evaluate)
    result = evaluate_release(net, data, rp.alpha_grid, sc, rp.seed)
    a = result["calibration"]["alpha"]
    net.get_layer("detail_strength").alpha.assign(a)
    model = export_model(net, params.png.reflectance_min, params.png.reflectance_max, harmonize=harmonize.hls())
    save_model_atomic(model, out / MODEL_FILE)
    root = Path(rp.data_root)
    doc = {
        "model": MODEL_FILE, "satsr_version": __version__, "alpha": a,
        "parameters": int(net.count_params()), "sha256": sha256_file(out / MODEL_FILE),
        "recipe": rp.model_dump(mode="json"), "command": COMMAND,
        "training": {k: state.get(k) for k in ("best_step", "best_gain", "history")},
        "conventions": {"metric_module": "satsr.evaluate.metrics", "data_range": 1.0,
                        "border_hr_px": sc.border, "cpsnr_max_shift_hr_px": sc.max_shift,
                        "bias": "per-band mean removed (cPSNR only)", "baseline": "Pillow bicubic (Keys a=-0.5)",
                        "bands": "RGB, mean over chips", "chip_lr_px": rp.eval_chip,
                        "units": "reflectance (pairs: 8-bit DN/255 x pseudo_scale)",
                        "ci": "95% percentile bootstrap; 'all' clusters by group"},
        "inputs": {str(f.relative_to(root) if f.is_relative_to(root) else f): sha256_file(f) for f in data.files},
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        **result,
    }
    doc = json_safe(doc)  # NaN (a CI of one chip) -> null
    write_text_atomic(out / METRICS_FILE, json.dumps(doc, indent=1) + "\n")
    from satsr.release.card import write_card

    write_card(doc, out / CARD_FILE)
    if use_mlflow:
        register(params)
    summary = {"alpha": a, "val_cpsnr_gain": result["calibration"]["val_cpsnr_gain"]["mean"],
               "test": {k: {"cpsnr_gain": v["cpsnr_gain"]["mean"], "psnr_gain": v["psnr_gain"]["mean"],
                            "worse_chips": v["chips_worse_than_bicubic"]}
                        for k, v in result["test"][f"alpha_{a:g}"].items()}}
    doc["summary"] = summary
    log.info("published %s (alpha %.2f)", out / MODEL_FILE, a)
    return doc




def register(params: Params, summary_path: Path | None = None) -> dict[str, Any]:
    """Register the committed release weights in MLflow (``satsr-release@release``, once per file)
    and write the summary ``select`` reads to let them compete (``models/release/summary.json``)."""
    from satsr import paths, tracking

    out = Path(params.release.out_dir)
    model, metrics_file = out / MODEL_FILE, out / METRICS_FILE
    for f in (model, metrics_file):
        if not f.exists():
            raise recipe.corpus.CorpusError(f"{f}: the released weights are missing; `git checkout {out}` or "
                                            "rebuild them with `satsr release all`")
    doc = json.loads(metrics_file.read_text())
    if sha256_file(model) != doc["sha256"]:
        raise recipe.corpus.CorpusError(f"{model}: its sha256 differs from {metrics_file}; the weights and "
                                        "their card do not belong together (rerun `satsr release publish`)")
    version, run_id = tracking.register_release(params, model, doc, REGISTERED_NAME, ALIAS)
    summary = {"registered_model": f"models:/{REGISTERED_NAME}/{version}", "mlflow_run_id": run_id,
               "alias": f"models:/{REGISTERED_NAME}@{ALIAS}", "alpha": doc["alpha"], "sha256": doc["sha256"]}
    write_text_atomic(summary_path or paths.RELEASE_SUMMARY, json.dumps(summary, indent=1) + "\n")
    log.info("release: %s registered as %s", model, summary["registered_model"])
    return summary

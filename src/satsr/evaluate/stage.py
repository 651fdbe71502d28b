"""The ``evaluate@<arch>`` stage: score one architecture on the TEST split.

``run_evaluate(params, arch)`` runs the model on every LR PNG of the split, upsamples the same LR
with bicubic and Lanczos, and computes every metric of satsr.evaluate.metrics for the three against
HR on the same pixels (reflectance decoded with params' ``png`` range, border ``evaluate.border``).
It writes

* ``data/eval/<arch>/per_image.csv``: one row per image, columns ``<method>_<metric>`` (methods
  ``sr``, ``bicubic``, ``lanczos``; plus ``hr_sharpness``, ``sr_psnr_gain`` and ``sr_cpsnr_gain``,
  and per method the registration of cPSNR: ``cshift_dy``, ``cshift_dx``, ``cbias``); PSNR of
  identical images is written as ``inf``. cPSNR / cSSIM (shift- and bias-tolerant, +-
  ``evaluate.cpsnr_max_shift`` HR px) stand beside PSNR / SSIM: on real pairs plain PSNR measures
  the radiometric mismatch and misregistration of the two sensors as much as detail;
* ``data/eval/<arch>/summary.json``: per-method statistics (mean, median, std, min, max, counts),
  paired gains over bicubic with seeded bootstrap CIs (satsr.evaluate.stats), the conventions;
* ``data/eval/<arch>/figures/``: sharpness and PSNR histograms, side-by-side bicubic | model | HR
  figures with zoomed crops (satsr.evaluate.report);
* ``metrics/eval/<arch>.json`` (DVC metrics): the compact summary (means, medians, gains, CIs);

and logs all of it to the model's fine-tuning MLflow run (``mlflow_run_id`` in
``models/finetune/<arch>/summary.json``): metrics ``<split>_<method>_<metric>_mean|median`` and
``<split>_gain_<method>_<metric>_mean|ci_low|ci_high|significant``, the CSV, the summaries and the
figures (``evaluation/``). Default locations come from satsr.paths.

Bad input stops with an :class:`EvaluationError` naming the file: a missing model or prediction,
NaN / inf in a prediction, a prediction or an HR image of the wrong size, an empty split. An empty
test split that ``split.allow_empty_test`` allows is skipped instead: the outputs above then say
``skipped`` (metrics ``{"n_images": 0, "skipped": 1}``, a header-only CSV, no figures, nothing logged).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from satsr import paths
from satsr.config import SCALE, CorrectnessParams, EvaluateParams, Params
from satsr.evaluate.dataset import load_split, read_reflectance
from satsr.evaluate.metrics import (
    ALL_METRICS,
    BASELINES,
    HIGHER_IS_BETTER,
    METHODS,
    EvaluationError,
    Timer,
    conventions,
    image_metrics,
    upsample,
)
from satsr.evaluate.predictors import ModelPredictor, PredictionDirPredictor, predict_checked
from satsr.evaluate.stats import UNIT_GROUPS, UNIT_IMAGES, ci_note, describe, json_safe, paired_gain
from satsr.util import write_text_atomic

if TYPE_CHECKING:  # pandas is imported where used: metric worker processes start faster without it
    import pandas as pd

    from satsr.data.pipeline import Pair

log = logging.getLogger(__name__)

PER_IMAGE = "per_image.csv"
SUMMARY = "summary.json"
FIGURES = "figures"


def quicklook_of(params: Params) -> tuple[float, float]:
    return params.png.quicklook_max_reflectance, params.png.quicklook_gamma


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as JSON, every non-finite number as null."""
    write_text_atomic(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def predictions_of(pair: Pair, predictor: Any, lo: float, hi: float, timer: Timer | None = None,
                   baselines: Iterable[str] = BASELINES) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(LR, HR, {sr, bicubic, lanczos}) reflectance of one pair."""
    t = timer or Timer()
    with t("read_png"):
        lr = read_reflectance(pair.lr_path, lo, hi)
        hr = read_reflectance(pair.hr_path, lo, hi)
    with t("sr_inference"):
        sr = predict_checked(predictor, pair, lr, hr.shape)
    with t("baselines"):
        preds = {"sr": sr, **{b: upsample(lr, SCALE, b) for b in baselines}}
    return lr, hr, preds


# ----------------------------------------------------------------------------------- evaluation
def _metrics_job(pair_id: str, lr, hr, preds, kwargs) -> dict[str, Any]:
    return {"pair_id": pair_id, **image_metrics(lr, hr, preds, **kwargs)}


def evaluate_split(pairs: list[Pair], predictor: Any, lo: float, hi: float, *, border: int = SCALE,
                   quicklook: tuple[float, float] = (0.3, 1.8),
                   settings: CorrectnessParams | None = None, metrics: Iterable[str] = ALL_METRICS,
                   workers: int = 1, timer: Timer | None = None,
                   baselines: Iterable[str] = BASELINES, max_shift: int = SCALE) -> pd.DataFrame:
    """Per-image metrics of the predictor and the baselines, one row per pair (index order).

    With ``workers`` > 1 the metrics run in that many spawned processes (inference stays here, one
    image at a time, so memory holds at most ``2 * workers`` images in flight)."""
    kwargs = {"scale": SCALE, "border": border, "quicklook": quicklook,
              "correctness_settings": settings or CorrectnessParams(), "metrics": tuple(metrics),
              "max_shift": max_shift}
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    if workers <= 1:
        for i, pair in enumerate(pairs):
            lr, hr, preds = predictions_of(pair, predictor, lo, hi, timer, baselines)
            rows.append({"pair_id": pair.pair_id, **image_metrics(lr, hr, preds, timer=timer, **kwargs)})
            log.debug("evaluated %s (%d/%d)", pair.pair_id, i + 1, len(pairs))
    else:
        import multiprocessing as mp

        futures: list[Future] = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            for pair in pairs:
                while sum(not f.done() for f in futures) >= 2 * workers:
                    time.sleep(0.01)
                lr, hr, preds = predictions_of(pair, predictor, lo, hi, timer, baselines)
                futures.append(pool.submit(_metrics_job, pair.pair_id, lr, hr, preds, kwargs))
            rows = [f.result() for f in futures]
    import pandas as pd

    df = pd.DataFrame(rows)
    if len(df) and any(p.group for p in pairs):  # the split's spatial groups: the CIs resample them
        df.insert(1, "group", [p.group for p in pairs])
    if "sr_psnr" in df and "bicubic_psnr" in df:
        df["sr_psnr_gain"] = df["sr_psnr"] - df["bicubic_psnr"]
    if "sr_cpsnr" in df and "bicubic_cpsnr" in df:
        df["sr_cpsnr_gain"] = df["sr_cpsnr"] - df["bicubic_cpsnr"]
    log.info("scored %d image(s) in %.1f s", len(df), time.perf_counter() - t_start)
    return df


def summarize(df: pd.DataFrame, ev: EvaluateParams, baseline: str = "bicubic") -> dict[str, Any]:
    """Per-method statistics and paired gains over ``baseline`` of every metric in ``df``, with CIs
    over the spatial groups of the ``group`` column (cluster bootstrap; images when absent)."""
    stats: dict[str, dict[str, Any]] = {}
    gains: dict[str, dict[str, Any]] = {}
    groups = df["group"].tolist() if "group" in df else None
    for method in METHODS:
        for metric in ALL_METRICS:
            col = f"{method}_{metric}"
            if col not in df:
                continue
            cap = ev.psnr_cap_db if "psnr" in metric else None  # psnr, cpsnr, psnr8
            stats.setdefault(method, {})[metric] = describe(df[col].to_numpy(float), cap)
            base = f"{baseline}_{metric}"
            if method != baseline and base in df:
                gains.setdefault(method, {})[metric] = paired_gain(
                    df[col].to_numpy(float), df[base].to_numpy(float), higher_is_better=HIGHER_IS_BETTER[metric],
                    cap=cap, n_boot=ev.bootstrap, level=ev.ci_level, seed=ev.seed, groups=groups)
    if "hr_sharpness" in df:
        stats["hr"] = {"sharpness": describe(df["hr_sharpness"].to_numpy(float))}
    unit = UNIT_GROUPS if groups is not None else UNIT_IMAGES
    n_units = len(set(map(str, groups))) if groups is not None else len(df)
    ci = {"unit": unit, "n_groups": n_units, "method": "cluster bootstrap" if groups is not None else "bootstrap",
          "note": ci_note(ev.ci_level, n_units, unit)}
    return {"stats": stats, f"gain_vs_{baseline}": gains, "ci": ci}


def compact_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The DVC metrics file, numbers only (so ``dvc metrics show / diff`` stays a table): means and
    medians per method, paired gains over bicubic with their CI (``significant``: 1 when the CI
    excludes 0), and the numeric conventions. The full summary (with the conventions in words) is
    ``data/eval/<arch>/summary.json``."""
    out: dict[str, Any] = {"n_images": summary["n_images"]}
    for method, metrics in summary["stats"].items():
        out[method] = {m: {"mean": s["mean"], "median": s["median"]} for m, s in metrics.items()}
    out["gain_vs_bicubic"] = {
        method: {m: {"mean": g["mean"], "median": g["median"], "ci_low": g["ci_low"], "ci_high": g["ci_high"],
                     "significant": int(bool(g["significant"])), "ci_groups": g.get("n_groups")}
                 for m, g in ms.items()}
        for method, ms in summary["gain_vs_bicubic"].items()}
    out["conventions"] = {"reflectance_max": 1.0, "border_crop_px": summary["conventions"]["border_crop_px"],
                          "ci_level": summary["ci_level"], "psnr_cap_db": summary["psnr_cap_db"],
                          "ci_groups": summary.get("ci", {}).get("n_groups"),
                          "ci_cluster_bootstrap": int(summary.get("ci", {}).get("unit") == UNIT_GROUPS),
                          "cpsnr_max_shift_hr_px": summary["conventions"].get("registered", {}).get("max_shift_hr_px")}
    return out


def finetune_summary_path(arch: str, model_dir: str | Path | None = None) -> Path:
    """The trainer's summary of a fine-tuned model (``summary.json``; older runs: ``metrics.json``)."""
    folder = Path(model_dir) if model_dir is not None else paths.model_dir("finetune", arch)
    for name in ("summary.json", "metrics.json"):
        if (folder / name).is_file():
            return folder / name
    return folder / "summary.json"


def read_finetune_summary(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        log.warning("%s: unreadable; the model's MLflow run and registry entry are unknown", path)
        return {}


def _mlflow_metrics(summary: dict[str, Any]) -> dict[str, float]:
    split = summary["split"]
    out: dict[str, float] = {f"{split}_n_images": summary["n_images"]}
    if summary.get("ci"):
        out[f"{split}_ci_groups"] = summary["ci"]["n_groups"]
    for method, metrics in summary["stats"].items():
        for metric, s in metrics.items():
            for stat in ("mean", "median"):
                if s[stat] is not None and math.isfinite(s[stat]):
                    out[f"{split}_{method}_{metric}_{stat}"] = s[stat]
    for method, metrics in summary["gain_vs_bicubic"].items():
        for metric, g in metrics.items():
            for stat in ("mean", "ci_low", "ci_high"):
                if g[stat] is not None and math.isfinite(g[stat]):
                    out[f"{split}_gain_{method}_{metric}_{stat}"] = g[stat]
            out[f"{split}_gain_{method}_{metric}_significant"] = float(bool(g["significant"]))
    return out


def make_figures(df: pd.DataFrame, summary: dict[str, Any], pairs: list[Pair], predictor: Any, lo: float,
                 hi: float, ev: EvaluateParams, quicklook: tuple[float, float], fig_dir: Path, name: str) -> list[Path]:
    """Histograms and side-by-side figures, saved under ``fig_dir``; returns the files."""
    from satsr.evaluate import report

    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):
        old.unlink()
    n = summary["n_images"]
    where = f"{name}, {summary['split']} split, {n} image(s)"
    files = []
    if "sr_sharpness" in df:
        files.append(report.save(report.sharpness_histogram(df, f"Sharpness index: {where}", ev.hist_bins),
                                 fig_dir / "sharpness_histogram.png"))
    if "sr_psnr" in df:
        gain = summary["gain_vs_bicubic"].get("sr", {}).get("psnr")
        files.append(report.save(report.psnr_histogram(df, f"PSNR: {where}", ev.hist_bins, ev.psnr_cap_db, gain),
                                 fig_dir / "psnr_histogram.png"))
    by_id = {p.pair_id: p for p in pairs}
    gains = df["sr_psnr_gain"].to_numpy(float) if "sr_psnr_gain" in df else np.zeros(len(df))
    for rank, i in enumerate(report.figure_indices(gains, ev.figures)):
        row = df.iloc[i]
        pair = by_id[str(row["pair_id"])]
        _, hr, preds = predictions_of(pair, predictor, lo, hi)

        def cap(m: str, row=row) -> str:
            p, s = row.get(f"{m}_psnr"), row.get(f"{m}_sharpness")
            return f"PSNR {p:.2f} dB, sharpness {s:.4f}" if p is not None and s is not None else ""

        hr_cap = f"sharpness {row['hr_sharpness']:.4f}" if "hr_sharpness" in row else ""
        fig = report.side_by_side(
            [("LR, bicubic x3", preds["bicubic"], cap("bicubic")), (f"model ({name})", preds["sr"], cap("sr")),
             ("HR (Sentinel-2)", hr, hr_cap)],
            f"{name}: pair {pair.pair_id} (PSNR gain over bicubic {gains[i]:+.2f} dB); quicklook stretch "
            f"max {quicklook[0]:g}, gamma {quicklook[1]:g}", ev.zoom_px, quicklook)
        files.append(report.save(fig, fig_dir / f"side_by_side_{rank + 1:02d}_{pair.pair_id}.png"))
    return files


def split_size(png_dir: str | Path, split: str) -> int | None:
    """Rows of ``split`` in the PNG dataset's index.csv; None when there is no readable index (then
    ``load_split`` reports the problem)."""
    import pandas as pd

    from satsr.data.pipeline import INDEX_NAME

    try:
        index = pd.read_csv(Path(png_dir) / INDEX_NAME, dtype=str, usecols=["split"])
    except (OSError, ValueError):
        return None
    return int((index["split"] == split).sum())


def _skip_empty_split(params: Params, arch: str, split: str, png_dir: str | Path, out_dir: Path,
                      metrics_path: Path) -> dict[str, Any]:
    """An empty test split the user allowed (``split.allow_empty_test``): write the stage's outputs saying
    "skipped" (so the DVC outs exist and ``dvc metrics show`` tells why) instead of failing after training.
    Any other empty split is an error with the fix."""
    if not (split == "test" and params.split.allow_empty_test):
        raise EvaluationError(
            f"split {split!r} of {png_dir} is empty (expected pairs in {split}): nothing to evaluate; give the "
            "split stage more spatial groups and rerun `dvc repro split png`, or set split.allow_empty_test: true "
            "to skip evaluation on test")
    reason = (f"the test split of {png_dir} is empty and split.allow_empty_test is true: no test score; "
              "select ranks the models on val")
    log.warning("evaluate@%s: skipped: %s", arch, reason)
    summary: dict[str, Any] = {"arch": arch, "split": split, "n_images": 0, "skipped": True, "reason": reason,
                               "png_dir": str(png_dir), "stats": {}, "gain_vs_bicubic": {}}
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / FIGURES, ignore_errors=True)  # no figures of an earlier evaluation left behind
    # header only, with the columns dvc.yaml's plot of this stage reads
    write_text_atomic(out_dir / PER_IMAGE, "pair_id,group,bicubic_psnr,sr_psnr\n")
    write_json(out_dir / SUMMARY, summary)
    write_json(metrics_path, {"n_images": 0, "skipped": 1})
    return summary


def run_evaluate(params: Params, arch: str, *, png_dir: str | Path = paths.PNG, model_path: str | Path | None = None,
                 predictions: str | Path | None = None, out_dir: str | Path | None = None,
                 metrics_path: str | Path | None = None, finetune_metrics: str | Path | None = None,
                 split: str | None = None, use_mlflow: bool = True) -> dict[str, Any]:
    """The ``evaluate@<arch>`` stage (module doc); returns the summary."""
    ev = params.evaluate
    split = split or ev.split
    out_dir = Path(out_dir) if out_dir is not None else paths.eval_dir(arch)
    metrics_path = Path(metrics_path) if metrics_path is not None else paths.eval_metrics(arch)
    finetune_metrics = (Path(finetune_metrics) if finetune_metrics is not None
                        else finetune_summary_path(arch, Path(model_path).parent if model_path else None))
    quicklook = quicklook_of(params)
    settings = ev.correctness

    if split_size(png_dir, split) == 0:
        return _skip_empty_split(params, arch, split, png_dir, out_dir, metrics_path)
    pairs, lo, hi = load_split(png_dir, split, ev.max_images, params.png)
    if predictions is not None:
        predictor: Any = PredictionDirPredictor(predictions, lo, hi)
        for pair in pairs:  # every prediction present before any work
            predictor.path(pair)
        source = str(predictions)
    else:
        model_path = Path(model_path) if model_path is not None else paths.model_file("finetune", arch)
        predictor = ModelPredictor(model_path, lo, hi, arch)
        source = str(model_path)
    log.info("evaluate@%s: %d %s image(s), model %s", arch, len(pairs), split, source)

    timer = Timer()
    t0 = time.perf_counter()
    df = evaluate_split(pairs, predictor, lo, hi, border=ev.border, quicklook=quicklook, settings=settings,
                        workers=ev.workers, timer=timer if ev.workers <= 1 else None, max_shift=ev.cpsnr_max_shift)
    seconds = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "arch": arch, "split": split, "n_images": len(df), "source": source, "png_dir": str(png_dir),
        "psnr_cap_db": ev.psnr_cap_db, "ci_level": ev.ci_level, "bootstrap": ev.bootstrap, "seed": ev.seed,
        "conventions": conventions(ev.border, SCALE, quicklook, settings, ev.cpsnr_max_shift),
        **summarize(df, ev),
        "seconds_per_image": seconds / max(1, len(df)),
        "seconds_by_metric": {k: round(v, 4) for k, v in timer.seconds.items()},
        "cpu_seconds_by_metric": {k: round(v, 4) for k, v in timer.cpu_seconds.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / PER_IMAGE
    df.to_csv(csv_path, index=False, float_format="%.8g")
    write_json(out_dir / SUMMARY, summary)
    write_json(metrics_path, compact_metrics(summary))
    figures = make_figures(df, summary, pairs, predictor, lo, hi, ev, quicklook, out_dir / FIGURES, arch)

    g = summary["gain_vs_bicubic"].get("sr", {}).get("psnr", {})
    if g.get("mean") is not None:
        log.info("evaluate@%s: SR %.3f dB vs bicubic %.3f dB: gain %+.3f dB [%+.3f, %+.3f] (%s)%s", arch,
                 summary["stats"]["sr"]["psnr"]["mean"], summary["stats"]["bicubic"]["psnr"]["mean"], g["mean"],
                 g["ci_low"] if g["ci_low"] is not None else math.nan,
                 g["ci_high"] if g["ci_high"] is not None else math.nan, g["ci_note"],
                 " (significant)" if g["significant"] else "")
    cg = summary["gain_vs_bicubic"].get("sr", {}).get("cpsnr", {})
    if cg.get("mean") is not None:
        log.info("evaluate@%s: cPSNR (+-%d HR px, bias removed) SR %.3f dB vs bicubic %.3f dB: gain %+.3f dB "
                 "[%+.3f, %+.3f]", arch, ev.cpsnr_max_shift, summary["stats"]["sr"]["cpsnr"]["mean"],
                 summary["stats"]["bicubic"]["cpsnr"]["mean"], cg["mean"],
                 cg["ci_low"] if cg["ci_low"] is not None else math.nan,
                 cg["ci_high"] if cg["ci_high"] is not None else math.nan)
    if use_mlflow:
        log_to_mlflow(params, arch, summary, csv_path, out_dir / SUMMARY, figures, finetune_metrics)
    return summary


def log_to_mlflow(params: Params, arch: str, summary: dict[str, Any], csv_path: Path, summary_path: Path,
                  figures: list[Path], finetune_metrics: Path) -> str:
    """Log the evaluation to the fine-tuning run of the model (a new ``evaluate@<arch>`` run when the
    model has none in this store). Returns the run id."""
    from satsr import tracking

    tracking.configure(params)
    run_id = read_finetune_summary(finetune_metrics).get("mlflow_run_id")
    if run_id and tracking.run_exists(run_id):
        ctx: Any = tracking.existing_run(run_id)
    else:
        if run_id:
            log.warning("evaluate@%s: run %s (from %s) is not in the MLflow store; logging to a new run",
                        arch, run_id, finetune_metrics)
        ctx = tracking.stage_run("evaluate", arch, {"evaluate": params.evaluate.model_dump(mode="json")})
    with ctx as run:
        split = summary["split"]
        tracking.log_metrics(_mlflow_metrics(summary))
        tracking.set_tags({f"evaluated_{split}": "true", f"{split}_source": summary["source"],
                           f"{split}_ci": (summary.get("ci") or {}).get("note")})
        tracking.log_artifact(csv_path, f"evaluation/{split}")
        tracking.log_artifact(summary_path, f"evaluation/{split}")
        tracking.log_dict({"evaluate": params.evaluate.model_dump(mode="json")}, f"evaluation/{split}/params.json")
        for fig in figures:
            tracking.log_artifact(fig, f"evaluation/{split}/figures")
        rid = run.run_id if hasattr(run, "run_id") else run
    log.info("evaluate@%s: logged to MLflow run %s", arch, rid)
    return rid

"""Evaluation of trained models (``evaluate@<arch>``) and model selection (``select``).

``run_evaluate(params, arch)`` scores one architecture on the TEST split: for every image it runs
the model on the LR PNG, upsamples the same LR with bicubic and Lanczos, and computes every metric
of satsr.evaluate.metrics for the three against HR on the same pixels. It writes

* ``data/eval/<arch>/per_image.csv``: one row per image, columns ``<method>_<metric>`` (methods
  ``sr``, ``bicubic``, ``lanczos``; plus ``hr_sharpness`` and ``sr_psnr_gain``); PSNR of identical
  images is written as ``inf``;
* ``data/eval/<arch>/summary.json``: per-method statistics (mean, median, std, min, max, counts),
  paired gains over bicubic with seeded bootstrap CIs (satsr.evaluate.stats), the conventions;
* ``data/eval/<arch>/figures/``: sharpness and PSNR histograms, side-by-side bicubic | model | HR
  figures with zoomed crops (satsr.evaluate.report);
* ``metrics/eval/<arch>.json`` (DVC metrics): the compact summary (means, medians, gains, CIs);

and logs all of it to the model's fine-tuning MLflow run (``mlflow_run_id`` in
``models/finetune/<arch>/metrics.json``): metrics ``<split>_<method>_<metric>_mean|median`` and
``<split>_gain_<method>_<metric>_mean|ci_low|ci_high|significant``, the CSV, the summaries and the
figures (``evaluation/``). Selection lives in satsr.evaluate.select.

Bad input stops with an :class:`EvaluationError` naming the file: a missing model or prediction,
NaN / inf in a prediction, a prediction or an HR image of the wrong size, an empty split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from satsr.config import SCALE, EvaluateParams, Params
from satsr.evaluate.metrics import (
    ALL_METRICS,
    BASELINES,
    HIGHER_IS_BETTER,
    METHODS,
    CorrectnessSettings,
    EvaluationError,
    Timer,
    conventions,
    image_metrics,
    upsample,
)
from satsr.evaluate.stats import describe, json_safe, paired_gain

if TYPE_CHECKING:  # pandas is imported where used: metric worker processes start faster without it
    import pandas as pd

log = logging.getLogger(__name__)

EVAL_DIR = Path("data/eval")
EVAL_METRICS_DIR = Path("metrics/eval")
FINETUNE_DIR = Path("models/finetune")
MODEL_FILE = "model.keras"
PER_IMAGE = "per_image.csv"
SUMMARY = "summary.json"
FIGURES = "figures"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

__all__ = [
    "EvalPair",
    "EvaluationError",
    "ModelPredictor",
    "PredictionDirPredictor",
    "evaluate_split",
    "load_split",
    "run_evaluate",
    "summarize",
]


def eval_dir(arch: str) -> Path:
    return EVAL_DIR / arch


def eval_metrics_path(arch: str) -> Path:
    return EVAL_METRICS_DIR / f"{arch}.json"


def correctness_settings(ev: EvaluateParams) -> CorrectnessSettings:
    return CorrectnessSettings(**ev.correctness.model_dump())


def quicklook_of(params: Params) -> tuple[float, float]:
    return params.png.quicklook_max_reflectance, params.png.quicklook_gamma


# ----------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class EvalPair:
    pair_id: str
    lr_path: Path
    hr_path: Path


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except FileNotFoundError:
        raise EvaluationError(f"{path}: PNG file not found") from None
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise EvaluationError(f"{path}: not a PNG file")
    return struct.unpack(">II", head[16:24])


def load_split(png_dir: str | Path, split: str, max_images: int | None = None) -> tuple[list[EvalPair], float, float]:
    """The pairs of ``split`` in ``png_dir`` (index order) and the PNG encoding's (lo, hi).

    Checked before any work: the folder, its index.csv, a non-empty split, every PNG present and HR
    exactly 3x LR (from the PNG headers)."""
    png_dir = Path(png_dir)
    index_path = png_dir / "index.csv"
    if not png_dir.is_dir():
        raise EvaluationError(f"{png_dir}: PNG dataset folder not found (run `dvc repro png` first)")
    if not index_path.is_file():
        raise EvaluationError(f"{index_path}: index.csv not found; {png_dir} is not a PNG dataset folder")
    import pandas as pd

    try:
        index = pd.read_csv(index_path, dtype=str)
    except (ValueError, OSError) as err:
        raise EvaluationError(f"{index_path}: unreadable index ({err})") from None
    missing = [c for c in ("pair_id", "split", "lr_png", "hr_png") if c not in index.columns]
    if missing:
        raise EvaluationError(f"{index_path}: missing column(s) {missing}")
    rows = index[index["split"] == split]
    if rows.empty:
        present = sorted(index["split"].dropna().unique())
        raise EvaluationError(f"{index_path}: the {split!r} split is empty (splits present: {present}); "
                              f"nothing to evaluate")
    if max_images:
        rows = rows.head(max_images)
    pairs = []
    for r in rows.itertuples(index=False):
        lr_path, hr_path = png_dir / str(r.lr_png), png_dir / str(r.hr_png)
        (lw, lh), (hw, hh) = _png_size(lr_path), _png_size(hr_path)
        if (hw, hh) != (lw * SCALE, lh * SCALE):
            raise EvaluationError(f"pair {r.pair_id}: HR {hw}x{hh} ({hr_path}) is not exactly {SCALE}x "
                                  f"LR {lw}x{lh} ({lr_path})")
        pairs.append(EvalPair(str(r.pair_id), lr_path, hr_path))
    lo, hi = -0.1, 1.0
    enc = png_dir / "encoding.json"
    if enc.is_file():
        doc = json.loads(enc.read_text())
        lo, hi = float(doc.get("lo", lo)), float(doc.get("hi", hi))
    return pairs, lo, hi


def split_fingerprint(pairs: Iterable[EvalPair]) -> str:
    """sha256 over the pair ids and the bytes of their PNGs: which exact images were scored."""
    h = hashlib.sha256()
    for p in sorted(pairs, key=lambda p: p.pair_id):
        h.update(p.pair_id.encode() + b"\0")
        for path in (p.lr_path, p.hr_path):
            with open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def read_reflectance(path: Path, lo: float, hi: float) -> np.ndarray:
    from satsr.data.png import png16_to_reflectance, read_png16

    try:
        return png16_to_reflectance(read_png16(path), lo, hi).astype(np.float64)
    except Exception as err:  # noqa: BLE001 -- RasterError, OSError: name the file
        raise EvaluationError(f"{path}: cannot read the 16-bit PNG ({err})") from None


# ----------------------------------------------------------------------------------- predictors
class ModelPredictor:
    """A saved satsr model (``model.keras``): LR reflectance -> SR reflectance (whole image)."""

    def __init__(self, model_path: str | Path, lo: float, hi: float, arch: str | None = None):
        self.path = Path(model_path)
        self.lo, self.hi = lo, hi
        stage = f"finetune@{arch}" if arch else "finetune@<arch>"
        if not self.path.is_file():
            raise EvaluationError(f"{self.path}: model not found; run `dvc repro {stage}` first "
                                  f"(or score saved predictions with --predictions DIR)")
        from satsr.models import load

        try:
            self.model = load(self.path)
        except Exception as err:  # noqa: BLE001 -- keras raises many types for a damaged file
            raise EvaluationError(f"{self.path}: cannot load the model ({type(err).__name__}: {err})") from None

    def describe(self, pair: EvalPair) -> str:
        return f"{self.path} on {pair.lr_path}"

    def __call__(self, pair: EvalPair, lr: np.ndarray) -> np.ndarray:
        unit = ((lr - self.lo) / (self.hi - self.lo)).astype(np.float32)  # the model input: png16 / 65535
        out = np.asarray(self.model(unit[None], training=False))[0].astype(np.float64)
        return self.lo + np.clip(out, 0.0, 1.0) * (self.hi - self.lo) if np.isfinite(out).all() else out


class PredictionDirPredictor:
    """Saved SR predictions: ``<dir>/<pair_id>.png`` (16-bit, the PNG dataset's encoding) or
    ``<dir>/<pair_id>.npy`` ((H, W, 3) float reflectance)."""

    def __init__(self, folder: str | Path, lo: float, hi: float):
        self.folder = Path(folder)
        self.lo, self.hi = lo, hi
        if not self.folder.is_dir():
            raise EvaluationError(f"{self.folder}: predictions folder not found")

    def path(self, pair: EvalPair) -> Path:
        for ext in (".png", ".npy"):
            p = self.folder / f"{pair.pair_id}{ext}"
            if p.is_file():
                return p
        raise EvaluationError(f"{self.folder / (pair.pair_id + '.png')}: prediction for pair {pair.pair_id} "
                              f"not found (expected <pair_id>.png or .npy in {self.folder})")

    def describe(self, pair: EvalPair) -> str:
        return str(self.path(pair))

    def __call__(self, pair: EvalPair, lr: np.ndarray) -> np.ndarray:
        p = self.path(pair)
        if p.suffix == ".npy":
            try:
                arr = np.load(p)
            except (OSError, ValueError) as err:
                raise EvaluationError(f"{p}: unreadable prediction ({err})") from None
            if arr.ndim != 3 or arr.shape[-1] != 3:
                raise EvaluationError(f"{p}: expected an (H, W, 3) array, got shape {arr.shape}")
            return arr.astype(np.float64)
        return read_reflectance(p, self.lo, self.hi)


Predictor = Callable[[EvalPair, np.ndarray], np.ndarray]


def predict_checked(predictor: Any, pair: EvalPair, lr: np.ndarray, hr_shape: tuple[int, ...]) -> np.ndarray:
    """The prediction of one pair, checked: finite everywhere and exactly HR's size."""
    sr = predictor(pair, lr)
    bad = int(np.size(sr) - np.count_nonzero(np.isfinite(sr)))
    if bad:
        raise EvaluationError(f"{predictor.describe(pair)}: the SR prediction of pair {pair.pair_id} has {bad} "
                              f"NaN/inf value(s) (of {np.size(sr)})")
    if sr.shape != hr_shape:
        raise EvaluationError(f"{predictor.describe(pair)}: the SR prediction of pair {pair.pair_id} is "
                              f"{sr.shape[1]}x{sr.shape[0]}x{sr.shape[2] if sr.ndim == 3 else 1}, HR {pair.hr_path} "
                              f"is {hr_shape[1]}x{hr_shape[0]}x{hr_shape[2]}")
    return sr


def predictions_of(pair: EvalPair, predictor: Any, lo: float, hi: float, timer: Timer | None = None,
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


def evaluate_split(pairs: list[EvalPair], predictor: Any, lo: float, hi: float, *, border: int = SCALE,
                   quicklook: tuple[float, float] = (0.3, 1.8),
                   settings: CorrectnessSettings | None = None, metrics: Iterable[str] = ALL_METRICS,
                   workers: int = 1, timer: Timer | None = None,
                   baselines: Iterable[str] = BASELINES) -> pd.DataFrame:
    """Per-image metrics of the predictor and the baselines, one row per pair (index order).

    With ``workers`` > 1 the metrics run in that many spawned processes (inference stays here, one
    image at a time, so memory holds at most ``2 * workers`` images in flight)."""
    kwargs = {"scale": SCALE, "border": border, "quicklook": quicklook,
              "correctness_settings": settings or CorrectnessSettings(), "metrics": tuple(metrics)}
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
    if "sr_psnr" in df and "bicubic_psnr" in df:
        df["sr_psnr_gain"] = df["sr_psnr"] - df["bicubic_psnr"]
    log.info("scored %d image(s) in %.1f s", len(df), time.perf_counter() - t_start)
    return df


def summarize(df: pd.DataFrame, ev: EvaluateParams, baseline: str = "bicubic") -> dict[str, Any]:
    """Per-method statistics and paired gains over ``baseline`` of every metric in ``df``."""
    stats: dict[str, dict[str, Any]] = {}
    gains: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        for metric in ALL_METRICS:
            col = f"{method}_{metric}"
            if col not in df:
                continue
            cap = ev.psnr_cap_db if metric.startswith("psnr") else None
            stats.setdefault(method, {})[metric] = describe(df[col].to_numpy(float), cap)
            base = f"{baseline}_{metric}"
            if method != baseline and base in df:
                gains.setdefault(method, {})[metric] = paired_gain(
                    df[col].to_numpy(float), df[base].to_numpy(float), higher_is_better=HIGHER_IS_BETTER[metric],
                    cap=cap, n_boot=ev.bootstrap, level=ev.ci_level, seed=ev.seed)
    if "hr_sharpness" in df:
        stats["hr"] = {"sharpness": describe(df["hr_sharpness"].to_numpy(float))}
    return {"stats": stats, f"gain_vs_{baseline}": gains}


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
                     "significant": int(bool(g["significant"]))} for m, g in ms.items()}
        for method, ms in summary["gain_vs_bicubic"].items()}
    out["conventions"] = {"reflectance_max": 1.0, "border_crop_px": summary["conventions"]["border_crop_px"],
                          "ci_level": summary["ci_level"], "psnr_cap_db": summary["psnr_cap_db"]}
    return out


def finetune_summary_path(arch: str, model_dir: str | Path | None = None) -> Path:
    """The trainer's summary of a fine-tuned model (``summary.json``; older runs: ``metrics.json``)."""
    folder = Path(model_dir) if model_dir is not None else FINETUNE_DIR / arch
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


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def make_figures(df: pd.DataFrame, summary: dict[str, Any], pairs: list[EvalPair], predictor: Any, lo: float,
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


def run_evaluate(params: Params, arch: str, *, png_dir: str | Path = "data/png", model_path: str | Path | None = None,
                 predictions: str | Path | None = None, out_dir: str | Path | None = None,
                 metrics_path: str | Path | None = None, finetune_metrics: str | Path | None = None,
                 split: str | None = None, use_mlflow: bool = True) -> dict[str, Any]:
    """The ``evaluate@<arch>`` stage (module doc); returns the summary."""
    ev = params.evaluate
    split = split or ev.split
    out_dir = Path(out_dir) if out_dir is not None else eval_dir(arch)
    metrics_path = Path(metrics_path) if metrics_path is not None else eval_metrics_path(arch)
    finetune_metrics = (Path(finetune_metrics) if finetune_metrics is not None
                        else finetune_summary_path(arch, Path(model_path).parent if model_path else None))
    quicklook = quicklook_of(params)
    settings = correctness_settings(ev)

    pairs, lo, hi = load_split(png_dir, split, ev.max_images)
    if predictions is not None:
        predictor: Any = PredictionDirPredictor(predictions, lo, hi)
        for pair in pairs:  # every prediction present before any work
            predictor.path(pair)
        source = str(predictions)
    else:
        model_path = Path(model_path) if model_path is not None else FINETUNE_DIR / arch / MODEL_FILE
        predictor = ModelPredictor(model_path, lo, hi, arch)
        source = str(model_path)
    log.info("evaluate@%s: %d %s image(s), model %s", arch, len(pairs), split, source)

    timer = Timer()
    t0 = time.perf_counter()
    df = evaluate_split(pairs, predictor, lo, hi, border=ev.border, quicklook=quicklook, settings=settings,
                        workers=ev.workers, timer=timer if ev.workers <= 1 else None)
    seconds = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "arch": arch, "split": split, "n_images": len(df), "source": source, "png_dir": str(png_dir),
        "psnr_cap_db": ev.psnr_cap_db, "ci_level": ev.ci_level, "bootstrap": ev.bootstrap, "seed": ev.seed,
        "conventions": conventions(ev.border, SCALE, quicklook, settings),
        **summarize(df, ev),
        "seconds_per_image": seconds / max(1, len(df)),
        "seconds_by_metric": {k: round(v, 4) for k, v in timer.seconds.items()},
        "cpu_seconds_by_metric": {k: round(v, 4) for k, v in timer.cpu_seconds.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / PER_IMAGE
    df.to_csv(csv_path, index=False, float_format="%.8g")
    _write_json(out_dir / SUMMARY, summary)
    _write_json(metrics_path, compact_metrics(summary))
    figures = make_figures(df, summary, pairs, predictor, lo, hi, ev, quicklook, out_dir / FIGURES, arch)

    g = summary["gain_vs_bicubic"].get("sr", {}).get("psnr", {})
    if g.get("mean") is not None:
        log.info("evaluate@%s: SR %.3f dB vs bicubic %.3f dB: gain %+.3f dB [%+.3f, %+.3f]%s", arch,
                 summary["stats"]["sr"]["psnr"]["mean"], summary["stats"]["bicubic"]["psnr"]["mean"], g["mean"],
                 g["ci_low"] if g["ci_low"] is not None else math.nan,
                 g["ci_high"] if g["ci_high"] is not None else math.nan,
                 " (significant)" if g["significant"] else "")
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
        tracking.set_tags({f"evaluated_{split}": "true", f"{split}_source": summary["source"]})
        tracking.log_artifact(csv_path, f"evaluation/{split}")
        tracking.log_artifact(summary_path, f"evaluation/{split}")
        tracking.log_dict({"evaluate": params.evaluate.model_dump(mode="json")}, f"evaluation/{split}/params.json")
        for fig in figures:
            tracking.log_artifact(fig, f"evaluation/{split}/figures")
        rid = run.run_id if hasattr(run, "run_id") else run
    log.info("evaluate@%s: logged to MLflow run %s", arch, rid)
    return rid

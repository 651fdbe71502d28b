"""Model selection (the ``select`` stage): compare the architectures on the VALIDATION split and
point the MLflow registry alias (``champion``) at the best model.

The test split is never read here: choosing on test would make the test numbers of the chosen
model optimistic. For each architecture in ``select.archs`` the fine-tuned model
(``models/finetune/<arch>/model.keras``) is scored on every val image with the evaluation code
(satsr.evaluate.metrics: PSNR, SSIM and the opensr-test correctness shares, the same conventions),
against bicubic on the same pixels. The criterion (``select.criterion``):

* ``psnr_gain`` (default): mean paired PSNR gain over bicubic (dB), with a bootstrap CI;
* ``ssim_gain``: mean paired SSIM gain over bicubic;
* ``psnr``: mean val PSNR;

among the architectures whose hallucination EXCESS -- the mean paired increase of the val
hallucination share over bicubic's on the same images -- is at most ``select.max_hallucination``
(the safety cap: a model inventing detail is worse than a blurry one). The cap is on the excess,
not the share itself, because opensr-test's share is not 0 even for bicubic (on the demo val split
bicubic scores about 0.17: wherever LR-bilinear and HR differ, a blurred pixel far from both
counts), and that floor depends on the data. When none is under the cap, the one with the least
excess is chosen and the leaderboard says so.

Registry (``select.set_aliases``): every scored model version gets tags with its val numbers and a
``val_protocol`` fingerprint (val images, criterion, metric settings). The alias goes to the BEST
version of each ``satsr-<arch>`` among the versions scored under the same protocol (so models of
earlier ``dvc exp run``s on the same data compete fairly), and the overall winner among those is
registered as a new version of ``satsr`` (``select.registered_model``; its model source is reused,
and an existing version with the same source is reused) with the same alias.

Outputs: ``metrics/leaderboard.json`` (DVC metrics) and ``metrics/leaderboard.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from satsr.config import SCALE, Params
from satsr.evaluate import (
    FINETUNE_DIR,
    MODEL_FILE,
    ModelPredictor,
    _write_json,
    correctness_settings,
    evaluate_split,
    finetune_summary_path,
    load_split,
    quicklook_of,
    read_finetune_summary,
    split_fingerprint,
)
from satsr.evaluate.stats import json_safe, paired_gain

log = logging.getLogger(__name__)

LEADERBOARD_JSON = Path("metrics/leaderboard.json")
LEADERBOARD_MD = Path("metrics/leaderboard.md")
SELECT_SPLIT = "val"
#: What select scores per image (a subset of satsr.evaluate.metrics.ALL_METRICS).
SELECT_METRICS = ("psnr", "ssim", "improvement", "omission", "hallucination")


def protocol_fingerprint(split_hash: str, params: Params) -> str:
    """Short hash of everything that makes two val scores comparable."""
    doc = {"split": split_hash, "criterion": params.select.criterion, "border": params.evaluate.border,
           "psnr_cap_db": params.evaluate.psnr_cap_db, "correctness": params.evaluate.correctness.model_dump(),
           "scale": SCALE}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _nanmean(values: np.ndarray) -> float | None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def criterion_value(row: dict[str, Any], criterion: str) -> float | None:
    if criterion == "psnr_gain":
        return row["psnr_gain"]["mean"]
    if criterion == "ssim_gain":
        return row["ssim_gain"]["mean"]
    return row["sr_psnr"]


def score_arch(arch: str, params: Params, pairs, lo: float, hi: float, model_path: Path) -> dict[str, Any]:
    """Val scores of one architecture's fine-tuned model (one leaderboard row, unranked)."""
    ev = params.evaluate
    predictor = ModelPredictor(model_path, lo, hi, arch)
    df = evaluate_split(pairs, predictor, lo, hi, border=ev.border, quicklook=quicklook_of(params),
                        settings=correctness_settings(ev), metrics=SELECT_METRICS, workers=ev.workers,
                        baselines=("bicubic",))
    cap = ev.psnr_cap_db
    kw = {"n_boot": ev.bootstrap, "level": ev.ci_level, "seed": ev.seed}
    sr_psnr = np.clip(df["sr_psnr"].to_numpy(float), -cap, cap)
    bic_psnr = np.clip(df["bicubic_psnr"].to_numpy(float), -cap, cap)
    row = {
        "arch": arch, "model": str(model_path), "n_images": len(df),
        "sr_psnr": _nanmean(sr_psnr), "bicubic_psnr": _nanmean(bic_psnr),
        "psnr_gain": paired_gain(sr_psnr, bic_psnr, cap=cap, **kw),
        "sr_ssim": _nanmean(df["sr_ssim"].to_numpy(float)),
        "ssim_gain": paired_gain(df["sr_ssim"].to_numpy(float), df["bicubic_ssim"].to_numpy(float), **kw),
        "hallucination": _nanmean(df["sr_hallucination"].to_numpy(float)),
        "omission": _nanmean(df["sr_omission"].to_numpy(float)),
        "improvement": _nanmean(df["sr_improvement"].to_numpy(float)),
        "bicubic_hallucination": _nanmean(df["bicubic_hallucination"].to_numpy(float)),
    }
    row["hallucination_excess"] = paired_gain(df["sr_hallucination"].to_numpy(float),
                                              df["bicubic_hallucination"].to_numpy(float),
                                              higher_is_better=False, **kw)["mean"]
    row["score"] = criterion_value(row, params.select.criterion)
    summary = read_finetune_summary(finetune_summary_path(arch, model_path.parent))
    row["registered_model"] = summary.get("registered_model")
    row["mlflow_run_id"] = summary.get("mlflow_run_id")
    log.info("select: %s on val: PSNR %.3f dB (bicubic %.3f, gain %+.3f dB), hallucination %.3f "
             "(bicubic %.3f)", arch, row["sr_psnr"] or math.nan, row["bicubic_psnr"] or math.nan,
             row["psnr_gain"]["mean"] if row["psnr_gain"]["mean"] is not None else math.nan,
             row["hallucination"] if row["hallucination"] is not None else math.nan,
             row["bicubic_hallucination"] if row["bicubic_hallucination"] is not None else math.nan)
    return row


#: The capped quantity: mean paired increase of the hallucination share over bicubic.
RISK = "hallucination_excess"


def _eligible(excess: float | None, cap: float) -> bool:
    return excess is None or excess <= cap


def choose(candidates: list[dict[str, Any]], cap: float) -> tuple[dict[str, Any] | None, bool]:
    """The best candidate: highest ``score`` among those whose ``hallucination_excess`` is <= cap;
    when none is under the cap, the least excess. Returns (candidate, whether it met the cap)."""
    if not candidates:
        return None, False
    ok = [c for c in candidates if _eligible(c.get(RISK), cap)]
    if ok:
        return max(ok, key=lambda c: -math.inf if c.get("score") is None else c["score"]), True
    return min(candidates, key=lambda c: c[RISK]), False


def rank(rows: list[dict[str, Any]], cap: float) -> list[dict[str, Any]]:
    """Rows ordered: eligible by score (best first), then ineligible by hallucination excess; adds
    ``rank`` and ``eligible``."""
    for r in rows:
        r["eligible"] = _eligible(r[RISK], cap)
    ok = sorted((r for r in rows if r["eligible"]),
                key=lambda r: -math.inf if r["score"] is None else r["score"], reverse=True)
    bad = sorted((r for r in rows if not r["eligible"]), key=lambda r: r[RISK])
    for i, r in enumerate(ok + bad):
        r["rank"] = i + 1
    return ok + bad


def update_registry(params: Params, rows: list[dict[str, Any]], protocol: str) -> dict[str, Any]:
    """Tag the scored versions, alias the best version of each satsr-<arch> and register the overall
    winner as a version of ``select.registered_model`` with the same alias (module doc)."""
    from satsr import tracking

    sp = params.select
    tracking.configure(params)
    champions: list[dict[str, Any]] = []
    for row in rows:
        ref = tracking.parse_registry_uri(row.get("registered_model") or "")
        if ref is None:
            log.warning("select: %s has no registered model version (%s); it cannot be a registry champion",
                        row["arch"], finetune_summary_path(row["arch"], Path(row["model"]).parent))
            continue
        name, version = ref
        try:
            tracking.set_version_tags(name, version, {
                "val_protocol": protocol, "val_criterion": sp.criterion, "val_score": row["score"],
                "val_hallucination": row["hallucination"], "val_hallucination_excess": row[RISK],
                "val_psnr_gain_db": row["psnr_gain"]["mean"],
                "val_n_images": row["n_images"]})
        except Exception as err:  # noqa: BLE001 -- the store's own error types; name the version
            log.warning("select: cannot tag %s version %s in the MLflow registry (%s); skipped", name, version, err)
            continue
        candidates = []
        for v in tracking.model_versions(name):
            if v.tags.get("val_protocol") != protocol or "val_score" not in v.tags:
                continue
            try:
                score = float(v.tags["val_score"])
                hall = float(v.tags["val_hallucination_excess"]) if v.tags.get("val_hallucination_excess") else None
                absolute = float(v.tags["val_hallucination"]) if v.tags.get("val_hallucination") else None
            except ValueError:
                continue
            candidates.append({"arch": row["arch"], "name": name, "version": v.version, "source": v.source,
                               "run_id": v.run_id, "model_id": v.model_id,
                               "score": score if math.isfinite(score) else None,
                               RISK: hall if hall is None or math.isfinite(hall) else None,
                               "hallucination": absolute})
        best, met = choose(candidates, sp.max_hallucination)
        if best is None:
            continue
        tracking.set_alias(name, sp.alias, best["version"])
        row["champion"] = f"models:/{name}@{sp.alias} = version {best['version']}"
        best["eligible"] = met
        champions.append(best)
        log.info("select: %s@%s -> version %d", name, sp.alias, best["version"])
    overall, met = choose(champions, sp.max_hallucination)
    if overall is None:
        return {"note": "no registered model version to alias (models trained without MLflow?)", "alias": sp.alias}
    source_version = f"models:/{overall['name']}/{overall['version']}"
    version = tracking.register_version(
        overall["source"], sp.registered_model, run_id=overall["run_id"], model_id=overall["model_id"],
        tags={"arch": overall["arch"], "source_model": source_version, "val_protocol": protocol,
              "val_criterion": sp.criterion, "val_score": overall["score"],
              "val_hallucination": overall["hallucination"], "val_hallucination_excess": overall[RISK]},
        description="satsr: the selected Landsat 30 m -> Sentinel-2-like 10 m x3 super-resolution model "
                    "(see metrics/leaderboard.md)")
    tracking.set_alias(sp.registered_model, sp.alias, version)
    log.info("select: %s@%s -> version %d (%s)", sp.registered_model, sp.alias, version, source_version)
    return {"champion": f"models:/{sp.registered_model}@{sp.alias}", "alias": sp.alias,
            "registered_model": sp.registered_model, "version": version, "arch": overall["arch"],
            "source_version": source_version, "eligible": met,
            "per_arch": {c["arch"]: {"name": c["name"], "version": c["version"], "score": c["score"],
                                     RISK: c[RISK]} for c in champions}}


def run_select(params: Params, *, png_dir: str | Path = "data/png", models_dir: str | Path = FINETUNE_DIR,
               out_json: str | Path = LEADERBOARD_JSON, out_md: str | Path = LEADERBOARD_MD,
               use_mlflow: bool = True) -> dict[str, Any]:
    """The ``select`` stage (module doc); returns the leaderboard."""
    from satsr.evaluate.report import leaderboard_markdown

    sp, ev = params.select, params.evaluate
    models_dir = Path(models_dir)
    paths = {arch: models_dir / arch / MODEL_FILE for arch in sp.archs}
    pairs, lo, hi = load_split(png_dir, SELECT_SPLIT, sp.max_images)
    for arch, path in paths.items():  # every model present before any work
        if not path.is_file():
            ModelPredictor(path, lo, hi, arch)  # raises the 'model not found' error naming the file
    protocol = protocol_fingerprint(split_fingerprint(pairs), params)
    rows = rank([score_arch(arch, params, pairs, lo, hi, path) for arch, path in paths.items()],
                sp.max_hallucination)
    winner, met = (rows[0], rows[0]["eligible"]) if rows else (None, False)
    board: dict[str, Any] = {
        "split": SELECT_SPLIT, "n_images": len(pairs), "criterion": sp.criterion,
        "max_hallucination": sp.max_hallucination, "ci_level": ev.ci_level, "protocol": protocol,
        "conventions": f"reflectance clipped to [0, 1], {ev.border} px border, RGB, mean over images; "
                       f"hallucination after opensr-test ({ev.correctness.norm})",
        "winner": winner["arch"] if winner else None, "winner_eligible": met, "rows": rows,
    }
    registry: dict[str, Any] = {"alias": sp.alias}
    if use_mlflow and sp.set_aliases:
        registry = update_registry(params, rows, protocol)
        if registry.get("arch"):
            board["winner"], board["winner_eligible"] = registry["arch"], registry["eligible"]
    else:
        registry["note"] = "registry not updated (select.set_aliases is false or MLflow is off)"
    board["registry"] = registry
    out_json, out_md = Path(out_json), Path(out_md)
    _write_json(out_json, leaderboard_metrics(board))
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(leaderboard_markdown(json_safe(board)))
    if use_mlflow:
        _log_select_run(params, board, out_json, out_md)
    log.info("select: winner %s (%s %s)", board["winner"], sp.criterion,
             "within the hallucination cap" if board["winner_eligible"] else "NO model met the hallucination cap")
    return board


def leaderboard_metrics(board: dict[str, Any]) -> dict[str, Any]:
    """metrics/leaderboard.json: numbers per architecture (DVC metrics), winner and settings."""
    out: dict[str, Any] = {"n_images": board["n_images"], "max_hallucination": board["max_hallucination"],
                           "winner": board["winner"]}
    for r in board["rows"]:
        out[r["arch"]] = {
            "rank": r["rank"], "eligible": int(r["eligible"]), "score": r["score"],
            "sr_psnr": r["sr_psnr"], "bicubic_psnr": r["bicubic_psnr"],
            "psnr_gain": r["psnr_gain"]["mean"], "psnr_gain_ci_low": r["psnr_gain"]["ci_low"],
            "psnr_gain_ci_high": r["psnr_gain"]["ci_high"],
            "psnr_gain_significant": int(bool(r["psnr_gain"]["significant"])),
            "ssim_gain": r["ssim_gain"]["mean"], "hallucination": r["hallucination"],
            "bicubic_hallucination": r["bicubic_hallucination"], RISK: r[RISK],
            "omission": r["omission"], "improvement": r["improvement"]}
    reg = board.get("registry") or {}
    if reg.get("version"):
        out["registry"] = {"registered_model": reg["registered_model"], "alias": reg["alias"],
                           "version": reg["version"], "arch": reg["arch"]}
    return out


def _log_select_run(params: Params, board: dict[str, Any], out_json: Path, out_md: Path) -> None:
    from satsr import tracking

    tracking.configure(params)
    with tracking.stage_run("select", None, {"select": params.select.model_dump(mode="json"),
                                             "evaluate.correctness": params.evaluate.correctness.model_dump()}):
        metrics = {}
        for r in board["rows"]:
            for key in ("score", "sr_psnr", "hallucination", RISK):
                if r[key] is not None and math.isfinite(r[key]):
                    metrics[f"val_{r['arch']}_{key}"] = r[key]
            if r["psnr_gain"]["mean"] is not None:
                metrics[f"val_{r['arch']}_psnr_gain"] = r["psnr_gain"]["mean"]
        tracking.log_metrics(metrics)
        tracking.set_tags({"winner": board["winner"], "criterion": board["criterion"],
                           "champion": (board.get("registry") or {}).get("champion")})
        tracking.log_artifact(out_json, "leaderboard")
        tracking.log_artifact(out_md, "leaderboard")
        tracking.log_dict(json_safe(board), "leaderboard/leaderboard_full.json")

"""Model selection (the ``select`` stage): compare the architectures on the VALIDATION split and
point the MLflow registry alias (``champion``) at the best model.

The test split is never read here: choosing on test would make the test numbers of the chosen
model optimistic. For each architecture in ``select.archs`` the fine-tuned model
(``models/finetune/<arch>/model.keras``) is scored on every val image with the evaluation code
(satsr.evaluate.metrics: PSNR, SSIM and the opensr-test correctness shares, the same conventions),
against bicubic on the same pixels. The criterion (``select.criterion``):

* ``psnr_gain`` (default): mean paired PSNR gain over bicubic (dB), with a bootstrap CI;
* ``ssim_gain``: mean paired SSIM gain over bicubic;
* ``cpsnr_gain``: mean paired cPSNR gain over bicubic (dB): PSNR at the best integer shift within
  +-``evaluate.cpsnr_max_shift`` HR px after per-band bias removal (satsr.evaluate.metrics), the
  fair criterion on real pairs, whose misregistration and radiometric mismatch plain PSNR charges
  to the model;
* ``psnr``: mean val PSNR;

Every CI is a cluster bootstrap over the val split's spatial groups (satsr.evaluate.stats), its unit
stated next to it. Tie rule: when the paired CI of the difference between the top two (on the
criterion's per-image metric) includes 0 -- or cannot be computed, with fewer than 2 groups -- the two
are not told apart, and the smaller model (parameter count) is preferred, at equal size the more
consistent one (smaller spread over groups of its gain over bicubic); the leaderboard says which
and why (``tie_rule``), and the registry's overall champion follows it;

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
from satsr.evaluate.dataset import load_split, split_fingerprint
from satsr.evaluate.predictors import ModelPredictor
from satsr.evaluate.stage import (
    evaluate_split,
    finetune_summary_path,
    quicklook_of,
    read_finetune_summary,
    write_json,
)
from satsr.evaluate.stats import group_means, json_safe, paired_gain
from satsr.paths import LEADERBOARD_JSON, LEADERBOARD_MD, MODEL_FILE, MODELS, PNG
from satsr.util import write_text_atomic

log = logging.getLogger(__name__)

SELECT_SPLIT = "val"
#: What select scores per image (a subset of satsr.evaluate.metrics.ALL_METRICS).
SELECT_METRICS = ("psnr", "ssim", "cpsnr", "improvement", "omission", "hallucination")


def protocol_fingerprint(split_hash: str, params: Params) -> str:
    """Short hash of everything that makes two val scores comparable."""
    doc = {"split": split_hash, "criterion": params.select.criterion, "border": params.evaluate.border,
           "psnr_cap_db": params.evaluate.psnr_cap_db, "correctness": params.evaluate.correctness.model_dump(),
           "scale": SCALE}
    if params.select.criterion == "cpsnr_gain":  # only then: older fingerprints stay valid
        doc["cpsnr_max_shift"] = params.evaluate.cpsnr_max_shift
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
    if criterion == "cpsnr_gain":
        return row["cpsnr_gain"]["mean"]
    return row["sr_psnr"]


def score_arch(arch: str, params: Params, pairs, lo: float, hi: float, model_path: Path,
               summary_path: Path | None = None) -> dict[str, Any]:
    """Val scores of one architecture's fine-tuned model (one leaderboard row, unranked)."""
    ev = params.evaluate
    predictor = ModelPredictor(model_path, lo, hi, arch)
    df = evaluate_split(pairs, predictor, lo, hi, border=ev.border, quicklook=quicklook_of(params),
                        settings=ev.correctness, metrics=SELECT_METRICS, workers=ev.workers,
                        baselines=("bicubic",), max_shift=ev.cpsnr_max_shift)
    cap = ev.psnr_cap_db
    groups = df["group"].tolist() if "group" in df else None  # CIs resample the split's spatial groups
    kw = {"n_boot": ev.bootstrap, "level": ev.ci_level, "seed": ev.seed, "groups": groups}
    sr_psnr = np.clip(df["sr_psnr"].to_numpy(float), -cap, cap)
    bic_psnr = np.clip(df["bicubic_psnr"].to_numpy(float), -cap, cap)
    sr_cpsnr = np.clip(df["sr_cpsnr"].to_numpy(float), -cap, cap)
    bic_cpsnr = np.clip(df["bicubic_cpsnr"].to_numpy(float), -cap, cap)
    row = {
        "arch": arch, "model": str(model_path), "n_images": len(df),
        "sr_psnr": _nanmean(sr_psnr), "bicubic_psnr": _nanmean(bic_psnr),
        "psnr_gain": paired_gain(sr_psnr, bic_psnr, cap=cap, **kw),
        "sr_ssim": _nanmean(df["sr_ssim"].to_numpy(float)),
        "ssim_gain": paired_gain(df["sr_ssim"].to_numpy(float), df["bicubic_ssim"].to_numpy(float), **kw),
        "sr_cpsnr": _nanmean(sr_cpsnr), "bicubic_cpsnr": _nanmean(bic_cpsnr),
        "cpsnr_gain": paired_gain(sr_cpsnr, bic_cpsnr, cap=cap, **kw),
        "hallucination": _nanmean(df["sr_hallucination"].to_numpy(float)),
        "omission": _nanmean(df["sr_omission"].to_numpy(float)),
        "improvement": _nanmean(df["sr_improvement"].to_numpy(float)),
        "bicubic_hallucination": _nanmean(df["bicubic_hallucination"].to_numpy(float)),
    }
    row["hallucination_excess"] = paired_gain(df["sr_hallucination"].to_numpy(float),
                                              df["bicubic_hallucination"].to_numpy(float),
                                              higher_is_better=False, **kw)["mean"]
    row["score"] = criterion_value(row, params.select.criterion)
    row["model_params"] = _param_count(predictor)
    # per-image values for the tie rule (dropped from the outputs by run_select)
    row[PER_IMAGE_KEY] = {"pair_id": df["pair_id"].tolist(), "group": groups,
                          **{c: df[c].to_numpy(float).tolist() for c in df.columns
                             if c.startswith(("sr_", "bicubic_")) and df[c].dtype.kind in "fi"}}
    summary = read_finetune_summary(summary_path or finetune_summary_path(arch, model_path.parent))
    row["registered_model"] = summary.get("registered_model")
    row["mlflow_run_id"] = summary.get("mlflow_run_id")
    log.info("select: %s on val: PSNR %.3f dB (bicubic %.3f, gain %+.3f dB), hallucination %.3f "
             "(bicubic %.3f)", arch, row["sr_psnr"] or math.nan, row["bicubic_psnr"] or math.nan,
             row["psnr_gain"]["mean"] if row["psnr_gain"]["mean"] is not None else math.nan,
             row["hallucination"] if row["hallucination"] is not None else math.nan,
             row["bicubic_hallucination"] if row["bicubic_hallucination"] is not None else math.nan)
    return row


#: The leaderboard name of the committed release weights (select.include_release).
RELEASE_CANDIDATE = "release"

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


PER_IMAGE_KEY = "_per_image"
#: The per-image metric behind each criterion (its paired difference between two models).
CRITERION_METRIC = {"psnr_gain": "psnr", "psnr": "psnr", "ssim_gain": "ssim", "cpsnr_gain": "cpsnr"}


def _param_count(predictor: Any) -> int | None:
    try:
        return int(predictor.model.count_params())
    except (AttributeError, TypeError, ValueError):
        return None


def _consistency(row: dict[str, Any], metric: str, cap: float) -> float:
    """Spread (std) over spatial groups of the per-group mean gain over bicubic: lower = more consistent."""
    per = row[PER_IMAGE_KEY]
    sr, bicubic = np.asarray(per[f"sr_{metric}"]), np.asarray(per[f"bicubic_{metric}"])
    gain = np.clip(sr, -cap, cap) - np.clip(bicubic, -cap, cap)
    means = group_means(gain, per.get("group"))
    return float(np.std(means, ddof=1)) if means.size > 1 else math.inf


def tie_rule(rows: list[dict[str, Any]], params: Params) -> dict[str, Any] | None:
    """Compare the top two eligible rows on the paired per-image difference of the criterion's metric,
    with a cluster-bootstrap CI over the spatial groups. When the CI includes 0 (or there is none: fewer
    than 2 groups) the two are not told apart and the SMALLER model (parameter count) wins; at equal
    size, the more CONSISTENT one (smaller spread over groups of its gain over bicubic). Reorders
    ``rows`` (and their ``rank``) when the runner-up is preferred; returns what was decided, or None."""
    ev, crit = params.evaluate, params.select.criterion
    top = [r for r in rows if r["eligible"] and r["score"] is not None and PER_IMAGE_KEY in r]
    if len(top) < 2:
        return None
    a, b = top[0], top[1]
    metric = CRITERION_METRIC.get(crit, crit.removesuffix("_gain"))
    pa, pb = a[PER_IMAGE_KEY], b[PER_IMAGE_KEY]
    cap = ev.psnr_cap_db if "psnr" in metric else None
    diff = paired_gain(pa[f"sr_{metric}"], pb[f"sr_{metric}"], cap=cap, n_boot=ev.bootstrap, level=ev.ci_level,
                       seed=ev.seed, groups=pa.get("group"))
    lo, hi = diff["ci_low"], diff["ci_high"]
    no_ci = lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi))
    tie = no_ci or lo <= 0.0 <= hi
    span = "no CI" if no_ci else f"[{lo:+.4g}, {hi:+.4g}]"
    info: dict[str, Any] = {
        "between": [a["arch"], b["arch"]], "metric": metric,
        "difference": {k: diff[k] for k in ("mean", "ci_low", "ci_high", "n", "n_groups", "unit", "ci_note")},
        "tie": tie, "winner": a["arch"], "applied": False}
    if not tie:
        info["reason"] = (f"{a['arch']} beats {b['arch']} on val {metric} by {diff['mean']:+.4g} {span} "
                          f"({diff['ci_note']}): the CI excludes 0, so the ranking by {crit} stands")
        return info
    why = f"the paired {metric} difference {a['arch']} - {b['arch']}, {diff['mean']:+.4g} {span} ({diff['ci_note']})"
    why += ", does not tell them apart" if no_ci else ", includes 0"
    na, nb = a.get("model_params"), b.get("model_params")
    if na and nb and na != nb:
        chosen = a if na < nb else b
        because = f"smaller model: {min(na, nb) / 1e6:.3g} M vs {max(na, nb) / 1e6:.3g} M parameters"
    else:
        sa, sb = _consistency(a, metric, ev.psnr_cap_db), _consistency(b, metric, ev.psnr_cap_db)
        chosen = a if sa <= sb else b
        because = (f"more consistent model: std over spatial groups of its {metric} gain over bicubic "
                   f"{min(sa, sb):.4g} vs {max(sa, sb):.4g}")
    info.update(winner=chosen["arch"], applied=chosen is b,
                reason=f"tie rule: {why}; {chosen['arch']} is preferred as the {because}")
    if chosen is b:
        i, j = rows.index(a), rows.index(b)
        rows[i], rows[j] = rows[j], rows[i]
        for k, r in enumerate(rows):
            r["rank"] = k + 1
    return info


def update_registry(params: Params, rows: list[dict[str, Any]], protocol: str,
                    prefer: tuple[str, str] | None = None) -> dict[str, Any]:
    """Tag the scored versions, alias the best version of each satsr-<arch> and register the overall
    winner as a version of ``select.registered_model`` with the same alias (module doc). ``prefer``
    (winner, loser) is the tie rule's decision: it holds when both champions are the versions scored now."""
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
                "val_cpsnr_gain_db": row["cpsnr_gain"]["mean"],
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
    if prefer and overall["arch"] == prefer[1]:  # the tie rule compared exactly these two versions
        scored = {r["arch"]: tracking.parse_registry_uri(r.get("registered_model") or "") for r in rows}
        alt = next((c for c in champions if c["arch"] == prefer[0]), None)
        if (alt is not None and scored.get(prefer[1]) == (overall["name"], overall["version"])
                and scored.get(prefer[0]) == (alt["name"], alt["version"])):
            overall, met = alt, alt["eligible"]
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


def run_select(params: Params, *, png_dir: str | Path = PNG, models_dir: str | Path = MODELS / "finetune",
               out_json: str | Path = LEADERBOARD_JSON, out_md: str | Path = LEADERBOARD_MD,
               use_mlflow: bool = True) -> dict[str, Any]:
    """The ``select`` stage (module doc); returns the leaderboard."""
    from satsr.evaluate.report import leaderboard_markdown

    sp, ev = params.select, params.evaluate
    models_dir = Path(models_dir)
    paths = {arch: models_dir / arch / MODEL_FILE for arch in sp.archs}
    summaries: dict[str, Path] = {}
    if sp.include_release:  # the committed release weights compete as one more candidate
        from satsr.paths import RELEASE_SUMMARY, release_model

        paths[RELEASE_CANDIDATE] = release_model()
        summaries[RELEASE_CANDIDATE] = RELEASE_SUMMARY
    pairs, lo, hi = load_split(png_dir, SELECT_SPLIT, sp.max_images, params.png)
    for arch, path in paths.items():  # every model present before any work
        if not path.is_file():
            ModelPredictor(path, lo, hi, arch)  # raises the 'model not found' error naming the file
    protocol = protocol_fingerprint(split_fingerprint(pairs), params)
    rows = rank([score_arch(arch, params, pairs, lo, hi, path, summaries.get(arch)) for arch, path in paths.items()],
                sp.max_hallucination)
    tie = tie_rule(rows, params)
    for r in rows:  # only the tie rule needs the per-image values
        r.pop(PER_IMAGE_KEY, None)
    ci = next(iter(r["psnr_gain"] for r in rows), {})
    winner, met = (rows[0], rows[0]["eligible"]) if rows else (None, False)
    board: dict[str, Any] = {
        "split": SELECT_SPLIT, "n_images": len(pairs), "criterion": sp.criterion,
        "max_hallucination": sp.max_hallucination, "ci_level": ev.ci_level, "protocol": protocol,
        "conventions": f"reflectance clipped to [0, 1], {ev.border} px border, RGB, mean over images; "
                       f"hallucination after opensr-test ({ev.correctness.norm})",
        "ci_note": ci.get("ci_note"), "ci_groups": ci.get("n_groups"), "tie_rule": tie,
        "winner": winner["arch"] if winner else None, "winner_eligible": met, "rows": rows,
    }
    registry: dict[str, Any] = {"alias": sp.alias}
    if use_mlflow and sp.set_aliases:
        prefer = (tie["winner"], tie["between"][0]) if tie and tie["applied"] else None
        registry = update_registry(params, rows, protocol, prefer)
        if registry.get("arch"):
            board["winner"], board["winner_eligible"] = registry["arch"], registry["eligible"]
    else:
        registry["note"] = "registry not updated (select.set_aliases is false or MLflow is off)"
    board["registry"] = registry
    out_json, out_md = Path(out_json), Path(out_md)
    write_json(out_json, leaderboard_metrics(board))
    write_text_atomic(out_md, leaderboard_markdown(json_safe(board)))
    if use_mlflow:
        _log_select_run(params, board, out_json, out_md)
    if tie:
        log.info("select: %s", tie["reason"])
    log.info("select: winner %s (%s %s)", board["winner"], sp.criterion,
             "within the hallucination cap" if board["winner_eligible"] else "NO model met the hallucination cap")
    return board


def leaderboard_metrics(board: dict[str, Any]) -> dict[str, Any]:
    """metrics/leaderboard.json: numbers per architecture (DVC metrics), winner and settings."""
    out: dict[str, Any] = {"n_images": board["n_images"], "max_hallucination": board["max_hallucination"],
                           "winner": board["winner"], "ci_groups": board.get("ci_groups"), "ci": board.get("ci_note")}
    tie = board.get("tie_rule")
    if tie:
        d = tie["difference"]
        out["tie_rule"] = {"between": " vs ".join(tie["between"]), "difference": d["mean"], "ci_low": d["ci_low"],
                           "ci_high": d["ci_high"], "tie": int(tie["tie"]), "applied": int(tie["applied"]),
                           "winner": tie["winner"]}
    for r in board["rows"]:
        out[r["arch"]] = {
            "rank": r["rank"], "eligible": int(r["eligible"]), "score": r["score"],
            "sr_psnr": r["sr_psnr"], "bicubic_psnr": r["bicubic_psnr"],
            "psnr_gain": r["psnr_gain"]["mean"], "psnr_gain_ci_low": r["psnr_gain"]["ci_low"],
            "psnr_gain_ci_high": r["psnr_gain"]["ci_high"],
            "psnr_gain_significant": int(bool(r["psnr_gain"]["significant"])),
            "ci_groups": r["psnr_gain"].get("n_groups"), "model_params": r.get("model_params"),
            "ssim_gain": r["ssim_gain"]["mean"], "cpsnr_gain": r["cpsnr_gain"]["mean"],
            "cpsnr_gain_ci_low": r["cpsnr_gain"]["ci_low"], "cpsnr_gain_ci_high": r["cpsnr_gain"]["ci_high"],
            "hallucination": r["hallucination"],
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
            for gain in ("psnr_gain", "cpsnr_gain"):
                if r[gain]["mean"] is not None:
                    metrics[f"val_{r['arch']}_{gain}"] = r[gain]["mean"]
        tracking.log_metrics(metrics)
        tracking.set_tags({"winner": board["winner"], "criterion": board["criterion"],
                           "champion": (board.get("registry") or {}).get("champion")})
        tracking.log_artifact(out_json, "leaderboard")
        tracking.log_artifact(out_md, "leaderboard")
        tracking.log_dict(json_safe(board), "leaderboard/leaderboard_full.json")

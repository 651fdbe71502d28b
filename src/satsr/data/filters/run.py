"""The filter stage run: check every manifest pair in parallel, apply the review file, write the results.

Outputs in ``out_dir``: ``report.csv`` (one row per manifest pair; later stages read ``lr_path``
and ``hr_path`` of accepted rows), ``summary.json`` (counts, DVC metrics), ``contact_sheet.html``
with ``quicklooks/``, and ``corrected/`` (shift-corrected LR files, when enabled).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from satsr.config import Params
from satsr.data import review
from satsr.data.filters.checks import (
    CORRECTED_DIR,
    METRIC_COLUMNS,
    QUICKLOOK_DIR,
    REASONS,
    CheckSettings,
    error_row,
    safe_check,
)
from satsr.data.manifest import read_manifest
from satsr.errors import MissingInputError
from satsr.util import atomic_path

log = logging.getLogger(__name__)

REPORT_NAME = "report.csv"
SUMMARY_NAME = "summary.json"
SHEET_NAME = "contact_sheet.html"

#: report.csv columns. ``lr_path``/``hr_path`` are what later stages read (LR may be corrected).
#: ``shift_dy``/``shift_dx`` register LR onto HR (see satsr.data.registration), in LR pixels;
#: ``correlation`` is measured after removing that shift.
REPORT_COLUMNS = [
    "pair_id",
    "status",
    "reasons",
    "detail",
    "note",
    "lr_path",
    "hr_path",
    *METRIC_COLUMNS,
    "demo_defect",
]


def _limit_blas_threads() -> Any:
    """One BLAS thread per process: the pairs are the parallel unit, and OpenBLAS threads on small
    matrices (phase correlation, dot products) are several times slower here than one thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it only speed suffers
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _init_worker() -> None:
    global _WORKER_LIMITS
    _WORKER_LIMITS = _limit_blas_threads()


_WORKER_LIMITS: Any = None


def _run_jobs(jobs: list[tuple[str, object, object]], s: CheckSettings, workers: int) -> list[dict[str, Any]]:
    """Check pairs in parallel; a crashed worker costs only the pairs it was given, retried alone."""
    if workers <= 1 or len(jobs) <= 1:
        with _limit_blas_threads():
            return [safe_check(j, s) for j in jobs]
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=_init_worker) as ex:
        futures = [ex.submit(safe_check, j, s) for j in jobs]
        for i, fut in enumerate(futures):
            try:
                results[i] = fut.result()
            except Exception:  # noqa: BLE001 - BrokenProcessPool: retried below, one by one
                results[i] = None
    for i, res in enumerate(results):
        if res is None:
            try:
                with ProcessPoolExecutor(max_workers=1, initializer=_init_worker) as ex:
                    results[i] = ex.submit(safe_check, jobs[i], s).result()
            except Exception as err:  # noqa: BLE001 - the pair itself kills its worker
                results[i] = error_row(
                    jobs[i],
                    s,
                    f"the worker process died ({type(err).__name__}), "
                    "probably a crash in GDAL on a corrupt file",
                )
    return [r for r in results if r is not None]


# ---------------------------------------------------------------------------------- the stage
def _apply_review(report: pd.DataFrame, review_file: str) -> int:
    """Reject the pairs listed in the review file; warn on ids not in the manifest."""
    entries = review.read_review_file(review_file)
    if not entries:
        return 0
    index = {pid: i for i, pid in enumerate(report["pair_id"])}
    n = 0
    for e in entries:
        if e.pair_id not in index:
            log.warning("%s:%d: pair_id %r is not in the manifest; ignored", review_file, e.line, e.pair_id)
            continue
        i = report.index[index[e.pair_id]]
        reasons = report.at[i, "reasons"]
        report.at[i, "reasons"] = f"{reasons};manual_review" if reasons else "manual_review"
        detail = f"manual_review: listed in the review file {review_file} (line {e.line})."
        report.at[i, "detail"] = f"{report.at[i, 'detail']} {detail}".strip()
        n += 1
    return n


def _nan_to_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def summarize(report: pd.DataFrame) -> dict[str, Any]:
    """Counts for summary.json (DVC metrics): totals, per reason (every code, zeros too)."""
    n = len(report)
    accepted = report[report["status"] == "accepted"]
    counts = Counter(c for r in report["reasons"].fillna("") for c in r.split(";") if c)
    out: dict[str, Any] = {
        "pairs": n,
        "accepted": len(accepted),
        "rejected": n - len(accepted),
        "accepted_fraction": round(len(accepted) / n, 4) if n else 0.0,
        "shift_corrected": int((report["note"] == "shift_corrected").sum()),
        "reasons": {code: int(counts.get(code, 0)) for code in REASONS},
        "accepted_median_shift_px": _nan_to_none(accepted["shift_px"].median()) if len(accepted) else None,
        "accepted_median_correlation": _nan_to_none(accepted["correlation"].median())
        if len(accepted)
        else None,
    }
    planted = report["demo_defect"].fillna("").astype(str) != ""
    if planted.any():
        rejected = report["status"] == "rejected"
        out["demo"] = {
            "planted_defects": int(planted.sum()),
            "planted_rejected": int((planted & rejected).sum()),
            "clean_rejected": int((~planted & rejected).sum()),
        }
    return out


def _check_some_files(raw_dir: Path, jobs: list[tuple[str, Any, Any]]) -> None:
    """A pair whose file is missing is *rejected* (a partial download); a raw folder with none of its
    files is a missing input (not checked out, wrong folder), not 100 % rejections."""
    files = [raw_dir / str(f) for _, lr, hr in jobs for f in (lr, hr) if isinstance(f, str) and f]
    if jobs and not any(f.is_file() for f in files):
        first = files[0] if files else raw_dir / "manifest.csv"
        raise MissingInputError(
            f"{first}: raw file not found (none of the {len(jobs)} pair(s) of {raw_dir / 'manifest.csv'} has its "
            "GeoTIFFs; expected the source stage's files: run `dvc checkout source` or `dvc repro source`)")


def run_filter(params: Params, raw_dir: Path, out_dir: Path) -> pd.DataFrame:
    """Screen every pair of ``raw_dir/manifest.csv``; write report, summary, contact sheet."""
    t0 = time.perf_counter()
    fp = params.filter
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    manifest = read_manifest(raw_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub in (QUICKLOOK_DIR, CORRECTED_DIR):  # owned by this stage: no stale files from older runs
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    s = CheckSettings.from_params(params, raw_dir, out_dir)
    jobs = list(zip(manifest["pair_id"].astype(str), manifest["lr_file"], manifest["hr_file"]))
    _check_some_files(raw_dir, jobs)
    workers = params.png.workers
    rows = _run_jobs(jobs, s, workers)

    report = pd.DataFrame(rows)
    report["demo_defect"] = manifest["demo_defect"].fillna("").astype(str).to_numpy()
    looks = {r["pair_id"]: (r["_ql_lr"], r["_ql_hr"]) for r in rows}
    report = report.drop(columns=["_ql_lr", "_ql_hr"])
    manual = _apply_review(report, fp.review_file)
    report["status"] = np.where(report["reasons"] == "", "accepted", "rejected")
    report = report[REPORT_COLUMNS]

    with atomic_path(out_dir / REPORT_NAME) as tmp:
        report.to_csv(tmp, index=False, float_format="%.6g")
    summary = summarize(report)
    with atomic_path(out_dir / SUMMARY_NAME) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")

    shown = review.select_for_sheet(report, fp.contact_sheet_max_pairs)
    keep = set(shown["pair_id"])
    for pid, pngs in looks.items():
        if pid not in keep:
            for p in pngs:
                if p:
                    (out_dir / p).unlink(missing_ok=True)
    top = ", ".join(f"{c} {k}" for c, k in sorted(summary["reasons"].items(), key=lambda kv: -kv[1]) if k)
    review.write_contact_sheet(
        shown,
        out_dir / SHEET_NAME,
        {pid: looks[pid] for pid in keep},
        fp.review_file,
        fp.quicklook_px,
        stretch=(
            f"fixed stretch 0..{params.png.quicklook_max_reflectance:g} reflectance, gamma "
            f"{params.png.quicklook_gamma:g}; LR and HR shown at the same size"
        ),
        hidden=len(report) - len(shown),
        summary_lines=[
            f"{summary['pairs']} pairs: {summary['accepted']} accepted, {summary['rejected']} rejected",
            f"reasons: {top or 'none'}",
        ],
    )
    dt = time.perf_counter() - t0
    log.info(
        "filter: %d pairs -> %d accepted, %d rejected (%s)%s%s; %.3f s/pair with %d worker(s); report %s",
        summary["pairs"],
        summary["accepted"],
        summary["rejected"],
        top or "no rejections",
        f"; {summary['shift_corrected']} shift-corrected" if summary["shift_corrected"] else "",
        f"; {manual} by manual review" if manual else "",
        dt / max(1, len(report)),
        workers,
        out_dir / REPORT_NAME,
    )
    return report

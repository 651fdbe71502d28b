"""The png stage: accepted, split pairs -> 16-bit training PNGs, quicklooks, index and statistics.

Both sensors are decoded to surface reflectance with the encoding recorded in each file and
mapped with ``radiometry.to_png16(refl, lo, hi)``; ``encoding.json`` documents the mapping and
its inverse. Folder layout is the seed's (``train_LR``, ``train_HR``, ``val_LR`` ...), so the
``folder`` provider (layout ``seed_png``) can re-import it. 8-bit quicklooks with a fixed stretch
go to ``quicklook/`` for people: one table lookup per pixel (``to_quicklook8`` of every PNG level),
within one grey level of calling ``to_quicklook8`` on the reflectance.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from satsr.config import Params
from satsr.data.geotiff import Raster, RasterError, encoding_of, read_raster
from satsr.data.manifest import read_manifest
from satsr.data.png.codec import (
    QUICKLOOK_COMPRESS_LEVEL,
    png16_to_reflectance,
    reflectance_to_png16,
    write_png8,
    write_png16,
)
from satsr.data.png.stats import BANDS, accumulate, empty_acc, finish_acc, merge_acc
from satsr.data.radiometry import L8_C2_L2, S2_SR, Encoding, to_quicklook8
from satsr.data.split import SPLITS, read_report, resolve_pair_paths
from satsr.errors import InputError, MissingInputError
from satsr.util import atomic_path, sha256_file

log = logging.getLogger(__name__)

INDEX_NAME = "index.csv"
ENCODING_NAME = "encoding.json"
QUICKLOOK_DIR = "quicklook"
SIDES = ("LR", "HR")
#: Bumped when the output format changes, so resumed runs rewrite every file.
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------- decoding
def decode_reflectance(r: Raster, side: str) -> np.ndarray:
    """(3, h, w) float32 reflectance of a chip's R,G,B (its first three bands), NaN = fill.

    The encoding recorded in the file wins; integer chips without one are read as the sensor's
    standard DN (LR: Landsat C2 L2, HR: Sentinel-2 harmonized).
    """
    if np.issubdtype(r.data.dtype, np.floating):
        enc: Encoding = encoding_of(r)
    else:
        enc = encoding_of(r, default=L8_C2_L2 if side == "LR" else S2_SR)
        if enc.nodata is None and r.nodata is not None:
            enc = Encoding(enc.name, enc.dtype, enc.scale, enc.offset, r.nodata)
    if r.data.shape[0] < 3:
        raise RasterError(f"{r.path}: {r.data.shape[0]} band(s); the PNG stage needs R,G,B")
    return enc.to_reflectance(r.data[:3])


# ---------------------------------------------------------------------------------- the worker
def _fingerprint(lr: Path, hr: Path, cfg: dict) -> str:
    """Content identity of a pair's inputs and the mapping: PNGs are rewritten only when it changes
    (content, not mtimes, so index.csv and the DVC output hash stay stable across checkouts)."""
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode())
    for p in (lr, hr):
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def _display_path(p: Path) -> str:
    """Source path for index.csv: relative to the working directory (repo root) when inside it."""
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(p)


def _quicklook_lut(cfg: dict) -> np.ndarray:
    """to_quicklook8 of every PNG level: quicklooks become one lookup (within 1 level of direct)."""
    levels = png16_to_reflectance(np.arange(65536, dtype=np.uint16), cfg["lo"], cfg["hi"])
    return to_quicklook8(levels, cfg["ql_max"], cfg["ql_gamma"])


def _process(task: dict) -> tuple[list[dict], dict, list[str]]:
    """Worker: decode, write (unless already up to date) and accumulate stats for a few pairs."""
    cfg = task["cfg"]
    lo, hi = cfg["lo"], cfg["hi"]
    out_dir = Path(task["out_dir"])
    lut = _quicklook_lut(cfg)
    rows, accs, errors = [], {}, []
    for job in task["jobs"]:
        pid, split = job["pair_id"], job["split"]
        try:
            lr_path, hr_path = Path(job["lr"]), Path(job["hr"])
            fpr = _fingerprint(lr_path, hr_path, cfg)
            rel = {
                "lr_png": f"{split}_LR/{pid}.png",
                "hr_png": f"{split}_HR/{pid}.png",
                "lr_quicklook": f"{QUICKLOOK_DIR}/{split}_LR/{pid}.png",
                "hr_quicklook": f"{QUICKLOOK_DIR}/{split}_HR/{pid}.png",
            }
            fresh = job.get("prev_fingerprint") == fpr and all((out_dir / p).is_file() for p in rel.values())
            sizes = {}
            for side, path in (("LR", lr_path), ("HR", hr_path)):
                refl = decode_reflectance(read_raster(path), side)
                png = reflectance_to_png16(refl, lo, hi)
                accumulate(accs.setdefault((split, side), empty_acc()), refl, png, lo, hi)
                sizes[f"{side.lower()}_width"], sizes[f"{side.lower()}_height"] = refl.shape[2], refl.shape[1]
                if not fresh:
                    level = cfg["compress_level"]
                    write_png16(out_dir / rel[f"{side.lower()}_png"], png.transpose(1, 2, 0), level)
                    write_png8(
                        out_dir / rel[f"{side.lower()}_quicklook"],
                        lut[png].transpose(1, 2, 0),
                        QUICKLOOK_COMPRESS_LEVEL,
                    )
            rows.append(
                {
                    "pair_id": pid,
                    "split": split,
                    **rel,
                    **sizes,
                    "lr_source": _display_path(lr_path),
                    "hr_source": _display_path(hr_path),
                    "fingerprint": fpr,
                    "written": not fresh,
                }
            )
        except (RasterError, OSError, ValueError) as err:
            errors.append(f"{pid}: {err}")
    return rows, {f"{k[0]}|{k[1]}": v for k, v in accs.items()}, errors


# ------------------------------------------------------------------------------------- running
def _remove_stale(out_dir: Path, keep: set[str]) -> list[str]:
    """Delete PNGs (and partial files) under the split folders that the current index does not list."""
    removed = []
    for base in (out_dir, out_dir / QUICKLOOK_DIR):
        for split in SPLITS:
            for side in SIDES:
                d = base / f"{split}_{side}"
                if not d.is_dir():
                    continue
                for p in d.iterdir():
                    rel = p.relative_to(out_dir).as_posix()
                    if p.is_file() and rel not in keep:
                        p.unlink()
                        removed.append(rel)
    return removed


def encoding_doc(params: Params) -> dict:
    """The content of encoding.json: how to turn PNG values back into reflectance."""
    lo, hi = params.png.reflectance_min, params.png.reflectance_max
    return {
        "formula": "png = round((clip(reflectance, lo, hi) - lo) / (hi - lo) * 65535)",
        "inverse": "reflectance = lo + png / 65535 * (hi - lo)",
        "training_input": "png / 65535, in [0, 1]",
        "lo": lo,
        "hi": hi,
        "dtype": "uint16",
        "bands": list(BANDS),
        "band_sources": {
            "LR": "Landsat SR_B4, SR_B3, SR_B2 (first three bands of the chip)",
            "HR": "Sentinel-2 B4, B3, B2 (first three bands of the chip)",
        },
        "decoding": "DN -> reflectance with the encoding recorded in each chip (Landsat C2 L2: DN * 2.75e-5 - 0.2; "
        "Sentinel-2 harmonized: DN / 10000; 8-bit imports: DN / 255 pseudo-reflectance)",
        "nodata": "fill (NaN) pixels are written as lo (png 0)",
        "quicklook": {
            "dtype": "uint8",
            "formula": "round(clip(reflectance / max, 0, 1) ** (1 / gamma) * 255)",
            "max": params.png.quicklook_max_reflectance,
            "gamma": params.png.quicklook_gamma,
        },
        "layout": "{split}_{LR,HR}/<pair_id>.png (seed layout); quicklook/{split}_{LR,HR}/<pair_id>.png",
    }


def read_split_table(split_csv: Path) -> pd.DataFrame:
    """The split stage's split.csv (pair_id, split, group), or an error naming the file and the stage."""
    split_csv = Path(split_csv)
    if not split_csv.is_file():
        raise MissingInputError(f"{split_csv}: split table not found (expected the split stage's split.csv: "
                                "run `dvc repro split`)")
    try:
        df = pd.read_csv(split_csv, dtype={"pair_id": str, "split": str, "group": str})
    except (ValueError, OSError) as err:
        raise InputError(f"{split_csv}: unreadable split table ({err}; expected the split stage's CSV)") from None
    missing = [c for c in ("pair_id", "split") if c not in df.columns]
    if missing:
        raise InputError(f"{split_csv}: split table lacks column(s) {missing} (expected pair_id, split, group)")
    return df


def run_png(
    params: Params, raw_dir: Path, split_csv: Path, report_csv: Path, out_dir: Path, stats_path: Path
) -> pd.DataFrame:
    """Write the training PNGs, quicklooks, index.csv, encoding.json and the stats JSON; returns the index."""
    raw_dir, out_dir, stats_path = Path(raw_dir), Path(out_dir), Path(stats_path)
    lo, hi = params.png.reflectance_min, params.png.reflectance_max
    manifest = read_manifest(raw_dir).set_index("pair_id")
    split_df = read_split_table(split_csv)
    report = read_report(report_csv).drop_duplicates("pair_id", keep="last").set_index("pair_id")
    prev = {}
    if (out_dir / INDEX_NAME).is_file():
        try:
            old = pd.read_csv(out_dir / INDEX_NAME, dtype=str)
            prev = dict(zip(old["pair_id"] + "|" + old["split"], old["fingerprint"]))
        except (ValueError, KeyError, OSError):
            prev = {}

    jobs = []
    for row in split_df.itertuples(index=False):
        pid, split = str(row.pair_id), str(row.split)
        if split not in SPLITS:
            raise InputError(f"{split_csv}: pair {pid} has unknown split {split!r}")
        if pid not in manifest.index:
            log.warning("png: %s is in %s but not in the manifest; skipped", pid, split_csv)
            continue
        rrow = report.loc[pid] if pid in report.index else None
        if rrow is None or str(rrow["status"]).strip() != "accepted":
            log.warning("png: %s is in %s but not accepted in %s; skipped", pid, split_csv, report_csv)
            continue
        lr, hr = resolve_pair_paths(raw_dir, manifest.loc[pid].to_dict(), rrow.to_dict())
        if lr is None or hr is None:
            log.warning("png: %s has no LR or HR file; skipped", pid)
            continue
        jobs.append(
            {
                "pair_id": pid,
                "split": split,
                "lr": str(lr),
                "hr": str(hr),
                "prev_fingerprint": prev.get(f"{pid}|{split}"),
            }
        )

    missing = [p for job in jobs for p in (job["lr"], job["hr"]) if not Path(p).is_file()]
    if missing:
        raise MissingInputError(
            f"{missing[0]}: raw file not found ({len(missing)} file(s) missing; expected the GeoTIFFs that "
            f"{raw_dir / 'manifest.csv'} lists: run `dvc checkout source` or `dvc repro source`)")

    cfg = {
        "lo": lo,
        "hi": hi,
        "ql_max": params.png.quicklook_max_reflectance,
        "ql_gamma": params.png.quicklook_gamma,
        "compress_level": params.png.compress_level,
        "version": FORMAT_VERSION,
    }
    workers = max(1, min(params.png.workers, len(jobs) or 1))
    per_task = max(1, min(16, -(-len(jobs) // (workers * 4))))
    tasks = [
        {"jobs": jobs[k : k + per_task], "cfg": cfg, "out_dir": str(out_dir)}
        for k in range(0, len(jobs), per_task)
    ]
    for split in SPLITS:
        for side in SIDES:
            (out_dir / f"{split}_{side}").mkdir(parents=True, exist_ok=True)
            (out_dir / QUICKLOOK_DIR / f"{split}_{side}").mkdir(parents=True, exist_ok=True)
    if workers == 1:
        results = [_process(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_process, tasks))

    rows, errors = [], []
    accs = {(s, side): empty_acc() for s in SPLITS for side in SIDES}
    for r, acc, errs in results:
        rows += r
        errors += errs
        for key, a in acc.items():
            s, side = key.split("|")
            merge_acc(accs[(s, side)], a)
    if errors:
        for e in errors[:20]:
            log.error("png: %s", e)
        raise RasterError(f"png: {len(errors)} pair(s) could not be converted, e.g. {errors[0]}")

    index = pd.DataFrame(
        rows,
        columns=[
            "pair_id",
            "split",
            "lr_png",
            "hr_png",
            "lr_quicklook",
            "hr_quicklook",
            "lr_width",
            "lr_height",
            "hr_width",
            "hr_height",
            "lr_source",
            "hr_source",
            "fingerprint",
            "written",
        ],
    )
    # the split's spatial group of each pair: evaluation resamples groups, not chips, for its CIs
    groups = dict(zip(split_df["pair_id"], split_df["group"])) if "group" in split_df else {}
    index.insert(index.columns.get_loc("fingerprint"), "group", index["pair_id"].map(groups))
    index = index.sort_values(["split", "pair_id"]).reset_index(drop=True)
    keep = (
        set(index["lr_png"]) | set(index["hr_png"]) | set(index["lr_quicklook"]) | set(index["hr_quicklook"])
    )
    removed = _remove_stale(out_dir, keep)

    stats: dict = {"mapping": {"lo": lo, "hi": hi}}
    for s in SPLITS:
        stats[s] = {"pairs": int((index["split"] == s).sum())}
        for side in SIDES:
            stats[s][side] = finish_acc(accs[(s, side)], lo, hi)
    with atomic_path(out_dir / ENCODING_NAME) as tmp:
        tmp.write_text(json.dumps(encoding_doc(params), indent=2) + "\n")
    with atomic_path(out_dir / INDEX_NAME) as tmp:
        index.drop(columns=["written"]).to_csv(tmp, index=False)
    stats_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(stats_path) as tmp:
        tmp.write_text(json.dumps(stats, indent=2) + "\n")
    n_written = int(index["written"].sum()) if len(index) else 0
    log.info(
        "png: %d pairs (%d written, %d up to date), %d stale file(s) removed, workers=%d",
        len(index),
        n_written,
        len(index) - n_written,
        len(removed),
        workers,
    )
    return index.drop(columns=["written"])

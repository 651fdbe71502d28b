"""The ``folder`` provider's run: plan the jobs, write them (resuming finished pairs), write the manifest."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd

from satsr.config import SCALE, Params, ParamsError
from satsr.data.manifest import MANIFEST_NAME, is_complete, prune_unlisted, read_manifest, write_manifest
from satsr.data.radiometry import Encoding
from satsr.data.sources.folder.discover import LAYOUT_HELP, plan
from satsr.data.sources.folder.encoding import read_png_mapping
from satsr.data.sources.folder.write import manifest_row, write_side
from satsr.errors import MissingInputError
from satsr.util import atomic_path

log = logging.getLogger(__name__)

#: Written beside the manifest: the import settings the existing chips were made with. A change
#: (other folder, other lr_size, forced encoding...) invalidates every chip instead of resuming.
FINGERPRINT_NAME = ".folder_import.json"


def _fingerprint(params: Params, root: Path) -> str:
    fp = params.source.folder.model_dump(mode="json")
    doc = {"root": str(root), "folder": fp, "lr_size": params.source.lr_size, "version": 2}  # 2: nested windows
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def run(params: Params, out_dir: Path) -> pd.DataFrame:
    """Import ``source.folder.path`` into ``out_dir`` (resumable); returns the manifest written."""
    fp = params.source.folder
    if not fp.path or not str(fp.path).strip():
        raise ParamsError(
            f"source.folder.path: not set (expected the folder to import: layout '{fp.layout}' expects "
            f"{LAYOUT_HELP[fp.layout]})"
        )
    root = Path(fp.path).expanduser()
    if not root.is_dir():
        what = "a file, not a folder" if root.exists() else "folder not found"
        raise MissingInputError(
            f"source.folder.path: {root}: {what} (expected a folder; layout '{fp.layout}' expects "
            f"{LAYOUT_HELP[fp.layout]}; a relative path starts at the repository root)"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if root.resolve() == out_dir.resolve():
        raise ParamsError(f"source.folder.path={root} is the output folder itself; import from another folder")

    jobs = plan(root, params)

    fingerprint = _fingerprint(params, root)
    fp_path = out_dir / FINGERPRINT_NAME
    old: dict[str, dict] = {}
    if (
        fp_path.is_file()
        and fp_path.read_text().strip() == fingerprint
        and (out_dir / MANIFEST_NAME).is_file()
    ):
        try:
            old = {r["pair_id"]: r for r in read_manifest(out_dir).to_dict("records")}
        except (ValueError, OSError) as err:
            log.warning("folder: existing manifest unusable (%s); re-importing everything", err)
    png_mapping = read_png_mapping(root) if fp.layout == "seed_png" else None

    rows, reused, mismatched, missing = [], 0, 0, 0
    enc_cache: dict[Path, Encoding] = {}
    for job in jobs:
        prev = old.get(job.pair_id)
        if prev is not None and is_complete(out_dir, prev):
            rows.append(prev)
            reused += 1
            continue
        lr = write_side(job, "lr", out_dir, fp.lr_encoding, png_mapping, enc_cache)
        hr = write_side(job, "hr", out_dir, fp.hr_encoding, png_mapping, enc_cache)
        if job.lr.src is None or job.hr.src is None:
            present = job.lr.src or job.hr.src
            log.warning(
                "folder: %s has no %s partner; kept so the filter reports it",
                present,
                "HR" if job.hr.src is None else "LR",
            )
        if lr is None or hr is None:
            missing += 1
        elif (hr["width"], hr["height"]) != (lr["width"] * SCALE, lr["height"] * SCALE):
            mismatched += 1
            log.warning(
                "folder: %s: HR %dx%d is not %dx LR %dx%d (off by %d x %d HR px); kept as is, the filter "
                "rejects non-%dx pairs",
                job.pair_id,
                hr["width"],
                hr["height"],
                SCALE,
                lr["width"],
                lr["height"],
                hr["width"] - SCALE * lr["width"],
                hr["height"] - SCALE * lr["height"],
                SCALE,
            )
        rows.append(manifest_row(job, lr, hr))

    keep = {MANIFEST_NAME, FINGERPRINT_NAME}
    for r in rows:
        keep.update(x for x in (r["lr_file"], r["hr_file"]) if isinstance(x, str) and x)
    removed = prune_unlisted(out_dir, keep)
    write_manifest(out_dir, rows)
    with atomic_path(fp_path) as tmp:
        tmp.write_text(fingerprint + "\n")
    log.info(
        "folder: %d pairs from %s (%s): %d reused, %d written, %d with a missing/unreadable side, "
        "%d not exactly %dx, %d stale files removed",
        len(rows),
        root,
        fp.layout,
        reused,
        len(rows) - reused,
        missing,
        mismatched,
        SCALE,
        len(removed),
    )
    return _with_empty_strings(read_manifest(out_dir))


def _with_empty_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Missing files / checksums / dates as '' (not NaN), the contract with the filter stage."""
    for col in ("lr_file", "hr_file", "lr_sha256", "hr_sha256", "crs", "lr_date", "hr_date"):
        df[col] = df[col].astype(object).where(df[col].notna(), "")
    return df

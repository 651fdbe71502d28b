"""The ``demo`` provider's run: plan, keep what an earlier run left intact, make the rest, write the manifest.

Resume: pairs whose files match the manifest checksums and carry this generator's parameter
fingerprint are not generated again; files outside the plan are removed. Locations are the unit
of work (a location's landscape is built once for all its pairs), spread over ``workers``
processes; the output does not depend on their number.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import rasterio
from rasterio.errors import RasterioError
from tqdm import tqdm

from satsr.config import Params
from satsr.data import manifest
from satsr.data.sources.demo.generate import PROVIDER, TAG_FINGERPRINT, _generate_location, _Intact, _row
from satsr.data.sources.demo.plan import PlannedPair, fingerprint, plan_pairs
from satsr.util import sha256_file

log = logging.getLogger(__name__)


def _file_fingerprint(path: Path) -> str | None:
    try:
        with rasterio.open(path) as src:
            return src.tags().get(TAG_FINGERPRINT)
    except (RasterioError, OSError):
        return None


def _resumable(out_dir: Path, plan: list[PlannedPair], fp: str) -> tuple[dict[str, dict[str, Any]], dict[str, _Intact]]:
    """What an earlier run left that can stay: complete rows (both files intact) and, for pairs
    with one file missing or damaged, the intact other file (the pair is made again, that file is
    not rewritten). A file is intact when the manifest row has the planned names, the file matches
    its checksum and carries this generator's parameter fingerprint."""
    if not (out_dir / manifest.MANIFEST_NAME).is_file():
        return {}, {}
    try:
        old = manifest.read_manifest(out_dir)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        log.warning("demo: ignoring unreadable previous manifest (%s); all pairs are made again", err)
        return {}, {}
    by_id = {str(r["pair_id"]): r for r in old.to_dict("records")}
    complete, partial = {}, {}
    for p in plan:
        r = by_id.get(p.pair_id)
        if r is None or r.get("provider") != PROVIDER or (r.get("lr_file"), r.get("hr_file")) != (p.lr_file, p.hr_file):
            continue
        intact = {}
        for side in ("lr", "hr"):
            path, digest = out_dir / r[f"{side}_file"], r.get(f"{side}_sha256")
            if (isinstance(digest, str) and path.is_file() and sha256_file(path) == digest
                    and _file_fingerprint(path) == fp):
                intact[side] = digest
        if len(intact) == 2:
            complete[p.pair_id] = _row(p, intact["lr"], intact["hr"], float(r["lr_clear_fraction"]),
                                       float(r["hr_clear_fraction"]))
        elif intact:
            partial[p.pair_id] = intact
    return complete, partial


def run(params: Params, out_dir: Path) -> pd.DataFrame:
    """Write (or complete) the demo dataset in ``out_dir``; returns the manifest it wrote.

    Deterministic: the same params give byte-identical files, whatever ``workers`` is. Files an
    earlier run completed are neither made nor touched again; files outside the plan are removed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    demo = params.source.demo
    log.warning("source: DEMO DATA -- writing SYNTHETIC procedural pairs (not real Landsat/Sentinel-2 "
                "imagery) to %s; set source.provider to 'gee' or 'folder' for real data", out_dir)
    plan = plan_pairs(params)
    fp = fingerprint(params)
    rows, partial = _resumable(out_dir, plan, fp)
    removed = manifest.prune_unlisted(out_dir, {f for p in plan for f in (p.lr_file, p.hr_file)})
    if removed:
        log.info("demo: removed %d file(s) not in the plan", len(removed))
    todo = [p for p in plan if p.pair_id not in rows]
    log.info("demo: %d pairs planned at %d locations (%d with planted defects); %d to make, %d kept",
             len(plan), demo.n_locations, sum(bool(p.defect) for p in plan), len(todo), len(rows))
    manifest.write_manifest(out_dir, list(rows.values()) or pd.DataFrame(columns=manifest.COLUMNS))
    by_loc: dict[int, list[PlannedPair]] = {}
    for p in todo:
        by_loc.setdefault(p.location, []).append(p)
    tasks = [(params, str(out_dir), loc, pairs, {p.pair_id: partial[p.pair_id] for p in pairs if p.pair_id in partial})
             for loc, pairs in sorted(by_loc.items())]
    workers = min(demo.workers, len(tasks))
    with tqdm(total=len(todo), desc="DEMO DATA pairs", unit="pair", disable=not todo) as bar:
        if workers <= 1:
            _collect(map(_generate_location, tasks), rows, out_dir, bar)
        else:
            with _mp_context().Pool(workers) as pool:
                _collect(pool.imap_unordered(_generate_location, tasks), rows, out_dir, bar)
    manifest.write_manifest(out_dir, list(rows.values()))
    return manifest.read_manifest(out_dir)


def _mp_context() -> mp.context.BaseContext:
    """``fork`` where it is safe and cheap (Linux, no TensorFlow thread pools in this process yet),
    so plain scripts without a ``__main__`` guard work too; ``spawn`` otherwise."""
    if sys.platform.startswith("linux") and "tensorflow" not in sys.modules:
        return mp.get_context("fork")
    return mp.get_context("spawn")


def _collect(results: Any, rows: dict[str, dict[str, Any]], out_dir: Path, bar: tqdm) -> None:
    """Record each finished location; the manifest is rewritten as we go so a killed run resumes."""
    for finished in results:
        for r in finished:
            rows[r["pair_id"]] = r
        manifest.write_manifest(out_dir, list(rows.values()))
        bar.update(len(finished))

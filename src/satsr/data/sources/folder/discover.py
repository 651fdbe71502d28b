"""Finding and pairing a layout's files: one ``Job`` per pair (a large ``pattern`` scene: one per chip).

A file without a partner still becomes a job (one side empty), so the filter stage reports it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from satsr.config import HR_PIXEL_M, LR_PIXEL_M, Params, ParamsError
from satsr.data.sources.folder.chipping import plan_scene
from satsr.data.sources.folder.jobs import Job, Side, days_apart, parse_date, safe_id

log = logging.getLogger(__name__)

SEED_TIF_RE = re.compile(
    r"^(?P<id>.+?)_(?P<date>[^_]+)_(?P<sensor>L8|S2)_(?P<lon>-?\d+(?:\.\d+)?)_(?P<lat>-?\d+(?:\.\d+)?)\.tiff?$",
    re.IGNORECASE,
)
SEED_PNG_SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")

LAYOUT_HELP = {
    "seed_tif": "files named <id>_<date>_L8_<lon>_<lat>.tif and <id>_<date>_S2_<lon>_<lat>.tif",
    "seed_png": "sub-folders train_LR, train_HR, val_LR, val_HR (optionally test_*) with the same file names "
                "in LR and HR",
    "pattern": "files matching source.folder.lr_pattern / hr_pattern (regexes with a named group 'key')",
}


def _files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _nothing_found(root: Path, layout: str, extra: str = "") -> FileNotFoundError:
    return FileNotFoundError(
        f"source.folder.path={root}: nothing matches layout '{layout}' (expected {LAYOUT_HELP[layout]}){extra}"
    )


def _plan_seed_tif(root: Path) -> list[Job]:
    """Pair the seed's exports by id+date+lon+lat, else by id+location (S2 on another date)."""
    sides: dict[str, dict[tuple, Path]] = {"L8": {}, "S2": {}}
    meta: dict[Path, re.Match] = {}
    ignored = 0
    for p in _files(root, (".tif", ".tiff")):
        m = SEED_TIF_RE.match(p.name)
        if not m:
            ignored += 1
            continue
        key = (m["id"], m["date"], round(float(m["lon"]), 4), round(float(m["lat"]), 4))
        sensor = m["sensor"].upper()
        if key in sides[sensor]:
            log.warning(
                "seed_tif: %s duplicates %s (same id, date and place); ignored", p, sides[sensor][key]
            )
            continue
        sides[sensor][key] = p
        meta[p] = m
    if not sides["L8"] and not sides["S2"]:
        raise _nothing_found(root, "seed_tif")
    if ignored:
        log.info("seed_tif: %d .tif file(s) in %s do not follow the seed naming; ignored", ignored, root)
    pairs: list[tuple[Path | None, Path | None]] = []
    l8_left = dict(sides["L8"])
    s2_left = dict(sides["S2"])
    for key in sorted(set(l8_left) & set(s2_left)):
        pairs.append((l8_left.pop(key), s2_left.pop(key)))
    # S2 taken on another date than L8 (the seed allowed up to 7 days): pair by id + place.
    by_place: dict[tuple, list[tuple]] = {}
    for key in s2_left:
        by_place.setdefault((key[0], key[2], key[3]), []).append(key)
    for key in sorted(l8_left):
        cands = by_place.get((key[0], key[2], key[3]), [])
        if not cands:
            continue
        d_l8 = parse_date(key[1])
        best = min(cands, key=lambda k: days_apart(d_l8, parse_date(k[1])) if d_l8 else 0)
        cands.remove(best)
        pairs.append((l8_left.pop(key), s2_left.pop(best)))
    pairs += [(p, None) for p in l8_left.values()] + [(None, p) for p in s2_left.values()]

    jobs = []
    for l8, s2 in pairs:
        m = meta[l8 if l8 is not None else s2]
        lr_date = parse_date(meta[l8]["date"]) if l8 else ""
        hr_date = parse_date(meta[s2]["date"]) if s2 else ""
        pid = safe_id(f"{m['id']}_{m['date']}_{float(m['lon']):.4f}_{float(m['lat']):.4f}")
        jobs.append(
            Job(
                pid,
                Side(l8),
                Side(s2),
                lr_date=lr_date,
                hr_date=hr_date,
                lonlat_hint=(float(m["lon"]), float(m["lat"])),
            )
        )
    return jobs


def _plan_seed_png(root: Path) -> list[Job]:
    """Pair ``<split>_LR/<name>`` with ``<split>_HR/<name>``; the split is kept as source_split."""
    jobs = []
    found = False
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()} if root.is_dir() else {}
    for split in SEED_PNG_SPLITS:
        lr_dir, hr_dir = subdirs.get(f"{split}_lr"), subdirs.get(f"{split}_hr")
        if lr_dir is None and hr_dir is None:
            continue
        found = True
        lr = {p.name: p for p in _files(lr_dir, IMAGE_SUFFIXES)} if lr_dir else {}
        hr = {p.name: p for p in _files(hr_dir, IMAGE_SUFFIXES)} if hr_dir else {}
        for name in sorted(set(lr) | set(hr)):
            stem = Path(name).stem
            jobs.append(
                Job(
                    safe_id(f"{split}_{stem}"),
                    Side(lr.get(name), local_pixel=LR_PIXEL_M),
                    Side(hr.get(name), local_pixel=HR_PIXEL_M),
                    lr_date=parse_date(stem),
                    hr_date=parse_date(stem),
                    source_split=split,
                )
            )
    if not found or not jobs:
        raise _nothing_found(root, "seed_png")
    return jobs


def _plan_pattern(root: Path, params: Params) -> list[Job]:
    """Pair files by the ``key`` group of the two regexes; cut large scenes into chips."""
    fp = params.source.folder
    try:
        lr_re, hr_re = re.compile(fp.lr_pattern), re.compile(fp.hr_pattern)
    except re.error as err:
        raise ParamsError(f"source.folder.lr_pattern/hr_pattern: invalid regex ({err})") from None
    for name, rx in (("lr_pattern", lr_re), ("hr_pattern", hr_re)):
        if "key" not in rx.groupindex:
            raise ParamsError(f"source.folder.{name}: {rx.pattern!r} needs a named group (?P<key>...)")
    lr: dict[str, Path] = {}
    hr: dict[str, Path] = {}
    for p in _files(root, IMAGE_SUFFIXES):
        for rx, side in ((lr_re, lr), (hr_re, hr)):
            m = rx.search(p.name)
            if m:
                key = m["key"]
                if key in side:
                    log.warning("pattern: %s has the same key %r as %s; ignored", p, key, side[key])
                else:
                    side[key] = p
                break
    if not lr and not hr:
        raise _nothing_found(root, "pattern", f"; lr_pattern={fp.lr_pattern!r}, hr_pattern={fp.hr_pattern!r}")
    jobs = []
    for key in sorted(set(lr) | set(hr)):
        jobs += plan_scene(key, lr.get(key), hr.get(key), params)
    return jobs


def plan(root: Path, params: Params) -> list[Job]:
    """The jobs of ``source.folder.layout`` under ``root``, with unique pair ids."""
    layout = params.source.folder.layout
    if layout == "seed_tif":
        jobs = _plan_seed_tif(root)
    elif layout == "seed_png":
        jobs = _plan_seed_png(root)
    else:
        jobs = _plan_pattern(root, params)
    seen: dict[str, int] = {}
    for job in jobs:  # keep ids unique even if two names sanitise alike
        k = seen.get(job.pair_id, 0)
        seen[job.pair_id] = k + 1
        if k:
            job.pair_id = f"{job.pair_id}-{k + 1}"
    return jobs

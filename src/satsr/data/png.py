"""Training PNGs: reflectance -> 16-bit RGB PNG with one documented, invertible mapping.

The seed stretched 8-bit PNGs with ad-hoc factors (L8 x4, S2 x1.4), so its models learned a
colour transform as well as super-resolution, and nothing could be turned back into reflectance.
Here both sensors are decoded to surface reflectance with the encoding recorded in each file and
mapped with ``radiometry.to_png16(refl, lo, hi)``; ``encoding.json`` documents the mapping and
its inverse. Folder layout is the seed's (``train_LR``, ``train_HR``, ``val_LR`` ...), so the
``folder`` provider (layout ``seed_png``) can re-import it. 8-bit quicklooks with a fixed stretch
go to ``quicklook/`` for people.

16-bit RGB PNGs are written by a small encoder on the standard library's zlib: Pillow cannot write
16-bit RGB, and GDAL's PNG driver (zlib level 6, adaptive filters) took ~10x longer per HR chip
here. Any PNG reader decodes them (checked with GDAL and Pillow in the tests). Quicklooks are one
table lookup per pixel (``to_quicklook8`` of every PNG level), within one grey level of calling
``to_quicklook8`` on the reflectance.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from satsr.config import Params
from satsr.data.geotiff import Raster, RasterError, encoding_of, read_raster
from satsr.data.manifest import read_manifest
from satsr.data.radiometry import L8_C2_L2, S2_SR, Encoding, to_quicklook8
from satsr.data.split import SPLITS, read_report, resolve_pair_paths
from satsr.errors import InputError, MissingInputError
from satsr.util import atomic_path, sha256_file

log = logging.getLogger(__name__)

INDEX_NAME = "index.csv"
ENCODING_NAME = "encoding.json"
QUICKLOOK_DIR = "quicklook"
SIDES = ("LR", "HR")
BANDS = ("R", "G", "B")
#: Histogram bins for the percentiles: one per uint16 PNG level (exact to the PNG quantization).
HIST_BINS = 65536
#: Bumped when the output format changes, so resumed runs rewrite every file.
FORMAT_VERSION = 1
#: PNG compression, the "Up" filter + zlib. Level 1 (the writers' default) is zlib's run-length
#: strategy: measured ~5x faster than zlib's default level 6 (what GDAL's PNG driver uses) and no
#: larger on noisy 16-bit reflectance, whose low bytes barely compress. Level 0 (stored, the
#: pipeline's default via ``png.compress_level``) is ~3x faster again and ~1.6x larger. 8-bit
#: quicklooks are smooth and shrink ~2.3x with run-length for little time, so they always use 1.
DEFAULT_COMPRESS_LEVEL = 1
QUICKLOOK_COMPRESS_LEVEL = 1
PNG_FILTER_UP = 2


# ------------------------------------------------------------------------------------ PNG I/O
def _chunk(kind: bytes, data: bytes) -> list[bytes]:
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return [struct.pack(">I", len(data)) + kind, data, struct.pack(">I", crc)]


def _zlib(level: int):
    """0: stored; 1: run-length (fast); 2-9: full deflate at that level (smaller, slower)."""
    if level <= 0:
        return zlib.compressobj(0)
    if level == 1:
        return zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    return zlib.compressobj(min(level, 9))


def _png_parts(img: np.ndarray, level: int = DEFAULT_COMPRESS_LEVEL) -> list[bytes]:
    """PNG chunks of an (h, w, 3) or (3, h, w)-transposed uint8/uint16 array (colour type 2).

    Accepts any strides: the big-endian copy, the "Up" filter and the zlib stream are the only
    passes over the pixels (written as parts, never concatenated, to spare copies of megabytes).
    """
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected (h, w, 3) uint8 or uint16, got {img.shape} {img.dtype}")
    h, w, _ = img.shape
    depth = 8 * img.dtype.itemsize
    rows = img.astype(img.dtype.newbyteorder(">"), order="C").view(np.uint8).reshape(h, -1)
    raw = np.empty((h, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = PNG_FILTER_UP
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # "Up" filter: byte minus the byte above, mod 256
    z = _zlib(level)
    idat = z.compress(raw) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, depth, 2, 0, 0, 0)
    return [b"\x89PNG\r\n\x1a\n", *_chunk(b"IHDR", ihdr), *_chunk(b"IDAT", idat), *_chunk(b"IEND", b"")]


def encode_png(img: np.ndarray, level: int = DEFAULT_COMPRESS_LEVEL) -> bytes:
    """The bytes of a PNG of an (h, w, 3) uint8 or uint16 array (colour type 2, depth 8 or 16)."""
    return b"".join(_png_parts(img, level))


def _write_parts(path: Path, parts: list[bytes]) -> None:
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        f.writelines(parts)


def write_png16(path: Path, rgb: np.ndarray, level: int = DEFAULT_COMPRESS_LEVEL) -> None:
    """Write an (h, w, 3) uint16 array as a 16-bit RGB PNG, atomically."""
    if rgb.dtype != np.uint16:
        raise ValueError(f"{path}: expected uint16, got {rgb.dtype}")
    _write_parts(path, _png_parts(rgb, level))


def write_png8(path: Path, rgb: np.ndarray, level: int = QUICKLOOK_COMPRESS_LEVEL) -> None:
    """Write an (h, w, 3) uint8 quicklook atomically."""
    if rgb.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8, got {rgb.dtype}")
    _write_parts(path, _png_parts(rgb, level))


def reflectance_to_png16(refl: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``radiometry.to_png16`` computed in place (same float32 operations in the same order, so
    bit-identical; checked in the tests) without its temporaries: NaN -> lo, then clip."""
    x = np.fmax(refl, np.float32(lo))  # NaN -> lo (fmax ignores NaN), -inf -> lo
    np.minimum(x, np.float32(hi), out=x)
    x -= lo
    x /= hi - lo
    x *= 65535.0
    np.rint(x, out=x)
    return x.astype(np.uint16)


def read_png16(path: str | Path) -> np.ndarray:
    """Read a 16-bit RGB training PNG as (h, w, 3) uint16 (GDAL's PNG reader; Pillow truncates 16-bit RGB)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                data = src.read()
    except rasterio.errors.RasterioError as err:
        raise RasterError(f"{path}: unreadable PNG ({err})") from None
    if data.dtype != np.uint16 or data.shape[0] != 3:
        raise RasterError(f"{path}: expected a 16-bit RGB PNG, got {data.shape[0]} band(s) of {data.dtype}")
    return np.ascontiguousarray(data.transpose(1, 2, 0))


def png16_to_reflectance(png: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of the mapping (exact up to 1/65535 of the range inside [lo, hi])."""
    return (lo + png.astype(np.float32) / np.float32(65535.0) * np.float32(hi - lo)).astype(np.float32)


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


# ------------------------------------------------------------------------------------ statistics
def _empty_acc() -> dict:
    """Per-band running statistics: count, mean and M2 (merged with Chan's formula, so sums of
    many chips stay accurate in float32 per chip), extremes, clipping counts and a histogram."""
    return {
        "n": np.zeros(3, np.int64),
        "mean": np.zeros(3),
        "m2": np.zeros(3),
        "min": np.full(3, np.inf),
        "max": np.full(3, -np.inf),
        "below": np.zeros(3, np.int64),
        "above": np.zeros(3, np.int64),
        "nan": np.zeros(3, np.int64),
        "hist": np.zeros((3, HIST_BINS), np.int64),
    }


def _add_moments(acc: dict, b: int, n: int, mean: float, m2: float) -> None:
    na = int(acc["n"][b])
    tot = na + n
    delta = mean - acc["mean"][b]
    acc["mean"][b] += delta * n / tot
    acc["m2"][b] += m2 + delta * delta * na * n / tot
    acc["n"][b] = tot


def _accumulate(acc: dict, refl: np.ndarray, png: np.ndarray, lo: float, hi: float) -> None:
    """Add one chip: ``refl`` and ``png`` are (3, h, w) reflectance and its uint16 mapping."""
    for b in range(3):
        x = refl[b].ravel()
        p = png[b].ravel()
        ok = np.isfinite(x)
        n_ok = int(np.count_nonzero(ok))
        acc["nan"][b] += x.size - n_ok
        if n_ok == 0:
            continue
        if n_ok < x.size:
            x, p = x[ok], p[ok]
        mean = float(x.sum(dtype=np.float64)) / n_ok
        d = x - np.float32(mean)
        _add_moments(acc, b, n_ok, mean, float(np.dot(d, d)))
        acc["min"][b] = min(acc["min"][b], float(x.min()))
        acc["max"][b] = max(acc["max"][b], float(x.max()))
        acc["below"][b] += int(np.count_nonzero(x < lo))
        acc["above"][b] += int(np.count_nonzero(x > hi))
        acc["hist"][b] += np.bincount(p, minlength=HIST_BINS)


def _merge(into: dict, acc: dict) -> None:
    for b in range(3):
        if acc["n"][b]:
            _add_moments(into, b, int(acc["n"][b]), float(acc["mean"][b]), float(acc["m2"][b]))
    for k in ("below", "above", "nan", "hist"):
        into[k] += acc[k]
    into["min"] = np.minimum(into["min"], acc["min"])
    into["max"] = np.maximum(into["max"], acc["max"])


def _percentile(hist: np.ndarray, q: float, lo: float, hi: float) -> float:
    """Percentile from the PNG-level histogram, in reflectance (clipped values read as lo/hi)."""
    cum = np.cumsum(hist)
    if cum[-1] == 0:
        return float("nan")
    k = int(np.searchsorted(cum, q / 100.0 * cum[-1], side="left"))
    return float(lo + k / 65535.0 * (hi - lo))


def _finish(acc: dict, lo: float, hi: float) -> dict:
    out = {}
    for b, name in enumerate(BANDS):
        n = int(acc["n"][b])
        if n == 0:
            out[name] = {
                "mean": None,
                "std": None,
                "min": None,
                "max": None,
                "p1": None,
                "p99": None,
                "clipped": None,
                "clipped_low": None,
                "clipped_high": None,
                "nodata": int(acc["nan"][b]),
            }
            continue
        out[name] = {
            "mean": round(float(acc["mean"][b]), 6),
            "std": round(float(np.sqrt(acc["m2"][b] / n)), 6),
            "min": round(float(acc["min"][b]), 6),
            "max": round(float(acc["max"][b]), 6),
            "p1": round(_percentile(acc["hist"][b], 1, lo, hi), 6),
            "p99": round(_percentile(acc["hist"][b], 99, lo, hi), 6),
            "clipped": round(float(acc["below"][b] + acc["above"][b]) / n, 8),
            "clipped_low": round(float(acc["below"][b]) / n, 8),
            "clipped_high": round(float(acc["above"][b]) / n, 8),
            "nodata": int(acc["nan"][b]),
        }
    return out


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
                _accumulate(accs.setdefault((split, side), _empty_acc()), refl, png, lo, hi)
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
    accs = {(s, side): _empty_acc() for s in SPLITS for side in SIDES}
    for r, acc, errs in results:
        rows += r
        errors += errs
        for key, a in acc.items():
            s, side = key.split("|")
            _merge(accs[(s, side)], a)
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
            stats[s][side] = _finish(accs[(s, side)], lo, hi)
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

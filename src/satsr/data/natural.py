"""Natural-image pretraining corpus, written in exactly the satellite PNG dataset's layout.

Super-resolution networks are commonly pretrained on natural photographs (DIV2K) and fine-tuned
on the target domain. This module writes such a corpus as::

    <out_dir>/train_LR/<pair_id>.png   16-bit RGB, LR = HR / 3 per side
    <out_dir>/train_HR/<pair_id>.png   16-bit RGB, HR side a multiple of 3
    <out_dir>/val_LR/..., val_HR/...
    <out_dir>/index.csv                pair_id, split, lr_png, hr_png, lr_width, lr_height,
                                       hr_width, hr_height, source, lr_method, fingerprint
    <out_dir>/encoding.json            how the values were made

so ``satsr.data.pipeline.make_dataset`` reads it like ``data/png``.

**Values.** Photos are 8-bit sRGB; they are mapped to the 16-bit range as ``v16 = v8 * 257``
(255 -> 65535), so the model input ``png / 65535`` is the usual ``v8 / 255``, identical in
normalisation to the satellite PNGs (which are reflectance mapped to [0, 65535]). The two domains
still differ radiometrically (gamma-encoded sRGB vs. linear reflectance): that is what the
fine-tuning on satellite pairs is for.

**Degradation.** HR is cropped (bottom/right) to a multiple of 3; LR is bicubic x3 downscaling
*with antialiasing*: Pillow's ``Image.resize(..., Image.BICUBIC)`` on float32 pixels (the Keys
cubic kernel with a = -0.5, widened by the factor 3 when downscaling, pixel-centre aligned so LR
pixel i covers HR pixels 3i..3i+2). This is the same kernel as MATLAB ``imresize(hr, 1/3,
'bicubic')`` which made DIV2K's official ``X3`` LR images (antialiasing is MATLAB's default);
they differ only at the image border (MATLAB pads symmetrically, Pillow renormalises the
truncated kernel). With ``div2k_official_lr`` the official LR images are used when present. LR is
computed on the whole image and then cut into tiles, so tiles have no extra edge effects.

**Sources** (``natural.source``):

* ``skimage`` (default, offline): the real photographs bundled inside the scikit-image wheel
  (``skimage/data/``, listed in :data:`SKIMAGE_PHOTOS`); no network is needed. Each photo is cut
  into ``tile_hr`` px HR tiles every ``tile_stride`` px (the last tile flush with the edge), and
  tiles that are nearly featureless (``min_tile_std``) are dropped. Validation holds out whole
  source images (``val_fraction``), never tiles of a training image, since tiles overlap.
  JPEG sources (rocket, hubble_deep_field, retina) carry mild compression artifacts.
* ``div2k``: the standard DIV2K folder (Agustsson & Timofte, NTIRE 2017) at ``natural.div2k_dir``::

      data/DIV2K/DIV2K_train_HR/0001.png ... 0800.png        (train, about 3.5 GB)
      data/DIV2K/DIV2K_valid_HR/0801.png ... 0900.png        (val, about 0.45 GB)
      data/DIV2K/DIV2K_train_LR_bicubic/X3/0001x3.png ...    (optional, official LR)
      data/DIV2K/DIV2K_valid_LR_bicubic/X3/0801x3.png ...    (optional, official LR)

  Official downloads (https://data.vision.ee.ethz.ch/cvl/DIV2K/):
  ``DIV2K_train_HR.zip``, ``DIV2K_valid_HR.zip``, ``DIV2K_train_LR_bicubic_X3.zip``,
  ``DIV2K_valid_LR_bicubic_X3.zip`` (see :func:`download_div2k`). Track the folder with DVC
  (``dvc add data/DIV2K``, then ``dvc push``) so every host pulls the same bytes from the remote
  instead of the ETH server. DIV2K keeps its official split (train -> train, valid -> val);
  with ``tile_hr`` 0 whole 2K images are written and the input pipeline crops patches from them.
  DIV2K is for academic research use only; check its licence for your use.

Reruns are incremental: a source whose file and settings are unchanged (``fingerprint``) is not
rewritten; files of sources no longer listed are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from satsr.config import SCALE, NaturalParams, Params
from satsr.data.png import write_png16
from satsr.errors import SatsrError
from satsr.util import atomic_path, sha256_file

log = logging.getLogger(__name__)

INDEX_NAME = "index.csv"
ENCODING_NAME = "encoding.json"
SPLITS = ("train", "val")
SIDES = ("LR", "HR")
#: Bumped when the output changes, so reruns rewrite every file.
FORMAT_VERSION = 1
LR_METHOD_PIL = "pil_bicubic_antialias_x3"
LR_METHOD_DIV2K = "div2k_official_matlab_bicubic_x3"
INDEX_COLUMNS = ["pair_id", "split", "lr_png", "hr_png", "lr_width", "lr_height", "hr_width", "hr_height",
                 "source", "lr_method", "fingerprint"]

#: Photographs bundled in the scikit-image wheel: name -> (file under skimage/data, colour, what).
#: Left out on purpose: clock_motion (deliberately motion-blurred), page/text (documents), cell
#: (low-contrast microscopy), chessboard/color/phantom/logo/horse (synthetic), microaneurysms (102 px).
SKIMAGE_PHOTOS: dict[str, tuple[str, str, str]] = {
    "astronaut": ("astronaut.png", "rgb", "Eileen Collins portrait, NASA"),
    "chelsea": ("chelsea.png", "rgb", "a cat"),
    "coffee": ("coffee.png", "rgb", "a cup of coffee"),
    "rocket": ("rocket.jpg", "rgb", "launch of a rocket (JPEG)"),
    "motorcycle_left": ("motorcycle_left.png", "rgb", "stereo pair, left view"),
    "motorcycle_right": ("motorcycle_right.png", "rgb", "stereo pair, right view"),
    "hubble_deep_field": ("hubble_deep_field.jpg", "rgb", "Hubble deep field (JPEG)"),
    "immunohistochemistry": ("ihc.png", "rgb", "immunohistochemistry stain, microscope"),
    "retina": ("retina.jpg", "rgb", "human retina, fundus camera (JPEG)"),
    "camera": ("camera.png", "grey", "cameraman"),
    "coins": ("coins.png", "grey", "Greek coins"),
    "moon": ("moon.png", "grey", "lunar surface"),
    "grass": ("grass.png", "grey", "grass texture"),
    "gravel": ("gravel.png", "grey", "gravel texture"),
    "brick": ("brick.png", "grey", "brick wall texture"),
}

DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
#: Official archives -> the folder each one unpacks to (relative to the DIV2K folder).
DIV2K_ARCHIVES: dict[str, str] = {
    "DIV2K_train_HR.zip": "DIV2K_train_HR",
    "DIV2K_valid_HR.zip": "DIV2K_valid_HR",
    "DIV2K_train_LR_bicubic_X3.zip": "DIV2K_train_LR_bicubic/X3",
    "DIV2K_valid_LR_bicubic_X3.zip": "DIV2K_valid_LR_bicubic/X3",
}
DIV2K_LAYOUT = (
    "expected layout: <dir>/DIV2K_train_HR/0001.png ... and <dir>/DIV2K_valid_HR/0801.png ..., optionally "
    "<dir>/DIV2K_train_LR_bicubic/X3/0001x3.png and <dir>/DIV2K_valid_LR_bicubic/X3/0801x3.png. "
    f"Download DIV2K_train_HR.zip and DIV2K_valid_HR.zip (and *_LR_bicubic_X3.zip) from {DIV2K_URL} "
    "(or run satsr.data.natural.download_div2k), unpack them into <dir>, and track it with `dvc add data/DIV2K`; "
    "or set natural.source: skimage for the offline corpus"
)


class NaturalError(SatsrError, ValueError):
    """The natural-image corpus cannot be built; the message names the file or folder."""


class DownloadError(SatsrError, RuntimeError):
    """DIV2K could not be downloaded (offline, blocked, server error); says how to do it by hand."""


# ------------------------------------------------------------------------------------ sources
def skimage_data_dir() -> Path:
    """The folder of images bundled in the installed scikit-image wheel (no network)."""
    import skimage.data

    return Path(skimage.data.__file__).resolve().parent


def _skimage_jobs(cfg: NaturalParams) -> list[dict]:
    names = list(cfg.skimage_images) or list(SKIMAGE_PHOTOS)
    unknown = [n for n in names if n not in SKIMAGE_PHOTOS]
    if unknown:
        raise NaturalError(f"natural.skimage_images: unknown photo(s) {unknown}; choose from {sorted(SKIMAGE_PHOTOS)}")
    if not cfg.include_grey:
        names = [n for n in names if SKIMAGE_PHOTOS[n][1] == "rgb"]
    folder = skimage_data_dir()
    found = []
    for n in sorted(names):
        path = folder / SKIMAGE_PHOTOS[n][0]
        if path.is_file():
            found.append((n, path))
        else:
            log.warning("natural: %s is not bundled in this scikit-image (%s); skipped", n, path)
    if not found:
        raise NaturalError(f"natural: none of the photos {sorted(names)} were found in {folder}")
    n_val = 0
    if cfg.val_fraction > 0 and len(found) >= 2:
        n_val = min(len(found) - 1, max(1, round(cfg.val_fraction * len(found))))
    order = np.random.default_rng(cfg.seed).permutation(len(found))
    val = {found[i][0] for i in order[:n_val]}
    jobs = []
    for n, path in found:
        jobs.append({"name": n, "split": "val" if n in val else "train", "hr": str(path), "lr": None,
                     "source": f"skimage:{SKIMAGE_PHOTOS[n][0]}"})
    return _cap(jobs, cfg.max_images)


def _div2k_jobs(cfg: NaturalParams, root: Path) -> list[dict]:
    if not root.is_dir():
        raise NaturalError(f"natural.div2k_dir: DIV2K folder {root} not found; {DIV2K_LAYOUT}")
    jobs = []
    for split, hr_dir, lr_dir in (("train", "DIV2K_train_HR", "DIV2K_train_LR_bicubic/X3"),
                                  ("val", "DIV2K_valid_HR", "DIV2K_valid_LR_bicubic/X3")):
        d = root / hr_dir
        files = sorted(d.glob("*.png")) if d.is_dir() else []
        if not files:
            raise NaturalError(f"natural.div2k_dir: {d} is missing or holds no PNGs; {DIV2K_LAYOUT}")
        for f in files:
            lr = root / lr_dir / f"{f.stem}x{SCALE}.png"
            jobs.append({"name": f"div2k_{f.stem}", "split": split, "hr": str(f),
                         "lr": str(lr) if cfg.div2k_official_lr and lr.is_file() else None,
                         "source": f"{hr_dir}/{f.name}"})
    return _cap(jobs, cfg.max_images)


def _cap(jobs: list[dict], max_images: int | None) -> list[dict]:
    if max_images is None:
        return jobs
    out, seen = [], {s: 0 for s in SPLITS}
    for j in jobs:
        if seen[j["split"]] < max_images:
            out.append(j)
            seen[j["split"]] += 1
    return out


# ---------------------------------------------------------------------------------- imaging
def load_rgb8(path: str | Path) -> np.ndarray:
    """An (h, w, 3) uint8 array of a photo; greyscale is replicated to R=G=B, alpha dropped."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.mode in ("I", "I;16", "I;16B", "F"):
                raise NaturalError(f"{path}: expected an 8-bit photo, got Pillow mode {im.mode}")
            arr = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))  # L -> R=G=B, alpha dropped
    except OSError as err:
        raise NaturalError(f"{path}: unreadable image ({err})") from None
    return arr


def to16(rgb8: np.ndarray) -> np.ndarray:
    """8-bit sRGB -> the 16-bit PNG range: v * 257 (0 -> 0, 255 -> 65535)."""
    return rgb8.astype(np.uint16) * np.uint16(257)


def bicubic_down3(hr16: np.ndarray) -> np.ndarray:
    """Bicubic x3 downscaling with antialiasing (Pillow BICUBIC on float32 pixels), uint16 out.

    The one degradation kernel of the natural corpus; HR sides must be multiples of 3.
    """
    h, w, c = hr16.shape
    if h % SCALE or w % SCALE:
        raise ValueError(f"HR {w}x{h} is not a multiple of {SCALE}")
    out = np.empty((h // SCALE, w // SCALE, c), np.uint16)
    for b in range(c):
        band = Image.fromarray(np.ascontiguousarray(hr16[..., b], dtype=np.float32), mode="F")
        small = np.asarray(band.resize((w // SCALE, h // SCALE), Image.Resampling.BICUBIC))
        out[..., b] = np.clip(np.rint(small), 0, 65535).astype(np.uint16)
    return out


def tile_offsets(size: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis: every ``stride`` px, plus one flush with the far edge."""
    if tile <= 0 or size <= tile:
        return [0]
    offs = list(range(0, size - tile + 1, stride))
    if offs[-1] != size - tile:
        offs.append(size - tile)
    return offs


def _fingerprint(job: dict, cfg: dict) -> str:
    h = hashlib.sha256()
    h.update(sha256_file(job["hr"]).encode())
    if job["lr"]:
        h.update(sha256_file(job["lr"]).encode())
    h.update(json.dumps(cfg, sort_keys=True).encode())
    return h.hexdigest()


def _process(task: dict) -> list[dict]:
    """Worker: write the tiles of one source image (unless up to date); returns its index rows."""
    job, cfg, out_dir = task["job"], task["cfg"], Path(task["out_dir"])
    fpr = _fingerprint(job, cfg)
    prev = task.get("prev") or []
    if prev and all(r["fingerprint"] == fpr for r in prev) and all(
            (out_dir / r[k]).is_file() for r in prev for k in ("lr_png", "hr_png")):
        return prev
    hr8 = load_rgb8(job["hr"])
    h, w = (hr8.shape[0] // SCALE) * SCALE, (hr8.shape[1] // SCALE) * SCALE
    if h < SCALE or w < SCALE:
        raise NaturalError(f"{job['hr']}: image of {hr8.shape[1]}x{hr8.shape[0]} px is too small")
    hr16 = to16(hr8[:h, :w])
    if job["lr"]:
        lr8 = load_rgb8(job["lr"])
        if lr8.shape[0] < h // SCALE or lr8.shape[1] < w // SCALE:
            raise NaturalError(f"{job['lr']}: official LR {lr8.shape[1]}x{lr8.shape[0]} is smaller than "
                               f"{job['hr']} / {SCALE} ({w // SCALE}x{h // SCALE})")
        lr16, method = to16(lr8[: h // SCALE, : w // SCALE]), LR_METHOD_DIV2K
    else:
        lr16, method = bicubic_down3(hr16), LR_METHOD_PIL
    tile, stride = cfg["tile_hr"], cfg["tile_stride"] or cfg["tile_hr"]
    rows = []
    whole = tile == 0 or (h <= tile and w <= tile)
    for oy in tile_offsets(h, tile, stride):
        for ox in tile_offsets(w, tile, stride):
            th, tw = (h, w) if tile == 0 else (min(tile, h), min(tile, w))
            hr_t = hr16[oy:oy + th, ox:ox + tw]
            grey = hr_t.astype(np.float32).mean(axis=2) / 65535.0
            if cfg["min_tile_std"] > 0 and float(grey.std()) < cfg["min_tile_std"]:
                continue
            ly, lx = oy // SCALE, ox // SCALE
            lr_t = lr16[ly:ly + th // SCALE, lx:lx + tw // SCALE]
            pid = job["name"] if whole else f"{job['name']}_y{oy:04d}_x{ox:04d}"
            split = job["split"]
            rel = {"lr_png": f"{split}_LR/{pid}.png", "hr_png": f"{split}_HR/{pid}.png"}
            write_png16(out_dir / rel["hr_png"], np.ascontiguousarray(hr_t))
            write_png16(out_dir / rel["lr_png"], np.ascontiguousarray(lr_t))
            rows.append({"pair_id": pid, "split": split, **rel, "lr_width": lr_t.shape[1], "lr_height": lr_t.shape[0],
                         "hr_width": tw, "hr_height": th, "source": job["source"], "lr_method": method,
                         "fingerprint": fpr})
    if not rows:
        log.warning("natural: every tile of %s is featureless (min_tile_std %.3g); skipped", job["hr"],
                    cfg["min_tile_std"])
    return rows


# ------------------------------------------------------------------------------------- running
def encoding_doc(params: Params) -> dict:
    n = params.natural
    return {
        "formula": "png = v8 * 257 (8-bit sRGB photo values into the 16-bit range)",
        "training_input": "png / 65535, in [0, 1] (= v8 / 255)",
        "dtype": "uint16",
        "bands": ["R", "G", "B"],
        "source": n.source,
        "hr": f"photo cropped (bottom/right) to a multiple of {SCALE}; cut into tiles of {n.tile_hr} px "
              f"every {n.tile_stride or n.tile_hr} px (0 = whole images)",
        "lr": {LR_METHOD_PIL: "Pillow Image.resize(BICUBIC) on float32 pixels, x3 down with antialiasing "
                              "(Keys cubic a=-0.5, the kernel of MATLAB imresize)",
               LR_METHOD_DIV2K: "DIV2K official X3 LR (MATLAB imresize bicubic, antialiased), 8-bit * 257"},
        "layout": "{split}_{LR,HR}/<pair_id>.png, index.csv (the data/png layout)",
        "version": FORMAT_VERSION,
    }


def _remove_stale(out_dir: Path, keep: set[str]) -> int:
    removed = 0
    for split in SPLITS:
        for side in SIDES:
            d = out_dir / f"{split}_{side}"
            for p in d.iterdir() if d.is_dir() else ():
                if p.is_file() and p.relative_to(out_dir).as_posix() not in keep:
                    p.unlink()
                    removed += 1
    return removed


def run_natural(params: Params, out_dir: Path) -> pd.DataFrame:
    """Build the natural-image corpus under ``out_dir``; returns (and writes) its index."""
    out_dir = Path(out_dir)
    n = params.natural
    if n.source == "skimage":
        jobs = _skimage_jobs(n)
    else:
        jobs = _div2k_jobs(n, Path(n.div2k_dir))
    cfg = {"tile_hr": n.tile_hr, "tile_stride": n.tile_stride, "min_tile_std": n.min_tile_std,
           "version": FORMAT_VERSION}
    prev: dict[str, list[dict]] = {}
    if (out_dir / INDEX_NAME).is_file():
        try:
            old = pd.read_csv(out_dir / INDEX_NAME, dtype={"pair_id": str})
            if set(INDEX_COLUMNS) <= set(old.columns):
                for r in old[INDEX_COLUMNS].to_dict("records"):
                    prev.setdefault(f"{r['source']}|{r['split']}", []).append(r)
        except (ValueError, OSError):
            prev = {}
    for split in SPLITS:
        for side in SIDES:
            (out_dir / f"{split}_{side}").mkdir(parents=True, exist_ok=True)
    tasks = [{"job": j, "cfg": cfg, "out_dir": str(out_dir), "prev": prev.get(f"{j['source']}|{j['split']}")}
             for j in jobs]
    workers = max(1, min(n.workers, len(tasks)))
    if workers == 1:
        results = [_process(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_process, tasks, chunksize=max(1, len(tasks) // (workers * 4))))
    rows = [r for rs in results for r in rs]
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS).sort_values(["split", "pair_id"]).reset_index(drop=True)
    if index["pair_id"].duplicated().any():
        dup = index.loc[index["pair_id"].duplicated(), "pair_id"].iloc[0]
        raise NaturalError(f"natural: duplicate pair id {dup!r}")
    for split in SPLITS:
        if not (index["split"] == split).any():
            log.warning("natural: split %r is empty (val_fraction %.2f, %d source image(s))",
                        split, n.val_fraction, len(jobs))
    removed = _remove_stale(out_dir, set(index["lr_png"]) | set(index["hr_png"]))
    with atomic_path(out_dir / ENCODING_NAME) as tmp:
        tmp.write_text(json.dumps(encoding_doc(params), indent=2) + "\n")
    with atomic_path(out_dir / INDEX_NAME) as tmp:
        index.to_csv(tmp, index=False)
    log.info("natural: %d pairs (%s) from %d %s image(s), %d stale file(s) removed", len(index),
             ", ".join(f"{s} {int((index['split'] == s).sum())}" for s in SPLITS), len(jobs), n.source, removed)
    return index


# ------------------------------------------------------------------------------------ download
def download_div2k(dest: str | Path = "data/DIV2K", *, include_lr: bool = True, timeout: float = 30.0) -> Path:
    """Download and unpack the official DIV2K archives into ``dest`` (about 4 GB with X3 LR).

    Folders already present are skipped, and each archive is streamed to a ``.part`` file and
    renamed only when complete, so an interrupted run resumes. Afterwards track the folder with
    ``dvc add data/DIV2K``. Raises :class:`DownloadError` naming the URL and the manual steps when
    the server cannot be reached (e.g. on an offline machine).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for archive, folder in DIV2K_ARCHIVES.items():
        if not include_lr and "LR" in archive:
            continue
        target = dest / folder
        if target.is_dir() and any(target.glob("*.png")):
            log.info("div2k: %s present; skipped", target)
            continue
        url = DIV2K_URL + archive
        zip_path = dest / archive
        if not zip_path.is_file():
            log.info("div2k: downloading %s", url)
            try:  # streamed to a temporary file that becomes zip_path only when complete
                with (atomic_path(zip_path) as part, urllib.request.urlopen(url, timeout=timeout) as resp,
                      open(part, "wb") as f):
                    shutil.copyfileobj(resp, f, length=1 << 20)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                reason = getattr(err, "reason", err)
                raise DownloadError(
                    f"div2k: cannot download {url} ({reason}); this machine looks offline or the server is "
                    f"unreachable. Download the archives by hand from {DIV2K_URL} on a connected machine, unpack "
                    f"them into {dest} ({DIV2K_LAYOUT.replace('<dir>', str(dest))})") from None
        try:
            with zipfile.ZipFile(zip_path) as z:
                z.extractall(dest)
        except zipfile.BadZipFile as err:
            zip_path.unlink()
            raise DownloadError(f"div2k: {zip_path} is not a valid zip ({err}); removed, run again") from None
        zip_path.unlink()
        if not (target.is_dir() and any(target.glob("*.png"))):
            raise DownloadError(f"div2k: {archive} did not unpack to {target}; {DIV2K_LAYOUT}")
    return dest

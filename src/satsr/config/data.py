"""Sections of the data stages: source (demo, gee, folder, s2sim), filter, split, png, natural, input."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    model_validator,
)

from satsr.config.base import LR_PIXEL_M, SCALE, Fraction, LonLat, PosInt, Strict


# --------------------------------------------------------------------------------------- source
class Region(Strict):
    """A moving-square scan, as in the seed notebook.

    ``line``: start at ``start`` and step ``count`` times along ``heading_deg`` (0 = north, 90 = east).
    ``between``: ``count`` equally spaced centres from ``start`` to ``end`` inclusive.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    mode: Literal["line", "between"] = "line"
    start: LonLat
    end: LonLat | None = None
    heading_deg: Annotated[float, Field(ge=0, lt=360)] = 90.0
    count: PosInt = 1

    @model_validator(mode="after")
    def _end_for_between(self) -> Region:
        if self.mode == "between" and self.end is None:
            raise ValueError("mode 'between' needs 'end' as [lon, lat]")
        return self


class GeeParams(Strict):
    """Real Earth Engine sourcing. Credentials are never params: only the *path* of a key file or
    the project id may be given here, and environment variables win (see satsr.data.sources.gee)."""

    project: str | None = None
    credentials_file: str | None = None
    landsat_collections: list[str] = ["LANDSAT/LC08/C02/T1_L2"]
    include_landsat9: bool = False
    s2_collection: str = "COPERNICUS/S2_SR_HARMONIZED"
    cloud_score_collection: str = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
    start_date: dt.date = dt.date(2018, 1, 1)
    end_date: dt.date = dt.date(2024, 12, 31)
    max_days_apart: Annotated[int, Field(ge=0, le=30)] = 7
    max_scene_cloud_l8: Annotated[float, Field(ge=0, le=100)] = 20.0
    max_scene_cloud_s2: Annotated[float, Field(ge=0, le=100)] = 20.0
    min_clear_fraction_l8: Fraction = 0.98
    min_clear_fraction_s2: Fraction = 0.98
    cs_clear_threshold: Fraction = 0.6
    one_pair_per_month: bool = True
    step_factor: Annotated[float, Field(gt=0)] = 1.95
    regions: list[Region] = []
    max_concurrent_requests: Annotated[int, Field(ge=1, le=40)] = 8
    max_retries: Annotated[int, Field(ge=0, le=20)] = 6
    backoff_initial_s: Annotated[float, Field(gt=0)] = 1.0
    backoff_max_s: Annotated[float, Field(gt=0)] = 60.0
    max_request_bytes: Annotated[int, Field(gt=0, le=48 * 1024 * 1024)] = 48 * 1024 * 1024
    max_request_side_px: Annotated[int, Field(gt=0, le=32768)] = 32768
    #: Kernel that puts Sentinel-2 onto the 10 m grid nested in Landsat's native 30 m grid (their
    #: pixel edges differ by 5 m, and the LR is never resampled); recorded per pair in the manifest.
    hr_resampling: Literal["bilinear", "bicubic"] = "bilinear"
    #: Sentinel-2 scenes projected in another UTM zone than the chip: skip them, or rotate them
    #: onto the chip's grid with ``hr_resampling`` (recorded). Landsat from another zone is always skipped.
    s2_other_zone: Literal["skip", "resample"] = "skip"
    #: HTTP deadline of every Earth Engine request (ee.data.setDeadline); a stalled request fails and is retried.
    request_deadline_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    #: Circuit breaker: stop the run after this many consecutive quota / rate-limit errors (a daily or
    #: tier limit is not transient); finished pairs stay and a rerun resumes.
    quota_breaker_errors: Annotated[int, Field(ge=1, le=10000)] = 20

    @model_validator(mode="after")
    def _dates(self) -> GeeParams:
        if self.end_date <= self.start_date:
            raise ValueError(f"end_date {self.end_date} must be after start_date {self.start_date}")
        return self


class FolderParams(Strict):
    """Import an existing dataset (the seed's TIF or PNG layout, or any matched pairs)."""

    path: str | None = None
    layout: Literal["seed_tif", "seed_png", "pattern"] = "seed_tif"
    #: For ``pattern``: regexes with a named group ``key`` that pairs the two files.
    lr_pattern: str = r"(?P<key>.+)_Landsat-8\.tif$"
    hr_pattern: str = r"(?P<key>.+)_Sentinel-2\.tif$"
    #: Large co-located scenes are cut into chips of ``source.lr_size`` LR pixels, inside the two
    #: files' common exactly nested window (an integer HR-px origin offset or a non-3x extent that
    #: the georeferences state is cut at the matching offset; satsr.data.nesting).
    cut_into_chips: bool = True
    #: Then refine that offset by content: the integer HR-px shift within +- this many HR px with the
    #: best LR / block-averaged-HR correlation (lossless; the HR chip goes on the LR grid, tagged).
    #: 0 = trust the georeferences. 3 = up to one LR px.
    coregister_hr_px: Annotated[int, Field(ge=0, le=9)] = SCALE
    #: A window a little short of a whole number of chips still gives the last chip when
    #: neighbours then share at most this many LR px (chips spread evenly); 0 = never overlap.
    max_chip_overlap_lr_px: Annotated[int, Field(ge=0, le=64)] = 8
    #: Encoding of imported rasters: ``auto`` reads it from the file (dtype, scale/offset tags).
    lr_encoding: Literal["auto", "l8_c2_dn", "s2_dn", "reflectance", "uint8_stretched"] = "auto"
    hr_encoding: Literal["auto", "l8_c2_dn", "s2_dn", "reflectance", "uint8_stretched"] = "auto"


class DemoParams(Strict):
    """Offline demo: procedural Sentinel-2-like landscapes plus a simulated Landsat partner."""

    n_pairs: PosInt = 120
    n_locations: PosInt = 30
    #: Locations are spread over this many separate regions (moving-square lines), so the spatially
    #: disjoint split has groups to distribute; regions lie region_gap_km apart.
    n_regions: PosInt = 10
    region_gap_km: Annotated[float, Field(gt=0)] = 30.0
    bad_fraction: Fraction = 0.15
    seed: int = 7
    #: OLI point-spread function as a Gaussian, sigma in HR (10 m) pixels.
    psf_sigma_hr_px: Annotated[float, Field(ge=0)] = 1.2
    #: Sensor noise, standard deviation in reflectance.
    noise_reflectance: Annotated[float, Field(ge=0)] = 0.002
    #: Largest simulated sub-pixel misregistration of good pairs, in LR pixels.
    max_good_shift_lr_px: Annotated[float, Field(ge=0)] = 0.15
    #: Shift applied to deliberately misaligned bad pairs, in LR pixels.
    bad_shift_lr_px: Annotated[float, Field(gt=0)] = 1.5
    start_date: dt.date = dt.date(2019, 1, 1)
    #: Demo "locations" are laid out from here on a grid, as if scanned by a moving square.
    origin: LonLat = (-62.0, -3.5)
    #: Moving-square step between neighbouring locations, in units of the chip half-side (buffer);
    #: below 2 neighbouring chips overlap slightly, as in the seed (the split stage handles it).
    step_factor: Annotated[float, Field(gt=0)] = 1.95
    #: Largest gap between the Landsat and the Sentinel-2 acquisition of a pair, in days.
    max_days_apart: Annotated[int, Field(ge=0, le=20)] = 7
    #: Worker processes; the output does not depend on it (per-pair seeds).
    workers: Annotated[int, Field(ge=1, le=64)] = 2


class S2SimInput(Strict):
    """One input of the s2sim provider: a raster, folder or glob, with an optional encoding for files
    that do not record theirs (reflectance = DN * scale + offset)."""

    path: str
    scale: Annotated[float, Field(gt=0)] | None = None
    offset: float = 0.0


def _s2sim_input(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class SensorAmplitudes(Strict):
    """The random parts of the one sensor model (satsr.data.sensor.SensorParams), drawn per pair."""

    #: LR sensor noise, std in reflectance.
    noise_reflectance: Annotated[float, Field(ge=0, le=0.1)] = 0.004
    #: Per-band radiometric mismatch: gain in [1 - j, 1 + j], offset in [-j, j] reflectance.
    gain_jitter: Annotated[float, Field(ge=0, lt=1)] = 0.03
    offset_jitter: Annotated[float, Field(ge=0, le=0.1)] = 0.005
    #: Misregistration: a translation of up to this many LR pixels in a random direction.
    max_shift_lr_px: Annotated[float, Field(ge=0, le=2)] = 0.2
    #: Change on the ground: up to this share of a chip shows other land cover on the Landsat side.
    change_fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.0


class S2SimParams(SensorAmplitudes):
    """Real Sentinel-2 chips with a Landsat partner simulated by satsr.data.sensor."""

    #: Rasters, folders or globs of real Sentinel-2 (bands ``bands`` = red, green, blue), each a path
    #: string or {path, scale, offset}.
    inputs: list[Annotated[S2SimInput, BeforeValidator(_s2sim_input)]] = []
    #: 1-based band numbers of red, green, blue in every input.
    bands: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=3, max_length=3)] = [1, 2, 3]
    #: ``drop``: only chips whose kernel margin lies inside the raster; ``reflect``: mirror the edges.
    edge: Literal["drop", "reflect"] = "drop"
    seed: int = 11
    #: Gaussian PSF sigma in HR (10 m) pixels, or ``calibrated``: read from ``calibration_file``.
    psf_sigma_hr_px: Annotated[float, Field(ge=0, le=10)] | Literal["calibrated"] = 1.4
    calibration_file: str = "data/calibration/calibration.json"

class SourceParams(Strict):
    provider: Literal["demo", "gee", "folder", "s2sim"] = "demo"
    #: LR chip side in 30 m pixels; the HR chip is exactly 3x (the seed used 265 / 795).
    lr_size: Annotated[int, Field(ge=8, le=4096)] = 128
    scale: Literal[3] = SCALE
    demo: DemoParams = DemoParams()
    gee: GeeParams = GeeParams()
    folder: FolderParams = FolderParams()
    s2sim: S2SimParams = S2SimParams()

    @property
    def hr_size(self) -> int:
        return self.lr_size * self.scale

    @property
    def buffer_m(self) -> float:
        """Half the chip side on the ground, the seed's moving-square 'buffer'."""
        return self.lr_size * LR_PIXEL_M / 2


# --------------------------------------------------------------------------------------- filter
class FilterParams(Strict):
    """Per-pair quality screening; every rejection gets a reason in the report."""

    #: Cloud: share of pixels whose visible mean reflectance exceeds ``cloud_reflectance``.
    cloud_reflectance: Annotated[float, Field(gt=0)] = 0.3
    max_cloud_fraction: Fraction = 0.01
    #: Haze (seed's percentile test): the ``haze_percentile`` of blue reflectance must stay below.
    haze_percentile: Annotated[float, Field(ge=0, le=100)] = 5.0
    max_haze_reflectance: Annotated[float, Field(gt=0)] = 0.12
    #: Bright percentile test (seed): the ``bright_percentile`` of visible reflectance.
    bright_percentile: Annotated[float, Field(ge=0, le=100)] = 99.0
    max_bright_reflectance: Annotated[float, Field(gt=0)] = 0.5
    max_nodata_fraction: Fraction = 0.0
    max_saturated_fraction: Fraction = 0.001
    #: Misregistration between HR area-downsampled to 30 m and LR, in LR pixels.
    max_shift_lr_px: Annotated[float, Field(ge=0)] = 0.5
    correct_shift: bool = False
    #: Shifts up to this size are corrected (LR resampled) when ``correct_shift`` is on.
    max_correctable_shift_lr_px: Annotated[float, Field(ge=0)] = 1.0
    upsample_factor: Annotated[int, Field(ge=1, le=1000)] = 20
    #: Change on the ground / different scenes: Pearson r of grey LR vs downsampled HR.
    min_correlation: Annotated[float, Field(ge=-1, le=1)] = 0.7
    #: Flat, featureless chips: mean gradient magnitude of grey HR reflectance.
    min_sharpness: Annotated[float, Field(ge=0)] = 0.002
    review_file: str = "data/review/rejected.txt"
    contact_sheet_max_pairs: PosInt = 500
    quicklook_px: Annotated[int, Field(ge=16, le=1024)] = 128


# ---------------------------------------------------------------------------------------- split
class SplitParams(Strict):
    seed: int = 42
    train: Fraction = 0.8
    val: Fraction = 0.1
    test: Fraction = 0.1
    #: Chips whose centres fall into the same cell of this size never straddle two splits.
    group_cell_m: Annotated[float, Field(gt=0)] = 20000.0
    #: Chips whose footprints overlap, touch or lie closer than this (metres) share a split too.
    near_m: Annotated[float, Field(ge=0)] = 2000.0
    #: Every non-empty split gets at least this many spatial groups when there are enough (smallest
    #: groups moved from the split with the most): the CIs of evaluate / select resample groups, and
    #: need >= 2 (3 for a usable one). 1 = only "no split empty".
    min_groups: Annotated[int, Field(ge=1, le=100)] = 3
    #: An empty test split (too few spatial groups, or test: 0) stops the split stage unless this is
    #: true; then evaluate@<arch> writes a "skipped" metrics file and select still ranks on val.
    #: train and val can never be empty (training validates, and select ranks, on val).
    allow_empty_test: bool = False

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitParams:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must sum to 1, got {total:g}")
        for name in ("train", "val"):
            if getattr(self, name) == 0:
                raise ValueError(f"{name} must be > 0 (training needs train and val; select ranks on val)")
        if self.test == 0 and not self.allow_empty_test:
            raise ValueError("test 0 leaves the test split empty: set allow_empty_test: true as well "
                             "(evaluate then skips) or give test a share")
        return self


# ------------------------------------------------------------------------------------------ png
class PngParams(Strict):
    """Reflectance -> 16-bit PNG: png = round((clip(r, lo, hi) - lo) / (hi - lo) * 65535).

    Inverse: r = lo + png / 65535 * (hi - lo). Training reads png / 65535 in [0, 1].
    """

    reflectance_min: float = -0.1
    reflectance_max: float = 1.0
    #: 8-bit quicklooks for people: a fixed (not per-image) stretch, so images stay comparable.
    quicklook_max_reflectance: Annotated[float, Field(gt=0)] = 0.3
    quicklook_gamma: Annotated[float, Field(gt=0)] = 1.8
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    #: zlib effort for the 16-bit PNGs: 0 stored (default: their low bytes are sensor noise, so
    #: compressing saves ~40 % for ~3x the time), 1 run-length, 2-9 deflate (smaller, slower).
    compress_level: Annotated[int, Field(ge=0, le=9)] = 0

    @model_validator(mode="after")
    def _range(self) -> PngParams:
        if self.reflectance_max <= self.reflectance_min:
            raise ValueError("reflectance_max must be greater than reflectance_min")
        return self


# -------------------------------------------------------------------------------------- natural
class NaturalParams(Strict):
    """Natural-image pretraining corpus (satsr.data.natural), written in the PNG dataset's layout.

    HR photos are cropped to a multiple of 3 and LR is made by bicubic x3 downscaling with
    antialiasing (Pillow BICUBIC on float pixels; DIV2K's official LR used MATLAB ``imresize``,
    the same a=-0.5 cubic kernel widened x3). 8-bit sRGB values map to 16 bits as v8 * 257, so the
    model input is png / 65535 exactly as for the satellite PNGs.
    """

    #: ``skimage``: the photographs bundled in the scikit-image wheel (offline, small);
    #: ``div2k``: the standard DIV2K folder at ``div2k_dir`` (see satsr.data.natural.download_div2k).
    source: Literal["skimage", "div2k"] = "skimage"
    div2k_dir: str = "data/DIV2K"
    #: Use DIV2K_{train,valid}_LR_bicubic/X3 when present instead of downscaling HR here.
    div2k_official_lr: bool = True
    #: skimage photographs to use (names in satsr.data.natural.SKIMAGE_PHOTOS); empty = all.
    skimage_images: list[str] = []
    #: Include the greyscale photographs (camera, coins, moon, textures) replicated to R=G=B.
    include_grey: bool = True
    #: Cut each HR image into tiles of this side (HR px, multiple of 3); 0 = whole images.
    tile_hr: Annotated[int, Field(ge=0)] = 192
    #: Step between tiles (HR px, multiple of 3); 0 = ``tile_hr`` (no overlap).
    tile_stride: Annotated[int, Field(ge=0)] = 144
    #: Tiles whose grey HR std (in [0, 1]) is below this are dropped (black surrounds, sky).
    min_tile_std: Annotated[float, Field(ge=0, le=1)] = 0.01
    #: skimage: share of source *images* (not tiles, which overlap) held out for validation.
    #: DIV2K keeps its official split (DIV2K_train_HR -> train, DIV2K_valid_HR -> val).
    val_fraction: Fraction = 0.2
    seed: int = 0
    #: Keep at most this many source images per split (quick runs); null = all.
    max_images: Annotated[int, Field(gt=0)] | None = None
    workers: Annotated[int, Field(ge=1, le=64)] = 2

    @model_validator(mode="after")
    def _multiples_of_scale(self) -> NaturalParams:
        for name in ("tile_hr", "tile_stride"):
            if getattr(self, name) % SCALE:
                raise ValueError(f"{name} must be a multiple of {SCALE} (HR px), got {getattr(self, name)}")
        if self.tile_hr and self.tile_hr < 2 * SCALE:
            raise ValueError(f"tile_hr must be 0 or at least {2 * SCALE}, got {self.tile_hr}")
        return self


# ---------------------------------------------------------------------------------------- input
class InputParams(Strict):
    """The tf.data input pipeline (satsr.data.pipeline.make_dataset); wired under training.

    Training yields aligned random crops: an LR patch of ``lr_patch`` px at a random offset and
    the HR patch of 3 * ``lr_patch`` px at exactly 3x that offset, with the same random flip and
    rot90 on both. Featureless patches are rejected (after idealo ISR): a patch is dropped when
    the std of its grey HR patch (values png / 65535) is below the flatness threshold of the
    current epoch::

        threshold(epoch) = min(flatness_max, flatness_min + flatness_increase * (epoch // flatness_increase_every))

    so it starts at ``flatness_min`` (0 = keep everything) and steps up to ``flatness_max``.
    Validation yields whole images (or central ``val_crop`` crops) in batches of 1, unaugmented.
    """

    #: LR patch side (px); the HR patch is 3x.
    lr_patch: Annotated[int, Field(ge=4)] = 32
    batch_size: PosInt = 16
    #: Random horizontal flips / rot90 (k in 0..3), identical on LR and HR.
    flips: bool = True
    rot90: bool = True
    #: Flatness schedule, grey-HR-patch std in [0, 1] units (satellite PNGs: 0.004 ~ reflectance
    #: std 0.0044, i.e. open water or uniform canopy; natural 8-bit photos: ISR used up to 0.15).
    flatness_min: Annotated[float, Field(ge=0, le=1)] = 0.0
    flatness_max: Annotated[float, Field(ge=0, le=1)] = 0.004
    flatness_increase: Annotated[float, Field(ge=0, le=1)] = 0.001
    flatness_increase_every: PosInt = 2
    #: Random crops tried per image before the image is skipped for this draw.
    flatness_tries: Annotated[int, Field(ge=1, le=100)] = 5
    #: Keep decoded uint16 images in memory: ``auto`` when they total <= cache_max_mb.
    cache: Literal["auto", "memory", "none"] = "auto"
    cache_max_mb: PosInt = 2048
    #: Shuffle buffer, in images (training).
    shuffle_buffer: PosInt = 1024
    #: Patches cut from each decoded image per draw (> 1 amortises decoding of large images).
    patches_per_image: Annotated[int, Field(ge=1, le=256)] = 1
    #: Validation: central crop of this LR side (HR 3x, aligned); null = whole images.
    val_crop: Annotated[int, Field(ge=4)] | None = None

    @model_validator(mode="after")
    def _flatness_range(self) -> InputParams:
        if self.flatness_max < self.flatness_min:
            raise ValueError(f"flatness_max {self.flatness_max} must be >= flatness_min {self.flatness_min}")
        return self

"""Typed, validated view of params.yaml.

params.yaml is the single source of every tunable value. It is validated here, before any work
starts, so that a typo or an out-of-range value fails with the key path in the message instead of
surfacing as a crash half way through a download or a training run. Only this module reads it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from satsr.errors import SatsrError

#: The product's scale factor: Landsat 30 m -> Sentinel-2 10 m.
SCALE = 3
LR_PIXEL_M = 30.0
HR_PIXEL_M = 10.0

DEFAULT_PARAMS = Path("params.yaml")

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PosInt = Annotated[int, Field(gt=0)]
LonLat = tuple[Annotated[float, Field(ge=-180, le=180)], Annotated[float, Field(ge=-90, le=90)]]


class ParamsError(SatsrError, ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the key path."""

    exit_code = 2


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


# --------------------------------------------------------------------------------------- models
# The defaults are SMALL CPU DEMO sizes: the default pipeline trains all four architectures on two
# CPU cores in minutes. Paper sizes for GPU hosts are named presets in satsr.models.registry.
KernelSize = Literal[3, 5, 7]
#: Global residual: the network predicts detail on top of the input upsampled x3 this way.
GlobalResidual = Literal["bicubic", "nearest", "none"]


class RDNParams(Strict):
    """Residual Dense Network (Zhang et al. 2018). Paper: D16 C8 G64 G0 64 (~22.3 M params)."""

    D: PosInt = 3  # CPU demo size; number of residual dense blocks
    C: PosInt = 3  # CPU demo size; conv layers per block
    G: PosInt = 16  # CPU demo size; growth rate (filters of each conv in a block)
    G0: PosInt = 16  # CPU demo size; filters of each block's output
    kernel_size: KernelSize = 3
    global_residual: GlobalResidual = "bicubic"


class RRDNParams(Strict):
    """idealo ISR's Residual-in-Residual Dense Network. ISR 'gans': T10 D3 C4 G32 G0 32."""

    T: PosInt = 2  # CPU demo size; number of RRDBs
    D: PosInt = 2  # CPU demo size; dense blocks per RRDB
    C: PosInt = 2  # CPU demo size; conv layers per dense block
    G: PosInt = 16  # CPU demo size
    G0: PosInt = 16  # CPU demo size
    beta: Annotated[float, Field(gt=0, le=1)] = 0.2
    kernel_size: KernelSize = 3
    global_residual: GlobalResidual = "bicubic"


class EDSRParams(Strict):
    """EDSR (Lim et al. 2017). Baseline 16 blocks x 64 filters; large 32 x 256, res_scale 0.1."""

    num_blocks: PosInt = 4  # CPU demo size
    num_filters: PosInt = 32  # CPU demo size
    res_scale: Annotated[float, Field(gt=0, le=1)] = 1.0
    kernel_size: KernelSize = 3
    global_residual: GlobalResidual = "bicubic"


class DetailParams(Strict):
    """The release model (satsr.models.detail): bicubic + alpha * a bias-free, radiometry-equivariant,
    low-frequency-constrained detail branch (EDSR-style trunk, ESPCN-style x3 tail)."""

    num_blocks: Annotated[int, Field(ge=1, le=64)] = 6
    num_filters: Annotated[int, Field(ge=4, le=512)] = 32
    #: The trunk sees LR - Gaussian(LR): no per-band level, so no dependence on the radiometry's offset.
    input_highpass_sigma: Annotated[float, Field(gt=0, le=16)] = 2.0
    #: The detail is high-passed: the SR keeps bicubic's low frequencies (SEN2SR's constraint).
    output_highpass_sigma: Annotated[float, Field(gt=0, le=16)] = 2.0
    kernel_size: KernelSize = 3


class SRGANParams(Strict):
    """SRGAN (Ledig et al. 2017): a generator plus the VGG-style discriminator.

    The generator is SRResNet (BN + PReLU, as in the paper) or EDSR-style (no BN, which avoids the
    BN artifacts GAN users complain about). The discriminator ends in global pooling, so it takes
    any patch size and gives one logit per image.
    """

    generator: Literal["srresnet", "edsr"] = "edsr"
    num_blocks: PosInt = 4  # CPU demo size (paper: 16)
    num_filters: PosInt = 32  # CPU demo size (paper: 64)
    res_scale: Annotated[float, Field(gt=0, le=1)] = 1.0  # EDSR generator only
    global_residual: GlobalResidual = "bicubic"
    disc_filters: PosInt = 16  # CPU demo size (paper: 64); doubles at every stage
    disc_stages: Annotated[int, Field(ge=1, le=6)] = 4  # stride-2 stages (paper: 4)
    disc_dense: PosInt = 128  # CPU demo size (paper: 1024)
    disc_batch_norm: bool = True


class ArchSpec(NamedTuple):
    """One architecture: the model of its ``models.<name>`` section, and its builder (and, for GAN
    architectures, its discriminator) as ``"module:function"``, imported by satsr.models.registry, so
    that this module needs no TensorFlow."""

    params: type[Strict]
    builder: str
    discriminator: str | None = None


#: THE architecture registry. Adding an architecture = its model file (satsr/models/<name>.py, with its
#: params class above), one entry here, and its params.yaml sections (``models``, ``pretrain``,
#: ``finetune``; list it in ``archs`` to train it). Every other list of names (the CLI's choices, the
#: per-architecture sections below, the tuner, dvc.yaml's ``foreach: ${archs}``) derives from it.
ARCHITECTURES: dict[str, ArchSpec] = {
    "rdn": ArchSpec(RDNParams, "satsr.models.rdn:rdn"),
    "rrdn": ArchSpec(RRDNParams, "satsr.models.rrdn:rrdn"),
    "edsr": ArchSpec(EDSRParams, "satsr.models.edsr:edsr"),
    "srgan": ArchSpec(SRGANParams, "satsr.models.srgan:generator", discriminator="satsr.models.srgan:discriminator"),
    "detail": ArchSpec(DetailParams, "satsr.models.detail:detail"),
}
ARCH_NAMES: tuple[str, ...] = tuple(ARCHITECTURES)
#: A registered architecture name (validation errors list the valid ones).
ArchName = Literal[ARCH_NAMES]  # type: ignore[valid-type]
#: Architectures trained adversarially (their registry entry names a discriminator).
GAN_ARCH_NAMES: tuple[str, ...] = tuple(a for a, spec in ARCHITECTURES.items() if spec.discriminator)


def _per_arch(name: str, doc: str, fields: dict[str, tuple[Any, Any]]) -> type[Strict]:
    """A section with one explicit field per registered architecture (so ``-S finetune.rdn.lr=1e-4``
    and unknown-key errors work as for any hand-written section)."""
    return create_model(name, __base__=Strict, __doc__=doc, __module__=__name__, **fields)


ModelsParams = _per_arch(
    "ModelsParams", "Architecture sizes, one section per architecture (see satsr.models.registry).",
    {arch: (spec.params, spec.params()) for arch, spec in ARCHITECTURES.items()})


# ------------------------------------------------------------------------------------- training
# Defaults are TINY CPU DEMO budgets: the default `dvc repro` pretrains and fine-tunes all four
# architectures on two CPU cores in a few minutes. Real runs raise epochs / steps_per_epoch / patch
# sizes (e.g. `dvc exp run -S finetune.rdn.epochs=200 -S finetune.rdn.steps_per_epoch=1000`).
class OptimizerParams(Strict):
    """Adam (Kingma & Ba) or AdamW (decoupled weight decay, Loshchilov & Hutter)."""

    name: Literal["adam", "adamw"] = "adam"
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
    epsilon: Annotated[float, Field(gt=0)] = 1e-7
    #: AdamW only (decoupled decay); must be 0 with adam.
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    #: Clip each gradient to this L2 norm; null = no clipping.
    clipnorm: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _decay_needs_adamw(self) -> OptimizerParams:
        if self.name == "adam" and self.weight_decay > 0:
            raise ValueError("weight_decay needs name: adamw (Adam has no decoupled weight decay)")
        return self


class ScheduleParams(Strict):
    """Learning-rate schedule over optimizer steps (global steps of the stage).

    ``constant``: lr. ``step``: lr * decay_rate ** (step // decay_steps). ``cosine``: from lr down to
    lr * decay_rate over decay_steps (null = the whole stage), then flat. ``warmup_steps`` ramps
    linearly from lr / warmup_steps up to the schedule's value first.
    """

    name: Literal["constant", "step", "cosine"] = "constant"
    decay_steps: PosInt | None = None
    decay_rate: Annotated[float, Field(ge=0, le=1)] = 0.5
    warmup_steps: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _step_needs_decay_steps(self) -> ScheduleParams:
        if self.name == "step" and self.decay_steps is None:
            raise ValueError("schedule 'step' needs decay_steps")
        return self


class GanPhase(Strict):
    """One phase of adversarial training (GAN architectures only), run for ``epochs`` epochs.

    Generator loss = pixel_weight * pixel + perceptual_weight * perceptual + adversarial_weight *
    adversarial. The discriminator is trained only in phases that use it (adversarial_weight > 0,
    or perceptual_weight > 0 with ``perceptual: disc_features``); a phase with only the pixel term
    is plain generator pretraining (SRResNet-style).
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    epochs: PosInt
    pixel_weight: Annotated[float, Field(ge=0)] = 1.0
    perceptual_weight: Annotated[float, Field(ge=0)] = 0.0
    adversarial_weight: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _some_weight(self) -> GanPhase:
        if self.pixel_weight == self.perceptual_weight == self.adversarial_weight == 0:
            raise ValueError(f"phase {self.name!r}: every loss weight is 0")
        return self

    @property
    def uses_gan(self) -> bool:
        return self.adversarial_weight > 0 or self.perceptual_weight > 0


#: Demo GAN schedule: 1 generator-only epoch, then adversarial epochs (the last phase runs until
#: ``epochs``; phases past ``epochs`` are not run).
DEFAULT_GAN_PHASES = (
    GanPhase(name="generator", epochs=1),
    GanPhase(name="gan", epochs=2, pixel_weight=1.0, perceptual_weight=0.1, adversarial_weight=1e-3),
)


class TrainStageParams(Strict):
    """One training stage (pretrain or finetune) of one architecture (satsr.train.trainer)."""

    epochs: PosInt = 3  # CPU demo budget
    steps_per_epoch: PosInt = 20  # CPU demo budget
    lr: Annotated[float, Field(gt=0, le=1)] = 5e-4
    schedule: ScheduleParams = ScheduleParams()
    optimizer: OptimizerParams = OptimizerParams()
    #: Pixel loss: l1 (EDSR/RDN practice) or mse; registered_l1 / registered_mse for real pairs: the
    #: best over integer HR shifts within +-loss_max_shift after per-band bias removal (WorldStrat's
    #: registered loss, PROBA-V cMSE; satsr.train.losses).
    loss: Literal["l1", "mse", "registered_l1", "registered_mse"] = "l1"
    #: Shift range of the registered losses, HR px (3 = one LR px); HR patches are cropped by it.
    loss_max_shift: Annotated[int, Field(ge=0, le=8)] = SCALE
    #: The input pipeline of this stage (satsr.data.pipeline); unlisted keys take InputParams' defaults.
    input: InputParams = InputParams(lr_patch=24, batch_size=8)  # CPU demo patch and batch
    #: Where fine-tuning (and its tuning trials) start: pretrain (models/pretrain/<arch>/model.keras),
    #: release (the committed released weights, weights/release; architecture `detail` only) or none
    #: (a fresh initialisation). `--init FILE` / `--no-init` on the command line win. Pretraining ignores it.
    init: Literal["pretrain", "release", "none"] = "pretrain"
    val_every_epochs: PosInt = 1
    #: Validate on at most this many images of the val split (in index order); null = all.
    val_images: PosInt | None = None
    #: GAN architectures only: the phases, in order (see GanPhase).
    gan: list[GanPhase] = list(DEFAULT_GAN_PHASES)
    #: Perceptual term of GAN phases: vgg19 (ImageNet VGG19 features; needs the weights in the Keras
    #: cache ~/.keras/models or network access) or disc_features (feature matching on the
    #: discriminator's activations: the OFFLINE alternative, and the demo default).
    perceptual: Literal["vgg19", "disc_features"] = "disc_features"
    #: VGG19 layer whose output is compared (block5_conv4 = SRGAN's phi_5,4).
    vgg_layer: str = "block5_conv4"
    #: standard (BCE, SRGAN) or relativistic (relativistic average GAN, ESRGAN).
    adversarial: Literal["standard", "relativistic"] = "relativistic"
    #: Discriminator learning rate (same schedule shape as the generator's).
    disc_lr: Annotated[float, Field(gt=0, le=1)] = 1e-4

    @model_validator(mode="after")
    def _loss_fits_patch(self) -> TrainStageParams:
        hr_patch = SCALE * self.input.lr_patch
        if self.loss.startswith("registered") and 2 * self.loss_max_shift >= hr_patch:
            raise ValueError(f"loss_max_shift {self.loss_max_shift} leaves nothing of the {hr_patch} px HR patch "
                             f"(input.lr_patch {self.input.lr_patch}); it must be below half the HR patch")
        return self

    @model_validator(mode="after")
    def _unique_phases(self) -> TrainStageParams:
        names = [p.name for p in self.gan]
        if len(set(names)) != len(names):
            raise ValueError(f"gan phase names must be unique, got {names}")
        if not self.gan:
            raise ValueError("gan needs at least one phase")
        return self

    def phase_at(self, epoch: int) -> GanPhase:
        """The GAN phase of 0-based ``epoch``: phases in order, the last one running until the end."""
        end = 0
        for phase in self.gan:
            end += phase.epochs
            if epoch < end:
                return phase
        return self.gan[-1]


#: Pretraining demo budget (natural images): 2 epochs x 15 steps, higher lr; SRGAN pretrains its
#: generator with the pixel loss only (adversarial training happens when fine-tuning).
_PRETRAIN = TrainStageParams(epochs=2, steps_per_epoch=15, lr=1e-3)
_PRETRAIN_GAN = TrainStageParams(epochs=2, steps_per_epoch=15, lr=1e-3,
                                 gan=[GanPhase(name="generator", epochs=2)])


#: One TrainStageParams per architecture: ``finetune.<arch>`` and ``pretrain.<arch>`` (pretraining defaults).
PerArch = _per_arch("PerArch", "One TrainStageParams per architecture (finetune).",
                    {arch: (TrainStageParams, TrainStageParams()) for arch in ARCH_NAMES})
PretrainPerArch = _per_arch(
    "PretrainPerArch", "One TrainStageParams per architecture, with the pretraining defaults.",
    {arch: (TrainStageParams, _PRETRAIN_GAN if arch in GAN_ARCH_NAMES else _PRETRAIN) for arch in ARCH_NAMES})


class TrainParams(Strict):
    """Settings shared by every training stage."""

    #: default: one device; mirrored: all local GPUs (MirroredStrategy); multi_worker:
    #: MultiWorkerMirroredStrategy across hosts, configured by the TF_CONFIG environment variable.
    strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    #: auto = mixed_float16 when a GPU is present, float32 otherwise.
    mixed_precision: Literal["auto", "off", "mixed_float16", "mixed_bfloat16"] = "auto"
    checkpoint_every_epochs: PosInt = 1
    keep_checkpoints: PosInt = 2
    #: LR / bicubic / SR / HR crops figure, logged to MLflow.
    sample_every_epochs: PosInt = 1
    samples: Annotated[int, Field(ge=0, le=16)] = 3
    #: A NaN/inf loss: stop (keep the last good checkpoint) or rollback (restore the last good
    #: checkpoint, halve the learning rate and go on; at most max_rollbacks times, then stop).
    nan_policy: Literal["stop", "rollback"] = "stop"
    max_rollbacks: Annotated[int, Field(ge=0)] = 3
    #: Radiometric map of the LR (Landsat) reflectance to Sentinel-2 before the network, on the
    #: satellite (reflectance) stages: none | hls (HLS v2 OLI->MSI) | a YAML/JSON file with per-band
    #: gain/offset lists (satsr.models.harmonize). Saved in the model's "harmonize" layer, so predict
    #: applies the same map; natural-photo pretraining is left as is.
    harmonize: str = "none"

    @field_validator("harmonize")
    @classmethod
    def _harmonize_spec(cls, v: str) -> str:
        v = v.strip()
        if v.lower() in ("none", "hls"):
            return v.lower()
        if not v.lower().endswith((".yaml", ".yml", ".json")):
            raise ValueError(f"expected none, hls, or a .yaml/.yml/.json file with per-band gain and offset, got {v!r}")
        return v


# -------------------------------------------------------------------------------------- predict
class PredictParams(Strict):
    """``satsr predict``: whole Landsat scenes -> georeferenced 10 m GeoTIFF / COG (satsr.predict).

    The scene is cut into tiles of ``tile_size`` LR (30 m) px that share ``overlap`` px with their
    neighbours. In each shared band a tile's weight is 0 over the outer ``(overlap - 1) // 2`` px (the
    pixels the zero-padded convolutions get wrong), crossfades over the 1-2 px in the middle and is 1
    beyond; outputs are blended by these weights normalised by their sum, so the tiled result equals
    the whole-image result wherever the model's reach is at most ``(overlap - 1) // 2`` px, and has no
    seams. ``auto`` (satsr.predict.stream.plan): overlap = 2 x the reach measured on the model + 2;
    tile side = the largest whose memory fits ``max_memory_gb`` (``gpu_max_memory_gb`` on a GPU).
    Tiles are read, predicted and written strip by strip: memory does not grow with the scene height.
    """

    #: LR tile side fed to the model, or auto: the largest that fits max_memory_gb (every tile of a
    #: scene has one shape, so batches trace once).
    tile_size: Annotated[int, Field(ge=16, le=4096)] | Literal["auto"] = "auto"
    #: LR px shared by neighbouring tiles (at most tile_size / 2), or auto: 2 x the model's measured
    #: reach + 2 (EDSR-baseline with random detail: reach ~20 px at 5e-5; the released model ~14).
    overlap: Annotated[int, Field(ge=0, le=2048)] | Literal["auto"] = "auto"
    #: auto overlap: tiled output may differ from the whole-image output by at most this (reflectance;
    #: each of a corner's two edges gets half).
    overlap_tolerance: Annotated[float, Field(gt=0, le=0.01)] = 1e-4
    #: Working memory of the tiles (model activations + strip buffers), GB; TensorFlow, the weights and
    #: GDAL's cache (~1 GB) come on top. Sizes auto tiles on the CPU and the host side on a GPU. 3 GB:
    #: the smallest budget whose tiles keep overlap cost under the 0.8 efficiency target (benchmarks/).
    max_memory_gb: Annotated[float, Field(gt=0, le=4096)] = 3.0
    #: GPU memory for the model's activations (auto tile size and auto batch on a GPU), GB.
    gpu_max_memory_gb: Annotated[float, Field(gt=0, le=4096)] = 8.0
    #: Tiles per model call, or auto: 1 on a CPU, as many as gpu_max_memory_gb holds on a GPU.
    batch_size: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = "auto"
    #: cog: Cloud-Optimized GeoTIFF with overviews | gtiff: plain tiled GeoTIFF.
    output_format: Literal["cog", "gtiff"] = "cog"
    #: uint16: Collection 2 L2 encoding (DN * 2.75e-5 - 0.2, fill 0) | float32: reflectance (NaN fill).
    output_dtype: Literal["uint16", "float32"] = "uint16"
    compress: Literal["deflate", "zstd", "lzw", "none"] = "deflate"
    #: Internal tile (block) side of the output, px.
    blocksize: Literal[256, 512, 1024] = 512
    #: COG only: build overviews (average) so GIS viewers zoom out fast.
    overviews: bool = True
    #: CPU threads for TensorFlow and GDAL; 0 = all cores.
    threads: Annotated[int, Field(ge=0, le=1024)] = 0
    #: --compare quicklook: LR side of the central crop shown as bicubic | SR.
    compare_px: Annotated[int, Field(ge=16, le=2048)] = 256
    #: Accepted relative deviation of the input pixel size from the model's 30 m (x and y, in metres; a
    #: geographic CRS at the scene's latitude); beyond it predict refuses unless --allow-any-resolution.
    pixel_size_tolerance: Annotated[float, Field(gt=0, lt=1)] = 0.1

    @model_validator(mode="after")
    def _overlap_fits(self) -> PredictParams:
        if isinstance(self.overlap, int) and isinstance(self.tile_size, int) and 2 * self.overlap > self.tile_size:
            raise ValueError(f"overlap {self.overlap} must be at most tile_size / 2 ({self.tile_size // 2})")
        return self


# ------------------------------------------------------------------------------- evaluate / select
class CorrectnessParams(Strict):
    """Improvement / omission / hallucination with opensr-test 1.3.3's formulas
    (satsr.evaluate.metrics.correctness). Its distance ('nd'), lambdas (0.05), temperature (0.25),
    histogram matching and "auto" mask are kept; three settings are NOT its defaults, on purpose
    (metrics.py module doc says why): ``norm: percent`` (its default softmin), no spatial alignment
    (its harm_apply_spatial), and the evaluate border of 3 px (its border_mask 16)."""

    #: Match SR's per-band histogram to HR first (opensr-test's spectral harmonisation).
    harmonize: bool = True
    #: Pixels count when a distance exceeds this quantile of d(LR bilinear, HR) (opensr "auto" = 75th).
    threshold_quantile: Fraction = 0.75
    im_lambda: Annotated[float, Field(gt=0)] = 0.05
    om_lambda: Annotated[float, Field(gt=0)] = 0.05
    ha_lambda: Annotated[float, Field(gt=0)] = 0.05
    temperature: Annotated[float, Field(gt=0)] = 0.25
    #: percent: share of counted pixels in each class (fractions; satsr's choice: select caps a share) |
    #: softmin: mean class weight (opensr-test's default).
    norm: Literal["percent", "softmin"] = "percent"


class EvaluateParams(Strict):
    """``evaluate@<arch>`` (satsr.evaluate): per-image metrics of SR and of the bicubic / Lanczos
    baselines on the test split, paired gains with bootstrap CIs, figures, MLflow logging."""

    #: The held-out split scored (model selection uses val, in the select stage; never test).
    split: Literal["test", "val"] = "test"
    #: HR px cropped from every side before every metric (the scale, BasicSR's crop_border).
    border: Annotated[int, Field(ge=0, le=64)] = SCALE
    #: Identical images have PSNR inf: shown as null + counted, and capped at this for averages.
    psnr_cap_db: Annotated[float, Field(gt=0)] = 100.0
    #: cPSNR / cSSIM (PROBA-V convention, satsr.evaluate.metrics): best over integer shifts within
    #: +- this many HR px after per-band bias removal; HR is cropped by border + this. 3 = one LR px.
    cpsnr_max_shift: Annotated[int, Field(ge=0, le=16)] = SCALE
    #: Bootstrap resamples and level of the CI of the mean paired gain over bicubic.
    bootstrap: Annotated[int, Field(ge=100, le=1_000_000)] = 10000
    ci_level: Annotated[float, Field(gt=0, lt=1)] = 0.95
    seed: int = 0
    #: Score at most this many images of the split (index order; quick runs); null = all.
    max_images: PosInt | None = None
    #: Side-by-side figures (bicubic | model | HR with zoomed crops), spread over the PSNR-gain ranks.
    figures: Annotated[int, Field(ge=0, le=32)] = 4
    #: Side of the zoomed crop, HR px.
    zoom_px: Annotated[int, Field(ge=8, le=2048)] = 96
    hist_bins: Annotated[int, Field(ge=2, le=200)] = 20
    #: Processes computing metrics (SR inference stays in the main process).
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    correctness: CorrectnessParams = CorrectnessParams()


class SelectParams(Strict):
    """``select`` (satsr.evaluate.select): compare architectures on the VALIDATION split and set the
    MLflow registry alias on the best version of each ``satsr-<arch>`` and of ``satsr``."""

    #: Architectures ranked; when params.yaml leaves it out: every one of the top-level ``archs``.
    archs: list[ArchName] = list(ARCH_NAMES)
    #: Ranking: psnr_gain / ssim_gain / cpsnr_gain = mean paired gain over bicubic on val (cpsnr:
    #: shift- and bias-tolerant, evaluate.cpsnr_max_shift; the fair one on real pairs); psnr = mean val PSNR.
    criterion: Literal["psnr_gain", "ssim_gain", "cpsnr_gain", "psnr"] = "psnr_gain"
    #: Cap on the hallucination EXCESS: mean paired increase of the val hallucination share over
    #: bicubic's on the same images (opensr-test scores bicubic itself ~0.17 on the demo data); an
    #: architecture above it is not eligible.
    max_hallucination: Fraction = 0.1
    max_images: PosInt | None = None
    registered_model: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "satsr"
    alias: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "champion"
    #: Register / set the aliases in the MLflow registry (off: leaderboard only).
    set_aliases: bool = True
    #: Rank the committed release weights (weights/release, registered by the `release` stage) too.
    include_release: bool = True

    @model_validator(mode="after")
    def _unique_archs(self) -> SelectParams:
        _unique_archs(self.archs, "archs")
        return self


# ------------------------------------------------------------------------------------- tracking
class TrackingParams(Strict):
    """Where MLflow runs and models go (see satsr.tracking for the full rule).

    ``uri: null`` means the embedded store at the repo root (``sqlite:///<repo>/mlflow.db``, artifacts
    in ``<repo>/mlartifacts``), shared by ``dvc repro`` and queued ``dvc exp run``. The environment
    variable ``MLFLOW_TRACKING_URI`` always wins, so a shared server needs no params change.
    """

    uri: str | None = None
    experiment: Annotated[str, Field(min_length=1)] = "satsr"


# ----------------------------------------------------------------------------------------- tune
class TuneParams(Strict):
    """Hyperparameter search per architecture (``satsr tune <arch>``, satsr.tune).

    The search space of each architecture is ``experiments/<arch>.yaml`` and the study settings
    (sampler, pruner, objective) ``experiments/study.yaml``; the budget is here, so
    ``dvc exp run -S tune.n_trials=50`` works. Each trial is a short fine-tune from
    models/pretrain/<arch>/model.keras of ``epochs`` x ``steps_per_epoch``. ``enabled: false`` skips
    the search: the tune stage writes the fixed finetune.<arch> values unchanged.
    """

    enabled: bool = True
    #: Optuna storage URL; null = JournalFileBackend file ``.satsr/optuna/journal.log`` (outside the
    #: DVC outs, so a killed study resumes). Env SATSR_OPTUNA_STORAGE wins
    #: (e.g. postgresql+psycopg2://user@host/optuna shared by workers on several hosts).
    storage: str | None = None
    #: Study name = ``<study_prefix>-<arch>``; workers join a study by its name.
    study_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "satsr"
    #: Trials per study, counting COMPLETE + PRUNED + FAIL (a rerun tops up to this, never more); a
    #: trial killed with its worker does not count: it is re-run with the same values.
    n_trials: PosInt = 3                 # CPU demo budget
    #: Stop starting new trials after this many seconds (per worker run); null = no limit.
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    epochs: PosInt = 1                   # CPU demo budget: epochs per trial
    steps_per_epoch: PosInt = 10         # CPU demo budget
    #: Validate each trial on at most this many val images; null = the finetune section's value.
    val_images: PosInt | None = None
    #: Folder of the search spaces and study settings.
    spaces_dir: str = "experiments"
    #: Per-trial work folders (checkpoints, models), removed after each trial unless keep_trials.
    work_dir: str = ".satsr/tune"
    keep_trials: bool = False
    #: A trial whose worker was killed is re-run with the same values at most this many times (it
    #: does not use up the budget); after that it counts as FAIL, so a trial that kills its worker
    #: every time (e.g. out of memory) cannot stall the study (satsr.tune.recovery).
    killed_retries: Annotated[int, Field(ge=0)] = 2


class LockParams(Strict):
    """Single-writer locks of checkpoint folders and tune workers (satsr.locks).

    On one host a lock dies with its process (flock). A lock file written by ANOTHER host (flock may
    not reach across a network filesystem) counts as held until its heartbeat is older than
    ``stale_after_s``; env SATSR_FORCE_LOCK=1 takes it over at once. On a PostgreSQL (RDB) Optuna
    storage, a trial whose heartbeat is this old is a killed one (satsr.tune.recovery).
    """

    stale_after_s: Annotated[float, Field(ge=10)] = 900.0


class CalibratePair(Strict):
    """A co-located real Landsat (lr) / Sentinel-2 (hr) pair for `satsr calibrate`."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    lr: str
    hr: str


class CalibrateParams(Strict):
    """Fit the sensor model (satsr.data.sensor) to real pairs: PSF sigma, shift, per-band a/b, noise."""

    pairs: list[CalibratePair] = []
    #: Fitted values (JSON); ``source.s2sim.psf_sigma_hr_px: calibrated`` reads it.
    out: str = "data/calibration/calibration.json"
    #: Search range of the Gaussian PSF sigma, HR (10 m) pixels.
    sigma_range: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(gt=0, le=10)]] = (0.0, 3.0)
    #: Search bound of the residual shift per axis, HR px; a fit that ends on it is misaligned (skipped).
    max_shift_hr_px: Annotated[float, Field(gt=0, le=15)] = 3.0
    #: Pairs whose LR correlates less than this with the fitted model (grey, Pearson r) are skipped.
    min_correlation: Annotated[float, Field(ge=-1, le=1)] = 0.6
    #: Log the fit to MLflow (run ``calibrate``).
    mlflow: bool = True

    @model_validator(mode="after")
    def _range(self) -> CalibrateParams:
        if self.sigma_range[1] <= self.sigma_range[0]:
            raise ValueError(f"sigma_range {list(self.sigma_range)} must be [low, high] with low < high")
        return self


def _unique_archs(names: list[str], key: str) -> None:
    if not names:
        raise ValueError(f"{key} needs at least one architecture (registered: {', '.join(ARCH_NAMES)})")
    if len(set(names)) != len(names):
        raise ValueError(f"{key} must be unique, got {names}")


# -------------------------------------------------------------------------------------- release
class ReleasePair(Strict):
    """A co-located real Landsat / Sentinel-2 pair, cut on its common exactly nested window.

    ``train`` / ``val`` / ``test``: LR-row fractions [start, end) of the window given to each role
    (spatially disjoint; leave a gap); an empty list gives the role nothing of this pair.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    lr: str
    hr: str
    #: 8-bit stretched pairs: pseudo-reflectance (DN / 255) times this, to a reflectance-like range.
    pseudo_scale: Annotated[float, Field(gt=0)] = 1.0
    train: list[tuple[Fraction, Fraction]] = []
    val: list[tuple[Fraction, Fraction]] = []
    test: list[tuple[Fraction, Fraction]] = []


class ReleaseSensor(SensorAmplitudes):
    """Sensor-model amplitudes of the release recipe's simulated pairs (satsr.data.sensor.SensorParams)."""

    psf_sigma_hr_px: Annotated[float, Field(ge=0, le=5)] = 1.4
    gain_jitter: Annotated[float, Field(ge=0, lt=1)] = 0.05
    offset_jitter: Annotated[float, Field(ge=0, le=0.1)] = 0.01
    max_shift_lr_px: Annotated[float, Field(ge=0, le=2)] = 0.25
    change_fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.1


class ReleaseParams(Strict):
    """``satsr release train``: the recipe of the released weights (satsr.release).

    Paths are relative to ``data_root`` (a user's clone has no ../shared: the command then says so).
    """

    data_root: str = "../shared/realdata"
    out_dir: str = "weights/release"
    work_dir: str = ".satsr/release"
    #: Real Sentinel-2 scenes (files, globs or BigEarthNet band folders) partnered by the sensor model.
    s2_train: list[str] = []
    s2_val: list[str] = []
    s2_test: list[str] = []
    #: Integer rasters without band scale/offset metadata (BigEarthNet L2A): reflectance = DN * this.
    s2_fallback_scale: Annotated[float, Field(gt=0)] | None = 1.0e-4
    #: Simulated draws of the sensor model per S2 chip (train); val/test chips get one.
    sim_draws: PosInt = 4
    pairs: list[ReleasePair] = []
    sensor: ReleaseSensor = ReleaseSensor()
    #: The architecture (the same section type as models.detail; fine-tuning starts from it with
    #: finetune.detail.init: release).
    model: DetailParams = DetailParams()
    lr_patch: Annotated[int, Field(ge=8, le=512)] = 32
    batch_size: PosInt = 16
    #: Share of each batch drawn from the real pairs' train parts (the rest: simulated from real S2).
    real_fraction: Fraction = 0.5
    steps: PosInt = 3000
    lr: Annotated[float, Field(gt=0, le=1)] = 2.0e-4
    #: Registered L1 (satsr.train.losses): best over +- this many HR px after per-band bias removal.
    loss_max_shift: Annotated[int, Field(ge=0, le=8)] = 2
    checkpoint_every: PosInt = 100
    validate_every: PosInt = 250
    #: Evaluation chips (LR px) of the val / test parts.
    eval_chip: Annotated[int, Field(ge=16, le=1024)] = 48
    #: Detail strengths tried when calibrating alpha on the validation parts (0 = bicubic).
    alpha_grid: list[Fraction] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    seed: int = 0

    @model_validator(mode="after")
    def _alpha_grid_has_zero(self) -> ReleaseParams:
        if 0.0 not in self.alpha_grid:
            raise ValueError("alpha_grid must contain 0.0 (bicubic), the floor alpha calibration compares against")
        return self


class Params(Strict):
    """The whole of params.yaml. Later stages (training, evaluation, tuning) add their sections."""

    seed: int = 42
    #: The architectures the pipeline trains, tunes and evaluates (dvc.yaml: ``foreach: ${archs}``); each
    #: must be registered in ``ARCHITECTURES``.
    archs: list[ArchName] = list(ARCH_NAMES)
    source: SourceParams = SourceParams()
    filter: FilterParams = FilterParams()
    split: SplitParams = SplitParams()
    png: PngParams = PngParams()
    natural: NaturalParams = NaturalParams()
    models: ModelsParams = ModelsParams()
    train: TrainParams = TrainParams()
    pretrain: PretrainPerArch = PretrainPerArch()
    finetune: PerArch = PerArch()
    tracking: TrackingParams = TrackingParams()
    evaluate: EvaluateParams = EvaluateParams()
    select: SelectParams = SelectParams()
    predict: PredictParams = PredictParams()
    tune: TuneParams = TuneParams()
    locks: LockParams = LockParams()
    calibrate: CalibrateParams = CalibrateParams()
    release: ReleaseParams = ReleaseParams()

    @model_validator(mode="before")
    @classmethod
    def _select_defaults_to_archs(cls, raw: Any) -> Any:
        """``select.archs`` left out = the pipeline's ``archs`` (so the list lives in one place)."""
        archs = raw.get("archs") if isinstance(raw, dict) else None
        if isinstance(archs, list) and archs and set(archs) <= set(ARCH_NAMES) and len(set(archs)) == len(archs):
            select = raw.get("select")
            if select is None or (isinstance(select, dict) and "archs" not in select):
                raw = {**raw, "select": {**(select or {}), "archs": raw["archs"]}}
        return raw

    @field_validator("archs")
    @classmethod
    def _archs_unique(cls, archs: list[str]) -> list[str]:
        _unique_archs(archs, "archs")
        return archs

    @model_validator(mode="after")
    def _archs_are_trained(self) -> Params:
        untrained = [a for a in self.select.archs if a not in self.archs]
        if untrained:
            raise ValueError(f"select.archs {untrained} are not in archs {self.archs}: the pipeline trains only archs")
        return self


# ------------------------------------------------------------------------------------- loading
def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid parameters ({err.error_count()} problem(s)):"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see params.yaml for the valid keys)"
        got = e.get("input")
        shown = "" if e["type"] == "extra_forbidden" or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  - {path}: {msg}{shown}")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], origin: str = "params") -> Params:
    """Validate a mapping; raise ParamsError naming every bad key path."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ParamsError(_format_errors(err, origin)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key repeated in one mapping (plain PyYAML keeps the last one silently,
    so a second ``lr_size:`` further down would quietly override the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                continue  # unhashable keys (a list): SafeLoader's own error below
            if key in seen:
                raise _DuplicateKey(f"line {line}: duplicate key {key!r} (expected each key once per section; "
                                    f"it is first set at line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(yaml.YAMLError):
    """A key repeated in one mapping (raised by _UniqueKeyLoader; its message is one line)."""


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate the parameters file; every problem is a ParamsError naming the file and key.

    An empty file (or one with only comments) is an error rather than "all defaults": it is far more
    often a truncated or wrongly named file than a choice; write ``{}`` to ask for the defaults."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: parameters file not found (expected a YAML mapping, see README)")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as err:
        raise ParamsError(f"{path}: {err}") from None
    except yaml.MarkedYAMLError as err:
        where = f"line {err.problem_mark.line + 1}: " if err.problem_mark else ""
        raise ParamsError(f"{path}: {where}not valid YAML: {err.problem} (expected a YAML mapping"
                          f"{', ' + err.context if err.context else ''})") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if raw is None:
        raise ParamsError(f"{path}: the file is empty (expected a YAML mapping of parameters; "
                          "write {} to use every default)")
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return parse_params(raw, origin=str(path))


def flatten(obj: BaseModel | dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value, for logging a section as flat params."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out

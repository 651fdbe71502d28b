"""Sections of what runs on trained models: predict, evaluate, select, tracking, tune, locks, calibrate."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    model_validator,
)

from satsr.config.base import SCALE, Fraction, PosInt, Strict
from satsr.config.training import ARCH_NAMES, ArchName, check_unique_archs


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
    (satsr.evaluate.metrics package doc says why): ``norm: percent`` (its default softmin), no spatial alignment
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
    def check_unique_archs(self) -> SelectParams:
        check_unique_archs(self.archs, "archs")
        return self


# ------------------------------------------------------------------------------------- tracking
class TrackingParams(Strict):
    """Where MLflow runs and models go (see satsr.tracking.store for the full rule).

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

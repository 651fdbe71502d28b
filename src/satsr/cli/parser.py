"""The `satsr` argument parser: one subcommand per command function, with the help texts users read."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from satsr import __version__, paths
from satsr.cli.commands import (
    cmd_calibrate,
    cmd_ee_check,
    cmd_evaluate,
    cmd_filter,
    cmd_finetune,
    cmd_natural,
    cmd_params,
    cmd_png,
    cmd_predict,
    cmd_pretrain,
    cmd_release,
    cmd_select,
    cmd_source,
    cmd_split,
    cmd_tune,
)
from satsr.config import ARCH_NAMES

DEBUG_HELP = ("show the traceback of an error too (by default satsr prints only its message); "
              "env SATSR_DEBUG=1 does the same, e.g. for `dvc repro`")


def _add(sub, name: str, func: Callable, help_: str, description: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=description)
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="parameters file (default: %(default)s)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="satsr",
        description="Landsat 30 m -> Sentinel-2-like 10 m super-resolution: data pipeline and tools.",
    )
    parser.add_argument("--version", action="version", version=f"satsr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _add(sub, "source", cmd_source, "fetch or build raw L8/S2 GeoTIFF pairs",
             "Write raw Landsat/Sentinel-2 GeoTIFF pairs and manifest.csv with the provider chosen by "
             "source.provider (demo | gee | folder | s2sim). Resumable: complete pairs are skipped on rerun.")
    p.add_argument("--out", type=Path, default=paths.RAW, help="raw dataset folder (default: %(default)s)")
    p.add_argument("--plan", action="store_true",
                   help="gee: print the chips, date window, collections and expected requests; contacts nothing")

    _add(sub, "ee-check", cmd_ee_check, "check Earth Engine access and the grids over the first chip",
         "With your Earth Engine credentials: find one Landsat and one Sentinel-2 scene over the first chip of "
         "source.gee.regions, print their native projections and the grids satsr would request, fetch one chip "
         "of each, and flag any mismatch with Landsat's grid convention (EPSG:326xx, pixel edges at 15 mod 30 m). "
         "About 7 requests. Run it (and `satsr source --plan`) before the first real download.")

    p = _add(sub, "filter", cmd_filter, "screen pairs (clouds, nodata, misregistration, ...)",
             "Check every pair and write a report with a reason for each rejection, plus an HTML contact "
             "sheet for manual review. Pair ids listed in filter.review_file are rejected.")
    p.add_argument("--raw", type=Path, default=paths.RAW, help="raw dataset folder (default: %(default)s)")
    p.add_argument("--out", type=Path, default=paths.FILTER, help="report folder (default: %(default)s)")
    p.add_argument("--metrics", type=Path, default=paths.FILTER_METRICS, help="summary JSON (default: %(default)s)")

    p = _add(sub, "split", cmd_split, "spatially disjoint train/val/test split",
             "Assign accepted pairs to train/val/test, deterministically from split.seed; chips with "
             "overlapping or nearby footprints always share a split.")
    p.add_argument("--raw", type=Path, default=paths.RAW, help="raw dataset folder (default: %(default)s)")
    p.add_argument("--report", type=Path, default=paths.REPORT, help="filter report (default: %(default)s)")
    p.add_argument("--out", type=Path, default=paths.SPLIT, help="split folder (default: %(default)s)")
    p.add_argument("--metrics", type=Path, default=paths.SPLIT_METRICS, help="summary JSON (default: %(default)s)")

    p = _add(sub, "png", cmd_png, "write the 16-bit PNG training dataset and quicklooks",
             "Convert accepted pairs to reflectance and write 16-bit PNGs (documented invertible mapping), "
             "8-bit quicklooks and per-split, per-band statistics.")
    p.add_argument("--raw", type=Path, default=paths.RAW, help="raw dataset folder (default: %(default)s)")
    p.add_argument("--split", type=Path, default=paths.SPLIT_TABLE, help="split table (default: %(default)s)")
    p.add_argument("--report", type=Path, default=paths.REPORT, help="filter report (default: %(default)s)")
    p.add_argument("--out", type=Path, default=paths.PNG, help="PNG dataset folder (default: %(default)s)")
    p.add_argument("--metrics", type=Path, default=paths.PNG_STATS, help="statistics JSON (default: %(default)s)")

    p = _add(sub, "natural", cmd_natural, "write the natural-image pretraining corpus",
             "Cut natural photographs (natural.source: skimage's bundled photos offline, or a DIV2K folder) "
             "into HR tiles with bicubic x3 LR partners, in the PNG dataset's layout, for pretraining.")
    p.add_argument("--out", type=Path, default=paths.NATURAL, help="corpus folder (default: %(default)s)")

    for stage, func, data, what in (
            ("pretrain", cmd_pretrain, paths.NATURAL,
             "Pretrain ARCH on the natural-image corpus with the pixel loss (params: pretrain.<arch>, train)."),
            ("finetune", cmd_finetune, paths.PNG,
             ("Fine-tune ARCH on the satellite pairs, starting from models/pretrain/<arch>/model.keras; GAN "
              "architectures run their generator / adversarial phases (params: finetune.<arch>, train). The "
              "model is logged to MLflow and registered as satsr-<arch>."))):
        verb = "pretrain" if stage == "pretrain" else "fine-tune"
        p = _add(sub, stage, func, f"{verb} one architecture ({', '.join(ARCH_NAMES)})",
                 what + " Checkpoints every epoch; a killed run started again resumes from the last one "
                 "(same MLflow run) unless the configuration changed.")
        p.add_argument("arch", choices=ARCH_NAMES, help="architecture")
        p.add_argument("--data", type=Path, default=None, help=f"PNG dataset folder (default: {data})")
        p.add_argument("--out", type=Path, default=None,
                       help=f"model folder (default: {paths.MODELS}/{stage}/<arch>)")
        p.add_argument("--ckpt", type=Path, default=None,
                       help=f"checkpoint folder (default: {paths.CKPT}/{stage}/<arch>)")
        p.add_argument("--metrics", type=Path, default=None,
                       help=f"final metrics JSON (default: {paths.TRAIN_METRICS}/{stage}_<arch>.json)")
        p.add_argument("--plots", type=Path, default=None,
                       help=f"per-epoch CSV for dvc plots (default: {paths.TRAIN_PLOTS}/{stage}_<arch>.csv)")
        p.add_argument("--restart", action="store_true",
                       help="do not resume: move an existing checkpoint folder aside and start afresh")
        if stage == "finetune":
            p.add_argument("--init", type=Path, default=None,
                           help="weights to start from (default: models/pretrain/<arch>/model.keras)")
            p.add_argument("--no-init", action="store_true", help="train from scratch (no pretrained weights)")
            p.add_argument("--best-params", type=Path, default=None,
                           help="the study's best values, used when tune.enabled for keys whose params.yaml value "
                                "is still the study's base (an explicit params.yaml value wins; the effective "
                                "values and their sources go to <out>/effective_params.yaml) "
                                "(default: models/tune/<arch>/best_params.yaml)")

    p = _add(sub, "tune", cmd_tune, "hyperparameter search for one architecture (Optuna)",
             "Run, join or resume the Optuna study of ARCH: short fine-tunes (tune.epochs x tune.steps_per_epoch) "
             "from models/pretrain/<arch>/model.keras with values sampled from experiments/<arch>.yaml, scored by "
             "the validation PSNR gain over bicubic, pruned per experiments/study.yaml. Storage: env "
             "SATSR_OPTUNA_STORAGE, else tune.storage, else .satsr/optuna/journal.log; workers on other hosts join "
             "by study name. Trials count toward tune.n_trials in every state, so a rerun tops up. Writes the best "
             "overrides to models/tune/<arch>/best_params.yaml (fixed values when tune.enabled is false).")
    p.add_argument("arch", choices=ARCH_NAMES, help="architecture")
    p.add_argument("--data", type=Path, default=paths.PNG, help="PNG dataset folder (default: %(default)s)")
    p.add_argument("--init", type=Path, default=None,
                   help="weights to start each trial from (default: models/pretrain/<arch>/model.keras)")
    p.add_argument("--no-init", action="store_true", help="trials train from scratch")
    p.add_argument("--out", type=Path, default=None,
                   help="best params YAML (default: models/tune/<arch>/best_params.yaml)")
    p.add_argument("--figures", type=Path, default=None, help="figures folder (default: models/tune/<arch>/figures)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL (default: env SATSR_OPTUNA_STORAGE, tune.storage)")
    p.add_argument("--study-name", default=None, help="join this study (default: <tune.study_prefix>-<arch>-<hash>)")
    p.add_argument("--n-trials", type=int, default=None, help="trial cap of the study (default: tune.n_trials)")
    p.add_argument("--timeout", type=float, default=None, help="seconds before this worker stops starting trials")
    p.add_argument("--worker", type=int, default=0, help="worker index k: sampler seed + k (default: %(default)s)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--force", action="store_true", help="search even when tune.enabled is false")

    p = _add(sub, "predict", cmd_predict, "super-resolve Landsat scenes into georeferenced 10 m COGs",
             "Super-resolve Landsat 5/7/8/9 scenes x3 (30 m -> 10 m) into Cloud-Optimized GeoTIFFs on the input's "
             "grid: same CRS and origin, pixel size exactly 1/3, nodata propagated. INPUT is a GeoTIFF (3 bands = "
             "red,green,blue, or --bands), a folder, a glob, or Collection 2 Level-2 band files "
             "(<PRODUCT_ID>_SR_B4/B3/B2.TIF for LC08/LC09, _SR_B3/B2/B1.TIF for LT04/LT05/LE07; any one of them or "
             "their folder). Encoding: --input-scale/--input-offset, else the file's band scale/offset, else "
             "Collection 2 L2 (DN * 2.75e-5 - 0.2) for integers and reflectance for floats. Output: uint16 with "
             "the Collection 2 scale/offset (fill 0), or float32 reflectance (NaN). Settings: params predict.*.")
    p.set_defaults(params=None)  # no pipeline needed: code defaults, ./params.yaml overrides when present
    next(a for a in p._actions if a.dest == "params").help = (
        "parameters file (default: ./params.yaml when present, else the built-in defaults)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="GeoTIFF, folder, glob or C2 L2 band file")
    p.add_argument("--model", "-m", default=None,
                   help="models:/NAME@ALIAS (e.g. models:/satsr-rdn@champion), models:/NAME/VERSION, "
                        "runs:/RUN_ID/model, a .keras file or a folder with model.keras (default: the released "
                        f"weights, {paths.RELEASE_MODEL})")
    p.add_argument("--harmonize", default=None, metavar="hls|none|FILE",
                   help="radiometric map of the Landsat input to Sentinel-2 before super-resolution: hls (HLS v2 "
                        "OLI->MSI bandpass), none, or a YAML/JSON file with per-band gain and offset lists "
                        "(msi = gain * oli + offset; red, green, blue). Default: the map the model carries. "
                        "Recorded in the output's tags")
    p.add_argument("--detail", type=float, default=None, metavar="A",
                   help="detail strength in [0, 1] of a model with a detail_strength layer (the released model): "
                        "0 = bicubic, 1 = all the detail it adds. Default: the value stored in the model")
    p.add_argument("--output", "-o", required=True,
                   help="output .tif/.tiff for one scene, or a folder (<scene>_SR10m.tif per scene): an existing "
                        "folder or a name ending in /")
    p.add_argument("--bands", default=None, metavar="R,G,B",
                   help="1-based red,green,blue bands of a multiband GeoTIFF (default 1,2,3 for 3 bands), "
                        "e.g. 3,2,1 for a blue-first B2..B7 stack")
    p.add_argument("--input-scale", type=float, default=None, help="reflectance = DN * scale + offset (e.g. 1e-4)")
    p.add_argument("--input-offset", type=float, default=None, help="see --input-scale (default 0)")
    p.add_argument("--aoi", default=None,
                   help="predict only this area: a GeoJSON file (EPSG:4326 unless it has a crs member), or "
                        "minx,miny,maxx,maxy in the input's CRS (lon/lat are recognised when they only fit "
                        "there; prefix EPSG:4326: to be explicit); its bounding box, snapped outward to the "
                        "input's pixels")
    p.add_argument("--format", choices=("cog", "gtiff"), default=None,
                   help="cog (default, with overviews) or plain tiled gtiff (params predict.output_format)")
    p.add_argument("--float32", action="store_true",
                   help="write float32 reflectance (NaN nodata) instead of uint16 Collection 2 DN")
    p.add_argument("--compare", action="store_true",
                   help="also write <output>_compare.png: bicubic | SR of a central crop")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--skip-existing", action="store_true",
                   help="keep outputs that are finished (read back completely, on the scene's grid) and predict "
                        "the rest: resumes a killed batch")
    p.add_argument("--allow-any-resolution", action="store_true",
                   help="predict inputs whose pixels are not 30 m (params predict.pixel_size_tolerance)")
    p.add_argument("--allow-ungeoreferenced", action="store_true",
                   help="accept inputs without CRS/geotransform (output in pixel coordinates)")
    p.add_argument("--tile-size", type=int, default=None, help="LR tile side in px (params predict.tile_size)")
    p.add_argument("--overlap", type=int, default=None, help="LR px shared by neighbouring tiles (predict.overlap)")
    p.add_argument("--batch-size", type=int, default=None, help="tiles per model call (predict.batch_size)")

    p = _add(sub, "evaluate", cmd_evaluate, "score one fine-tuned model on the test split",
             "Score ARCH's fine-tuned model (models/finetune/<arch>/model.keras) against HR on every image of the "
             "test split, with bicubic and Lanczos on the same pixels: sewar PSNR, SSIM, MS-SSIM, ERGAS, SAM, UQI, "
             "SCC, RASE on reflectance clipped to [0, 1] with a 3 px border crop (RGB), 8-bit PSNR/SSIM, the "
             "seed's sharpness index, consistency with the LR input and opensr-test's improvement / omission / "
             "hallucination; paired gains over bicubic with seeded cluster-bootstrap CIs over the split's "
             "spatial groups; histograms and side-by-side "
             "figures. Everything is logged to the model's fine-tuning MLflow run (params: evaluate).")
    p.add_argument("arch", choices=ARCH_NAMES, help="architecture")
    p.add_argument("--data", type=Path, default=paths.PNG, help="PNG dataset folder (default: %(default)s)")
    p.add_argument("--model", type=Path, default=None, help="model file (default: models/finetune/<arch>/model.keras)")
    p.add_argument("--predictions", type=Path, default=None,
                   help="score saved SR predictions instead of a model: <pair_id>.png (16-bit, the dataset's "
                        "encoding) or <pair_id>.npy (float reflectance) per image")
    p.add_argument("--split", choices=("test", "val"), default=None, help="split (default: params evaluate.split)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: data/eval/<arch>)")
    p.add_argument("--metrics", type=Path, default=None, help="DVC metrics JSON (default: metrics/eval/<arch>.json)")
    p.add_argument("--plots", type=Path, default=None,
                   help=f"per-image CSV for dvc plots (default: {paths.EVAL_PLOTS}/<arch>.csv)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")

    p = _add(sub, "select", cmd_select, "rank the architectures on val and set the registry champion",
             "Score every architecture of select.archs on the VALIDATION split (never test): PSNR gain over "
             "bicubic with a cluster-bootstrap CI over spatial groups and the hallucination share; rank by "
             "select.criterion under the select.max_hallucination cap; when the CI of the difference between "
             "the top two includes 0, prefer the smaller (else the more consistent) model; set the MLflow "
             "alias (champion) on the best version of each "
             "satsr-<arch> and register the winner as a version of `satsr` with the same alias. Writes the "
             "leaderboard as JSON (DVC metrics) and markdown.")
    p.add_argument("--data", type=Path, default=paths.PNG, help="PNG dataset folder (default: %(default)s)")
    p.add_argument("--models", type=Path, default=paths.MODELS / "finetune",
                   help="fine-tuned models, <arch>/model.keras (default: %(default)s)")
    p.add_argument("--out", type=Path, default=paths.LEADERBOARD_JSON,
                   help="leaderboard JSON (default: %(default)s)")
    p.add_argument("--markdown", type=Path, default=paths.LEADERBOARD_MD,
                   help="leaderboard markdown (default: %(default)s)")
    p.add_argument("--no-mlflow", action="store_true", help="leaderboard only: no MLflow run, registry untouched")

    p = _add(sub, "calibrate", cmd_calibrate, "fit the sensor model (PSF, shift, gain/offset, noise) to real pairs",
             "Fit LR ~ a * area3(G_sigma * shift(HR)) + b per band (satsr.data.sensor, the model the demo and "
             "s2sim providers simulate with) to each co-located real Landsat/Sentinel-2 pair of calibrate.pairs, on "
             "its exactly nested window: PSF sigma, residual shift, per-band a/b, LR noise, fit RMSE and the "
             "unexplained variance 1 - R^2. Misaligned or uncorrelated pairs are skipped with the reason; 8-bit "
             "(non-physical) pairs get geometry only (a, b null, with the reason). Writes calibrate.out (JSON; "
             "source.s2sim.psf_sigma_hr_px: calibrated reads it) and logs to MLflow.")
    p.add_argument("--out", type=Path, default=None, help="calibration JSON (default: params calibrate.out)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")

    p = _add(sub, "release", cmd_release, "train / publish the released weights (weights/release)",
             "Reproduce the released detail model from params.yaml: release (real Sentinel-2 scenes partnered by "
             "the sensor model, real Landsat/Sentinel-2 pairs, registered L1). `train` trains or resumes (about "
             "1-2 h on 2 CPU cores); `publish` calibrates the detail strength alpha on the validation parts, scores "
             "the held-out test parts against bicubic (PSNR, cPSNR, LR consistency) and writes the weights, "
             "metrics.json and MODEL_CARD.md to release.out_dir; `all` does both; `register` registers the committed "
             "weights as satsr-release@release in MLflow (the `release` DVC stage).")
    p.add_argument("action", choices=("train", "publish", "all", "register"),
                   help="what to run (register: put the committed weights in the MLflow registry, as `make demo` does)")
    p.add_argument("--no-mlflow", action="store_true", help="do not register the published model in MLflow")

    p = _add(sub, "params", cmd_params, "validate params.yaml and print it",
             "Validate the parameters file (unknown keys, wrong types and out-of-range values are errors "
             "naming the key path) and print it, or one section of it.")
    p.add_argument("section", nargs="?", help="dotted section to print, e.g. source.gee")
    p.add_argument("--flat", action="store_true", help="print dotted key: value pairs")
    p.add_argument("--check", action="store_true",
                   help="only validate: print one line and exit 0, or the problems and exit 2 (run it before "
                        "`dvc repro`: DVC deletes a stage's outputs before the stage reads params.yaml)")
    return parser

"""The `satsr` command. Every subcommand calls the same library function as its DVC stage."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import shutil
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from satsr import __version__, paths
from satsr.config import ARCH_NAMES, Params, flatten, load_params
from satsr.errors import SatsrError

log = logging.getLogger("satsr")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("absl").setLevel(logging.WARNING)  # TF checkpoint "Sharding callback" chatter


def _copy_metrics(src: Path, dst: Path) -> None:
    """Stage summaries live inside DVC outs; their copy under metrics/ is what `dvc metrics` reads."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


# ------------------------------------------------------------------------------ library calls
def cmd_source(args: argparse.Namespace) -> None:
    from satsr.data.sources import run_source

    params = load_params(args.params)
    if args.plan:
        if params.source.provider != "gee":
            raise SatsrError(f"source --plan describes Earth Engine requests; source.provider is "
                             f"{params.source.provider!r} (set source.provider=gee)")
        from satsr.data.sources.gee import describe_plan

        print(describe_plan(params))
        return
    df = run_source(params, args.out)
    log.info("source: %d pairs in %s", len(df), args.out)


def cmd_ee_check(args: argparse.Namespace) -> None:
    from satsr.data.sources.gee import GeeError
    from satsr.data.sources.gee.check import ee_check

    report, mismatches = ee_check(load_params(args.params))
    print(report)
    if mismatches:
        raise GeeError(f"ee-check: {len(mismatches)} mismatch(es) with the expected Landsat grid convention "
                       "(listed above); do not build a dataset before they are understood")


def cmd_filter(args: argparse.Namespace) -> None:
    from satsr.data.filters import run_filter

    report = run_filter(load_params(args.params), args.raw, args.out)
    _copy_metrics(Path(args.out) / "summary.json", args.metrics)
    log.info("filter: %d accepted of %d", int((report["status"] == "accepted").sum()), len(report))


def cmd_split(args: argparse.Namespace) -> None:
    from satsr.data.split import run_split

    table = run_split(load_params(args.params), args.raw, args.report, args.out)
    _copy_metrics(Path(args.out) / "summary.json", args.metrics)
    log.info("split: %s", table["split"].value_counts().to_dict())


def cmd_png(args: argparse.Namespace) -> None:
    from satsr.data.png import run_png

    index = run_png(load_params(args.params), args.raw, args.split, args.report, args.out, args.metrics)
    log.info("png: %d pairs written to %s", len(index), args.out)


def cmd_natural(args: argparse.Namespace) -> None:
    from satsr.data.natural import run_natural

    index = run_natural(load_params(args.params), args.out)
    log.info("natural: %d pairs written to %s", len(index), args.out)


def _train(args: argparse.Namespace, stage: str) -> None:
    from satsr.resolve import train_effective
    from satsr.train.init_weights import start_weights

    params = load_params(args.params)
    arch = args.arch
    init = None
    if stage == "finetune":
        init = start_weights(arch, getattr(params.finetune, arch).init, args.init, args.no_init)
    # the effective parameters (tuned values vs explicit params.yaml values) come from satsr.resolve
    summary = train_effective(
        params, stage, arch, best_params=getattr(args, "best_params", None),
        data_dir=args.data or (paths.NATURAL if stage == "pretrain" else paths.PNG),
        out_dir=args.out or paths.model_dir(stage, arch),
        init_weights=init,
        ckpt_dir=args.ckpt or paths.ckpt_dir(stage, arch),
        metrics_path=args.metrics or paths.train_metrics(stage, arch),
        plots_path=args.plots or paths.train_plots(stage, arch),
        restart=args.restart,
    )
    log.info("%s@%s: val PSNR %.3f dB (bicubic %.3f dB)", stage, arch, summary["val_psnr"], summary["bicubic_psnr"])


def cmd_tune(args: argparse.Namespace) -> None:
    from satsr.tune import study

    params = load_params(args.params)
    arch = args.arch
    out = args.out or paths.best_params(arch)
    figures = args.figures or paths.tune_dir(arch) / "figures"
    if not params.tune.enabled and not args.force:
        study.write_fixed(out, arch)
        figures.mkdir(parents=True, exist_ok=True)
        log.info("tune@%s: tune.enabled is false; fixed finetune.%s values written to %s", arch, arch, out)
        return
    from satsr.train.init_weights import start_weights

    init = start_weights(arch, getattr(params.finetune, arch).init, args.init, args.no_init)
    result = study.run_study(params, arch, data_dir=args.data, init_weights=init, out_path=out, figures_dir=figures,
                             storage=args.storage, name=args.study_name, n_trials=args.n_trials,
                             timeout_s=args.timeout, worker=args.worker, log_to_mlflow=not args.no_mlflow)
    print(json.dumps({"study": result.study_name, "storage": result.storage, "best_value": result.best_value,
                      "best_trial": result.best_trial, "best_params": result.best_params,
                      "trials": result.counts, "trials_here": [r.number for r in result.trials_here]}, default=str))


def cmd_pretrain(args: argparse.Namespace) -> None:
    _train(args, "pretrain")


def cmd_finetune(args: argparse.Namespace) -> None:
    _train(args, "finetune")


def predict_params(path: Path | None) -> Params:
    """``satsr predict`` needs no pipeline: its defaults live in code. ``--params FILE`` must exist; without
    it ./params.yaml overrides them when present (so predict works from any folder)."""
    if path is not None:
        return load_params(path)
    return load_params(paths.PARAMS) if paths.PARAMS.is_file() else Params()


def cmd_predict(args: argparse.Namespace) -> None:
    from satsr.predict import predict

    written = predict(
        args.inputs, args.model, args.output,
        bands=args.bands, input_scale=args.input_scale, input_offset=args.input_offset, aoi=args.aoi,
        output_format=args.format, output_dtype="float32" if args.float32 else None, compare=args.compare,
        overwrite=args.overwrite, allow_ungeoreferenced=args.allow_ungeoreferenced, tile_size=args.tile_size,
        overlap=args.overlap, batch_size=args.batch_size, params=predict_params(args.params),
        harmonize=args.harmonize, detail=args.detail, allow_any_resolution=args.allow_any_resolution,
        skip_existing=args.skip_existing,
    )
    for path in written:
        print(path)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from satsr.evaluate import run_evaluate
    from satsr.evaluate.stage import PER_IMAGE

    summary = run_evaluate(load_params(args.params), args.arch, png_dir=args.data, model_path=args.model,
                           predictions=args.predictions, out_dir=args.out, metrics_path=args.metrics,
                           split=args.split, use_mlflow=not args.no_mlflow)
    _copy_metrics((args.out or paths.eval_dir(args.arch)) / PER_IMAGE, args.plots or paths.eval_plots(args.arch))
    gain = summary["gain_vs_bicubic"].get("sr", {}).get("psnr", {})
    if gain.get("mean") is not None:
        log.info("evaluate@%s: PSNR gain over bicubic %+.3f dB [%+.3f, %+.3f] (%s) on %d %s image(s)",
                 args.arch, gain["mean"], gain["ci_low"] if gain["ci_low"] is not None
                 else float("nan"), gain["ci_high"] if gain["ci_high"] is not None else float("nan"),
                 gain.get("ci_note", ""), summary["n_images"], summary["split"])


def cmd_select(args: argparse.Namespace) -> None:
    from satsr.evaluate.select import run_select

    board = run_select(load_params(args.params), png_dir=args.data, models_dir=args.models, out_json=args.out,
                       out_md=args.markdown, use_mlflow=not args.no_mlflow)
    print(f"winner: {board['winner']}")


def cmd_calibrate(args: argparse.Namespace) -> None:
    from satsr.data.calibrate import calibrate

    doc = calibrate(load_params(args.params), out=args.out, use_mlflow=False if args.no_mlflow else None)
    for pair in doc["pairs"]:
        if pair["status"] == "fitted":
            ab = "a, b refused (non-physical)" if pair["a"] is None else f"a {pair['a']} b {pair['b']}"
            print(f"{pair['name']}: sigma {pair['psf_sigma_hr_px']:.3f} HR px, shift {pair['shift_hr_px']} HR px, "
                  f"1-R^2 {pair['unexplained_variance']:.3f}, r {pair['correlation']:.3f}, {ab}")
        else:
            print(f"{pair['name']}: SKIPPED: {pair['reason']}")
    s = doc["summary"]
    print(f"median PSF sigma {s['psf_sigma_hr_px']} HR px over {s['n_fitted']} fitted pair(s) "
          f"({s['n_skipped']} skipped)")


def cmd_release(args: argparse.Namespace) -> None:
    from satsr.release import publish, recipe

    params = load_params(args.params)
    if args.action in ("train", "all"):
        state = recipe.train_release(params)
        log.info("release training done: best val cPSNR gain (alpha 1) %s at step %s", state["best_gain"],
                 state["best_step"])
    if args.action in ("publish", "all"):
        card = publish.publish(params, use_mlflow=not args.no_mlflow)
        print(json.dumps(card["summary"], indent=2))
    if args.action == "register":
        print(json.dumps(publish.register(params), indent=2))


def cmd_params(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    if args.check:
        # cheap (no TensorFlow, no data): run before `dvc repro`, which deletes a stage's outs before
        # the stage itself could reject the parameters
        print(f"{args.params}: valid ({len(flatten(params))} values)")
        return
    section = params.model_dump(mode="json")
    for key in filter(None, (args.section or "").split(".")):
        section = section[key]
    print(json.dumps(flatten(section) if args.flat else section, indent=2, default=str))


# ------------------------------------------------------------------------------------ parser
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


#: OSErrors that are the machine's state, not a bug: what was expected, per errno.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free space on that file system; free some and rerun, finished work is kept",
    errno.EDQUOT: "disk quota left; free some and rerun, finished work is kept",
    errno.EROFS: "a writable file system",
    errno.EACCES: "read/write permission for the user running satsr",
    errno.EPERM: "read/write permission for the user running satsr",
}
#: Environment variable that turns on --debug, for stages run by DVC (``SATSR_DEBUG=1 dvc repro``).
DEBUG_ENV = "SATSR_DEBUG"


def environment_error(err: BaseException, command: str) -> str | None:
    """The one-line message of an OSError caused by the machine (full disk, no permission, network down),
    or None for any other exception (a bug: it keeps its traceback)."""
    # requests' ConnectionError / Timeout are OSErrors too, matched by name (not imported here)
    network = {c.__name__ for c in type(err).__mro__} & {"ConnectionError", "Timeout"}
    if isinstance(err, (ConnectionError, TimeoutError, socket.gaierror)) or (isinstance(err, OSError) and network):
        what = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return (f"{command}: network error: {what} (expected a reachable network service; check the connection "
                "and rerun, finished work is kept)")
    if isinstance(err, OSError) and err.errno in _ENVIRONMENT_ERRNOS:
        where = err.filename or command
        return f"{where}: {err.strerror or os.strerror(err.errno)} (expected {_ENVIRONMENT_ERRNOS[err.errno]})"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; user-facing errors end as one ``satsr: ...`` line on stderr and a non-zero exit.

    The DVC stage scripts (stages/*.py) call this too, so a stage fails the same way as the command."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    debug = args.debug or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    try:
        args.func(args)
    except SatsrError as err:
        # A user-facing error (bad params, missing input, no credentials, NaN loss...): its message
        # names the file, key or stage, so it is the whole story; --debug adds the traceback.
        # Anything else is a bug and keeps its traceback.
        if debug:
            traceback.print_exc()
        print(f"satsr: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:
        message = environment_error(err, args.command)
        if message is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"satsr: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

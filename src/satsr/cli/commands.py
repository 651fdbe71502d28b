"""The command functions behind `satsr COMMAND`: each calls the same library function as its DVC stage and
reports. The library is imported inside each function, so `satsr --help` and `satsr params --check` load
neither TensorFlow nor MLflow, and a stage runs only its own command's code."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from satsr import paths
from satsr.config import Params, flatten, load_params
from satsr.errors import SatsrError

log = logging.getLogger("satsr")


def _copy_metrics(src: Path, dst: Path) -> None:
    """Stage summaries live inside DVC outs; their copy under metrics/ is what `dvc metrics` reads."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


# ---------------------------------------------------------------------------------- data
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


# -------------------------------------------------------------------------------- models
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


def cmd_pretrain(args: argparse.Namespace) -> None:
    _train(args, "pretrain")


def cmd_finetune(args: argparse.Namespace) -> None:
    _train(args, "finetune")


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


# --------------------------------------------------------------------------------- tools
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

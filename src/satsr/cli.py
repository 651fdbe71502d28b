"""The `satsr` command. Every subcommand calls the same library function as its DVC stage."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Callable

from satsr import __version__, paths
from satsr.config import ParamsError, flatten, load_params

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

    df = run_source(load_params(args.params), args.out)
    log.info("source: %d pairs in %s", len(df), args.out)


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
    from satsr.train.trainer import train_stage

    params = load_params(args.params)
    arch = args.arch
    init = None
    if stage == "finetune" and not args.no_init:
        init = args.init or paths.model_dir("pretrain", arch) / "model.keras"
    summary = train_stage(
        params, stage, arch,
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


def cmd_params(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    section = params.model_dump(mode="json")
    for key in filter(None, (args.section or "").split(".")):
        section = section[key]
    print(json.dumps(flatten(section) if args.flat else section, indent=2, default=str))


# ------------------------------------------------------------------------------------ parser
def _archs() -> tuple[str, ...]:
    """Architecture names (satsr.models.ARCHS), without importing TensorFlow for --help."""
    return ("rdn", "rrdn", "edsr", "srgan")


def _add(sub, name: str, func: Callable, help_: str, description: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=description)
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="parameters file (default: %(default)s)")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="satsr",
        description="Landsat 30 m -> Sentinel-2-like 10 m super-resolution: data pipeline and tools.",
    )
    parser.add_argument("--version", action="version", version=f"satsr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _add(sub, "source", cmd_source, "fetch or build raw L8/S2 GeoTIFF pairs",
             "Write raw Landsat/Sentinel-2 GeoTIFF pairs and manifest.csv with the provider chosen by "
             "source.provider (demo | gee | folder). Resumable: complete pairs are skipped on rerun.")
    p.add_argument("--out", type=Path, default=paths.RAW, help="raw dataset folder (default: %(default)s)")

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
             "Fine-tune ARCH on the satellite pairs, starting from models/pretrain/<arch>/model.keras; GAN "
             "architectures run their generator / adversarial phases (params: finetune.<arch>, train). The "
             "model is logged to MLflow and registered as satsr-<arch>.")):
        verb = "pretrain" if stage == "pretrain" else "fine-tune"
        p = _add(sub, stage, func, f"{verb} one architecture ({', '.join(_archs())})",
                 what + " Checkpoints every epoch; a killed run started again resumes from the last one "
                 "(same MLflow run) unless the configuration changed.")
        p.add_argument("arch", choices=_archs(), help="architecture")
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

    p = _add(sub, "params", cmd_params, "validate params.yaml and print it",
             "Validate the parameters file (unknown keys, wrong types and out-of-range values are errors "
             "naming the key path) and print it, or one section of it.")
    p.add_argument("section", nargs="?", help="dotted section to print, e.g. source.gee")
    p.add_argument("--flat", action="store_true", help="print dotted key: value pairs")
    return parser


#: Error types whose message is the whole story (class names, so this module imports no TensorFlow).
_EXPECTED_ERRORS = {"PipelineError", "TrainError", "NonFiniteLossError", "PerceptualWeightsError", "NaturalError"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        args.func(args)
    except ParamsError as err:
        print(f"satsr: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        # Expected failures (bad dataset, missing pretrained weights, NaN loss, no VGG weights) end
        # with their message, naming the file or the stage; anything else keeps its traceback.
        if type(err).__name__ in _EXPECTED_ERRORS:
            print(f"satsr: {err}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

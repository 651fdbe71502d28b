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


def cmd_params(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    section = params.model_dump(mode="json")
    for key in filter(None, (args.section or "").split(".")):
        section = section[key]
    print(json.dumps(flatten(section) if args.flat else section, indent=2, default=str))


# ------------------------------------------------------------------------------------ parser
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

    p = _add(sub, "params", cmd_params, "validate params.yaml and print it",
             "Validate the parameters file (unknown keys, wrong types and out-of-range values are errors "
             "naming the key path) and print it, or one section of it.")
    p.add_argument("section", nargs="?", help="dotted section to print, e.g. source.gee")
    p.add_argument("--flat", action="store_true", help="print dotted key: value pairs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        args.func(args)
    except ParamsError as err:
        print(f"satsr: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the release recipe on SIMULATED pairs only (real_fraction 0), for bench_real.py's comparison.

Same corpus, model, loss and schedule as `satsr release train` (params.yaml `release:`), but no batch
draws from the real pairs. Writes <work-dir>/trained.keras (default .satsr/release-simonly).

Usage: python benchmarks/train_simonly.py [--steps N] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from satsr.config import load_params
from satsr.release import recipe


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--steps", type=int, default=None, help="default: release.steps")
    ap.add_argument("--work-dir", type=Path, default=Path(".satsr/release-simonly"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    params = load_params(args.params)
    rp = params.release
    rp = rp.model_copy(update={"real_fraction": 0.0, "steps": args.steps or rp.steps})
    state = recipe.train_release(params.model_copy(update={"release": rp}), work_dir=args.work_dir)
    print(f"simulated-only: best val cPSNR gain (alpha 1) {state['best_gain']:+.3f} dB at step {state['best_step']}; "
          f"{args.work_dir / 'trained.keras'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

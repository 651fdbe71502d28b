"""Data-pipeline benchmarks (issue: foundation). Results go to benchmarks/README.md.

1. Demo source + filter + split + png for N pairs of 265/795 px through the real `dvc repro`
   (target: < 60 s for 200 pairs on the 2-core reference machine); per-stage wall times from a
   per-stage `dvc repro -s`.
2. A no-op `dvc repro` after the full run (target: < 5 s), median of repeats.
3. Peak memory (max RSS of the stage processes) for growing pair counts: it must stay flat.

Usage: python benchmarks/bench_data.py [--pairs 200] [--lr-size 265] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test support: scratch.py

from scratch import make_copy, run

STAGES = ("source", "filter", "split", "png")


def _params(pairs: int, lr_size: int) -> dict:
    return {"source": {"lr_size": lr_size, "demo": {"n_pairs": pairs, "n_locations": max(4, pairs // 4)}}}


_PEAK = ("import resource, subprocess, sys; "
         "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
         "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "print(u.ru_maxrss, u.ru_utime + u.ru_stime)")


def _stage_run(repo: Path, stage: str) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB, largest process of the stage's tree) and CPU seconds (all
    processes: a load-independent figure on a shared machine) of one forced stage run.

    A fresh wrapper interpreter per stage, so its RUSAGE_CHILDREN maximum covers this stage alone.
    """
    t0 = time.perf_counter()
    out = run([sys.executable, "-c", _PEAK, "dvc", "repro", "-s", "-f", stage], repo).stdout
    wall = time.perf_counter() - t0
    rss_kib, cpu_s = out.strip().splitlines()[-1].split()
    return wall, int(rss_kib) / 1024, float(cpu_s)


def bench(pairs: int, lr_size: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="satsr-bench-") as tmp:
        repo = make_copy(Path(tmp) / "repo", _params(pairs, lr_size))
        t0 = time.perf_counter()
        run(["dvc", "repro", "png"], repo)
        full = time.perf_counter() - t0
        noop = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = run(["dvc", "repro", "png"], repo).stdout
            noop.append(time.perf_counter() - t0)
            assert "Running stage" not in out, out
        shutil.rmtree(repo / "data/raw")  # the source stage resumes: time a generation from scratch
        stages = {s: _stage_run(repo, s) for s in STAGES}
    return {
        "pairs": pairs,
        "lr_size": lr_size,
        "full_repro_s": round(full, 2),
        "noop_repro_median_s": round(statistics.median(noop), 2),
        "stage_s": {s: round(v[0], 2) for s, v in stages.items()},
        "stage_peak_rss_mib": {s: round(v[1], 1) for s, v in stages.items()},
        "stage_cpu_s": {s: round(v[2], 2) for s, v in stages.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--lr-size", type=int, default=265)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory-pairs", type=int, nargs="*", default=[50, 100, 200])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                         f"{__import__('os').cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    result["main"] = bench(args.pairs, args.lr_size, args.repeats)
    print(json.dumps(result["main"], indent=2), flush=True)
    result["memory"] = []
    for n in args.memory_pairs:
        r = result["main"] if n == args.pairs else bench(n, args.lr_size, 1)
        result["memory"].append({"pairs": n, "peak_rss_mib": r["stage_peak_rss_mib"], "stage_s": r["stage_s"],
                                 "stage_cpu_s": r["stage_cpu_s"]})
        print(json.dumps(result["memory"][-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

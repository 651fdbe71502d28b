"""Real-data benchmark (issue 11): every model against bicubic and Lanczos on the HELD-OUT real chips.

Held-out = the `test` parts of params.yaml `release.pairs` (the whole l8s2ps scene_2 pair and the
southern rows of homonim) and the `release.s2_test` Sentinel-2 scenes partnered by the sensor model.
Nothing of these is trained or tuned on. Per chip (32 LR px): plain PSNR and cPSNR (+-3 HR px,
per-band bias removed, 3 px border, data range 1; satsr.evaluate.metrics) as the paired gain over
bicubic with a bootstrap CI over chips, the smallest chip gain, and LR consistency (L1 of the SR
area-averaged to 30 m vs the LR). Writes a markdown table, JSON and a side-by-side figure.

Models: the release weights at their stored alpha and at alpha = 1; the demo champion
(models/finetune/<arch>/model.keras, the select stage's winner) when present; a model trained on
simulated pairs only (`--sim-only PATH`, e.g. `.satsr/release-simonly/trained.keras`) when given.

Usage: python benchmarks/bench_real.py [--out benchmarks/results/real] [--sim-only PATH] [--champion PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from satsr import paths
from satsr.config import SCALE, load_params
from satsr.evaluate import metrics, stats
from satsr.release import alpha as A
from satsr.release import recipe


def _keras(path: Path, lo: float, hi: float):
    import keras

    from satsr.models.export import as_exported

    model, _ = as_exported(keras.saving.load_model(path, compile=False), lo, hi)
    return lambda lrs: model(lrs, training=False).numpy()


def _release(path: Path, alpha: float | None):
    import keras

    from satsr.models.export import find_layer, is_exported, set_harmonization
    from satsr.models.harmonize import identity

    model = keras.saving.load_model(path, compile=False)
    if is_exported(model):  # score detail, not the product's radiometry (a bare network has no map)
        set_harmonization(model, identity(model.input_shape[-1]))
    stored = float(find_layer(model, "detail_strength").alpha.numpy())
    if alpha is not None:
        find_layer(model, "detail_strength").alpha.assign(alpha)
    return (lambda lrs: model(lrs, training=False).numpy()), stored


def summarize(s: dict, seed: int = 0) -> dict:
    gain_c = s["cpsnr"][:, 0] - s["bic_cpsnr"]
    return {"chips": int(len(gain_c)),
            "psnr_gain": stats.paired_gain(s["psnr"][:, 0], s["bic_psnr"], seed=seed),
            "cpsnr_gain": stats.paired_gain(s["cpsnr"][:, 0], s["bic_cpsnr"], seed=seed),
            "min_chip_cpsnr_gain": float(gain_c.min()), "chips_worse": int((gain_c < 0).sum()),
            "lr_l1": float(s["lr_l1"][:, 0].mean()), "bicubic_lr_l1": float(s["bic_lr_l1"].mean())}


def figure(groups: dict, predictors: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["bicubic", *predictors, "HR (S2)"]
    fig, axes = plt.subplots(len(groups), len(names), figsize=(2.2 * len(names), 2.3 * len(groups)), squeeze=False)
    for r, (g, chips) in enumerate(groups.items()):
        lr, hr = chips[len(chips) // 2]
        imgs = [metrics.upsample(lr, SCALE, "bicubic"), *[p(lr[None])[0] for p in predictors.values()], hr]
        lo, hi = np.percentile(hr, [1, 99])
        for c, (n, im) in enumerate(zip(names, imgs)):
            ax = axes[r, c]
            ax.imshow(np.clip((im - lo) / max(hi - lo, 1e-6), 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(n, fontsize=8)
            if c == 0:
                ax.set_ylabel(g.split(":")[-1][:22], fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--weights", type=Path, default=paths.release_model())
    ap.add_argument("--champion", type=Path, default=None,
                    help="demo champion model.keras (default: from the leaderboard)")
    ap.add_argument("--sim-only", type=Path, default=None, help="a detail model trained on simulated pairs only")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/real"))
    args = ap.parse_args(argv)
    params = load_params(args.params)
    t0 = time.time()
    data = recipe.build_corpus(params.release, include_train_sim=False)
    lo, hi = params.png.reflectance_min, params.png.reflectance_max
    rel, alpha = _release(args.weights, None)
    rel1, _ = _release(args.weights, 1.0)
    predictors = {f"release (alpha {alpha:g})": rel, "release (alpha 1)": rel1,
                  "lanczos": lambda lrs: np.stack([metrics.upsample(x, SCALE, "lanczos") for x in lrs])}
    champion = args.champion
    board = paths.LEADERBOARD_JSON
    if champion is None and board.exists():
        winner = json.loads(board.read_text()).get("winner")
        if winner and paths.model_file("finetune", winner).exists():
            champion = paths.model_file("finetune", winner)
    if champion is not None and champion.exists():
        predictors[f"demo champion ({champion.parent.name})"] = _keras(champion, lo, hi)
    if args.sim_only is not None:
        predictors["simulated-only (alpha 1)"] = _release(args.sim_only, 1.0)[0]
    results: dict = {}
    for name, fn in predictors.items():
        s = A.score_fn(fn, data.test, A.Scoring.of(params.evaluate))
        results[name] = {"all": summarize(s)}
        for g in sorted(set(s["group"].tolist())):
            keep = s["group"] == g
            results[name][g] = summarize({k: v[keep] for k, v in s.items()})
    lines = [f"Held-out real chips ({sum(len(v) for v in data.test.values())}, {args.weights}); gains vs bicubic, "
             "95% bootstrap CI over chips", "",
             "| model | group | chips | PSNR gain dB | cPSNR gain dB | min chip cPSNR gain | chips < bicubic "
             "| LR L1 (bicubic) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, groups in results.items():
        for g, v in groups.items():
            c, p = v["cpsnr_gain"], v["psnr_gain"]
            ci = "(one chip)" if v["chips"] < 2 else f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"
            lines.append(f"| {name} | {g} | {v['chips']} | {p['mean']:+.3f} | {c['mean']:+.3f} "
                         f"{ci} | {v['min_chip_cpsnr_gain']:+.3f} | "
                         f"{v['chips_worse']} | {v['lr_l1']:.4f} ({v['bicubic_lr_l1']:.4f}) |")
    table = "\n".join(lines)
    print(table)
    print(f"\n{platform.machine()} {platform.python_version()}, {time.time() - t0:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(stats.json_safe(results), indent=1) + "\n")
    Path(f"{args.out}.md").write_text(table + "\n")
    figure(data.test, {k: v for k, v in predictors.items() if k != "lanczos"}, Path(f"{args.out}.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

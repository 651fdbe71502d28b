"""Default locations of the pipeline's inputs and outputs, relative to the repo root.

dvc.yaml names the same paths; keeping them here means the CLI, the stage scripts and the
tests agree on one layout.
"""

from pathlib import Path

PARAMS = Path("params.yaml")
RAW = Path("data/raw")
FILTER = Path("data/filter")
REPORT = FILTER / "report.csv"
SPLIT = Path("data/split")
SPLIT_TABLE = SPLIT / "split.csv"
PNG = Path("data/png")
METRICS = Path("metrics")
FILTER_METRICS = METRICS / "filter.json"
SPLIT_METRICS = METRICS / "split.json"
PNG_STATS = METRICS / "png_stats.json"
# Training (satsr.train): natural pretraining corpus, models, checkpoints, per-stage metrics/plots.
NATURAL = Path("data/natural")
MODELS = Path("models")
#: Training checkpoints live outside the DVC outs, so a killed `dvc repro` resumes from them.
CKPT = Path(".satsr/ckpt")
TRAIN_METRICS = METRICS / "train"
TRAIN_PLOTS = Path("plots/train")
#: The file a training stage writes its model to, inside ``model_dir(stage, arch)``.
MODEL_FILE = "model.keras"
#: The released weights (committed to the repo): what `satsr predict` uses without --model.
RELEASE_MODEL = Path("weights/release/satsr_release_x3.keras")
#: Written by the `release` stage: the MLflow registry version of the released weights, read by `select`.
RELEASE_SUMMARY = MODELS / "release" / "summary.json"
# Evaluation (satsr.evaluate) and selection (satsr.evaluate.select).
EVAL = Path("data/eval")
EVAL_METRICS = METRICS / "eval"
#: Per-image CSV copies that `dvc plots` draws (model vs bicubic PSNR per test image).
EVAL_PLOTS = Path("plots/eval")
LEADERBOARD_JSON = METRICS / "leaderboard.json"
LEADERBOARD_MD = METRICS / "leaderboard.md"


def model_dir(stage: str, arch: str) -> Path:
    """``models/<stage>/<arch>``: the DVC out holding ``model.keras`` of a training stage."""
    return MODELS / stage / arch


def model_file(stage: str, arch: str) -> Path:
    """``models/<stage>/<arch>/model.keras``."""
    return model_dir(stage, arch) / MODEL_FILE


def ckpt_dir(stage: str, arch: str) -> Path:
    return CKPT / stage / arch


def train_metrics(stage: str, arch: str) -> Path:
    return TRAIN_METRICS / f"{stage}_{arch}.json"


def train_plots(stage: str, arch: str) -> Path:
    return TRAIN_PLOTS / f"{stage}_{arch}.csv"


def tune_dir(arch: str) -> Path:
    """``models/tune/<arch>``: best_params.yaml (DVC out of tune@<arch>) and figures/."""
    return MODELS / "tune" / arch


def best_params(arch: str) -> Path:
    return tune_dir(arch) / "best_params.yaml"


def eval_dir(arch: str) -> Path:
    """``data/eval/<arch>``: per-image CSV, summary and figures of ``evaluate@<arch>``."""
    return EVAL / arch


def eval_plots(arch: str) -> Path:
    """``plots/eval/<arch>.csv``: the per-image CSV of ``evaluate@<arch>``, as its DVC plot."""
    return EVAL_PLOTS / f"{arch}.csv"


def eval_metrics(arch: str) -> Path:
    """``metrics/eval/<arch>.json``: the DVC metrics of ``evaluate@<arch>``."""
    return EVAL_METRICS / f"{arch}.json"


def release_model() -> Path:
    """``RELEASE_MODEL`` from the working directory, else from the source tree satsr is installed from
    (so `satsr predict` finds the released weights from any folder)."""
    if RELEASE_MODEL.is_absolute() or RELEASE_MODEL.exists():
        return RELEASE_MODEL
    in_source = Path(__file__).resolve().parents[2] / RELEASE_MODEL
    return in_source if in_source.exists() else RELEASE_MODEL

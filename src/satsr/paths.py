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


def model_dir(stage: str, arch: str) -> Path:
    """``models/<stage>/<arch>``: the DVC out holding ``model.keras`` of a training stage."""
    return MODELS / stage / arch


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

"""Evaluation of trained models and model selection: one metric stack for every number.

* metrics/: per-image metrics on reflectance (PSNR, SSIM, ..., consistency, correctness) and the
  bicubic / Lanczos baselines, one module per concern; training-time validation
  (satsr.train.validation), tuning, evaluate and select all score with these functions;
* dataset.py: the pairs of a split (satsr.data.pipeline.load_pairs) and how PNG values decode;
* predictors.py: SR images from a saved model or from saved predictions;
* stats.py: summaries over images and paired bootstrap gains;
* stage.py: the ``evaluate@<arch>`` stage (test split); select.py: the ``select`` stage (val split);
* report.py: figures and the leaderboard table.

The stage's entry points are re-exported here (``from satsr.evaluate import run_evaluate``).
"""

from satsr.evaluate.dataset import PngDecoding, load_split, png_decoding, split_fingerprint
from satsr.evaluate.metrics import EvaluationError
from satsr.evaluate.predictors import ModelPredictor, PredictionDirPredictor, super_resolve
from satsr.evaluate.stage import evaluate_split, run_evaluate, summarize

__all__ = [
    "EvaluationError",
    "ModelPredictor",
    "PngDecoding",
    "PredictionDirPredictor",
    "evaluate_split",
    "load_split",
    "png_decoding",
    "run_evaluate",
    "split_fingerprint",
    "summarize",
    "super_resolve",
]

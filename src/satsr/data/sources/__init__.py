"""Pair providers. Each writes GeoTIFF pairs plus the same manifest into data/raw/.

A provider module exposes ``run(params: Params, out_dir: Path) -> pandas.DataFrame`` (the manifest
it wrote). Providers are imported lazily: the Earth Engine client is only needed for ``gee``.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import pandas as pd

from satsr.config import Params

log = logging.getLogger(__name__)

PROVIDERS = ("demo", "gee", "folder", "s2sim")


def run_source(params: Params, out_dir: str | Path) -> pd.DataFrame:
    """Run the provider chosen by ``source.provider`` into ``out_dir`` (resumable)."""
    provider = params.source.provider
    if provider not in PROVIDERS:  # pydantic already guards this; kept for direct callers
        raise ValueError(f"source.provider: unknown provider {provider!r}, expected one of {PROVIDERS}")
    module = importlib.import_module(f"satsr.data.sources.{provider}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("source: provider=%s -> %s", provider, out_dir)
    return module.run(params, out_dir)

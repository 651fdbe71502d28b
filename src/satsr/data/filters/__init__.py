"""The filter stage: screen every raw Landsat/Sentinel-2 pair and say why each one is kept or not.

The seed filtered pairs by eye in a notebook and with hard-coded percentile tests. Here every
check is a threshold from ``params.filter``, every rejection carries a short reason code plus a
sentence naming the file and the measured value against its threshold, and a static HTML contact
sheet (satsr.data.review) lets a person add what the automatic checks missed to a committed
review file. Bad input never stops the stage: a corrupt file, a wrong band count or a missing
partner becomes a reason in the report, and the good pairs go through in the same run.

Modules: :mod:`.checks` (one pair: loading, radiometry, geometry, registration and shift
correction) and :mod:`.run` (the stage: parallel workers, review file, report, summary, contact
sheet). This package re-exports their public names, so callers import ``satsr.data.filters``.
"""

from satsr.data.filters.checks import (
    BANDS,
    CORRECTED_DIR,
    METRIC_COLUMNS,
    QUICKLOOK_DIR,
    REASONS,
    SUPPORTED_DTYPES,
    TAG_SHIFT,
    CheckSettings,
    check_pair,
    percentile,
    sharpness_index,
)
from satsr.data.filters.run import REPORT_COLUMNS, REPORT_NAME, SHEET_NAME, SUMMARY_NAME, run_filter, summarize

__all__ = [
    "BANDS",
    "CORRECTED_DIR",
    "METRIC_COLUMNS",
    "QUICKLOOK_DIR",
    "REASONS",
    "REPORT_COLUMNS",
    "REPORT_NAME",
    "SHEET_NAME",
    "SUMMARY_NAME",
    "SUPPORTED_DTYPES",
    "TAG_SHIFT",
    "CheckSettings",
    "check_pair",
    "percentile",
    "run_filter",
    "sharpness_index",
    "summarize",
]

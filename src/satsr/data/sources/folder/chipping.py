"""Cutting a large ``pattern`` scene into chips on the two files' exactly nested grids.

A scene pair is planned as chips of ``source.lr_size`` LR pixels (HR exactly 3x, each with its own
transform) inside the common exactly nested window (satsr.data.nesting); anything that cannot nest
is imported whole so the filter stage judges it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.windows import transform as window_transform

from satsr.config import SCALE, Params
from satsr.data import nesting
from satsr.data.sources.folder.jobs import Job, Side, parse_date, safe_id
from satsr.data.sources.folder.reading import header

log = logging.getLogger(__name__)

#: HR chip tag: how its window was nested into the LR chip's (satsr.data.nesting).
TAG_NESTING = "SATSR_NESTING"


def plan_scene(key: str, lr: Path | None, hr: Path | None, params: Params) -> list[Job]:
    """One job for the whole pair, or one per chip of the scene's exactly nested window.

    The chips are cut from the common window of the two files on their nested grids
    (satsr.data.nesting): an integer HR-pixel origin offset or a non-3x extent that the
    georeferences state is known geometry, so the HR window is cut at the matching offset. With
    ``source.folder.coregister_hr_px`` > 0 the offset is then refined by content (whole HR px, no
    resampling); the HR chip is written on the LR chip's grid and tagged with both offsets. The
    sub-HR-pixel residual is left to the filter's registration check."""
    base = safe_id(key)
    d_lr, d_hr = (parse_date(lr.name) if lr else ""), (parse_date(hr.name) if hr else "")
    whole = [Job(base, Side(lr), Side(hr), region=base, lr_date=d_lr, hr_date=d_hr)]
    fp = params.source.folder
    n = params.source.lr_size
    if not fp.cut_into_chips or lr is None or hr is None:
        return whole
    try:
        lw, lh, lcrs, ltr = header(lr)
        hw, hh, hcrs, htr = header(hr)
    except (RasterioError, OSError):
        return whole  # the unreadable file is reported when the job runs
    exact = (hw, hh) == (lw * SCALE, lh * SCALE)
    # Not georeferenced (PNG scenes): the same pixel window on both, when exactly 3x.
    georef = (0.0, 0.0) if lcrs is None and hcrs is None and exact else nesting.grid_offset(lcrs, ltr, hcrs, htr)
    if isinstance(georef, str):
        if not exact or lw > n or lh > n:
            log.warning("%s: LR and HR grids cannot nest (%s); imported whole (the filter will judge it)", key, georef)
        return whole
    oy, ox = round(georef[0]), round(georef[1])
    whole_px = max(abs(georef[0] - oy), abs(georef[1] - ox)) <= nesting.INTEGER_TOL_HR_PX
    if not whole_px:
        log.warning("%s: the HR grid origin is offset from LR by (%.2f, %.2f) HR px, not a whole number; cut at "
                    "(%d, %d) and the rest is left to the filter's registration check", key, *georef, oy, ox)
    if exact and (oy, ox) == (0, 0) and lw <= n and lh <= n:
        return whole  # already one exactly nested chip
    nest = nesting.nested_window((lw, lh), (hw, hh), (oy, ox), georef)
    if nest is None:
        log.warning("%s: LR and HR share no ground (HR offset (%d, %d) HR px); imported whole", key, oy, ox)
        return whole
    r_note = ""
    if fp.coregister_hr_px > 0:
        try:
            best, r_best, r_geo = nesting.content_offset(lr, hr, nest, fp.coregister_hr_px)
        except (RasterioError, OSError):
            return whole
        if best != nest.offset:
            moved = nesting.nested_window((lw, lh), (hw, hh), best, georef)
            if moved is not None:
                log.warning("%s: by content the HR lies %+d, %+d HR px from its georeferenced position (r %.3f -> %.3f "
                            "over the central window); HR chips are cut there, on the LR grid", key,
                            best[0] - oy, best[1] - ox, r_geo, r_best)
                nest = moved
        r_note = f"; content check r {r_geo:.4f} at the georeferenced offset, {r_best:.4f} at the one used"
    if (oy, ox) != (0, 0) or not exact:
        log.info("%s: HR origin (%.2f, %.2f) HR px from LR, HR %dx%d vs LR %dx%d: exactly nested common window LR "
                 "rows %d..%d, cols %d..%d", key, *georef, hw, hh, lw, lh, nest.lr_row, nest.lr_row + nest.rows - 1,
                 nest.lr_col, nest.lr_col + nest.cols - 1)
    rows = nesting.place_chips(nest.rows, n, fp.max_chip_overlap_lr_px)
    cols = nesting.place_chips(nest.cols, n, fp.max_chip_overlap_lr_px)
    left = (nest.rows - (rows[-1][0] + rows[-1][1]), nest.cols - (cols[-1][0] + cols[-1][1]))
    if any(left):
        log.info("%s: the %d x %d LR px common window does not divide by %d; %d bottom / %d right px left out",
                 key, nest.cols, nest.rows, n, left[0], left[1])
    tag = {TAG_NESTING: f"HR offset from LR by georeference (dy, dx) = ({georef[0]:.3f}, {georef[1]:.3f}) HR px; "
                        f"HR cut at ({nest.offset[0]}, {nest.offset[1]}) HR px{r_note}"}
    jobs = []
    for r, h in rows:
        for c, w in cols:
            lwin, hwin = nest.lr_window(r, c, h, w), nest.hr_window(r, c, h, w)
            lwt = window_transform(lwin, ltr)
            # The HR chip on the LR chip's grid: the same ground, exactly nested (equal to its own
            # georeference up to float rounding unless the content moved it). A fractional
            # georeferenced offset keeps the HR window's own grid: the filter sees the truth.
            hr_tr = (Affine(htr.a, 0.0, lwt.c, 0.0, htr.e, lwt.f) if whole_px or nest.offset != (oy, ox)
                     else None)
            jobs.append(Job(f"{base}_r{int(lwin.row_off):05d}_c{int(lwin.col_off):05d}", Side(lr, lwin),
                             Side(hr, hwin, transform=hr_tr, tags=tag), region=base, lr_date=d_lr, hr_date=d_hr))
    log.info("%s: cut into %d chips of up to %d LR / %d HR px", key, len(jobs), n, n * SCALE)
    return jobs

"""satsr predict under faults and bad input (issue 13): a failed write never leaves a file at the output
path, bad options and inputs are refused before the model runs with one clear line, killed runs leave
nothing behind for long, and the output opens as RGB.

Most tests use a numpy "model" (nearest x3) through the public predict(): the same checks, tiling and
writes without TensorFlow. A real full disk is a tmpfs mounted in a private mount namespace
(``unshare -rm``); the test skips with the reason where that is not permitted, and the same code path
is covered everywhere by GDAL writing through a symlink to /dev/full (ENOSPC on every write) and by a
rasterio write that raises.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import UTM_20S, c2_dn, textured, write_tif  # tests/predict/conftest.py
from rasterio.enums import ColorInterp

import satsr.util
from satsr.cli import main
from satsr.config import Params
from satsr.predict import PredictError, SRModel, load_model, predict
from satsr.predict.writer import clean_stale, model_label, overview_count

REPO = Path(__file__).resolve().parents[2]


class Nearest:
    """A numpy x3 'model' (nearest neighbour): predict() without TensorFlow."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return batch.repeat(3, axis=1).repeat(3, axis=2)


@pytest.fixture(scope="module")
def nearest() -> SRModel:
    return load_model(Nearest())


def scene(tmp_path: Path, name: str = "s.tif", h: int = 40, w: int = 40, seed: int = 0, **kw) -> Path:
    return write_tif(tmp_path / name, c2_dn(textured(np.random.default_rng(seed), h, w)), nodata=0, **kw)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def one_error_line(err: str) -> str:
    """The single `satsr: ...` line of a failed command (no traceback)."""
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("satsr: ")]
    assert len(lines) == 1, err
    return lines[0]


# -------------------------------------------------------------------------- 1: failed writes
def _dev_full_temp(monkeypatch) -> None:
    """Every atomic temporary is a symlink to /dev/full: GDAL's writes fail with ENOSPC."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")

    def fake(dest: Path) -> Path:
        tmp = dest.with_name(f".{dest.name}.0badf00d{satsr.util.PART_SUFFIX}")
        tmp.symlink_to("/dev/full")
        return tmp

    monkeypatch.setattr(satsr.util, "_create_temp", fake)


@pytest.mark.parametrize("fmt", ["cog", "gtiff"])
def test_enospc_while_writing_fails_and_keeps_the_previous_file(tmp_path, monkeypatch, nearest, fmt):
    src = scene(tmp_path, h=120, w=120)
    out = tmp_path / "out" / "sr.tif"
    out.parent.mkdir()
    out.write_bytes(b"previous")
    _dev_full_temp(monkeypatch)
    with pytest.raises(PredictError, match=r"sr\.tif: writing failed: .*\(expected a writable folder"):
        predict(src, nearest, out, overwrite=True, output_format=fmt, params=Params())
    assert out.read_bytes() == b"previous"
    assert hidden(out.parent) == []  # no temporary left


def test_a_rasterio_write_that_raises_fails_the_run(tmp_path, monkeypatch, nearest):
    src = scene(tmp_path)
    out = tmp_path / "sr.tif"

    def broken(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", broken)
    with pytest.raises(PredictError, match=r"sr\.tif: writing failed: No space left on device"):
        predict(src, nearest, out, params=Params())
    assert not out.exists() and hidden(tmp_path) == []


def test_a_gdal_error_that_is_only_logged_fails_the_run(tmp_path, monkeypatch, nearest):
    """GDAL reports a failed block flush only through its error handler (rasterio logs it, at INFO)."""
    src = scene(tmp_path)
    out = tmp_path / "sr.tif"
    real = rasterio.io.DatasetWriter.write

    def logged_only(self, *args, **kwargs):
        real(self, *args, **kwargs)
        logging.getLogger("rasterio._env").info("GDAL signalled an error: err_no=1, msg=%r",
                                                "TIFFAppendToStrip:Write error at scanline 0")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", logged_only)
    with pytest.raises(PredictError, match=r"sr\.tif: writing failed: TIFFAppendToStrip:Write error"):
        predict(src, nearest, out, params=Params())
    assert not out.exists() and hidden(tmp_path) == []


TMPFS_SCRIPT = r"""
import json, sys
import numpy as np
import satsr.predict.run as run
from satsr.cli import main
from satsr.predict import load_model

class Noisy:  # nearest x3 plus a fixed pattern: an output that does not compress, as a real model's
    pattern = np.random.default_rng(0).normal(0, 0.02, (509, 509, 3)).astype(np.float32)

    def predict(self, batch):
        up = batch.repeat(3, axis=1).repeat(3, axis=2)
        h, w = up.shape[1:3]
        return up + self.pattern[np.arange(h)[:, None] % 509, np.arange(w)[None] % 509]

model = load_model(Noisy())
run.load_model = lambda ref, params=None, identity=None: model
sys.exit(main(["predict", *sys.argv[1:], "--model", "nearest.keras", "--tile-size", "128", "--overlap", "16"]))
"""


def _unshare(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare command: cannot mount a small tmpfs")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {tmp_path}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({probe.stderr.strip()})")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_full_tmpfs_fails_with_one_line_and_leaves_nothing(tmp_path):
    """The issue's reproduction (a small tmpfs, a 300 x 300 input): 6 MB, full during the COG copy (the
    tiled temporary of ~4 MB fits), and 2 MB, full while the tiled temporary is written; plus a read-only
    mount for the writability check."""
    rng = np.random.default_rng(0)
    src = write_tif(tmp_path / "in.tif", (rng.integers(8000, 30000, (3, 300, 300))).astype(np.uint16), nodata=0)
    (tmp_path / "run.py").write_text(TMPFS_SCRIPT)
    py = sys.executable
    script = " && ".join([
        f"mkdir -p {tmp_path}/full6 {tmp_path}/full2 {tmp_path}/ro",
        f"mount -t tmpfs -o size=6m tmpfs {tmp_path}/full6",
        f"mount -t tmpfs -o size=2m tmpfs {tmp_path}/full2",
        f"mount -t tmpfs -o size=1m,ro tmpfs {tmp_path}/ro",
        f"({py} {tmp_path}/run.py {src} -o {tmp_path}/full6/sr.tif 2> {tmp_path}/err6; echo $? > {tmp_path}/rc6)",
        f"({py} {tmp_path}/run.py {src} -o {tmp_path}/full2/sr.tif 2> {tmp_path}/err2; echo $? > {tmp_path}/rc2)",
        f"({py} {tmp_path}/run.py {src} -o {tmp_path}/ro/sr.tif 2> {tmp_path}/erro; echo $? > {tmp_path}/rco)",
        f"ls -a {tmp_path}/full6 {tmp_path}/full2 > {tmp_path}/left",
    ])
    done = _unshare(script, tmp_path)
    assert done.returncode == 0, done.stderr
    for size in ("6", "2"):
        assert (tmp_path / f"rc{size}").read_text().strip() == "1"
        line = one_error_line((tmp_path / f"err{size}").read_text())
        assert line.startswith(f"satsr: {tmp_path}/full{size}/sr.tif: writing failed: ")
        assert "the disk is full" in line and "(expected a writable folder with enough free space" in line
    left = (tmp_path / "left").read_text().split()
    assert [n for n in left if n not in (".", "..") and not n.endswith(":")] == []  # no output, no temporaries
    assert (tmp_path / "rco").read_text().strip() == "1"
    line = one_error_line((tmp_path / "erro").read_text())
    assert line.startswith(f"satsr: {tmp_path}/ro: output folder is not writable (Read-only file system)")


# ---------------------------------------------------------------------- 2: scale and offset
@pytest.mark.parametrize("scale, offset, what", [(0.0, None, "scale 0.0"), (float("nan"), None, "scale nan"),
                                                 (-1e-4, None, "scale -0.0001"), (float("inf"), None, "scale inf"),
                                                 (1e-4, float("nan"), "offset nan")])
def test_unusable_input_scale_or_offset_is_refused(tmp_path, nearest, scale, offset, what):
    src = scene(tmp_path)
    with pytest.raises(PredictError, match=rf"--input-scale/--input-offset: {what} is not usable \(expected"):
        predict(src, nearest, tmp_path / "o.tif", input_scale=scale, input_offset=offset, params=Params())
    assert not (tmp_path / "o.tif").exists()


def test_cli_input_scale_nan_is_one_line(tmp_path, capsys):
    src = scene(tmp_path)
    assert main(["predict", str(src), "-o", str(tmp_path / "o.tif"), "--input-scale", "nan",
                 "--model", str(tmp_path / "never_loaded.keras")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "scale nan is not usable (expected a finite number > 0" in line


def test_a_file_scale_of_zero_is_refused_naming_the_file(tmp_path, nearest):
    src = scene(tmp_path, scales=[0.0] * 3, offsets=[0.1] * 3)
    with pytest.raises(PredictError, match=r"s\.tif: band 1 scale/offset: scale 0\.0 is not usable"):
        predict(src, nearest, tmp_path / "o.tif", params=Params())


# -------------------------------------------------------------------------------- 3: pixel size
def test_pixel_size_must_be_30_m_unless_allowed(tmp_path, nearest):
    ten = scene(tmp_path, "ten.tif", pixel=10.0)
    with pytest.raises(PredictError, match=r"ten\.tif: pixel size 10 x 10 m is not the model's 30 m input "
                                           r"\(expected 30 m within 10%.*--allow-any-resolution"):
        predict(ten, nearest, tmp_path / "o.tif", params=Params())
    out = predict(ten, nearest, tmp_path / "o.tif", allow_any_resolution=True, params=Params())[0]
    with rasterio.open(out) as sr:
        assert sr.transform.a == pytest.approx(10 / 3)

    one_degree = scene(tmp_path, "deg.tif", crs="EPSG:4326", pixel=1.0, origin=(-60.0, -3.0))
    with pytest.raises(PredictError, match=r"deg\.tif: pixel size 1 x 1 degrees = \d{6}\.\d x 110574\.0 m at "
                                           r"this latitude"):
        predict(one_degree, nearest, tmp_path / "o2.tif", params=Params())

    # 30 m in degrees near the equator is accepted; the same degrees at 60 S are 15 m wide: refused.
    d = 30.0 / 110574
    ok = scene(tmp_path, "eq.tif", crs="EPSG:4326", pixel=d, origin=(-60.0, 0.5))
    assert predict(ok, nearest, tmp_path / "eq_sr.tif", params=Params())[0].is_file()
    south = scene(tmp_path, "south.tif", crs="EPSG:4326", pixel=d, origin=(-60.0, -60.0))
    with pytest.raises(PredictError, match=r"= 15\.\d x 30\.0 m at this latitude"):
        predict(south, nearest, tmp_path / "south_sr.tif", params=Params())

    # A projected CRS in US feet: 98.425 ft = 30 m.
    feet = scene(tmp_path, "feet.tif", crs="EPSG:2263", pixel=30 / 0.3048006096, origin=(1000000.0, 200000.0))
    assert predict(feet, nearest, tmp_path / "feet_sr.tif", params=Params())[0].is_file()

    # The tolerance is a parameter.
    p = Params.model_validate({"predict": {"pixel_size_tolerance": 0.5}})
    assert predict(scene(tmp_path, "f20.tif", pixel=20.0), nearest, tmp_path / "f20_sr.tif", params=p)[0].is_file()


# --------------------------------------------------------------------------- 5: output naming
def test_output_name_for_one_scene_must_be_a_tiff_and_folders_are_explicit(tmp_path, nearest, capsys):
    src = scene(tmp_path)
    with pytest.raises(PredictError, match=r"name\.png: one scene's output needs a \.tif/\.tiff name, this has "
                                           r"extension \.png \(expected"):
        predict(src, nearest, tmp_path / "name.png", params=Params())
    with pytest.raises(PredictError, match=r"outdir: one scene's output needs a \.tif/\.tiff name, this has no "
                                           r"extension.*name ending in /"):
        predict(src, nearest, tmp_path / "outdir", params=Params())
    assert not (tmp_path / "name.png").exists() and not (tmp_path / "outdir").exists()
    assert predict(src, nearest, f"{tmp_path / 'outdir'}/", params=Params()) == [tmp_path / "outdir" / "s_SR10m.tif"]
    assert predict(src, nearest, tmp_path / "outdir", overwrite=True, params=Params())[0].parent == tmp_path / "outdir"
    # The command line keeps the trailing slash.
    assert main(["predict", str(src), "-o", str(tmp_path / "name.png"), "--model", "x.keras"]) == 1
    assert "name.png: one scene's output needs a .tif/.tiff name" in one_error_line(capsys.readouterr().err)


def test_cli_trailing_slash_means_a_new_folder(tmp_path, monkeypatch, nearest, capsys):
    import satsr.predict.run as run

    monkeypatch.setattr(run, "load_model", lambda ref, params=None, identity=None: nearest)
    src = scene(tmp_path)
    assert main(["predict", str(src), "-o", f"{tmp_path / 'new'}/", "--model", "x.keras"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "new" / "s_SR10m.tif")


# ----------------------------------------------------------------------------- 6: overviews
def test_overview_levels_stop_at_the_block_size():
    assert overview_count(15000, 3, 512) == 0
    assert overview_count(900, 900, 512) == 0
    assert overview_count(1024, 1024, 512) == 1
    assert overview_count(21000, 21000, 512) == 5  # 656 px at 1/32, 328 < 512 at 1/64
    assert overview_count(21000, 1500, 512) == 1


def test_a_thin_input_gets_no_overviews_and_a_square_one_gets_them(tmp_path, nearest):
    thin = scene(tmp_path, "thin.tif", h=1, w=5000)
    with rasterio.open(predict(thin, nearest, tmp_path / "thin_sr.tif", params=Params())[0]) as sr:
        assert (sr.width, sr.height) == (15000, 3) and sr.overviews(1) == []
    p = Params.model_validate({"predict": {"blocksize": 256}})
    sq = scene(tmp_path, "sq.tif", h=200, w=200)
    with rasterio.open(predict(sq, nearest, tmp_path / "sq_sr.tif", params=p)[0]) as sr:
        assert sr.overviews(1) == [2]  # 600 px: 300 >= 256, 150 < 256


# ------------------------------------------------------------ 9: killed runs, --skip-existing
def test_stale_temporaries_of_this_output_are_removed_and_live_or_foreign_ones_kept(tmp_path, nearest):
    src = scene(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    stale = [".sr.tif.0123abcd.part", ".sr.tif.0123abcd.tmp.tif", ".sr.tif.0123abcd.part.ovr.tmp",
             ".sr.tif.0123abcd.tmp.tif.aux.xml", ".sr_compare.png.89abcdef.part"]
    keep = [".other.tif.0123abcd.part", "sr.tif.bak", ".sr.tif.notatemp", ".sr.tif.fedcba98.part",
            ".sr.tif.fedcba98.tmp.tif"]
    for name in stale + keep:
        (out_dir / name).write_bytes(b"x" * 1000)
    live = os.open(out_dir / ".sr.tif.fedcba98.part", os.O_RDONLY)  # a run that is still writing
    fcntl.flock(live, fcntl.LOCK_EX)
    try:
        predict(src, nearest, out_dir / "sr.tif", params=Params())
    finally:
        os.close(live)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(keep + ["sr.tif"])
    # Once its writer is gone, the next run removes it too.
    assert sorted(p.name for p in clean_stale(out_dir / "sr.tif")) == [".sr.tif.fedcba98.part",
                                                                       ".sr.tif.fedcba98.tmp.tif"]


def test_skip_existing_keeps_finished_outputs_and_redoes_damaged_ones(tmp_path, random_model_path, caplog,
                                                                       monkeypatch):
    a, b = scene(tmp_path, "a.tif", seed=1), scene(tmp_path, "b.tif", seed=2)
    out = tmp_path / "out"
    outs = predict([a, b], random_model_path, f"{out}/", params=Params(), output_format="gtiff")
    with rasterio.open(outs[0]) as sr:
        recorded = json.loads(sr.tags()["SATSR_REQUEST"])
        assert sr.tags()["SATSR_MODEL_ID"] == recorded["model"] == f"sha256:{satsr.util.sha256_file(random_model_path)}"
    ref_b = rasterio.open(outs[1]).read()
    stat_a = outs[0].stat()
    cut = outs[1].read_bytes()
    outs[1].write_bytes(cut[: len(cut) // 2])  # damaged (e.g. by a copy that ran out of space)
    with pytest.raises(PredictError, match="output exists"):
        predict([a, b], random_model_path, out, params=Params())
    with caplog.at_level(logging.INFO, logger="satsr.predict.run"):
        again = predict([a, b], random_model_path, out, skip_existing=True, params=Params(), output_format="gtiff")
    assert again == outs
    assert outs[0].stat().st_mtime_ns == stat_a.st_mtime_ns and outs[0].stat().st_ino == stat_a.st_ino
    with rasterio.open(outs[1]) as sr:
        np.testing.assert_array_equal(sr.read(), ref_b)
    assert "a_SR10m.tif is finished" in caplog.text and "b_SR10m.tif is not a finished output" in caplog.text

    # Everything finished: the model is not even loaded. The same model under another name is the same model.
    copy = tmp_path / "elsewhere" / "renamed.keras"
    copy.parent.mkdir()
    shutil.copy(random_model_path, copy)

    def no_load(*_a, **_k):
        raise AssertionError("the model was loaded although every output is finished")

    with monkeypatch.context() as m:
        m.setattr("satsr.predict.run.load_model", no_load)
        assert predict([a, b], copy, out, skip_existing=True, params=Params(), output_format="gtiff") == outs
    assert outs[0].stat().st_ino == stat_a.st_ino


def test_skip_existing_redoes_outputs_of_another_model_or_other_options(tmp_path, random_model_path,
                                                                        bicubic_model_path, nearest, caplog):
    src = scene(tmp_path, "a.tif", seed=1)
    out = tmp_path / "a_sr.tif"
    predict(src, random_model_path, out, params=Params(), output_format="gtiff")

    def rerun(model, **kw) -> str:
        caplog.clear()
        before = out.stat().st_ino
        with caplog.at_level(logging.INFO, logger="satsr.predict.run"):
            predict(src, model, out, skip_existing=True, params=Params(), **{"output_format": "gtiff", **kw})
        assert out.stat().st_ino != before, "the output was kept"
        return caplog.text

    # Another model (the untrained one, which gives bicubic): predicted again, and its output is now there.
    text = rerun(bicubic_model_path)
    assert "made with another model 'sha256:" in text
    with rasterio.open(out) as sr:
        assert sr.tags()["SATSR_MODEL_ID"] == f"sha256:{satsr.util.sha256_file(bicubic_model_path)}"
    # Other options that change the pixels.
    assert "made with another output_dtype 'uint16' (now 'float32')" in rerun(bicubic_model_path,
                                                                              output_dtype="float32")
    assert "input_scale None (now 2.75e-05)" in rerun(bicubic_model_path, output_dtype="float32",
                                                                         input_scale=2.75e-5, input_offset=-0.2)
    # An in-memory model has no identity: nothing can be shown to be its output.
    assert "has no identity (an in-memory model)" in rerun(nearest)
    # An output written before satsr recorded requests (no SATSR_REQUEST tag) is not trusted either.
    with rasterio.open(out) as sr:
        profile, data, tags = sr.profile, sr.read(), sr.tags()
    del tags["SATSR_REQUEST"]
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
    assert "does not record the model and options that made it" in rerun(bicubic_model_path)
    # A damaged record is named.
    with rasterio.open(out, "r+") as sr:
        sr.update_tags(SATSR_REQUEST="[1, 2]")
    assert "SATSR_REQUEST tag is not a JSON object ('[1, 2]')" in rerun(bicubic_model_path)


def test_skip_existing_keeps_an_output_only_on_this_scenes_grid(tmp_path, random_model_path, caplog):
    a = scene(tmp_path, "a.tif", seed=1)
    out = tmp_path / "a_sr.tif"
    predict(a, random_model_path, out, params=Params(), output_format="gtiff")
    # An output of another input (another grid) is not "finished" for this one.
    moved = scene(tmp_path, "a.tif", seed=1, origin=(500040.0, 9600000.0))
    assert moved == a
    with caplog.at_level(logging.WARNING, logger="satsr.predict.run"):
        predict([a], random_model_path, out, skip_existing=True, params=Params(), output_format="gtiff")
    assert "is not the scene's 10 m grid" in caplog.text


# ------------------------------------------------------------------- 11: clear one-line errors
def test_truncated_input_is_refused_before_the_model_loads(tmp_path, capsys):
    src = scene(tmp_path, "whole.tif", h=300, w=300, seed=3)
    data = src.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) * 2 // 3])
    missing_model = tmp_path / "never_loaded.keras"  # an input error must come first
    with pytest.raises(PredictError, match=r"cut\.tif: truncated or damaged: .*\(expected a complete GeoTIFF"):
        predict(cut, missing_model, tmp_path / "o.tif", params=Params())
    assert main(["predict", str(cut), "--model", str(missing_model), "-o", str(tmp_path / "o.tif")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"satsr: {cut}: truncated or damaged")


def test_unwritable_output_folder_is_refused_before_the_model_loads(tmp_path, capsys):
    src = scene(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    missing_model = tmp_path / "never_loaded.keras"
    with pytest.raises(PredictError, match=r"a_file/sub/o\.tif: cannot create the output folder, .*a_file is a file"):
        predict(src, missing_model, blocker / "sub" / "o.tif", params=Params())
    if os.geteuid() != 0:  # root writes anywhere; the read-only tmpfs test covers it then
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["predict", str(src), "--model", str(missing_model), "-o", str(locked / "o.tif")]) == 1
        assert "output folder is not writable" in one_error_line(capsys.readouterr().err)


# -------------------------------------------------------------------------- 12: damaged .keras
def test_truncated_keras_file_is_not_reported_as_missing(tmp_path, random_model_path, capsys):
    cut = tmp_path / "cut.keras"
    data = random_model_path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(PredictError, match=r"cut\.keras: not a loadable Keras model: the file exists") as err:
        load_model(cut)
    assert "not found" not in str(err.value).lower()
    src = scene(tmp_path)
    assert main(["predict", str(src), "--model", str(cut), "-o", str(tmp_path / "o.tif")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "not a loadable Keras model" in line and "not found" not in line.lower()


# ------------------------------------------------------------- 13: no params.yaml, no store
def test_predict_works_outside_the_repo_without_params_yaml(tmp_path, monkeypatch, bicubic_model_path, capsys):
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    src = scene(work)
    assert main(["predict", "s.tif", "--model", str(bicubic_model_path), "-o", "sr.tif"]) == 0
    with rasterio.open(work / "sr.tif") as sr:
        assert sr.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"  # the code default
    # A params.yaml there overrides the defaults; --params must exist.
    (work / "params.yaml").write_text("predict:\n  output_format: gtiff\n")
    assert main(["predict", str(src), "--model", str(bicubic_model_path), "-o", "sr2.tif"]) == 0
    with rasterio.open(work / "sr2.tif") as sr:
        assert sr.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG"
    capsys.readouterr()
    assert main(["predict", str(src), "--model", str(bicubic_model_path), "-o", "sr3.tif",
                 "--params", "missing.yaml"]) != 0
    assert "missing.yaml" in one_error_line(capsys.readouterr().err)


def test_registry_uri_without_a_tracking_store_is_a_clear_error(tmp_path, monkeypatch, capsys):
    for var in ("MLFLOW_TRACKING_URI", "SATSR_TRACKING_ROOT", "DVC_ROOT"):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    src = scene(work)
    assert main(["predict", str(src), "--model", "models:/satsr@champion", "-o", "sr.tif"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "models:/satsr@champion" in line and "no MLflow tracking store is configured" in line
    assert "(expected MLFLOW_TRACKING_URI=" in line
    assert sorted(p.name for p in work.iterdir()) == ["s.tif"]  # no mlflow.db, no mlruns
    # A configured store that does not exist is not created either.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'nope.db'}")
    assert main(["predict", str(src), "--model", "models:/satsr@champion", "-o", "sr.tif"]) == 1
    assert "does not exist" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in work.iterdir()) == ["s.tif"]


# ------------------------------------------------------------------ 14, 15: RGB, quicklook label
@pytest.mark.parametrize("fmt, dtype", [("cog", "uint16"), ("gtiff", "float32")])
def test_output_opens_as_rgb_with_band_descriptions(tmp_path, nearest, fmt, dtype):
    out = predict(scene(tmp_path), nearest, tmp_path / "o.tif", output_format=fmt, output_dtype=dtype,
                  params=Params())[0]
    with rasterio.open(out) as sr:
        assert sr.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        assert sr.descriptions == ("red (band 1)", "green (band 2)", "blue (band 3)")
        assert sr.tags(ns="IMAGE_STRUCTURE").get("LAYOUT", "") == ("COG" if fmt == "cog" else "")
    assert not list(tmp_path.glob("*.aux.xml"))  # in the TIFF itself, not a side file


def test_quicklook_label_names_the_model_and_its_version(random_model):
    from dataclasses import replace

    registered = replace(random_model, uri="models:/satsr@champion", name="satsr", version="7")
    assert model_label(registered) == "SR: satsr v7"
    assert model_label(random_model) == "SR: edsr_random (edsr_random.keras)"
    assert "SRsatsr" not in model_label(registered)


def test_outputs_record_their_inputs(tmp_path, nearest):
    src = scene(tmp_path)
    with rasterio.open(predict(src, nearest, tmp_path / "o.tif", params=Params())[0]) as sr:
        assert json.loads(sr.tags()["SATSR_INPUTS"]) == [str(src)] and sr.crs == UTM_20S

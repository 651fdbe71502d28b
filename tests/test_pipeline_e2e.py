"""End to end: the data stages of the real `dvc repro` in a scratch copy, on a tiny config."""

import json
import shutil

import pandas as pd
import pytest
from scratch import make_copy, run

from satsr.data.manifest import read_manifest

pytestmark = pytest.mark.slow

TINY = {
    "source": {"lr_size": 32, "demo": {"n_pairs": 16, "n_locations": 8, "bad_fraction": 0.25}},
    "split": {"group_cell_m": 2000.0},
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    repo = make_copy(tmp_path_factory.mktemp("e2e") / "repo", TINY)
    run(["dvc", "repro", "png"], repo)
    return repo


def test_repro_builds_every_data_stage(pipeline):
    raw = read_manifest(pipeline / "data/raw")
    assert len(raw) == 16 and raw["is_demo"].all()
    report = pd.read_csv(pipeline / "data/filter/report.csv")
    assert set(report["pair_id"]) == set(raw["pair_id"])
    rejected = report[report["status"] == "rejected"]
    assert len(rejected) >= 1 and rejected["reasons"].str.len().gt(0).all()
    split = pd.read_csv(pipeline / "data/split/split.csv")
    assert set(split["pair_id"]) == set(report.loc[report["status"] == "accepted", "pair_id"])
    for _, row in split.iterrows():
        assert (pipeline / f"data/png/{row['split']}_LR/{row['pair_id']}.png").is_file()
        assert (pipeline / f"data/png/{row['split']}_HR/{row['pair_id']}.png").is_file()
    stats = json.loads((pipeline / "metrics/png_stats.json").read_text())
    assert "train" in stats
    assert (pipeline / "dvc.lock").is_file()
    assert (pipeline / "data/filter/contact_sheet.html").is_file()


def test_second_repro_is_a_noop(pipeline):
    out = run(["dvc", "repro", "png"], pipeline).stdout
    assert "didn't change, skipping" in out or "up to date" in out
    assert "Running stage" not in out
    assert "changed" not in run(["dvc", "status", "png"], pipeline).stdout


def test_metrics_are_visible_to_dvc(pipeline):
    shown = run(["dvc", "metrics", "show", "--json"], pipeline).stdout
    assert "filter.json" in shown and "png_stats.json" in shown


def test_param_change_reruns_only_downstream_stages(pipeline, tmp_path):
    repo = tmp_path / "copy"
    shutil.copytree(pipeline, repo, symlinks=True)
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("seed: 42\n  train:", "seed: 43\n  train:"))
    out = run(["dvc", "repro", "png"], repo).stdout
    assert "Running stage 'split'" in out
    assert "Running stage 'source'" not in out and "Running stage 'filter'" not in out


def test_dvc_push_pull_round_trip(pipeline, tmp_path):
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-f", "-d", "roundtrip", str(remote)], pipeline)
    try:
        run(["dvc", "push"], pipeline)
        assert any(remote.rglob("*"))
        before = {p.relative_to(pipeline): p.read_bytes() for p in (pipeline / "data/png").rglob("*.png")}
        shutil.rmtree(pipeline / "data/png")
        shutil.rmtree(pipeline / ".dvc/cache")
        run(["dvc", "pull", "png"], pipeline)
        after = {p.relative_to(pipeline): p.read_bytes() for p in (pipeline / "data/png").rglob("*.png")}
        assert before == after and len(before) > 0
    finally:
        run(["dvc", "remote", "default", "local"], pipeline)

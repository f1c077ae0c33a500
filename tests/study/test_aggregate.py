"""`at2seld-study aggregate`: mean ± sd over seeds and paired SELD differences, checked on hand-made study.json files."""

import json

import pytest

from at2seld.study.aggregate import write_aggregate
from at2seld.study.cli import main as study_main


def scores(seld, er=1.0, f=0.1, le=90.0, lr=0.5):
    return {"ER": er, "F": f, "LE": le, "LR": lr, "SELD": seld}


def write_study(folder, seed, base, focal, cal05, oracle_act, training_extra=None):
    folder.mkdir(parents=True)
    study = {
        "training": {"max_steps": 10, "seed": seed, **(training_extra or {})},
        "data": [{"name": "a", "dataset": "synthetic", "data_dir": "/d"}],
        "spec": {"base": {}, "variants": {"focal_loss": {"sed_loss": "focal"}}},
        "base_config": {"fields": {"fusion": "late"}},
        "diagnostics": {
            "primary": "a",
            "variants": {"rows": {"base": scores(base), "focal_loss": scores(focal)}},
            "calibration": {"a": {"thresholds 0.5": scores(cal05), "calibrated": scores(base), "thresholds": None}},
            "oracle": {"a": {"predicted": scores(base), "oracle_activity": scores(oracle_act),
                             "oracle_doa": scores(base)}},
        },
    }
    (folder / "study.json").write_text(json.dumps(study))
    return folder


def test_mean_sd_and_paired_deltas_by_hand(tmp_path):
    # base SELD 0.8, 0.9, 1.0; focal 0.7, 0.95, 0.85 -> paired deltas -0.1, +0.05, -0.15
    dirs = [write_study(tmp_path / f"s{s}", s, b, f, c, o)
            for s, b, f, c, o in ((0, 0.8, 0.7, 0.9, 0.6), (1, 0.9, 0.95, 0.8, 0.7), (2, 1.0, 0.85, 1.1, 0.5))]
    path = write_aggregate(dirs, tmp_path / "agg")
    agg = json.loads((tmp_path / "agg" / "aggregate.json").read_text())
    focal = agg["variants"]["focal_loss"]
    assert focal["SELD"]["mean"] == pytest.approx(2.5 / 3)
    # sample sd of (0.7, 0.95, 0.85): mean 0.8333, squares 0.017778 + 0.013611 + 0.000278 = 0.031667 / 2 -> 0.12583
    assert focal["SELD"]["sd"] == pytest.approx(0.125830, abs=1e-6)
    d = focal["delta_seld"]
    assert d["deltas"] == pytest.approx([-0.1, 0.05, -0.15])
    assert d["mean"] == pytest.approx(-0.2 / 3) and d["better_in"] == 2 and d["n"] == 3
    # sd of (-0.1, 0.05, -0.15) around -0.0667: 0.001111 + 0.013611 + 0.006944 = 0.021667 / 2 -> 0.104083
    assert d["sd"] == pytest.approx(0.104083, abs=1e-6)
    cal = agg["calibration"]["a"]["delta_seld"]  # calibrated (= base) minus 0.5: -0.1, +0.1, -0.1
    assert cal["deltas"] == pytest.approx([-0.1, 0.1, -0.1]) and cal["better_in"] == 2
    act = agg["oracle"]["a"]["oracle_activity"]["delta_seld"]  # 0.6-0.8, 0.7-0.9, 0.5-1.0
    assert act["deltas"] == pytest.approx([-0.2, -0.2, -0.5]) and act["better_in"] == 3
    text = path.read_text()
    assert "| focal_loss | 1.000 ± 0.000 | 0.100 ± 0.000 | 90.0 ± 0.0 | 0.500 ± 0.000 | 0.833 ± 0.126 | " \
           "-0.067 ± 0.104 | 2 of 3 |" in text
    assert "seeds [0, 1, 2]" in text


def test_repeats_must_differ_only_in_the_seed(tmp_path):
    a = write_study(tmp_path / "a", 0, 0.8, 0.7, 0.9, 0.6)
    b = write_study(tmp_path / "b", 1, 0.8, 0.7, 0.9, 0.6, training_extra={"max_steps": 20})
    c = write_study(tmp_path / "c", 0, 0.8, 0.7, 0.9, 0.6)
    with pytest.raises(ValueError, match="more than the seed"):
        write_aggregate([a, b], tmp_path / "x")
    with pytest.raises(ValueError, match="same seed"):
        write_aggregate([a, c], tmp_path / "x")
    with pytest.raises(SystemExit):  # usage error: one folder only
        study_main(["aggregate", str(a), "--output_dir", str(tmp_path / "x")])
    with pytest.raises(SystemExit):
        study_main(["aggregate", str(a), str(tmp_path / "missing"), "--output_dir", str(tmp_path / "x")])

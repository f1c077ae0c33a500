"""at2seld-study: spec checks, --data parsing, the transfer class path (hand-computed), and one tiny end-to-end study
(two synthetic profiles, base + one variant) whose REPORT.md must carry the numbers of study.json and whose second
invocation must re-use the finished runs."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from at2seld.data import CLASS_NAMES, SYNTH_CLASSES, class_mapping, synthesize
from at2seld.study import (
    DEFAULT_SPEC_PATH,
    StudyTraining,
    load_spec,
    parse_data_arg,
    run_study,
    score_transfer,
    train_or_reuse,
    transfer_class_map,
    validate_spec,
)
from at2seld.study.cli import main as cli_main
from at2seld.study.runner import CALIBRATED, FIXED, STUDY_FILE, DataSource, run_dir
from at2seld.training import run as training_run


# ----------------------------------------------------------------------------------------------------------- spec
def test_default_spec_has_the_three_paper_variants():
    spec = load_spec()
    assert spec.path == str(DEFAULT_SPEC_PATH)
    assert spec.base == {"class_balancing": True, "sed_loss": "bce", "doa_supervision": "active"}
    assert spec.variants == {"no_class_balancing": {"class_balancing": False}, "focal_loss": {"sed_loss": "focal"},
                             "doa_all_frames": {"doa_supervision": "all"}}
    # a variant is the base with its overrides on top
    assert spec.overrides("focal_loss") == {"class_balancing": True, "sed_loss": "focal", "doa_supervision": "active"}
    assert list(spec.select(["doa_all_frames"]).variants) == ["doa_all_frames"]
    with pytest.raises(ValueError, match="nope"):
        spec.select(["nope"])


@pytest.mark.parametrize(
    "text, key",
    [
        ("base: {sed_los: bce}\n", "sed_los"),  # unknown key
        ("base: {sed_loss: mse}\n", "sed_loss"),  # impossible value
        ("variants:\n  v: {doa_supervision: sometimes}\n", "doa_supervision"),
        ("variants:\n  v: {class_balancing: 'yes'}\n", "class_balancing"),
        ("variants:\n  v: {focal_gamma: -1}\n", "focal_gamma"),
        ("variants:\n  base: {sed_loss: focal}\n", "base"),  # reserved run name
        ("variants:\n  v: {}\n", "v"),  # would repeat the base run
        ("base: {}\nvariant: {}\n", "variant"),  # unknown top-level key
    ],
)
def test_spec_errors_name_file_and_key(tmp_path, text, key):
    path = tmp_path / "my_spec.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_spec_sed_loss_error_says_what_is_allowed():
    with pytest.raises(ValueError, match=r"x.yaml: `variants.v.sed_loss` must be bce \| focal, got 'mse'"):
        validate_spec({"variants": {"v": {"sed_loss": "mse"}}}, "x.yaml")


def test_missing_spec_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_spec(tmp_path / "none.yaml")


# ------------------------------------------------------------------------------------------------------ --data
def test_parse_data_arg(tmp_path):
    src = parse_data_arg(f"synth_a=synthetic:{tmp_path}")
    assert src == DataSource("synth_a", "synthetic", str(tmp_path.resolve()))
    # the folder may contain ':' (only the first one separates data set and folder)
    odd = tmp_path / "x:y"
    odd.mkdir()
    assert parse_data_arg(f"n=starss23:{odd}").data_dir == str(odd.resolve())


@pytest.mark.parametrize(
    "text, message",
    [
        ("synthetic:/tmp", "no '='"),
        ("a=synthetic", "no ':'"),
        ("a=starss24:/tmp", "unknown data set 'starss24'"),
        ("a b=synthetic:/tmp", "the name 'a b'"),
        ("a=synthetic:", "empty folder"),
    ],
)
def test_bad_data_syntax(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_data_arg(text)


def test_missing_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_data_arg(f"a=synthetic:{tmp_path / 'absent'}")


def test_cli_reports_bad_input_as_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["run", "--output_dir", str(tmp_path / "o"), "--data", "synth_a:synthetic:/x"])
    assert exit_.value.code == 2
    assert "no '='" in capsys.readouterr().err
    spec = tmp_path / "bad.yaml"
    spec.write_text("variants:\n  v: {sed_loss: focus}\n")
    with pytest.raises(SystemExit):
        cli_main(["run", "--output_dir", str(tmp_path / "o"), "--data", f"a=synthetic:{tmp_path}", "--spec", str(spec)])
    err = capsys.readouterr().err
    assert str(spec) in err and "sed_loss" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit):
        cli_main(["run", "--output_dir", str(tmp_path / "o"), "--data", f"e=synthetic:{empty}"])
    err = capsys.readouterr().err
    assert "--data e=synthetic:" in err and "foa_dev" in err
    with pytest.raises(SystemExit):
        cli_main(["run", "--output_dir", str(tmp_path / "o"), "--data", f"a=synthetic:{tmp_path}",
                  "--data", f"a=synthetic:{tmp_path}"])
    assert "given twice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["report", "--output_dir", str(tmp_path / "nothing")])
    assert "study.json" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing was started


# ------------------------------------------------------------------------------------------------------- transfer
def test_transfer_maps_source_classes_and_scores_only_reachable_target_classes():
    # STARSS23 classes a STARSS model can put in the TAU-NIGENS 2021 label set
    starss, tau = CLASS_NAMES["starss23"], CLASS_NAMES["tau2021"]
    mapping = transfer_class_map("starss23", "tau2021")
    assert mapping == class_mapping("starss23", "tau2021")
    expected = {"Female speech, woman speaking": "female_speech", "Male speech, man speaking": "male_speech",
                "Telephone": "phone", "Walk, footsteps": "footsteps", "Knock": "knock"}
    assert {starss[s]: tau[t] for s, t in mapping.items()} == expected
    # reference: one event per reachable class (own frames and direction) plus a dog, which no STARSS class maps to
    refs, preds = [], []
    for k, (s_name, t_name) in enumerate(expected.items()):
        az, el = -150.0 + 60 * k, 0.0  # on the horizon a 2 degree azimuth offset is a 2 degree angle
        for f in range(10 * k, 10 * k + 10):
            refs.append((f, tau.index(t_name), 0, az, el))
            preds.append((f, starss.index(s_name), 0, az + 2.0, el))  # 2 degrees off: a hit
    refs += [(f, tau.index("dog"), 1, 90.0, 0.0) for f in range(20)]
    res = score_transfer({"r": preds}, {"r": refs}, "starss23", "tau2021")
    assert sorted(res["scored_classes"]) == sorted(expected.values())
    # every scored reference is found within 20 degrees and nothing else is predicted: ER 0, F 1, LE 2, LR 1
    assert res["ER"] == pytest.approx(0.0, abs=1e-6) and res["F"] == pytest.approx(1.0, abs=1e-6)
    assert res["LE"] == pytest.approx(2.0, abs=0.051) and res["LR"] == pytest.approx(1.0, abs=1e-6)
    assert res["SELD"] == pytest.approx(2.0 / 180 / 4, abs=1e-3)
    # the same detections pointing 90 degrees away are no location-aware hits
    wrong = [(f, c, n, az + 90.0, el) for f, c, n, az, el in preds]
    assert score_transfer({"r": wrong}, {"r": refs}, "starss23", "tau2021")["F"] == pytest.approx(0.0, abs=1e-6)


def test_transfer_same_label_set_keeps_every_class():
    # synthetic profile a -> b: identity over all 10 classes; a class the model never outputs is a miss (F 0)
    assert transfer_class_map("synthetic", "synthetic") == {i: i for i in range(len(SYNTH_CLASSES))}
    tone, clap = SYNTH_CLASSES.index("tone"), SYNTH_CLASSES.index("clapping")
    refs = [(f, tone, 0, 30.0, 0.0) for f in range(20)] + [(f, clap, 1, -60.0, 0.0) for f in range(20)]
    preds = [(f, tone, 0, 30.0, 0.0) for f in range(20)]
    res = score_transfer({"r": preds}, {"r": refs}, "synthetic", "synthetic")
    assert res["scored_classes"] == list(SYNTH_CLASSES)
    assert res["classwise"]["F"][tone] == pytest.approx(1.0, abs=1e-6)
    assert res["classwise"]["F"][clap] == pytest.approx(0.0, abs=1e-6)
    assert res["ER"] == pytest.approx(0.5, abs=1e-6)  # 2 reference events per 1 s block, 1 deleted


# ----------------------------------------------------------------------------------------------- tiny study (E2E)
@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("study")
    synthesize(root / "a", n_train=3, n_val=1, n_test=1, duration_s=3.0, seed=1, profile="a")
    synthesize(root / "b", n_train=3, n_val=1, n_test=1, duration_s=3.0, seed=2, profile="b")
    spec = root / "spec.yaml"
    spec.write_text("base: {class_balancing: true, backbone_type: none, fusion: none}\n"
                    "variants:\n  focal_loss: {sed_loss: focal}\n")
    sources = [parse_data_arg(f"synth_a=synthetic:{root / 'a'}"), parse_data_arg(f"synth_b=synthetic:{root / 'b'}")]
    training = StudyTraining(max_steps=4, batch_size=2, eval_steps=2, chunk_length_s=2.0)
    calls = []

    def counting_run(*args, **kwargs):
        calls.append(args[3].output_dir)
        return training_run(*args, **kwargs)

    out = root / "out"
    run_study(out, sources, load_spec(spec), tiny=True, training=training, command=["at2seld-study", "run"],
              train_fn=counting_run)
    return {"out": out, "sources": sources, "spec": load_spec(spec), "training": training, "calls": calls,
            "root": root}


def _table(md: str, first_header: str, after: str = "") -> dict[str, list[str]]:
    """Rows (first cell -> other cells) of the first Markdown table whose header starts with `first_header` and
    that comes after the text `after`."""
    text = md[md.index(after):] if after else md
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    rows["__header__"] = [c.strip() for c in lines[start].strip("|").split("|")]
    return rows


def _check_row(cells, m, reference_seld):
    er, f, le, lr, seld, delta = (float(c) for c in cells)
    assert er == pytest.approx(m["ER"], abs=6e-4) and f == pytest.approx(m["F"], abs=6e-4)
    assert le == pytest.approx(m["LE"], abs=0.051) and lr == pytest.approx(m["LR"], abs=6e-4)
    assert seld == pytest.approx(m["SELD"], abs=6e-4)
    assert delta == pytest.approx(m["SELD"] - reference_seld, abs=6e-4)


def test_tiny_study_trains_every_run_once_and_writes_the_layout(tiny_study):
    out = tiny_study["out"]
    # base on both data sets, the variant on the primary one
    assert sorted(Path(p).relative_to(out / "runs").as_posix() for p in tiny_study["calls"]) == [
        "synth_a/base", "synth_a/focal_loss", "synth_b/base"]
    for rel in ("synth_a/base", "synth_a/focal_loss", "synth_b/base"):
        folder = out / "runs" / rel
        assert (folder / "metrics.json").is_file() and (folder / "model.safetensors").is_file()
        assert not list(folder.glob("checkpoint-*"))  # removed after the run
    study = json.loads((out / STUDY_FILE).read_text())
    assert study["command"] == ["at2seld-study", "run"]
    assert study["base_config"]["tiny"] is True and study["training"]["max_steps"] == 4
    assert {"torch", "transformers", "at2seld", "python"} <= set(study["versions"])
    assert study["wall_time_s"] > 0
    for png in ("plots/variants_seld.png", "plots/transfer_seld.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_study_numbers_agree_with_the_training_runs(tiny_study):
    out = tiny_study["out"]
    study = json.loads((out / STUDY_FILE).read_text())
    diag = study["diagnostics"]
    for name in ("synth_a", "synth_b"):
        metrics = json.loads((run_dir(out, name, "base") / "metrics.json").read_text())["test"]
        # the transfer diagonal re-predicts and re-scores the saved model: the run's own calibrated test score
        cell = diag["transfer"]["matrix"][name][name]
        for k in ("ER", "F", "LE", "LR", "SELD"):
            assert cell[k] == pytest.approx(metrics[CALIBRATED][k], abs=1e-9)
            assert diag["calibration"][name]["thresholds 0.5"][k] == pytest.approx(metrics[FIXED][k], abs=1e-9)
            # the oracle's "predicted" scoring is the same decode again
            assert diag["oracle"][name]["predicted"][k] == pytest.approx(metrics[CALIBRATED][k], abs=1e-9)
    variant = json.loads((run_dir(out, "synth_a", "focal_loss") / "metrics.json").read_text())["test"][CALIBRATED]
    assert diag["variants"]["rows"]["focal_loss"]["SELD"] == pytest.approx(variant["SELD"], abs=1e-9)
    # the variant really trained with the focal loss, the base with BCE and class balancing
    cfg_v = json.loads((run_dir(out, "synth_a", "focal_loss") / "config.json").read_text())
    cfg_b = json.loads((run_dir(out, "synth_a", "base") / "config.json").read_text())
    assert cfg_v["sed_loss"] == "focal" and cfg_b["sed_loss"] == "bce" and cfg_b["class_pos_weight"] is not None


def test_report_tables_carry_the_study_numbers(tiny_study):
    out = tiny_study["out"]
    study = json.loads((out / STUDY_FILE).read_text())
    diag = study["diagnostics"]
    md = (out / "REPORT.md").read_text()
    header = ["ER20", "F20", "LE_CD (deg)", "LR_CD", "SELD", "ΔSELD"]

    variants = _table(md, "variant")
    assert variants["__header__"] == ["variant", *header]
    rows = diag["variants"]["rows"]
    assert set(variants) - {"__header__"} == {"base", "focal_loss"}
    for name in ("base", "focal_loss"):
        _check_row(variants[name], rows[name], rows["base"]["SELD"])
    assert float(variants["base"][-1]) == 0.0

    cal = _table(md, "system", after="## Calibration")
    cal_a = diag["calibration"]["synth_a"]
    _check_row(cal["synth_a: thresholds 0.5"], cal_a["thresholds 0.5"], cal_a["calibrated"]["SELD"])
    _check_row(cal["synth_a: calibrated"], cal_a["calibrated"], cal_a["calibrated"]["SELD"])

    oracle = _table(md, "scoring", after="`synth_b`:\n")
    for name in ("predicted", "oracle_activity", "oracle_doa"):
        _check_row(oracle[name], diag["oracle"]["synth_b"][name], diag["oracle"]["synth_b"]["predicted"]["SELD"])

    matrix = diag["transfer"]["matrix"]
    seld = _table(md, "train \\ test", after="## Transfer")
    assert seld["__header__"] == ["train \\ test", "synth_a", "synth_b"]
    assert set(seld) - {"__header__"} == {"synth_a", "synth_b"}  # 2 x 2
    f_le = _table(md, "train \\ test", after="F20 / LE_CD")
    for i, src in enumerate(("synth_a", "synth_b")):
        for j, tgt in enumerate(("synth_a", "synth_b")):
            assert float(seld[src][j]) == pytest.approx(matrix[src][tgt]["SELD"], abs=6e-4)
            f, le = (float(x) for x in f_le[src][j].split("/"))
            assert f == pytest.approx(matrix[src][tgt]["F"], abs=6e-4)
            assert le == pytest.approx(matrix[src][tgt]["LE"], abs=0.051)
    assert "](plots/variants_seld.png)" in md and "](plots/transfer_seld.png)" in md


def test_second_invocation_reuses_finished_runs(tiny_study, capsys):
    out = tiny_study["out"]
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("metrics.json")}
    calls = []

    def must_not_train(*args, **kwargs):
        calls.append(args)
        raise AssertionError("a finished run was trained again")

    study = run_study(out, tiny_study["sources"], tiny_study["spec"], tiny=True, training=tiny_study["training"],
                      train_fn=must_not_train)
    assert calls == []
    assert all(r["reused"] for r in study["runs"].values())
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert "3 re-used" in (out / "REPORT.md").read_text()
    # other settings for the same folders: an error, not a silent re-use
    with pytest.raises(ValueError, match="other settings"):
        run_study(out, tiny_study["sources"], tiny_study["spec"], tiny=True,
                  training=StudyTraining(max_steps=5, batch_size=2, eval_steps=2, chunk_length_s=2.0),
                  train_fn=must_not_train)
    # `report` re-renders REPORT.md from study.json alone
    (out / "REPORT.md").unlink()
    assert cli_main(["report", "--output_dir", str(out)]) == 0
    assert "## Transfer matrix" in (out / "REPORT.md").read_text()


def test_same_seed_same_run(tiny_study):
    # a run trained again in a fresh folder (after other runs in this process) gives the same test scores
    out = tiny_study["root"] / "again"
    src = tiny_study["sources"][1]
    torch.manual_seed(12345)  # whatever ran before leaves the global generators elsewhere
    np.random.seed(12345)
    results, reused = train_or_reuse(src, "base", tiny_study["spec"].overrides("base"), tiny_study["training"], out,
                                     tiny=True)
    assert not reused
    first = json.loads((run_dir(tiny_study["out"], src.name, "base") / "metrics.json").read_text())["test"]
    for system in (FIXED, CALIBRATED):
        for k in ("ER", "F", "LE", "LR", "SELD"):
            assert results["test"][system][k] == pytest.approx(first[system][k], abs=1e-6)


def test_study_training_arguments_are_checked():
    with pytest.raises(ValueError, match="max_steps"):
        StudyTraining(max_steps=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        StudyTraining(max_steps=10, warmup_steps=10)
    assert StudyTraining(max_steps=300).resolved_eval_steps == 75
    assert StudyTraining(max_steps=300).resolved_warmup_steps == 30
    assert np.isclose(StudyTraining().learning_rate, 3e-3)

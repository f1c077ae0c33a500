"""The `at2seld-evaluate` command and the `evaluate` metric module, on hand-scored files."""

import json
from pathlib import Path

import pytest

from at2seld.decoding_at2seld import write_dcase_csv
from at2seld.evaluation import SELD_METRIC_PATH
from at2seld.evaluation.cli import main

# Same case as test_metrics_hand.test_two_blocks_...: 3 classes, 2 blocks.
REF = [(t, 0, 0, 0.0, 0.0) for t in range(20)] + [(t, 1, 1, 90.0, 0.0) for t in range(10, 15)]
PRED = (
    [(t, 0, 0, 30.0, 0.0) for t in range(10)]
    + [(t, 0, 0, 5.0, 0.0) for t in range(10, 20)]
    + [(t, 2, 1, 0.0, 0.0) for t in range(10, 13)]
)


def _folders(tmp_path, cartesian):
    ref_dir, pred_dir = tmp_path / "metadata_dev", tmp_path / "pred"
    (ref_dir / "dev-test-sony").mkdir(parents=True)
    pred_dir.mkdir()
    write_dcase_csv(REF, ref_dir / "dev-test-sony" / "fold4_room1_mix001.csv")
    write_dcase_csv(PRED, pred_dir / "fold4_room1_mix001.csv", cartesian=cartesian)
    return str(ref_dir), str(pred_dir)


@pytest.mark.parametrize("cartesian", [True, False])
def test_cli_json_macro_and_micro(tmp_path, capsys, cartesian):
    ref, pred = _folders(tmp_path, cartesian)
    assert main(["--ref", ref, "--pred", pred, "--json", "--num-classes", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    # hand-scored in test_metrics_hand: ER 2/3, macro F 1/6, LE (17.5 + 180 + 180)/3, LR 1/3
    assert out["ER"] == pytest.approx(2 / 3)
    assert out["F"] == pytest.approx(1 / 6)
    assert out["LE"] == pytest.approx(377.5 / 3)
    assert out["LR"] == pytest.approx(1 / 3)
    assert set(out["classwise"]) == {"ER", "F", "LE", "LR", "SELD"} and len(out["classwise"]["F"]) == 3
    assert main(["--ref", ref, "--pred", pred, "--json", "--num-classes", "3", "--average", "micro"]) == 0
    micro = json.loads(capsys.readouterr().out)
    assert (micro["F"], micro["LE"], micro["LR"]) == (pytest.approx(1 / 3), pytest.approx(17.5), pytest.approx(2 / 3))
    assert "classwise" not in micro


def test_cli_text_output_and_errors(tmp_path, capsys):
    ref, pred = _folders(tmp_path, True)
    assert main(["--ref", ref, "--pred", pred, "--num-classes", "3"]) == 0
    assert "SELD score" in capsys.readouterr().out
    # a reference recording without prediction file is an error by default
    write_dcase_csv(REF, Path(ref) / "dev-test-sony" / "fold4_room1_mix002.csv")
    assert main(["--ref", ref, "--pred", pred, "--num-classes", "3"]) == 2
    assert "no prediction" in capsys.readouterr().err
    assert main(["--ref", ref, "--pred", pred, "--num-classes", "3", "--missing", "empty", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_files"] == 2
    assert main(["--ref", str(tmp_path / "nope"), "--pred", pred]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_console_script_is_declared():
    setup = (Path(__file__).parents[2] / "setup.py").read_text()
    assert "at2seld-evaluate=at2seld.evaluation.cli:main" in setup


def test_evaluate_metric_module_offline(monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    seld = evaluate.load(SELD_METRIC_PATH)
    ref = [[t, 0, 0, 0.0, 0.0] for t in range(10)]
    pred = [[t, 0, 0, 10.0, 0.0] for t in range(10)]
    # recording 1: hit 10 deg off; recording 2: nothing predicted -> micro: TP 1, FN 1
    out = seld.compute(predictions=[pred, []], references=[ref, ref], num_classes=1, average="micro")
    assert out["F"] == pytest.approx(2 / 3)
    assert out["LE"] == pytest.approx(10.0)
    assert out["LR"] == pytest.approx(0.5)
    assert out["ER"] == pytest.approx(0.5)
    assert out["num_files"] == 2

"""Threshold calibration and oracle-activity analysis on constructed outputs with known answers."""

import numpy as np
import pytest

from at2seld.evaluation.calibration import calibrate_thresholds
from at2seld.evaluation.oracle import oracle_analysis


def _unit(az_deg):
    a = np.deg2rad(az_deg)
    return np.array([np.cos(a), np.sin(a), 0.0])


def _calibration_case():
    # 40 frames (4 blocks), 1 track, 2 classes. Class 0 is active in frames 0-19 at azimuth 0 and class 1
    # in frames 20-39 at azimuth 90. The model is under-confident on class 0 (p = 0.3 when active, 0.02
    # otherwise) and over-eager on class 1 (p = 0.8 when active, but 0.6 in frames 0-19 too).
    ref = [(t, 0, 0, 0.0, 0.0) for t in range(20)] + [(t, 1, 0, 90.0, 0.0) for t in range(20, 40)]
    probs = np.zeros((40, 1, 2))
    probs[:20, 0, 0], probs[20:, 0, 0] = 0.3, 0.02
    probs[:20, 0, 1], probs[20:, 0, 1] = 0.6, 0.8
    doa = np.zeros((40, 1, 3))
    doa[:20, 0], doa[20:, 0] = _unit(0), _unit(90)
    return {"rec": {"sed_probs": probs, "doa": doa}}, {"rec": ref}


@pytest.mark.parametrize("objective", ["f", "seld"])
def test_calibration_improves_f_on_a_constructed_case(objective):
    outputs, refs = _calibration_case()
    thr, report = calibrate_thresholds(outputs, refs, 2, objective=objective)
    # at 0.5: class 0 never detected (2 FN blocks), class 1 has 2 FP blocks and 2 TP blocks
    # -> class 0 F = 0, class 1 F = 2 / (2 + 0.5 * 2) = 2/3 -> macro F = 1/3
    assert report["before"]["F"] == pytest.approx(1 / 3)
    # any threshold in [0.02, 0.3) for class 0 and [0.6, 0.8) for class 1 is perfect
    assert 0.02 <= thr[0] < 0.3 and 0.6 <= thr[1] < 0.8
    assert report["after"]["F"] == pytest.approx(1.0)
    assert report["after"]["SELD"] < report["before"]["SELD"]
    assert report["thresholds"] == thr.tolist()


def test_calibration_rejects_bad_arguments():
    outputs, refs = _calibration_case()
    with pytest.raises(ValueError, match="objective"):
        calibrate_thresholds(outputs, refs, 2, objective="er")
    with pytest.raises(ValueError, match="No model output"):
        calibrate_thresholds({}, refs, 2)
    with pytest.raises(ValueError, match="grid"):
        calibrate_thresholds(outputs, refs, 2, grid=[1.5])


def test_oracle_analysis_separates_detection_from_localization_errors():
    # 20 frames (largest reference frame 14 -> 2 blocks), 2 tracks, 2 classes.
    # reference: class 0 at az 0 in frames 0-9; class 1 at az 90 in frames 5-14.
    ref = [(t, 0, 0, 0.0, 0.0) for t in range(10)] + [(t, 1, 1, 90.0, 0.0) for t in range(5, 15)]
    probs = np.zeros((20, 2, 2))
    doa = np.zeros((20, 2, 3))
    probs[:10, 0, 0] = 0.9  # class 0 found on track 0 ...
    doa[:, 0] = _unit(30)  # ... but 30 deg off
    probs[5:10, 1, 1] = 0.9  # class 1 found in frames 5-9 only (p 0.3 in 10-14: missed) ...
    probs[10:15, 1, 1] = 0.3
    doa[:, 1] = _unit(90)  # ... with the right DOA
    out = oracle_analysis({"r": {"sed_probs": probs, "doa": doa}}, {"r": ref}, 2, average="micro")
    pred, act, orc = out["predicted"], out["oracle_activity"], out["oracle_doa"]
    # predicted: block 0 class 0 FP_spatial (30 deg), class 1 TP; block 1 class 1 FN
    # F = 1 / (1 + 1 + 0.5) ; LE = (30 + 0) / 2
    assert pred["F"] == pytest.approx(0.4)
    assert pred["LE"] == pytest.approx(15.0)
    # oracle activity: every reference event gets the most probable track's DOA: class 0 -> track 0
    # (30 deg, FP_spatial), class 1 -> track 1 in both blocks (0 deg): F = 2 / 3, LE = 30 / 3, LR = 1
    assert act["F"] == pytest.approx(2 / 3)
    assert act["LE"] == pytest.approx(10.0, abs=1e-5)
    assert act["LR"] == pytest.approx(1.0)
    # oracle DOA: class 0 gets the reference DOA (TP), class 1 TP in block 0, still missed in block 1:
    # F = 2 / (2 + 0.5) ; LE = 0 ; ER = D / Nref = 1 / 3
    assert orc["F"] == pytest.approx(0.8)
    assert orc["LE"] == pytest.approx(0.0, abs=1e-5)
    assert orc["ER"] == pytest.approx(1 / 3)

"""DCASE 2019 metrics (TAU2019): hand-scored cases and the official quirks."""

import math

import pytest

from at2seld.evaluation.metrics_2019 import compute_dcase2019_metrics, read_tau2019_metadata, tau2019_events_to_rows


def test_metadata_to_rows(tmp_path):
    p = tmp_path / "split1_ir0_ov1_1.csv"
    p.write_text("sound_event_recording,start_time,end_time,ele,azi,dist\nknock,0.0,0.5,10,-20,2\n")
    events = read_tau2019_metadata(p)
    assert events == [(0, 0.0, 0.5, 10, -20)]  # class knock = 0; elevation before azimuth in the file
    rows = tau2019_events_to_rows(events)
    # frames floor(0 * 50) .. ceil(0.5 * 50) = 0 .. 25 inclusive -> 26 rows (frame, class, azi, ele)
    assert rows.shape == (26, 4) and rows[0].tolist() == [0, 0, -20, 10] and rows[-1][0] == 25


def test_hand_scored_hit_and_false_alarm():
    ref = [(t, 0, 0, 0) for t in range(26)]
    pred = [(t, 0, 10, 0) for t in range(26)]
    out = compute_dcase2019_metrics({"a": ref}, {"a": pred})
    # SED segment 0: TP 1 -> ER 0, F 1; DOA: 26 frames x 10 deg / 26 predictions; all 3000 frames good
    assert out["ER"] == pytest.approx(0.0)
    assert out["F"] == pytest.approx(1.0)
    assert out["LE"] == pytest.approx(10.0)
    assert out["LR"] == pytest.approx(1.0)
    assert out["SELD"] == pytest.approx(10 / 180 / 4)
    # + a false alarm of class 1 at frame 100 (segment 2): I 1 -> ER 1/1; P = 1/2, R = 1 -> F = 2/3;
    # DOA error divides by all 27 predictions (official); frame 100 has 0 refs vs 1 prediction
    out = compute_dcase2019_metrics({"a": ref}, {"a": pred + [(100, 1, 50, 0)]})
    assert out["ER"] == pytest.approx(1.0)
    assert out["F"] == pytest.approx(2 / 3)
    assert out["LE"] == pytest.approx(260 / 27)
    assert out["LR"] == pytest.approx(2999 / 3000)


def test_quirks_grid_quantisation_and_49_frame_segments():
    ref = [(t, 0, 0, 0) for t in range(49)]
    # azimuth 17 falls into the 10-deg cell of 10 -> DOA error exactly 10
    out = compute_dcase2019_metrics({"a": ref}, {"a": [(t, 0, 17, 0) for t in range(49)]})
    assert out["LE"] == pytest.approx(10.0)
    # a false alarm at frame 49 (the 50th frame of segment 0) is not seen by the segment-based SED scores
    base = [(t, 0, 0, 0) for t in range(49)]
    assert compute_dcase2019_metrics({"a": ref}, {"a": base + [(49, 1, 0, 0)]})["ER"] == pytest.approx(0.0)
    assert compute_dcase2019_metrics({"a": ref}, {"a": base + [(48, 1, 0, 0)]})["ER"] == pytest.approx(1.0)


def test_empty_prediction_and_errors():
    ref = [(t, 0, 0, 0) for t in range(10)]
    out = compute_dcase2019_metrics({"a": ref}, {"a": []})
    assert out["ER"] == pytest.approx(1.0) and out["F"] == pytest.approx(0.0)
    assert math.isnan(out["LE"])  # no predicted DOA at all: 0 / 0, as the official code
    with pytest.raises(ValueError, match="no prediction"):
        compute_dcase2019_metrics({"a": ref, "b": ref}, {"a": ref})
    with pytest.raises(ValueError, match="class indices"):
        compute_dcase2019_metrics({"a": ref}, {"a": [(0, 11, 0, 0)]})

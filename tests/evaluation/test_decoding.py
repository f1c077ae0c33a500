"""decode(): thresholds, duplicate merging, median smoothing, distances; DCASE CSV round trips.

Expected rows are worked out by hand: DOA (0, 1, 0) is azimuth 90, elevation 0; (1, 0, 1) is
azimuth 0, elevation 45; the mean direction of azimuths 0 and 10 (elevation 0) is azimuth 5.
"""

import numpy as np
import pytest
import torch

from at2seld.decoding_at2seld import decode, median_filter_time, read_dcase_csv, write_dcase_csv


def _doa(*az_el):
    az, el = np.deg2rad([a for a, _ in az_el]), np.deg2rad([e for _, e in az_el])
    return np.stack([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)], -1)


def test_per_class_thresholds_and_angles():
    probs = np.zeros((2, 2, 2))
    probs[0, 0, 0] = 0.6  # frame 0, track 0, class 0: above 0.5
    probs[0, 1, 1] = 0.7  # frame 0, track 1, class 1: below 0.8
    probs[1, 1, 1] = 0.9  # frame 1, track 1, class 1: above 0.8
    doa = np.zeros((2, 2, 3))
    doa[:, 0] = [0.0, 2.0, 0.0]  # not unit norm: azimuth 90, elevation 0
    doa[:, 1] = [1.0, 0.0, 1.0]  # azimuth 0, elevation 45
    rows = decode(probs, doa, thresholds=[0.5, 0.8], inputs_are_logits=False)
    assert [r[:3] for r in rows] == [(0, 0, 0), (1, 1, 1)]
    assert rows[0][3:] == pytest.approx((90.0, 0.0))
    assert rows[1][3:] == pytest.approx((0.0, 45.0))
    # one global threshold of 0.5 lets the 0.7 through too
    rows = decode(probs, doa, thresholds=0.5, inputs_are_logits=False)
    assert [r[:3] for r in rows] == [(0, 0, 0), (0, 1, 1), (1, 1, 1)]


def test_logits_and_strict_threshold():
    logits = torch.tensor([[[0.0]], [[0.1]]])  # sigmoid: 0.5 (not > 0.5) and 0.525
    doa = torch.tensor([[[1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]]])
    rows = decode(logits, doa, 0.5)
    assert [r[0] for r in rows] == [1]


def test_merge_rule_within_angle_averages_and_keeps_the_more_confident_track():
    probs = np.zeros((1, 3, 1))
    probs[0, :, 0] = [0.6, 0.9, 0.7]
    doa = _doa((0, 0), (10, 0), (120, 0))[None]  # tracks 0 and 1 are 10 deg apart, track 2 far away
    rows = decode(probs, doa, 0.5, merge_angle_deg=15.0, inputs_are_logits=False)
    # track 1 (p 0.9) seeds an event; track 2 (p 0.7) is 110 deg away -> its own event; track 0 (p 0.6)
    # is 10 deg from the seed -> merged: mean of unit vectors at 0 and 10 deg -> azimuth 5, track id 1
    assert [(r[0], r[1], r[2]) for r in rows] == [(0, 0, 1), (0, 0, 2)]
    assert rows[0][3:] == pytest.approx((5.0, 0.0))
    assert rows[1][3:] == pytest.approx((120.0, 0.0))
    # a 5 deg merge angle keeps all three
    rows = decode(probs, doa, 0.5, merge_angle_deg=5.0, inputs_are_logits=False)
    assert [r[2] for r in rows] == [0, 1, 2]
    # different classes are never merged
    probs2 = np.zeros((1, 2, 2))
    probs2[0, 0, 0] = probs2[0, 1, 1] = 0.9
    rows = decode(probs2, _doa((0, 0), (1, 0))[None], 0.5, inputs_are_logits=False)
    assert [(r[1], r[2]) for r in rows] == [(0, 0), (1, 1)]


def test_merge_averages_distances():
    probs = np.full((1, 2, 1), 0.9)
    rows = decode(probs, _doa((0, 0), (4, 0))[None], 0.5, distance=np.array([[2.0, 3.0]]), inputs_are_logits=False)
    assert len(rows) == 1 and rows[0][5] == pytest.approx(2.5) and rows[0][3] == pytest.approx(2.0)


def test_median_filter():
    p = np.array([0.9, 0.1, 0.9, 0.9, 0.1])
    # window 3, edges repeated: [0.9 0.9 0.1] [0.9 0.1 0.9] [0.1 0.9 0.9] [0.9 0.9 0.1] [0.9 0.1 0.1]
    np.testing.assert_allclose(median_filter_time(p, 3), [0.9, 0.9, 0.9, 0.9, 0.1])
    probs = p[:, None, None]
    doa = np.tile([[[1.0, 0.0, 0.0]]], (5, 1, 1))
    assert [r[0] for r in decode(probs, doa, 0.5, inputs_are_logits=False)] == [0, 2, 3]
    assert [r[0] for r in decode(probs, doa, 0.5, median_filter=3, inputs_are_logits=False)] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="odd"):
        decode(probs, doa, 0.5, median_filter=4, inputs_are_logits=False)


def test_decode_rejects_bad_shapes():
    with pytest.raises(ValueError, match="frames, tracks, classes"):
        decode(np.zeros((2, 3)), np.zeros((2, 3)), 0.5)
    with pytest.raises(ValueError, match="doa"):
        decode(np.zeros((2, 3, 4)), np.zeros((2, 2, 3)), 0.5)
    with pytest.raises(ValueError, match="thresholds"):
        decode(np.zeros((2, 3, 4)), np.zeros((2, 3, 3)), [0.5, 0.5])
    with pytest.raises(ValueError, match="outside"):
        decode(np.full((2, 3, 4), 2.0), np.zeros((2, 3, 3)), 0.5, inputs_are_logits=False)


def test_csv_round_trip_polar_and_cartesian(tmp_path):
    rows = [(0, 1, 0, 30.0, -10.0, 2.5), (3, 12, 2, -170.0, 45.0, 1.0)]
    write_dcase_csv(rows, tmp_path / "p.csv")
    write_dcase_csv(rows, tmp_path / "c.csv", cartesian=True)
    assert (tmp_path / "c.csv").read_text().splitlines()[0].count(",") == 6  # frame,class,track,x,y,z,distance
    np.testing.assert_allclose(read_dcase_csv(tmp_path / "p.csv"), rows)
    np.testing.assert_allclose(read_dcase_csv(tmp_path / "c.csv"), rows, atol=1e-9)
    # STARSS23 references: distance in cm, 5/6 fields, optional header
    (tmp_path / "r.csv").write_text("frame,class,source,azimuth,elevation,distance\n5,2,0,-30,10,250\n")
    np.testing.assert_allclose(read_dcase_csv(tmp_path / "r.csv", distance_scale=0.01), [[5, 2, 0, -30, 10, 2.5]])
    (tmp_path / "bad.csv").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="4, 5, 6"):
        read_dcase_csv(tmp_path / "bad.csv")

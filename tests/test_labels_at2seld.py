"""Track-wise targets built from DCASE metadata rows, checked against hand-computed values."""

import math

import numpy as np
import pytest

from at2seld.labels_at2seld import LABEL_FIELDS, doa_to_unit_vector, encode_labels


def test_unit_vectors_follow_dcase_convention():
    np.testing.assert_allclose(doa_to_unit_vector(0, 0), (1, 0, 0), atol=1e-12)  # front
    np.testing.assert_allclose(doa_to_unit_vector(90, 0), (0, 1, 0), atol=1e-12)  # left
    np.testing.assert_allclose(doa_to_unit_vector(-90, 0), (0, -1, 0), atol=1e-12)  # right
    np.testing.assert_allclose(doa_to_unit_vector(180, 0), (-1, 0, 0), atol=1e-12)  # back
    np.testing.assert_allclose(doa_to_unit_vector(37, 90), (0, 0, 1), atol=1e-12)  # up
    h = math.sqrt(0.5)
    np.testing.assert_allclose(doa_to_unit_vector(45, 45), (0.5, 0.5, h), atol=1e-12)


def test_rows_to_tracks_by_hand():
    # STARSS23-style rows: frame, class, source, azimuth, elevation, distance (m)
    rows = [
        (0, 4, 0, 90, 0, 1.5),  # laughter on the left at 1.5 m
        (2, 1, 0, 0, 0, None),  # maleSpeech in front, unknown distance
        (2, 1, 1, 180, 0, 2.0),  # a second maleSpeech (same class, other source) behind
        (2, 0, 3, 0, 90, 1.0),  # femaleSpeech above
    ]
    y = encode_labels(rows, num_frames=4, num_classes=13, num_tracks=3)
    assert y.shape == (4, 3, LABEL_FIELDS) and y.dtype == np.float32
    # frame 0: one event on track 0
    np.testing.assert_allclose(y[0, 0], [1, 4, 0, 1, 0, 1.5], atol=1e-6)
    np.testing.assert_array_equal(y[0, 1:], 0)
    # frames 1 and 3: silent
    np.testing.assert_array_equal(y[1], 0)
    np.testing.assert_array_equal(y[3], 0)
    # frame 2: ordered by (class, source): femaleSpeech(0) src 3, maleSpeech(1) src 0, maleSpeech(1) src 1
    np.testing.assert_allclose(y[2, 0], [1, 0, 0, 0, 1, 1.0], atol=1e-6)
    np.testing.assert_allclose(y[2, 1], [1, 1, 1, 0, 0, 0.0], atol=1e-6)
    np.testing.assert_allclose(y[2, 2], [1, 1, -1, 0, 0, 2.0], atol=1e-6)


def test_same_class_twice_gives_two_active_tracks_with_their_own_doas():
    rows = [(5, 2, 0, 30, 10), (5, 2, 1, -120, -20)]  # 5-field (DCASE 2021) rows, two clapping sources
    y = encode_labels(rows, num_frames=6, num_classes=12, num_tracks=3)
    assert y[5, :, 0].tolist() == [1, 1, 0]
    assert y[5, 0, 1] == 2 and y[5, 1, 1] == 2
    np.testing.assert_allclose(y[5, 0, 2:5], doa_to_unit_vector(30, 10), atol=1e-6)
    np.testing.assert_allclose(y[5, 1, 2:5], doa_to_unit_vector(-120, -20), atol=1e-6)
    assert np.all(y[5, :2, 5] == 0)  # no distance column -> 0


def test_too_many_events_keep_first_tracks_and_warn():
    rows = [(0, c, 0, 10 * c, 0) for c in (3, 1, 2, 0)]
    with pytest.warns(UserWarning, match="1 event"):
        y = encode_labels(rows, num_frames=1, num_classes=13, num_tracks=3)
    assert y[0, :, 1].tolist() == [0, 1, 2]  # class 3 dropped


def test_rows_beyond_audio_are_dropped_with_a_warning():
    rows = [(0, 1, 0, 0, 0), (10, 1, 0, 0, 0), (11, 1, 0, 0, 0)]
    with pytest.warns(UserWarning, match="2 metadata row"):
        y = encode_labels(rows, num_frames=10, num_classes=13)
    assert y[:, :, 0].sum() == 1


@pytest.mark.parametrize(
    "row,match",
    [
        ((0, 13, 0, 0, 0), "class index 13"),
        ((0, -1, 0, 0, 0), "class index -1"),
        ((-1, 0, 0, 0, 0), "frame"),
        ((1.5, 0, 0, 0, 0), "frame"),
        ((0, 0, 0, 0), "4 fields"),
        ((0, 0, 0, float("nan"), 0), "finite"),
    ],
)
def test_bad_rows_raise(row, match):
    with pytest.raises(ValueError, match=match):
        encode_labels([row], num_frames=5, num_classes=13)

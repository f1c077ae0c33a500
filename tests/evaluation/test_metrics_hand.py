"""Hand-scored SELD metric cases: every expected number below is worked out by hand in the comments.

Conventions: rows are (frame, class, source/track, azimuth_deg, elevation_deg[, distance]); 10 frames
make one 1 s block; a recording has as many frames as its largest reference frame index (official).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seld_synthetic_cases import make_case

from at2seld.decoding_at2seld import cartesian_to_polar, polar_to_cartesian, read_dcase_csv, write_dcase_csv
from at2seld.evaluation import compute_seld_metrics

EPS = np.finfo(float).eps


def rows(frames, cls, src, az, el, dist=None):
    out = []
    for t in frames:
        r = (t, cls, src, az, el)
        out.append(r if dist is None else r + (dist,))
    return out


def approx(x, rel=1e-9, abs=1e-9):
    return pytest.approx(x, rel=rel, abs=abs)


# --------------------------------------------------------------------------------------------------
def test_single_hit_macro_vs_micro():
    # 2 classes, one block (frames 0..9; largest reference frame 9 -> ceil(9/10) = 1 block).
    # class 0: reference at az 0, prediction at az 10 (el 0) in all 10 frames -> one matched track,
    # mean DOA error 10 <= 20 -> TP. Class 1 never occurs.
    ref = rows(range(10), 0, 0, 0.0, 0.0)
    pred = rows(range(10), 0, 0, 10.0, 0.0)
    micro = compute_seld_metrics(ref, pred, 2, average="micro")
    # no FP/FN: ER = 0; F = 1; LE = 10; LR = 1; SELD = (0 + 0 + 10/180 + 0) / 4
    assert micro["ER"] == approx(0.0)
    assert micro["F"] == approx(1.0)
    assert micro["LE"] == approx(10.0)
    assert micro["LR"] == approx(1.0)
    assert micro["SELD"] == approx(10 / 180 / 4)
    macro = compute_seld_metrics(ref, pred, 2, average="macro")
    # class 1 has no TP: F_1 = 0, LE_1 = 180 (official), LR_1 = 0 -> macro means differ from micro
    assert macro["classwise"]["F"] == [approx(1.0), approx(0.0)]
    assert macro["classwise"]["LE"] == [approx(10.0), approx(180.0)]
    assert macro["F"] == approx(0.5)
    assert macro["LE"] == approx(95.0)
    assert macro["LR"] == approx(0.5)
    # SELD_0 = (0 + 0 + 10/180 + 0)/4, SELD_1 = (0 + 1 + 1 + 1)/4
    assert macro["SELD"] == approx(((10 / 180) / 4 + 0.75) / 2)
    assert macro["SELD"] != approx(micro["SELD"])


def test_two_blocks_spatial_fp_missed_class_and_class_only_in_predictions():
    # 3 classes, 2 blocks (largest reference frame 19).
    ref = rows(range(20), 0, 0, 0.0, 0.0) + rows(range(10, 15), 1, 1, 90.0, 0.0)
    pred = (
        rows(range(10), 0, 0, 30.0, 0.0)  # block 0: class 0 off by 30 deg -> FP_spatial
        + rows(range(10, 20), 0, 0, 5.0, 0.0)  # block 1: class 0 off by 5 deg -> TP
        + rows(range(10, 13), 2, 1, 0.0, 0.0)  # block 1: class 2 only in predictions -> FP
    )  # class 1 (block 1) is never predicted -> FN
    # block 0: loc_FP = 1, loc_FN = 0 -> I = 1;  block 1: loc_FP = 1 (class 2), loc_FN = 1 (class 1) -> S = 1
    # Nref = 2 (class 0) + 1 (class 1) = 3 -> ER = (1 + 0 + 1) / 3
    out = compute_seld_metrics(ref, pred, 3, average="macro")
    assert out["ER"] == approx(2 / 3)
    # class 0: TP 1, FP_spatial 1 -> F = 1/2; LE = (30 + 5)/2; LR = 2/2
    # class 1: FN 1 -> F = 0, LE = 180, LR = 0;  class 2: FP 1 -> F = 0, LE = 180, LR = 0
    assert out["classwise"]["F"] == [approx(0.5), approx(0.0), approx(0.0)]
    assert out["classwise"]["LE"] == [approx(17.5), approx(180.0), approx(180.0)]
    assert out["classwise"]["LR"] == [approx(1.0), approx(0.0), approx(0.0)]
    assert out["F"] == approx(0.5 / 3)
    assert out["LE"] == approx((17.5 + 360) / 3)
    assert out["LR"] == approx(1 / 3)
    seld0 = (2 / 3 + 0.5 + 17.5 / 180 + 0) / 4
    seld1 = (2 / 3 + 1 + 1 + 1) / 4
    assert out["SELD"] == approx((seld0 + 2 * seld1) / 3)
    micro = compute_seld_metrics(ref, pred, 3, average="micro")
    # F = 1 / (1 + 1 + 0.5 (1 + 1)) = 1/3; LE = 35/2; LR = 2 / (2 + 1)
    assert micro["F"] == approx(1 / 3)
    assert micro["LE"] == approx(17.5)
    assert micro["LR"] == approx(2 / 3)
    assert micro["SELD"] == approx((2 / 3 + 2 / 3 + 17.5 / 180 + 1 / 3) / 4)


def test_two_simultaneous_instances_of_one_class():
    # class 0 twice at once: sources at az 0 and az 90; predictions at az 80 (track 0) and az 10 (track 1).
    ref = [r for t in range(10) for r in ((t, 0, 0, 0.0, 0.0), (t, 0, 1, 90.0, 0.0))]
    pred = [r for t in range(10) for r in ((t, 0, 0, 80.0, 0.0), (t, 0, 1, 10.0, 0.0))]
    # Hungarian: 0 <-> 10 and 90 <-> 80, both 10 deg -> 2 TP, LE 10, no error
    out = compute_seld_metrics(ref, pred, 1)
    assert (out["ER"], out["F"], out["LE"], out["LR"]) == (approx(0), approx(1), approx(10), approx(1))
    # only one prediction (az 10): it matches the source at 0 (10 deg); the other source is missed:
    # nb_pred 1 < nb_ref 2 -> FN 1. F = 1/(1 + 0.5) ; LR = 1/2 ; LE = 10 ; ER = D/Nref = 1/2
    one = compute_seld_metrics(ref, [(t, 0, 0, 10.0, 0.0) for t in range(10)], 1)
    assert one["F"] == approx(2 / 3)
    assert one["LR"] == approx(0.5)
    assert one["LE"] == approx(10.0)
    assert one["ER"] == approx(0.5)


def test_perfect_prediction():
    refs, _ = make_case(7, n_files=2, n_frames=60)
    out = compute_seld_metrics(refs, refs, 13, average="micro")
    assert out["ER"] == approx(0.0)
    assert out["F"] == approx(1.0)
    assert out["LR"] == approx(1.0)
    assert out["LE"] == pytest.approx(0.0, abs=1e-5)  # arccos(1 - 1 ulp) ~ 1e-6 deg
    assert out["SELD"] == pytest.approx(0.0, abs=1e-7)


def test_empty_prediction():
    ref = rows(range(20), 0, 0, 0.0, 0.0) + rows(range(10, 15), 1, 1, 90.0, 0.0)
    out = compute_seld_metrics({"a": ref}, {"a": []}, 2)
    # everything missed: ER = D/Nref = 1, F = 0, LE = 180, LR = 0 -> SELD = (1 + 1 + 1 + 1)/4
    assert (out["ER"], out["F"], out["LE"], out["LR"], out["SELD"]) == (
        approx(1), approx(0), approx(180), approx(0), approx(1)
    )


def test_missing_prediction_file_error_empty_or_skip():
    ref_a = rows(range(10), 0, 0, 0.0, 0.0)
    ref_b = rows(range(10), 1, 0, 0.0, 0.0)
    refs, preds = {"a": ref_a, "b": ref_b}, {"a": ref_a}
    with pytest.raises(ValueError, match="no prediction.*missing='empty'"):
        compute_seld_metrics(refs, preds, 2)
    empty = compute_seld_metrics(refs, preds, 2, missing="empty", average="micro")
    # a perfect, b fully missed: Nref 2, D 1 -> ER 1/2; F = 1/(1 + 0.5) ; LR 1/2
    assert empty["ER"] == approx(0.5)
    assert empty["F"] == approx(2 / 3)
    skipped = compute_seld_metrics(refs, preds, 2, official_quirks=True, average="micro")
    assert skipped["ER"] == approx(0.0) and skipped["F"] == approx(1.0) and skipped["num_files"] == 1
    with pytest.raises(ValueError, match="without a reference"):
        compute_seld_metrics({"a": ref_a}, {"a": ref_a, "c": ref_a}, 2)


def test_official_frame_count_quirk():
    # largest reference frame index is 10 -> 10 frames -> 1 block (frames 0..9): frame 10 is never scored
    ref = rows(range(11), 0, 0, 0.0, 0.0)
    pred = rows(range(10), 0, 0, 0.0, 0.0) + [(10, 1, 0, 0.0, 0.0)]  # false alarm at frame 10
    out = compute_seld_metrics(ref, pred, 2, average="micro")
    assert out["ER"] == approx(0.0) and out["F"] == approx(1.0)
    # overriding the length to 11 frames adds block 1 (frames 10..19): there class 0 is referenced but
    # not predicted (FN) and class 1 predicted but not referenced (FP)
    fixed = compute_seld_metrics({"r": ref}, {"r": pred}, 2, average="micro", num_frames={"r": 11})
    # Nref 2; block 1: loc_FP 1, loc_FN 1 -> S 1 -> ER 1/2 ; F = 1 / (1 + 0.5 (1 + 1)) ; LR = 1/2
    assert fixed["ER"] == approx(0.5)
    assert fixed["F"] == approx(0.5)
    assert fixed["LR"] == approx(0.5)


def test_official_no_common_frame_quirk():
    # class 0 is referenced in frames 0..4 and predicted (twice, 2 tracks) in frames 5..9 of the same block.
    # Official: both present in the block but never in the same frame -> FN += nb_pred (= 2, sic), no FP.
    ref = rows(range(5), 0, 0, 0.0, 0.0)
    pred = [r for t in range(5, 10) for r in ((t, 0, 0, 0.0, 0.0), (t, 0, 1, 50.0, 0.0))]
    out = compute_seld_metrics(ref, pred, 1, average="micro")
    # Nref 1; loc_FN 2 -> D 2 -> ER 2; F = 0 / (0.5 * 2) = 0; LR = 0; LE 180
    assert out["ER"] == approx(2.0)
    assert out["F"] == approx(0.0)
    assert out["LR"] == approx(0.0)
    assert out["LE"] == approx(180.0)


def test_dcase2024_frame_level_with_distance():
    # reference frames 0..5 (largest index 5 -> frames 0..4 scored), az 0, 2.0 m.
    ref = rows(range(6), 0, 0, 0.0, 0.0, 2.0)
    # frames 0-2: az 10, 2.5 m (rel. err. 0.25 -> hit); frames 3-4: az 10, 5.0 m (rel. err. 1.5 > 1 -> miss)
    pred = rows(range(3), 0, 0, 10.0, 0.0, 2.5) + rows(range(3, 5), 0, 0, 10.0, 0.0, 5.0)
    out = compute_seld_metrics(ref, pred, 1, metric="dcase2024")
    # TP 3, FP_spatial 2 -> F = 3/5; DOAE = 10 (5 matched pairs); RDE = (3 * 0.25 + 2 * 1.5)/5 = 0.75
    # DE = (3 * 0.5 + 2 * 3.0)/5 = 1.5; LR = 5/5; ER: frames 3, 4 each loc_FP 1 -> I 2, Nref 5 -> 0.4
    assert out["F"] == approx(0.6)
    assert out["DOAE"] == pytest.approx(10.0, abs=1e-6)
    assert out["LE"] == out["DOAE"]
    assert out["RDE"] == approx(0.75)
    assert out["DE"] == approx(1.5)
    assert out["LR"] == approx(1.0)
    assert out["ER"] == approx(0.4)
    assert out["SELD"] == pytest.approx((0.4 + 10 / 180 + 0.75) / 3, abs=1e-8)
    with pytest.raises(ValueError, match="no distance"):
        compute_seld_metrics(rows(range(6), 0, 0, 0.0, 0.0), pred, 1, metric="dcase2024")


def test_jackknife_leave_one_out_by_hand():
    # 3 recordings, micro F: file a perfect, b perfect, c empty prediction (one class-0 event of 10 frames each)
    ref = rows(range(10), 0, 0, 0.0, 0.0)
    refs = {"a": ref, "b": ref, "c": ref}
    preds = {"a": ref, "b": ref, "c": []}
    out = compute_seld_metrics(refs, preds, 1, average="micro", jackknife=True)
    # all: TP 2, FN 1 -> F = 2/2.5 = 0.8; leave a/b out: 1/1.5 = 2/3; leave c out: 1
    partial = np.array([2 / 3, 2 / 3, 1.0])
    mean = partial.mean()
    bias = 2 * (mean - 0.8)
    se = np.sqrt(2 * np.mean((partial - mean) ** 2))
    t = 4.302652729911275  # Student t, 2 degrees of freedom, 97.5 %
    assert out["F"] == approx(0.8)
    jk = out["jackknife"]["F"]
    assert jk["estimate"] == approx(0.8 - bias)
    assert jk["ci"] == [approx(0.8 - bias - t * se), approx(0.8 - bias + t * se)]
    quirky = compute_seld_metrics(refs, preds, 1, average="micro", jackknife=True, official_quirks=True)
    assert quirky["F"] == approx(1.0)  # the last leave-one-out run (c left out), as the official code returns


# --------------------------------------------------------------------------------------------------
def _rotate_rows(arr, rot):
    out = np.array(arr, dtype=float)
    xyz = polar_to_cartesian(out[:, 3], out[:, 4]) @ rot.T
    out[:, 3], out[:, 4] = cartesian_to_polar(xyz)
    return out


def _rotation(a, b, c):
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rz = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rx = np.array([[1, 0, 0], [0, cc, -sc], [0, sc, cc]])
    return rz @ ry @ rx


@settings(max_examples=12, deadline=None)
@given(
    st.floats(-np.pi, np.pi), st.floats(-np.pi, np.pi), st.floats(-np.pi, np.pi), st.integers(0, 50),
    st.sampled_from(["macro", "micro"]),
)
def test_rotating_reference_and_prediction_keeps_le_and_lr(a, b, c, seed, average):
    refs, preds = make_case(seed, n_files=1, n_frames=50, num_classes=5, n_events=5)
    rot = _rotation(a, b, c)
    base = compute_seld_metrics(refs, preds, 5, average=average)
    turned = compute_seld_metrics(
        {k: _rotate_rows(v, rot) for k, v in refs.items()}, {k: _rotate_rows(v, rot) for k, v in preds.items()}, 5,
        average=average,
    )
    assert turned["LE"] == pytest.approx(base["LE"], abs=1e-4)
    assert turned["LR"] == pytest.approx(base["LR"], abs=1e-12)


def test_track_id_permutation_leaves_scores_unchanged():
    refs, preds = make_case(11, n_files=2, n_frames=80)
    base = compute_seld_metrics(refs, preds, 13)
    perm = np.array([2, 0, 1])
    permuted = {}
    for k, v in preds.items():
        w = v.copy()
        w[:, 2] = perm[w[:, 2].astype(int)]
        permuted[k] = w[np.lexsort((w[:, 2], w[:, 0]))]  # rows re-sorted by (frame, new track)
    out = compute_seld_metrics(refs, permuted, 13)
    for key in ("ER", "F", "LE", "LR", "SELD"):
        assert out[key] == approx(base[key], rel=1e-12, abs=1e-12)
    for key in out["classwise"]:
        np.testing.assert_allclose(out["classwise"][key], base["classwise"][key], atol=1e-12)


def test_cartesian_and_polar_prediction_files_score_the_same(tmp_path):
    refs, preds = make_case(12, n_files=1, n_frames=80)
    (name, ref), pred = next(iter(refs.items())), next(iter(preds.values()))
    write_dcase_csv(pred, tmp_path / "cart.csv", cartesian=True)
    write_dcase_csv(pred, tmp_path / "polar.csv", cartesian=False)
    cart, polar = read_dcase_csv(tmp_path / "cart.csv"), read_dcase_csv(tmp_path / "polar.csv")
    for metric in ("dcase2023", "dcase2024"):
        a = compute_seld_metrics({name: ref}, {name: cart}, 13, metric=metric)
        b = compute_seld_metrics({name: ref}, {name: polar}, 13, metric=metric)
        for key in ("ER", "F", "LE", "LR", "SELD"):
            assert a[key] == pytest.approx(b[key], abs=1e-9)


def test_bad_inputs_raise_clear_errors():
    ref = rows(range(10), 0, 0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"class indices must be integers in \[0, 2\)"):
        compute_seld_metrics(ref, rows(range(3), 5, 0, 0.0, 0.0), 2)
    with pytest.raises(ValueError, match="shape"):
        compute_seld_metrics(ref, [(0, 0, 0, 1.0)], 2)
    with pytest.raises(ValueError, match="average"):
        compute_seld_metrics(ref, ref, 2, average="weighted")
    with pytest.raises(ValueError, match="metric"):
        compute_seld_metrics(ref, ref, 2, metric="dcase2099")
    with pytest.raises(ValueError, match="no rows"):
        compute_seld_metrics([], ref, 2)
    with pytest.raises(ValueError, match="at least 2"):
        compute_seld_metrics(ref, ref, 2, jackknife=True)


def test_vectorised_assignment_picks_what_scipy_picks_ties_included():
    # the official code calls scipy's linear_sum_assignment per frame; the vectorised matcher must pick
    # the same pairs (which reference row gets which error), also for tied costs (integers 0..3)
    from scipy.optimize import linear_sum_assignment

    from at2seld.evaluation.metrics import _match

    rng = np.random.default_rng(0)
    for k, m in [(1, 3), (3, 1), (2, 2), (2, 3), (3, 2), (3, 3), (4, 4), (2, 5)]:
        for costs in (rng.uniform(0, 180, (50, k, m)), rng.integers(0, 4, (50, k, m)).astype(float)):
            grp, row, col = _match(costs, np.full(50, k), np.full(50, m))
            for g in range(50):
                r, c = linear_sum_assignment(costs[g])
                got = sorted(zip(row[grp == g].tolist(), col[grp == g].tolist()))
                assert got == sorted(zip(r.tolist(), c.tolist())), (k, m, costs[g])

"""SELD metrics exactly as the DCASE evaluation code computes them, vectorised.

Two families are implemented here (the 2019 metrics live in `metrics_2019.py`):

* ``"dcase2023"`` (DCASE 2020-2023, the segment-level metrics of ``SELD_evaluation_metrics.py`` in
  ``sharathadavanne/seld-dcase2023``): location-aware detection ER20/F20 and class-aware
  localization LE_CD/LR_CD on 1 s blocks of ten 100 ms frames, with Hungarian association of the
  reference and predicted DOAs of each class in each frame.
* ``"dcase2024"`` (frame-level metrics of the DCASE 2024 code, STARSS23 with distances): F20 where a
  hit also needs a relative distance error <= 1, DOAE, RDE and SELD = nanmean(1 - F, DOAE/180, RDE).

Every quirk of the official code that changes a number is reproduced; the two that are plain bugs
(jackknife point values, reference files without a prediction file) are correct by default and
official behind ``official_quirks=True``. See ``docs/metrics.md`` for the list.

Counting is additive over recordings: each recording gives a (fields, classes) array of counters,
scores are computed from their sum, and leave-one-file-out jackknife estimates are
``total - per_file`` without re-scoring anything.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..decoding_at2seld import polar_to_cartesian, rows_to_array

EPS = np.finfo(float).eps  # the official code adds this float64 epsilon to every denominator
FRAMES_PER_BLOCK = 10  # ten 100 ms label frames per 1 s block
METRICS = ("dcase2023", "dcase2024")
AVERAGES = ("macro", "micro")

# counter fields; the per-recording scalars S, D, I are stored in class column 0 of their row
FIELDS = (
    "TP", "FP", "FP_spatial", "FN", "Nref", "total_DE", "DE_TP", "DE_FP", "DE_FN",
    "total_DistE", "total_RelDistE", "S", "D", "I",
)  # fmt: skip
_F = {name: i for i, name in enumerate(FIELDS)}


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------
def _check_rows(rows: Any, num_classes: int, name: str) -> np.ndarray:
    arr = rows_to_array(rows, name)
    if arr.shape[0] == 0:
        return arr
    if not np.all(np.isfinite(arr[:, :5])):
        raise ValueError(f"`{name}` has NaN or infinite frame/class/track/azimuth/elevation values.")
    frames, classes = arr[:, 0], arr[:, 1]
    if np.any(frames < 0) or np.any(frames != np.round(frames)):
        raise ValueError(f"`{name}`: frame indices must be non-negative integers (100 ms label frames).")
    if np.any(classes < 0) or np.any(classes >= num_classes) or np.any(classes != np.round(classes)):
        bad = sorted(set(classes[(classes < 0) | (classes >= num_classes)].astype(int).tolist()))
        raise ValueError(
            f"`{name}`: class indices must be integers in [0, {num_classes}); found {bad or 'non-integers'}. "
            "Pass the right `num_classes` (13 for STARSS23, 12 for TAU-NIGENS 2021, 14 for 2020)."
        )
    return arr


def _as_file_dict(x: Any, name: str) -> dict[str, Any]:
    if isinstance(x, Mapping):
        return dict(x)
    return {"recording": x}


def _rank_within(keys: np.ndarray) -> np.ndarray:
    """Position of each element among the elements with the same key, in input order. keys: (n,) -> (n,)."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    start = np.r_[True, sk[1:] != sk[:-1]]
    first = np.maximum.accumulate(np.where(start, np.arange(sk.size), 0))
    rank = np.empty(keys.size, dtype=np.int64)
    rank[order] = np.arange(sk.size) - first
    return rank


# --------------------------------------------------------------------------------------------------
# distances, exactly as the official code evaluates them
# --------------------------------------------------------------------------------------------------
def angular_distance_polar(az1: np.ndarray, el1: np.ndarray, az2: np.ndarray, el2: np.ndarray) -> np.ndarray:
    """Great-circle distance in degrees between DOAs given in radians (broadcasting shapes).

    Same formula and order of operations as the official `distance_between_spherical_coordinates_rad`:
    arccos(clip(sin e1 sin e2 + cos e1 cos e2 cos|a1 - a2|, -1, 1)) in degrees.
    """
    d = np.sin(el1) * np.sin(el2) + np.cos(el1) * np.cos(el2) * np.cos(np.abs(az1 - az2))
    return np.arccos(np.clip(d, -1, 1)) * 180 / np.pi


def angular_distance_cartesian(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Angle in degrees between vectors (..., 3), each normalised by sqrt(|v|^2 + 1e-10) as the official
    `distance_between_cartesian_coordinates` does (so two identical unit vectors are 8.1e-4 degrees apart)."""
    n1 = np.sqrt((v1**2).sum(-1) + 1e-10)
    n2 = np.sqrt((v2**2).sum(-1) + 1e-10)
    u1 = v1 / n1[..., None]
    u2 = v2 / n2[..., None]
    d = u1[..., 0] * u2[..., 0] + u1[..., 1] * u2[..., 1] + u1[..., 2] * u2[..., 2]
    return np.arccos(np.clip(d, -1, 1)) * 180 / np.pi


def _match(cost: np.ndarray, k: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost assignment per group, as scipy's `linear_sum_assignment` picks it.

    cost: (groups, P, Q) with the valid block [:k, :m] of each group; k, m: (groups,) >= 1.
    Returns (group, row, col) of every matched pair (min(k, m) pairs per group). Groups with one
    reference or one prediction are solved in one vectorised argmin (first minimum, as scipy);
    the rare groups with >= 2 on both sides go through scipy one by one.
    """
    gs, rs, cs = [], [], []
    g = np.arange(cost.shape[0])
    one_row = k == 1
    if one_row.any():
        sub = cost[one_row, 0, :]
        col = np.argmin(sub, axis=1)
        gs.append(g[one_row]); rs.append(np.zeros(col.size, dtype=np.int64)); cs.append(col)  # fmt: skip
    one_col = (m == 1) & ~one_row
    if one_col.any():
        sub = cost[one_col, :, 0]
        row = np.argmin(sub, axis=1)
        gs.append(g[one_col]); rs.append(row); cs.append(np.zeros(row.size, dtype=np.int64))  # fmt: skip
    multi = (k > 1) & (m > 1)
    hard: list[int] = []
    for kk, mm in {(int(a), int(b)) for a, b in zip(k[multi], m[multi])}:
        sel = np.flatnonzero(multi & (k == kk) & (m == mm))
        if max(kk, mm) > 4:
            hard.extend(sel.tolist())
            continue
        # enumerate the injective maps of the smaller side; a unique optimum is what scipy returns
        small, large = min(kk, mm), max(kk, mm)
        perms = np.array(list(itertools.permutations(range(large), small)))  # (n_perm, small)
        sub = cost[sel, :kk, :mm]
        if kk > mm:
            sub = sub.transpose(0, 2, 1)  # rows = the smaller side
        totals = sub[:, np.arange(small)[None, :], perms].sum(-1)  # (groups, n_perm)
        order = np.argsort(totals, axis=1)
        best = np.take_along_axis(totals, order[:, :1], 1)[:, 0]
        second = np.take_along_axis(totals, order[:, 1:2], 1)[:, 0]
        clear = second - best > 1e-9 * np.maximum(1.0, best)  # (near-)ties go to scipy for its tie-breaking
        hard.extend(sel[~clear].tolist())
        sel, pick = sel[clear], perms[order[clear, 0]]  # (g, small)
        small_idx = np.broadcast_to(np.arange(small), pick.shape)
        row, col = (small_idx, pick) if kk <= mm else (pick, small_idx)
        o = np.argsort(row, axis=1, kind="stable")  # scipy returns pairs sorted by row
        gs.append(np.repeat(sel, small)); rs.append(np.take_along_axis(row, o, 1).ravel())  # fmt: skip
        cs.append(np.take_along_axis(col, o, 1).ravel())
    for i in sorted(hard):
        r, c = linear_sum_assignment(cost[i, : k[i], : m[i]])
        gs.append(np.full(r.size, i)); rs.append(r); cs.append(c)  # fmt: skip
    if not gs:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    return np.concatenate(gs), np.concatenate(rs), np.concatenate(cs)


def _grouped(
    keys_r: np.ndarray, keys_p: np.ndarray, n_keys: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts per key and, for keys present on both sides, each row's slot (group, position)."""
    cnt_r = np.bincount(keys_r, minlength=n_keys)
    cnt_p = np.bincount(keys_p, minlength=n_keys)
    common = (cnt_r > 0) & (cnt_p > 0)
    group_of_key = np.full(n_keys, -1, dtype=np.int64)
    ck = np.flatnonzero(common)
    group_of_key[ck] = np.arange(ck.size)
    return cnt_r, cnt_p, ck, group_of_key, _rank_within(keys_r), _rank_within(keys_p)


# --------------------------------------------------------------------------------------------------
# per-recording counting
# --------------------------------------------------------------------------------------------------
def _segment_counts(ref: np.ndarray, pred: np.ndarray, num_classes: int, nb_frames: int, doa_threshold: float) -> np.ndarray:
    """DCASE 2020-2023 counters of one recording: (len(FIELDS), classes).

    ref, pred: polar rows (frame, class, track, az_deg, el_deg[, dist]) in file order. Frames are
    grouped in ceil(nb_frames / 10) blocks; rows at frames >= 10 * blocks are ignored (official).
    """
    C = num_classes
    counts = np.zeros((len(FIELDS), C))
    nb_blocks = int(np.ceil(nb_frames / float(FRAMES_PER_BLOCK)))
    if nb_blocks == 0:
        return counts
    limit = nb_blocks * FRAMES_PER_BLOCK
    ref = ref[ref[:, 0] < limit]
    pred = pred[pred[:, 0] < limit]
    kr = ref[:, 0].astype(np.int64) * C + ref[:, 1].astype(np.int64)
    kp = pred[:, 0].astype(np.int64) * C + pred[:, 1].astype(np.int64)
    n_keys = limit * C
    cnt_r, cnt_p, ck, gok, pos_r, pos_p = _grouped(kr, kp, n_keys)
    nb_gt = cnt_r.reshape(nb_blocks, FRAMES_PER_BLOCK, C).max(1).astype(np.float64)
    nb_pr = cnt_p.reshape(nb_blocks, FRAMES_PER_BLOCK, C).max(1).astype(np.float64)

    # frame-wise Hungarian association, accumulated per (block, class, reference position)
    n_pos = int(cnt_r.max()) if cnt_r.size else 1
    n_pos = max(n_pos, 1)
    sum_d = np.zeros(nb_blocks * C * n_pos)
    cnt_d = np.zeros(nb_blocks * C * n_pos)
    if ck.size:
        P, Q = int(cnt_r[ck].max()), int(cnt_p[ck].max())
        sr, sp = gok[kr] >= 0, gok[kp] >= 0
        G = np.full((ck.size, P, 2), np.nan)
        H = np.full((ck.size, Q, 2), np.nan)
        G[gok[kr[sr]], pos_r[sr]] = ref[sr, 3:5] * np.pi / 180.0
        H[gok[kp[sp]], pos_p[sp]] = pred[sp, 3:5] * np.pi / 180.0
        cost = angular_distance_polar(G[:, :, None, 0], G[:, :, None, 1], H[:, None, :, 0], H[:, None, :, 1])
        cost = np.where(np.isnan(cost), np.inf, cost)
        grp, row, col = _match(cost, cnt_r[ck], cnt_p[ck])
        order = np.lexsort((row, grp))  # frame order within each (block, class, position)
        grp, row, col = grp[order], row[order], col[order]
        dist = cost[grp, row, col]
        key = ck[grp]
        frame, cls = key // C, key % C
        slot = ((frame // FRAMES_PER_BLOCK) * C + cls) * n_pos + row
        sum_d = np.bincount(slot, weights=dist, minlength=sum_d.size)
        cnt_d = np.bincount(slot, minlength=cnt_d.size).astype(np.float64)
    sum_d = sum_d.reshape(nb_blocks, C, n_pos)
    cnt_d = cnt_d.reshape(nb_blocks, C, n_pos)
    has = cnt_d > 0
    avg = np.divide(sum_d, cnt_d, out=np.zeros_like(sum_d), where=has)
    n_matched = has.sum(-1).astype(np.float64)
    n_tp = (has & (avg <= doa_threshold)).sum(-1).astype(np.float64)
    de_sum = avg.sum(-1)

    gt, pr = nb_gt > 0, nb_pr > 0
    both = gt & pr
    unmatched = both & (n_matched == 0)  # official: counts nb_pred (sic) as FN, not nb_gt
    matched = both & (n_matched > 0)
    extra = np.where(matched, nb_pr - nb_gt, 0.0)
    fp_sp = np.where(matched, n_matched - n_tp, 0.0)
    fn = np.where(unmatched, nb_pr, 0.0) + np.maximum(-extra, 0) + np.where(gt & ~pr, nb_gt, 0.0)
    fp = np.maximum(extra, 0) + np.where(~gt & pr, nb_pr, 0.0)
    loc_fp = (fp_sp + fp).sum(1)
    loc_fn = fn.sum(1)

    counts[_F["TP"]] = np.where(matched, n_tp, 0.0).sum(0)
    counts[_F["FP"]] = fp.sum(0)
    counts[_F["FP_spatial"]] = fp_sp.sum(0)
    counts[_F["FN"]] = fn.sum(0)
    counts[_F["Nref"]] = nb_gt.sum(0)
    counts[_F["total_DE"]] = np.where(matched, de_sum, 0.0).sum(0)
    counts[_F["DE_TP"]] = np.where(matched, n_matched, 0.0).sum(0)
    counts[_F["DE_FP"]] = fp.sum(0)
    counts[_F["DE_FN"]] = fn.sum(0)
    counts[_F["S"], 0] = np.minimum(loc_fp, loc_fn).sum()
    counts[_F["D"], 0] = np.maximum(0, loc_fn - loc_fp).sum()
    counts[_F["I"], 0] = np.maximum(0, loc_fp - loc_fn).sum()
    return counts


def _frame_counts(
    ref: np.ndarray,
    pred: np.ndarray,
    num_classes: int,
    nb_frames: int,
    doa_threshold: float,
    dist_threshold: float,
    reldist_threshold: float,
) -> np.ndarray:
    """DCASE 2024 frame-level counters of one recording: (len(FIELDS), classes).

    Frames 0 .. nb_frames - 1 are scored (official: nb_frames is the largest reference frame index,
    so the last reference frame is never scored). DOAs compared as Cartesian vectors with the
    official 1e-10 normalisation; a matched pair is a detection error when its DOA error exceeds
    `doa_threshold`, its absolute distance error exceeds `dist_threshold` or its relative distance
    error |d_ref - d_pred| / (d_ref + eps) exceeds `reldist_threshold`.
    """
    C = num_classes
    counts = np.zeros((len(FIELDS), C))
    if nb_frames <= 0:
        return counts
    for arr, who in ((ref, "references"), (pred, "predictions")):
        if arr.shape[0] and (arr.shape[1] < 6 or np.isnan(arr[:, 5]).any()):
            raise ValueError(
                f"metric='dcase2024' scores distances, but some {who} rows have no distance (6th field). "
                "Use metric='dcase2023' for data without distances."
            )
    ref = ref[ref[:, 0] < nb_frames]
    pred = pred[pred[:, 0] < nb_frames]
    kr = ref[:, 0].astype(np.int64) * C + ref[:, 1].astype(np.int64)
    kp = pred[:, 0].astype(np.int64) * C + pred[:, 1].astype(np.int64)
    n_keys = nb_frames * C
    cnt_r, cnt_p, ck, gok, pos_r, pos_p = _grouped(kr, kp, n_keys)
    k_all = cnt_r.reshape(nb_frames, C).astype(np.float64)
    m_all = cnt_p.reshape(nb_frames, C).astype(np.float64)

    ang_sum = np.zeros(n_keys)
    dist_sum = np.zeros(n_keys)
    rel_sum = np.zeros(n_keys)
    n_bad = np.zeros(n_keys)
    if ck.size:
        P, Q = int(cnt_r[ck].max()), int(cnt_p[ck].max())
        sr, sp = gok[kr] >= 0, gok[kp] >= 0
        G = np.full((ck.size, P, 4), np.nan)
        H = np.full((ck.size, Q, 4), np.nan)
        G[gok[kr[sr]], pos_r[sr], :3] = polar_to_cartesian(ref[sr, 3], ref[sr, 4])
        G[gok[kr[sr]], pos_r[sr], 3] = ref[sr, 5]
        H[gok[kp[sp]], pos_p[sp], :3] = polar_to_cartesian(pred[sp, 3], pred[sp, 4])
        H[gok[kp[sp]], pos_p[sp], 3] = pred[sp, 5]
        cost = angular_distance_cartesian(G[:, :, None, :3], H[:, None, :, :3])
        cost = np.where(np.isnan(cost), np.inf, cost)
        grp, row, col = _match(cost, cnt_r[ck], cnt_p[ck])
        ang = cost[grp, row, col]
        d_ref, d_pred = G[grp, row, 3], H[grp, col, 3]
        d_err = np.abs(d_ref - d_pred)
        rel = d_err / (d_ref + EPS)
        bad = (ang > doa_threshold) | (d_err > dist_threshold) | (rel > reldist_threshold)
        key = ck[grp]
        ang_sum = np.bincount(key, weights=ang, minlength=n_keys)
        dist_sum = np.bincount(key, weights=d_err, minlength=n_keys)
        rel_sum = np.bincount(key, weights=rel, minlength=n_keys)
        n_bad = np.bincount(key, weights=bad.astype(np.float64), minlength=n_keys)
    shape = (nb_frames, C)
    ang_sum, dist_sum, rel_sum, n_bad = (a.reshape(shape) for a in (ang_sum, dist_sum, rel_sum, n_bad))
    gt, pr = k_all > 0, m_all > 0
    both = gt & pr
    kc = np.where(both, np.minimum(k_all, m_all), 0.0)
    fp_inf = np.where(both, np.maximum(0.0, m_all - k_all), 0.0) + np.where(~gt & pr, m_all, 0.0)
    fn = np.where(both, np.maximum(0.0, k_all - m_all), 0.0) + np.where(gt & ~pr, k_all, 0.0)
    fp_sp = np.where(both, n_bad, 0.0)
    loc_fp = (fp_inf + fp_sp).sum(1)
    loc_fn = fn.sum(1)
    counts[_F["TP"]] = (kc - fp_sp).sum(0)
    counts[_F["FP"]] = fp_inf.sum(0)
    counts[_F["FP_spatial"]] = fp_sp.sum(0)
    counts[_F["FN"]] = fn.sum(0)
    counts[_F["Nref"]] = k_all.sum(0)
    counts[_F["total_DE"]] = ang_sum.sum(0)
    counts[_F["total_DistE"]] = dist_sum.sum(0)
    counts[_F["total_RelDistE"]] = rel_sum.sum(0)
    counts[_F["DE_TP"]] = kc.sum(0)
    counts[_F["DE_FP"]] = fp_inf.sum(0)
    counts[_F["DE_FN"]] = fn.sum(0)
    counts[_F["S"], 0] = np.minimum(loc_fp, loc_fn).sum()
    counts[_F["D"], 0] = np.maximum(0, loc_fn - loc_fp).sum()
    counts[_F["I"], 0] = np.maximum(0, loc_fp - loc_fn).sum()
    return counts


# --------------------------------------------------------------------------------------------------
# scores from counters (vectorised over any leading axes, e.g. leave-one-out sets)
# --------------------------------------------------------------------------------------------------
def scores_from_counts(counts: np.ndarray, average: str = "macro", metric: str = "dcase2023") -> dict[str, np.ndarray]:
    """Scores from summed counters.

    counts: (..., len(FIELDS), classes) -> dict of arrays (...) with ER, F, LE, LR, SELD (and DE, RDE,
    DOAE for dcase2024); in macro mode also `classwise_<name>` arrays (..., classes).
    """
    c = {name: counts[..., i, :] for name, i in _F.items()}
    ER = (c["S"][..., 0] + c["D"][..., 0] + c["I"][..., 0]) / (c["Nref"].sum(-1) + EPS)
    out: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN (no TP at all) is NaN, as official
        if average == "micro":
            tp, de_tp = c["TP"].sum(-1), c["DE_TP"].sum(-1)
            F = tp / (EPS + tp + c["FP_spatial"].sum(-1) + 0.5 * (c["FP"].sum(-1) + c["FN"].sum(-1)))
            LR = de_tp / (EPS + de_tp + c["DE_FN"].sum(-1))
            missing = 180.0 if metric == "dcase2023" else np.nan
            LE = np.where(de_tp > 0, c["total_DE"].sum(-1) / (de_tp + EPS), missing)
            if metric == "dcase2023":
                SELD = (ER + (1 - F) + LE / 180 + (1 - LR)) / 4
                out.update(ER=ER, F=F, LE=LE, LR=LR, SELD=SELD)
            else:
                DE = np.where(de_tp > 0, c["total_DistE"].sum(-1) / (de_tp + EPS), np.nan)
                RDE = np.where(de_tp > 0, c["total_RelDistE"].sum(-1) / (de_tp + EPS), np.nan)
                SELD = np.nanmean(np.stack([1 - F, LE / 180, RDE]), axis=0)
                out.update(ER=ER, F=F, LE=LE, DOAE=LE, DE=DE, RDE=RDE, LR=LR, SELD=SELD)
            return out
        F = c["TP"] / (EPS + c["TP"] + c["FP_spatial"] + 0.5 * (c["FP"] + c["FN"]))
        LR = c["DE_TP"] / (EPS + c["DE_TP"] + c["DE_FN"])
        none = c["DE_TP"] == 0
        LE = c["total_DE"] / (c["DE_TP"] + EPS)
        ER_c = np.broadcast_to(ER[..., None], F.shape)
        if metric == "dcase2023":
            LE = np.where(none, 180.0, LE)
            SELD = (ER_c + (1 - F) + LE / 180 + (1 - LR)) / 4
            cw = {"ER": ER_c, "F": F, "LE": LE, "LR": LR, "SELD": SELD}
            out.update(ER=ER, F=F.mean(-1), LE=LE.mean(-1), LR=LR.mean(-1), SELD=SELD.mean(-1))
        else:
            LE = np.where(none, np.nan, LE)
            DE = np.where(none, np.nan, c["total_DistE"] / (c["DE_TP"] + EPS))
            RDE = np.where(none, np.nan, c["total_RelDistE"] / (c["DE_TP"] + EPS))
            SELD = np.nanmean(np.stack([1 - F, LE / 180, RDE]), axis=0)
            cw = {"ER": ER_c, "F": F, "LE": LE, "DOAE": LE, "DE": DE, "RDE": RDE, "LR": LR, "SELD": SELD}
            out.update(
                ER=ER, F=F.mean(-1), LE=np.nanmean(LE, -1), DOAE=np.nanmean(LE, -1), DE=np.nanmean(DE, -1),
                RDE=np.nanmean(RDE, -1), LR=LR.mean(-1), SELD=SELD.mean(-1),
            )  # fmt: skip
        for name, arr in cw.items():
            out[f"classwise_{name}"] = np.array(arr)
    return out


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------
def count_file(
    reference: Any,
    prediction: Any,
    num_classes: int,
    metric: str = "dcase2023",
    doa_threshold: float = 20.0,
    num_frames: int | None = None,
    dist_threshold: float = math.inf,
    reldist_threshold: float = 1.0,
) -> np.ndarray:
    """Counters of one recording, (len(FIELDS), classes); sum them over recordings and call
    `scores_from_counts`. `num_frames` defaults to the largest reference frame index (official)."""
    ref = _check_rows(reference, num_classes, "reference")
    pred = _check_rows(prediction, num_classes, "prediction")
    if num_frames is None:
        if ref.shape[0] == 0:
            raise ValueError(
                "A reference recording has no rows, so its length is unknown (the official code crashes here). "
                "Pass `num_frames` for it to score its predictions as false positives."
            )
        num_frames = int(ref[:, 0].max())
    if metric == "dcase2023":
        return _segment_counts(ref, pred, num_classes, num_frames, doa_threshold)
    if metric == "dcase2024":
        return _frame_counts(ref, pred, num_classes, num_frames, doa_threshold, dist_threshold, reldist_threshold)
    raise ValueError(f"Unknown metric {metric!r}; expected one of {METRICS} (dcase2019 is `compute_dcase2019_metrics`).")


def jackknife_estimate(global_value: np.ndarray, partial: np.ndarray, significance_level: float = 0.05) -> dict[str, np.ndarray]:
    """Leave-one-out jackknife statistics.

    global_value: (...) the value on all n files; partial: (n, ...) the values with each file left out.
    Returns estimate (bias-corrected), bias, std_err and ci (..., 2), the t-based confidence interval
    (1 - significance_level) around the estimate, with the same formulas as the DCASE code.
    """
    from scipy import stats

    if not 0 < significance_level < 1:
        raise ValueError(f"`significance_level` must be in (0, 1), got {significance_level}.")
    n = partial.shape[0]
    mean = partial.mean(0)
    bias = (n - 1) * (mean - global_value)
    std_err = np.sqrt((n - 1) * np.mean((partial - mean) ** 2, axis=0))
    estimate = global_value - bias
    t = stats.t.ppf(1 - significance_level / 2, n - 1)
    ci = np.stack([estimate - t * std_err, estimate + t * std_err], axis=-1)
    return {"estimate": estimate, "bias": bias, "std_err": std_err, "ci": ci}


def to_plain(x: Any) -> Any:
    """numpy scalars and arrays (nested in dicts) as Python floats and lists, for JSON."""
    if isinstance(x, dict):
        return {k: to_plain(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return x.tolist() if x.ndim else float(x)
    if isinstance(x, np.generic):
        return x.item()
    return x


def compute_seld_metrics(
    references: Any,
    predictions: Any,
    num_classes: int,
    average: str = "macro",
    doa_threshold: float = 20.0,
    metric: str = "dcase2023",
    jackknife: bool = False,
    official_quirks: bool = False,
    missing: str | None = None,
    num_frames: Mapping[str, int] | None = None,
    dist_threshold: float = math.inf,
    reldist_threshold: float = 1.0,
) -> dict[str, Any]:
    """SELD scores of predictions against references, as the DCASE evaluation code computes them.

    Args:
        references, predictions: dict recording id -> rows `(frame, class, track, azimuth_deg,
            elevation_deg[, distance])` (list of tuples or (rows, 5|6) array, in file order), or one
            recording's rows. Predictions in Cartesian form must be converted first
            (`read_dcase_csv` does it for files).
        num_classes: C (13 for STARSS23).
        average: "macro" (DCASE 2022+, class-wise results) or "micro" (2020/2021).
        doa_threshold: degrees for location-aware detection (20).
        metric: "dcase2023" (segment-level, 2020-2023) or "dcase2024" (frame-level with distances).
        jackknife: add leave-one-recording-out jackknife estimates and 95 % confidence intervals.
        official_quirks: reproduce the two official bugs: with `jackknife` the returned point values are
            those of the *last* leave-one-out run, and reference recordings without a prediction are skipped.
        missing: what a reference recording without prediction becomes: "error" (default), "empty"
            (scored as an empty prediction: all its events missed) or "skip" (official; default when
            `official_quirks`). A prediction without a reference is always an error.
        num_frames: optional dict recording id -> number of frames to score, overriding the official
            rule (largest reference frame index).
        dist_threshold, reldist_threshold: dcase2024 only: absolute (inf) and relative (1.0) distance
            error limits for a hit.

    Returns:
        dict of floats ER, F, LE, LR, SELD (dcase2024 adds DOAE (= LE), DE, RDE); macro adds
        "classwise": {name: list of C floats}; jackknife adds "jackknife": {name: {"estimate", "bias",
        "std_err", "ci": [low, high]}} (class-wise ones under "classwise"). Also "num_files".
    """
    if average not in AVERAGES:
        raise ValueError(f"`average` must be one of {AVERAGES}, got {average!r}.")
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {METRICS}, got {metric!r} (for dcase2019 use compute_dcase2019_metrics).")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int, got {num_classes!r}.")
    if missing is None:
        missing = "skip" if official_quirks else "error"
    if missing not in ("error", "empty", "skip"):
        raise ValueError(f"`missing` must be 'error', 'empty' or 'skip', got {missing!r}.")
    refs = _as_file_dict(references, "references")
    preds = _as_file_dict(predictions, "predictions")
    extra = sorted(set(preds) - set(refs))
    if extra:
        raise ValueError(f"Predictions for recordings without a reference: {extra[:5]}{' ...' if len(extra) > 5 else ''}.")
    absent = sorted(set(refs) - set(preds))
    if absent and missing == "error":
        raise ValueError(
            f"{len(absent)} reference recording(s) have no prediction: {absent[:5]}{' ...' if len(absent) > 5 else ''}. "
            "Pass missing='empty' to score them as empty predictions, or missing='skip' to leave them out "
            "(what the official code silently does)."
        )
    if missing == "empty":
        preds.update({f: np.zeros((0, 5)) for f in absent})
    files = [f for f in preds]  # prediction order, like the official loop over the prediction folder
    if not files:
        raise ValueError("No recording to score: `predictions` is empty.")
    num_frames = dict(num_frames or {})
    per_file = np.stack(
        [
            count_file(refs[f], preds[f], num_classes, metric, doa_threshold, num_frames.get(f), dist_threshold, reldist_threshold)
            for f in files
        ]
    )  # (files, fields, C)
    total = per_file.sum(0)
    scores = scores_from_counts(total, average, metric)
    names = [k for k in scores if not k.startswith("classwise_")]
    result: dict[str, Any] = {k: float(scores[k]) for k in names}
    if average == "macro":
        result["classwise"] = {k[len("classwise_") :]: scores[k].tolist() for k in scores if k.startswith("classwise_")}
    result["num_files"] = len(files)
    if jackknife:
        if len(files) < 2:
            raise ValueError("`jackknife=True` needs at least 2 recordings (leave-one-out).")
        loo = scores_from_counts(total[None] - per_file, average, metric)  # (files, ...)
        jk: dict[str, Any] = {}
        for k in names:
            jk[k] = jackknife_estimate(scores[k], loo[k])
        if average == "macro":
            jk["classwise"] = {
                k[len("classwise_") :]: jackknife_estimate(scores[k], loo[k]) for k in scores if k.startswith("classwise_")
            }
        result["jackknife"] = to_plain(jk)
        if official_quirks:  # official bug: point values of the last leave-one-out run are returned
            for k in names:
                result[k] = float(loo[k][-1])
            if average == "macro":
                result["classwise"] = {
                    k[len("classwise_") :]: loo[k][-1].tolist() for k in scores if k.startswith("classwise_")
                }
    return result

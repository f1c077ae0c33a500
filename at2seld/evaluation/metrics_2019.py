"""DCASE 2019 SELD metrics (TAU Spatial Sound Events 2019), as `calculate_SELD_metrics.py` /
`metrics/evaluation_metrics.py` of sharathadavanne/seld-dcase2019 compute them, vectorised.

* SED: segment-based error rate and F-score on 1 s segments of 50 frames (20 ms hop), class-wise
  activity only (no location).
* DOA: DOA error = sum over frames of the minimum-cost (Hungarian) assignment between all reference
  and all predicted DOAs of the frame, *class-agnostic*, divided by the total number of predicted DOAs;
  frame recall = fraction of frames where the number of predicted DOAs equals the number of
  reference DOAs.
* SELD = mean(ER, 1 - F, DOA error / 180, 1 - frame recall).

Rows here are DCASE 2019 output rows `(frame, class, azimuth, elevation)` at 20 ms (4 fields); the
5/6-field rows of later years `(frame, class, track, azimuth, elevation[, distance])` are accepted
and their track/distance ignored. Reproduced quirks (docs/metrics.md): DOAs are quantised down to the
10-degree grid (azimuth clipped to [-180, 170], elevation to [-40, 40]) and de-duplicated per
(frame, class, cell); each 1 s segment looks at its first 49 frames only; reference events cover
frames floor(start * 50) .. ceil(end * 50) inclusive; the DOA error divides by all predicted DOAs,
including those in frames without reference; every recording has 3000 frames.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .metrics import angular_distance_polar

EPS = np.finfo(float).eps

#: class name -> index, as in the DCASE 2019 baseline
TAU2019_CLASSES = {
    "knock": 0, "drawer": 1, "clearthroat": 2, "phone": 3, "keysDrop": 4, "speech": 5,
    "keyboard": 6, "pageturn": 7, "cough": 8, "doorslam": 9, "laughter": 10,
}  # fmt: skip
FRAMES_PER_SECOND = 50  # 20 ms hop at 48 kHz
NUM_FRAMES = 3000  # 60 s recordings
_AZI0, _ELE0, _RES, _N_ELE = -180, -40, 10, 9  # grid: azimuth -180..170, elevation -40..40, 10 deg
_N_CELLS = 36 * _N_ELE

__all__ = ["TAU2019_CLASSES", "compute_dcase2019_metrics", "read_tau2019_metadata", "tau2019_events_to_rows"]


def read_tau2019_metadata(path: str | os.PathLike) -> list[tuple[int, float, float, int, int]]:
    """TAU2019 metadata CSV (`sound_event_recording,start_time,end_time,ele,azi,dist`, with header) ->
    events (class index, start_s, end_s, elevation, azimuth). Note that elevation comes before azimuth."""
    events = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for lineno, line in enumerate(reader, start=2):
            if not line:
                continue
            name = line[0].strip()
            if name not in TAU2019_CLASSES:
                raise ValueError(f"{path}:{lineno}: unknown TAU2019 class {name!r}; known: {sorted(TAU2019_CLASSES)}.")
            events.append((TAU2019_CLASSES[name], float(line[1]), float(line[2]), int(line[3]), int(line[4])))
    return events


def tau2019_events_to_rows(events: Any, num_frames: int = NUM_FRAMES, frames_per_second: int = FRAMES_PER_SECOND) -> np.ndarray:
    """Events (class, start_s, end_s, elevation, azimuth) -> 2019 rows (frame, class, azimuth, elevation),
    covering frames floor(start * fps) .. ceil(end * fps) inclusive, below `num_frames` (official)."""
    out = []
    for cls, start, end, ele, azi in events:
        s = int(np.floor(float(start) * frames_per_second))
        e = min(int(np.ceil(float(end) * frames_per_second)), num_frames - 1)
        for t in range(s, e + 1):
            out.append((t, cls, azi, ele))
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def _cells(rows: Any, num_classes: int, num_frames: int, name: str) -> np.ndarray:
    """Unique active (frame, class, cell) as one int64 key per entry, sorted."""
    arr = np.asarray(rows, dtype=np.float64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] not in (4, 5, 6):
        raise ValueError(
            f"`{name}`: expected 2019 rows (frame, class, azimuth, elevation) or (frame, class, track, azimuth, "
            f"elevation[, distance]); got shape {arr.shape}."
        )
    az_col = 2 if arr.shape[1] == 4 else 3
    frame, cls = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
    if np.any(cls < 0) or np.any(cls >= num_classes):
        raise ValueError(f"`{name}`: class indices must be in [0, {num_classes}).")
    az = np.clip(np.trunc(arr[:, az_col]), _AZI0, 170)  # official reads ints
    el = np.clip(np.trunc(arr[:, az_col + 1]), _ELE0, 40)
    cell = ((az - _AZI0) // _RES).astype(np.int64) * _N_ELE + ((el - _ELE0) // _RES).astype(np.int64)
    keep = (frame >= 0) & (frame < num_frames)
    key = (frame[keep] * num_classes + cls[keep]) * _N_CELLS + cell[keep]
    return np.unique(key)


def _file_counts(ref_keys, pred_keys, num_classes, num_frames, fps):
    C = num_classes
    # SED activity on 1 s segments; a segment looks at frames [i*fps, i*fps + fps - 1) (official slice)
    n_seg = int(np.ceil(num_frames / float(fps)))
    act = []
    for keys in (ref_keys, pred_keys):
        fc = np.unique(keys // _N_CELLS)
        frame, cls = fc // C, fc % C
        ok = (frame % fps) < fps - 1
        seg = np.zeros((n_seg, C), dtype=bool)
        seg[frame[ok] // fps, cls[ok]] = True
        act.append(seg)
    T, O = act
    tp, nref, nsys = float((T & O).sum()), float(T.sum()), float(O.sum())
    fp, fn = (~T & O).sum(1), (T & ~O).sum(1)
    s, d, i = np.minimum(fp, fn).sum(), np.maximum(0, fn - fp).sum(), np.maximum(0, fp - fn).sum()
    # DOA: class-agnostic assignment per frame
    rf, pf = ref_keys // (C * _N_CELLS), pred_keys // (C * _N_CELLS)
    n_r = np.bincount(rf, minlength=num_frames)[:num_frames]
    n_p = np.bincount(pf, minlength=num_frames)[:num_frames]
    good = float((n_r == n_p).sum())
    both = np.flatnonzero((n_r > 0) & (n_p > 0))
    doa_sum = 0.0
    if both.size:
        def angles(keys):
            cell = keys % _N_CELLS
            az = (cell // _N_ELE) * _RES + _AZI0
            el = (cell % _N_ELE) * _RES + _ELE0
            return np.asarray(az, dtype=np.float64) * np.pi / 180, np.asarray(el, dtype=np.float64) * np.pi / 180

        r_az, r_el = angles(ref_keys)
        p_az, p_el = angles(pred_keys)
        r_start = np.r_[0, np.cumsum(n_r)]
        p_start = np.r_[0, np.cumsum(n_p)]
        single = both[(n_r[both] == 1) | (n_p[both] == 1)]
        multi = both[(n_r[both] > 1) & (n_p[both] > 1)]
        if single.size:  # min over the other side, vectorised through a padded matrix
            P, Q = int(n_r[single].max()), int(n_p[single].max())
            ri = r_start[single][:, None] + np.arange(P)
            pi = p_start[single][:, None] + np.arange(Q)
            rv = np.arange(P) < n_r[single][:, None]
            pv = np.arange(Q) < n_p[single][:, None]
            ri, pi = np.where(rv, ri, 0), np.where(pv, pi, 0)
            cost = angular_distance_polar(r_az[ri][:, :, None], r_el[ri][:, :, None], p_az[pi][:, None, :], p_el[pi][:, None, :])
            cost = np.where(rv[:, :, None] & pv[:, None, :], cost, np.inf)
            doa_sum += float(cost.reshape(single.size, -1).min(1).sum())
        for t in multi.tolist():
            rs, ps = slice(r_start[t], r_start[t + 1]), slice(p_start[t], p_start[t + 1])
            cost = angular_distance_polar(r_az[rs][:, None], r_el[rs][:, None], p_az[ps][None, :], p_el[ps][None, :])
            r, c = linear_sum_assignment(cost)
            doa_sum += float(cost[r, c].sum())
    return np.array([tp, nref, nsys, s, d, i, doa_sum, float(pred_keys.size), good, float(num_frames)])


def compute_dcase2019_metrics(
    references: Any,
    predictions: Any,
    num_classes: int = 11,
    num_frames: int = NUM_FRAMES,
    frames_per_second: int = FRAMES_PER_SECOND,
    missing: str = "error",
) -> dict[str, Any]:
    """DCASE 2019 ER, F (1 s segments), DOA error (LE), frame recall (LR) and SELD score.

    references, predictions: dict recording id -> 2019 rows (frame, class, azimuth, elevation) at
    20 ms (use `tau2019_events_to_rows(read_tau2019_metadata(path))` for reference metadata), or
    one recording's rows. `missing` as in `compute_seld_metrics` ("error", "empty"); the official
    script refuses folders with different file counts. Returns ER, F, LE (DOA error), LR (frame
    recall), SELD and num_files.
    """
    refs = dict(references) if isinstance(references, Mapping) else {"recording": references}
    preds = dict(predictions) if isinstance(predictions, Mapping) else {"recording": predictions}
    extra = sorted(set(preds) - set(refs))
    absent = sorted(set(refs) - set(preds))
    if extra:
        raise ValueError(f"Predictions for recordings without a reference: {extra[:5]}.")
    if absent and missing != "empty":
        raise ValueError(
            f"{len(absent)} reference recording(s) have no prediction: {absent[:5]}; pass missing='empty' to score "
            "them as empty predictions."
        )
    total = np.zeros(10)
    for f in refs:
        rk = _cells(refs[f], num_classes, num_frames, "references")
        pk = _cells(preds.get(f, []), num_classes, num_frames, "predictions")
        total += _file_counts(rk, pk, num_classes, num_frames, frames_per_second)
    tp, nref, nsys, s, d, i, doa_sum, n_pred, good, n_frames = total
    ER = (s + d + i) / (nref + 0.0) if nref else float("nan")
    prec = tp / (nsys + EPS)
    rec = tp / (nref + EPS)
    F = 2 * prec * rec / (prec + rec + EPS)
    LE = doa_sum / n_pred if n_pred else float("nan")
    LR = good / n_frames
    SELD = (ER + (1 - F) + LE / 180 + (1 - LR)) / 4
    return {"ER": float(ER), "F": float(F), "LE": float(LE), "LR": float(LR), "SELD": float(SELD), "num_files": len(refs)}

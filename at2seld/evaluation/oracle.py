"""Oracle-activity analysis: telling "when/what" errors from "where" errors.

Three scorings of the same model outputs against the same references:

* ``predicted``: the normal decode (thresholds, merging, smoothing) -> `compute_seld_metrics`.
* ``oracle_activity`` (localization judged alone): the reference says when, what and how many.
  For every reference frame t and class c with k reference instances, the k tracks with the highest
  activity probability for class c at frame t are taken, and their DOAs (and distances) become the
  k predicted rows. The reference DOAs are *not* used to choose the tracks, so a model that puts the
  right class on a track pointing the wrong way is penalised. Detection errors vanish (up to the DOA
  threshold of the location-aware F), so F20 becomes "fraction of localised-within-20-degrees" and
  LE the pure localization error.
* ``oracle_doa`` (detection judged alone): the predicted activity is kept, and the DOAs of the
  predicted rows of class c at frame t are replaced by the reference DOAs of class c at frame t:
  predictions and references are paired by the Hungarian algorithm on angular distance and every
  paired prediction receives its reference's DOA (and distance). Unpaired predictions (false alarms,
  surplus instances) keep their own DOA. LE is then ~0 and ER/F measure detection alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..decoding_at2seld import decode, polar_to_cartesian, rows_to_array
from .calibration import _probs, model_output_arrays
from .metrics import compute_seld_metrics

__all__ = ["oracle_activity_rows", "oracle_analysis", "oracle_doa_rows"]


def oracle_activity_rows(probs: np.ndarray, doa: np.ndarray, reference: Any, distance: np.ndarray | None = None) -> np.ndarray:
    """Predicted rows with reference activity and the model's own DOAs.

    probs: (frames, tracks, classes) activity probabilities; doa: (frames, tracks, 3); reference: rows.
    Returns (rows, 5|6): for each reference (frame, class) with k instances, the k most probable tracks
    of that class (k <= tracks), in decreasing probability. Reference frames beyond the outputs are skipped.
    """
    from ..decoding_at2seld import cartesian_to_polar

    ref = rows_to_array(reference, "reference")
    frames, tracks, _ = probs.shape
    out = []
    if ref.shape[0]:
        f = ref[:, 0].astype(np.int64)
        c = ref[:, 1].astype(np.int64)
        keys, counts = np.unique(np.stack([f, c], 1), axis=0, return_counts=True)
        for (t, cls), k in zip(keys.tolist(), counts.tolist()):
            if t >= frames:
                continue
            order = np.argsort(-probs[t, :, cls], kind="stable")[: min(k, tracks)]
            for n in order.tolist():
                az, el = cartesian_to_polar(doa[t, n])
                row = [t, cls, n, float(az), float(el)]
                if distance is not None:
                    row.append(float(distance[t, n]))
                out.append(row)
    return np.asarray(out, dtype=np.float64).reshape(-1, 6 if distance is not None else 5)


def oracle_doa_rows(predicted: Any, reference: Any) -> np.ndarray:
    """Predicted rows whose DOAs are replaced by the Hungarian-paired reference DOAs of the same
    frame and class (distance too, when both carry one). predicted, reference: rows -> rows."""
    pred = rows_to_array(predicted, "predicted").copy()
    ref = rows_to_array(reference, "reference")
    if pred.shape[0] == 0 or ref.shape[0] == 0:
        return pred
    ref_groups: dict[tuple[int, int], list[int]] = {}
    for i, (t, c) in enumerate(ref[:, :2].astype(np.int64).tolist()):
        ref_groups.setdefault((t, c), []).append(i)
    pred_groups: dict[tuple[int, int], list[int]] = {}
    for i, (t, c) in enumerate(pred[:, :2].astype(np.int64).tolist()):
        pred_groups.setdefault((t, c), []).append(i)
    copy_dist = pred.shape[1] == 6 and ref.shape[1] == 6
    for key, p_idx in pred_groups.items():
        r_idx = ref_groups.get(key)
        if not r_idx:
            continue
        pv = polar_to_cartesian(pred[p_idx, 3], pred[p_idx, 4])
        rv = polar_to_cartesian(ref[r_idx, 3], ref[r_idx, 4])
        cost = np.arccos(np.clip(rv @ pv.T, -1, 1))
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows.tolist(), cols.tolist()):
            pred[p_idx[c], 3:5] = ref[r_idx[r], 3:5]
            if copy_dist:
                pred[p_idx[c], 5] = ref[r_idx[r], 5]
    return pred


def oracle_analysis(
    outputs_per_file: Mapping[str, Any],
    references_per_file: Mapping[str, Any],
    num_classes: int,
    thresholds: float | Sequence[float] | np.ndarray = 0.5,
    merge_angle_deg: float = 15.0,
    median_filter: int = 0,
    metric: str = "dcase2023",
    average: str = "macro",
    doa_threshold: float = 20.0,
) -> dict[str, dict[str, Any]]:
    """Scores of the model outputs as decoded, with reference activity, and with reference DOAs.

    outputs_per_file: recording id -> model output (see `calibration.model_output_arrays`);
    references_per_file: recording id -> reference rows. Returns {"predicted", "oracle_activity",
    "oracle_doa"} -> `compute_seld_metrics` dicts (see the module docstring for the definitions).
    """
    missing = sorted(set(references_per_file) - set(outputs_per_file))
    if missing:
        raise ValueError(f"No model output for reference recording(s) {missing[:5]}.")
    predicted, activity, doa_oracle = {}, {}, {}
    for f, ref in references_per_file.items():
        sed, doa, dist, logits = model_output_arrays(outputs_per_file[f])
        probs = _probs(sed, logits)
        rows = decode(probs, doa, thresholds, merge_angle_deg, median_filter, dist, inputs_are_logits=False)
        predicted[f] = rows_to_array(rows) if rows else np.zeros((0, 6 if dist is not None else 5))
        activity[f] = oracle_activity_rows(probs, doa, ref, dist)
        doa_oracle[f] = oracle_doa_rows(predicted[f], ref)
    kw = {"num_classes": num_classes, "metric": metric, "average": average, "doa_threshold": doa_threshold}
    return {
        "predicted": compute_seld_metrics(dict(references_per_file), predicted, **kw),
        "oracle_activity": compute_seld_metrics(dict(references_per_file), activity, **kw),
        "oracle_doa": compute_seld_metrics(dict(references_per_file), doa_oracle, **kw),
    }

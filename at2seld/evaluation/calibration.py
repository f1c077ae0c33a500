"""Per-class detection thresholds chosen on validation data.

`calibrate_thresholds` searches one class at a time (coordinate-wise) over a grid of thresholds on
the track activity probabilities, decoding the model outputs with `decode` and scoring them with
`compute_seld_metrics`, to maximise F20 or minimise the SELD score. The result goes into
`AT2SELDConfig.class_thresholds` so that pipelines decode with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..decoding_at2seld import decode
from .metrics import compute_seld_metrics

__all__ = ["DEFAULT_GRID", "CalibrationResult", "calibrate_thresholds", "model_output_arrays"]

DEFAULT_GRID = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())


class CalibrationResult(NamedTuple):
    """`thresholds` (classes,) float array, and `report`: objective, grid, initial and final
    thresholds, the scores before (initial thresholds) and after, and the number of evaluations."""

    thresholds: np.ndarray
    report: dict[str, Any]


def model_output_arrays(output: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """(sed (frames, tracks, classes), doa (frames, tracks, 3), distance (frames, tracks) or None,
    inputs_are_logits) from a dict / ModelOutput with `sed_logits` (or `sed_probs`), `doa` and an
    optional `distance`, or from a tuple (sed_logits, doa[, distance])."""
    if isinstance(output, Mapping) or hasattr(output, "keys"):
        keys = set(output.keys())
        if "sed_logits" in keys:
            sed, logits = output["sed_logits"], True
        elif "sed_probs" in keys:
            sed, logits = output["sed_probs"], False
        else:
            raise KeyError(f"A model output needs `sed_logits` or `sed_probs` and `doa`; got keys {sorted(keys)}.")
        if "doa" not in keys:
            raise KeyError(f"A model output needs a `doa` entry (frames, tracks, 3); got keys {sorted(keys)}.")
        dist = output["distance"] if "distance" in keys else None
        doa = output["doa"]
    elif isinstance(output, Sequence) and len(output) in (2, 3):
        sed, doa = output[0], output[1]
        dist = output[2] if len(output) == 3 else None
        logits = True
    else:
        raise TypeError(
            "A model output must be a dict with `sed_logits`/`sed_probs`, `doa`[, `distance`] or a tuple "
            f"(sed_logits, doa[, distance]); got {type(output).__name__}."
        )

    def arr(x):
        if x is None:
            return None
        if hasattr(x, "detach"):
            x = x.detach().cpu().double().numpy()
        return np.asarray(x, dtype=np.float64)

    return arr(sed), arr(doa), arr(dist), logits


def _probs(sed: np.ndarray, logits: bool) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-sed)) if logits else sed


def _decode_class(probs, doa, dist, c, thr, merge_angle_deg, median_filter) -> np.ndarray:
    """Rows of class c only (decode of the class-c slice, class index restored)."""
    rows = decode(probs[:, :, c : c + 1], doa, thr, merge_angle_deg, median_filter, dist, inputs_are_logits=False)
    width = 6 if dist is not None else 5
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, width)
    arr[:, 1] = c
    return arr


def calibrate_thresholds(
    outputs_per_file: Mapping[str, Any],
    references_per_file: Mapping[str, Any],
    num_classes: int,
    objective: str = "f",
    grid: Sequence[float] | None = None,
    initial: float | Sequence[float] = 0.5,
    merge_angle_deg: float = 15.0,
    median_filter: int = 0,
    metric: str = "dcase2023",
    average: str = "macro",
    doa_threshold: float = 20.0,
    max_sweeps: int = 2,
) -> CalibrationResult:
    """Search per-class thresholds on validation outputs.

    Args:
        outputs_per_file: recording id -> model output of that recording (see `model_output_arrays`):
            sed logits (frames, tracks, classes), doa (frames, tracks, 3), optional distance.
        references_per_file: recording id -> reference rows (same ids).
        num_classes: C.
        objective: "f" maximises F20 (location-aware F, macro or micro per `average`); "seld"
            minimises the SELD score.
        grid: candidate thresholds (default 0.05, 0.10, ..., 0.95).
        initial: starting threshold(s); the "before" score is computed with them.
        merge_angle_deg, median_filter: decoding settings, kept fixed during the search.
        metric, average, doa_threshold: the score definition (see `compute_seld_metrics`).
        max_sweeps: passes over the classes; the search stops early when a pass changes nothing.

    Coordinate-wise search: for class c = 0..C-1, every grid value is tried with the other classes'
    thresholds fixed, and the best one kept (ties keep the current value, else the grid value nearest
    to it). Only the rows of class c are re-decoded for each trial.

    Returns:
        CalibrationResult(thresholds (C,), report) with report keys objective, grid, initial, thresholds,
        before, after (score dicts) and evaluations.
    """
    if objective not in ("f", "seld"):
        raise ValueError(f"`objective` must be 'f' (maximise F20) or 'seld' (minimise the SELD score), got {objective!r}.")
    missing = sorted(set(references_per_file) - set(outputs_per_file))
    if missing:
        raise ValueError(f"No model output for reference recording(s) {missing[:5]}; calibrate on matching sets.")
    grid_arr = np.asarray(DEFAULT_GRID if grid is None else grid, dtype=np.float64)
    if grid_arr.ndim != 1 or grid_arr.size == 0 or np.any((grid_arr < 0) | (grid_arr > 1)):
        raise ValueError(f"`grid` must be a non-empty 1-D list of thresholds in [0, 1], got {grid!r}.")
    thr = np.broadcast_to(np.asarray(initial, dtype=np.float64), (num_classes,)).copy()
    files = list(references_per_file)
    data = {}
    for f in files:
        sed, doa, dist, logits = model_output_arrays(outputs_per_file[f])
        if sed.ndim != 3 or sed.shape[-1] != num_classes:
            raise ValueError(f"Output of {f!r}: sed must be (frames, tracks, {num_classes}), got {sed.shape}.")
        data[f] = (_probs(sed, logits), doa, dist)
    # rows per file and class at the current thresholds
    cache = {f: [_decode_class(*data[f], c, thr[c], merge_angle_deg, median_filter) for c in range(num_classes)] for f in files}

    def evaluate(current):
        preds = {f: np.concatenate(current[f]) for f in files}
        return compute_seld_metrics(
            {f: references_per_file[f] for f in files}, preds, num_classes, average=average,
            doa_threshold=doa_threshold, metric=metric,
        )  # fmt: skip

    def value(scores):
        return -scores["F"] if objective == "f" else scores["SELD"]

    before = evaluate(cache)
    best_val = value(before)
    evaluations = 1
    initial_thr = thr.copy()
    for _ in range(max_sweeps):
        changed = False
        for c in range(num_classes):
            trial_vals = []
            trial_rows = []
            for g in grid_arr:
                if g == thr[c]:
                    trial_vals.append(best_val)
                    trial_rows.append(None)
                    continue
                rows_c = {f: _decode_class(*data[f], c, g, merge_angle_deg, median_filter) for f in files}
                current = {f: cache[f][:c] + [rows_c[f]] + cache[f][c + 1 :] for f in files}
                trial_vals.append(value(evaluate(current)))
                trial_rows.append(rows_c)
                evaluations += 1
            trial_vals = np.asarray(trial_vals)
            best = trial_vals.min()
            if best < best_val - 1e-12:
                cands = np.flatnonzero(trial_vals <= best + 1e-12)
                pick = cands[np.argmin(np.abs(grid_arr[cands] - thr[c]))]
                thr[c] = grid_arr[pick]
                for f in files:
                    cache[f][c] = trial_rows[pick][f]
                best_val = trial_vals[pick]
                changed = True
        if not changed:
            break
    after = evaluate(cache)
    report = {
        "objective": objective,
        "grid": grid_arr.tolist(),
        "initial": initial_thr.tolist(),
        "thresholds": thr.tolist(),
        "before": before,
        "after": after,
        "evaluations": evaluations + 1,
    }
    return CalibrationResult(thr, report)

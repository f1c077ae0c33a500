"""From AT2SELD track outputs to DCASE rows, and the DCASE output-format CSV files.

This file travels to a Hub repository as remote code next to the model: it imports only the
standard library, numpy and (optionally) torch.

Conventions (DCASE, see BRIEF): 100 ms label frames; azimuth in degrees in [-180, 180], 0 = front,
positive counter-clockwise; elevation in degrees in [-90, 90]; Cartesian DOA
x = cos(az) cos(el), y = sin(az) cos(el), z = sin(el).

A *row* is ``(frame, class, track, azimuth_deg, elevation_deg[, distance])``. A list of rows, or a
float array of shape (rows, 5) or (rows, 6), is what the metrics in ``at2seld.evaluation`` score.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

try:  # torch is optional here: decode() also accepts torch tensors
    import torch
except ImportError:  # pragma: no cover - torch is a dependency of the package
    torch = None

try:  # optional: a faster CSV parser
    import pandas as _pd
except ImportError:  # pragma: no cover
    _pd = None

__all__ = [
    "cartesian_to_polar",
    "decode",
    "median_filter_time",
    "polar_to_cartesian",
    "read_dcase_csv",
    "rows_to_array",
    "write_dcase_csv",
]


# --------------------------------------------------------------------------------------------------
# Coordinates
# --------------------------------------------------------------------------------------------------
def polar_to_cartesian(azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
    """Unit vectors from DCASE angles.

    azimuth_deg, elevation_deg: (...) degrees -> (..., 3) with x = cos(az)cos(el), y = sin(az)cos(el),
    z = sin(el). Uses the same operation order as the DCASE baseline (deg * pi / 180).
    """
    az = np.asarray(azimuth_deg, dtype=np.float64) * np.pi / 180.0
    el = np.asarray(elevation_deg, dtype=np.float64) * np.pi / 180.0
    cos_el = np.cos(el)
    return np.stack([np.cos(az) * cos_el, np.sin(az) * cos_el, np.sin(el)], axis=-1)


def cartesian_to_polar(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DCASE angles of (not necessarily unit) vectors.

    xyz: (..., 3) -> (azimuth_deg (...), elevation_deg (...)); azimuth = atan2(y, x),
    elevation = atan2(z, sqrt(x^2 + y^2)), in degrees, as the DCASE baseline converts its Cartesian
    output files. The zero vector maps to (0, 0).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.shape[-1] != 3:
        raise ValueError(f"Expected Cartesian vectors with a last axis of size 3, got shape {xyz.shape}.")
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    azimuth = np.arctan2(y, x) * 180 / np.pi
    elevation = np.arctan2(z, np.sqrt(x**2 + y**2)) * 180 / np.pi
    return azimuth, elevation


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------
def _to_numpy(x: Any, name: str) -> np.ndarray:
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a numpy array or torch tensor of numbers, got {type(x).__name__}.") from err


def median_filter_time(x: np.ndarray, kernel: int) -> np.ndarray:
    """Running median along axis 0 with an odd window, edges padded by repeating the end values.

    x: (frames, ...) -> (frames, ...). `kernel` 0 or 1 returns `x` unchanged. Edge replication (not
    zero padding) keeps a constant signal constant, so an event that is active at the first or last
    frame is not cut short by the filter.
    """
    if kernel in (0, 1):
        return x
    if kernel < 0 or kernel % 2 == 0:
        raise ValueError(f"`median_filter` must be 0 (off) or an odd window length >= 1, got {kernel}.")
    half = kernel // 2
    padded = np.concatenate([np.repeat(x[:1], half, axis=0), x, np.repeat(x[-1:], half, axis=0)], axis=0)
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel, axis=0)  # (frames, ..., kernel)
    return np.median(windows, axis=-1)


def decode(
    sed_logits_or_probs: Any,
    doa: Any,
    thresholds: float | Sequence[float] | np.ndarray = 0.5,
    merge_angle_deg: float = 15.0,
    median_filter: int = 0,
    distance: Any = None,
    inputs_are_logits: bool = True,
) -> list[tuple]:
    """Turn track-wise SED/DOA outputs of one recording into DCASE rows.

    Args:
        sed_logits_or_probs: (frames, tracks, classes) logits (sigmoid gives the activity
            probability of class c on track n) or probabilities (`inputs_are_logits=False`).
        doa: (frames, tracks, 3) Cartesian DOA per track; need not be unit norm.
        thresholds: a float, or (classes,) per-class thresholds on the activity probability
            (e.g. `AT2SELDConfig.class_thresholds`). Track n reports class c at frame t when
            p[t, n, c] > thresholds[c].
        merge_angle_deg: duplicate suppression. Active tracks of the same class in the same frame
            whose DOAs are at most this many degrees apart are merged into one event. Tracks are
            visited in order of decreasing probability; each either joins the first kept event whose
            *seed* (its highest-probability track) lies within the angle, or seeds a new event.
            A merged event keeps the seed's track index and probability and the mean of the
            members' unit DOA vectors (and the mean of their distances). 0 disables merging of
            distinct directions (identical directions still merge); a negative value disables it.
        median_filter: 0 (off) or an odd window (frames) of a running median applied along time to
            each track/class probability before thresholding. For a single threshold this equals
            a majority vote of the binary activity in the window.
        distance: optional (frames, tracks) distance per track; appended as a 6th row field.
        inputs_are_logits: apply a sigmoid to `sed_logits_or_probs` first.

    Returns:
        list of rows `(frame, class, track, azimuth_deg, elevation_deg[, distance])` sorted by
        frame, class, track; frames are 0-based label-frame indices.
    """
    scores = _to_numpy(sed_logits_or_probs, "sed_logits_or_probs")
    doa_np = _to_numpy(doa, "doa")
    if scores.ndim != 3:
        raise ValueError(
            f"`sed_logits_or_probs` must have shape (frames, tracks, classes), got {scores.shape}; "
            "decode one recording at a time (index the batch axis)."
        )
    frames, tracks, classes = scores.shape
    if doa_np.shape != (frames, tracks, 3):
        raise ValueError(
            f"`doa` must have shape (frames, tracks, 3) = {(frames, tracks, 3)} to match the SED output, got {doa_np.shape}."
        )
    dist_np = None
    if distance is not None:
        dist_np = _to_numpy(distance, "distance")
        if dist_np.shape != (frames, tracks):
            raise ValueError(f"`distance` must have shape (frames, tracks) = {(frames, tracks)}, got {dist_np.shape}.")
    thr = np.asarray(thresholds, dtype=np.float64)
    if thr.ndim == 0:
        thr = np.full(classes, float(thr))
    if thr.shape != (classes,):
        raise ValueError(f"`thresholds` must be a float or have shape (classes,) = ({classes},), got shape {thr.shape}.")
    if inputs_are_logits:
        probs = 1.0 / (1.0 + np.exp(-scores))
    else:
        if np.any(scores < 0) or np.any(scores > 1):
            raise ValueError(
                "`inputs_are_logits=False` but `sed_logits_or_probs` has values outside [0, 1]; "
                "pass logits with `inputs_are_logits=True`."
            )
        probs = scores
    probs = median_filter_time(probs, int(median_filter))

    active = probs > thr  # (frames, tracks, classes)
    norms = np.linalg.norm(doa_np, axis=-1, keepdims=True)
    unit = np.divide(doa_np, norms, out=np.zeros_like(doa_np), where=norms > 0)
    cos_merge = math.cos(math.radians(merge_angle_deg)) if merge_angle_deg >= 0 else math.inf

    t_idx, n_idx, c_idx = np.nonzero(active)
    rows: list[tuple] = []
    # group the active (frame, class) pairs; most have a single track and need no merging
    key = t_idx.astype(np.int64) * classes + c_idx
    order = np.lexsort((n_idx, key))
    key, t_idx, n_idx, c_idx = key[order], t_idx[order], n_idx[order], c_idx[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.array([], dtype=np.int64)
    ends = np.r_[starts[1:], key.size] if key.size else starts
    single = (ends - starts) == 1
    # one active track for a (frame, class): the row is that track's DOA (vectorised)
    s1 = starts[single]
    az1, el1 = cartesian_to_polar(doa_np[t_idx[s1], n_idx[s1]])
    cols = [t_idx[s1].tolist(), c_idx[s1].tolist(), n_idx[s1].tolist(), az1.tolist(), el1.tolist()]
    if dist_np is not None:
        cols.append(dist_np[t_idx[s1], n_idx[s1]].tolist())
    rows.extend(zip(*cols))
    # several active tracks of one class in one frame: merge duplicates
    for s, e in zip(starts[~single].tolist(), ends[~single].tolist()):
        t, c = int(t_idx[s]), int(c_idx[s])
        members = n_idx[s:e]
        # visit in decreasing probability (ties: lower track index first)
        p = probs[t, members, c]
        members = members[np.lexsort((members, -p))]
        clusters: list[list[int]] = []
        for n in members.tolist():
            for cl in clusters:
                if float(unit[t, cl[0]] @ unit[t, n]) >= cos_merge:
                    cl.append(n)
                    break
            else:
                clusters.append([n])
        for cl in clusters:
            vec = unit[t, cl].mean(axis=0) if len(cl) > 1 else doa_np[t, cl[0]]
            az, el = cartesian_to_polar(vec)
            row = (t, c, int(cl[0]), float(az), float(el))
            if dist_np is not None:
                row = row + (float(np.mean(dist_np[t, cl])),)
            rows.append(row)
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return rows


# --------------------------------------------------------------------------------------------------
# DCASE output-format CSV files
# --------------------------------------------------------------------------------------------------
def rows_to_array(rows: Any, name: str = "rows") -> np.ndarray:
    """Rows as a float64 array of shape (rows, 5) or (rows, 6).

    Accepts a list of tuples or an array-like; an empty input gives shape (0, 5). Raises a
    `ValueError` naming `name` for anything that is not 5 or 6 numbers per row.
    """
    if isinstance(rows, np.ndarray) and rows.dtype != object:
        arr = rows.astype(np.float64, copy=False)
    else:
        rows = list(rows)
        if len(rows) == 0:
            return np.zeros((0, 5))
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise ValueError(
                f"`{name}`: all rows must have the same length (5 = frame, class, track, azimuth, elevation; "
                f"6 = with distance), got lengths {sorted(widths)}."
            )
        arr = np.asarray(rows, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, arr.shape[1] if arr.ndim == 2 and arr.shape[1] in (5, 6) else 5))
    if arr.ndim != 2 or arr.shape[1] not in (5, 6):
        raise ValueError(
            f"`{name}` must be rows of (frame, class, track, azimuth_deg, elevation_deg[, distance]), i.e. shape "
            f"(rows, 5) or (rows, 6); got shape {arr.shape}. Cartesian rows (x, y, z) must be converted with "
            "`cartesian_to_polar` first (or read from a file with `read_dcase_csv`)."
        )
    return arr


def write_dcase_csv(rows: Any, path: str | os.PathLike, cartesian: bool = False) -> None:
    """Write rows to a DCASE output-format CSV (no header).

    cartesian=False: `frame,class,track,azimuth,elevation[,distance]` (the metadata/polar form).
    cartesian=True: `frame,class,track,x,y,z,distance` (the baseline's output form; unit vectors;
    distance 0 when the rows carry none). Floats are written with full (round-trip) precision.
    """
    arr = rows_to_array(rows)
    lines = []
    for r in arr:
        head = f"{int(r[0])},{int(r[1])},{int(r[2])}"
        if cartesian:
            x, y, z = polar_to_cartesian(r[3], r[4])
            dist = float(r[5]) if arr.shape[1] == 6 else 0.0
            lines.append(f"{head},{float(x)!r},{float(y)!r},{float(z)!r},{dist!r}")
        else:
            tail = f",{float(r[5])!r}" if arr.shape[1] == 6 else ""
            lines.append(f"{head},{float(r[3])!r},{float(r[4])!r}{tail}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + ("\n" if lines else ""))


def _read_uniform_csv(path: str | os.PathLike, distance_scale: float) -> np.ndarray | None:
    """Fast path of `read_dcase_csv` for header-less files whose lines all have the same width;
    None when the file needs the line-by-line reader (header, mixed widths, bad lines)."""
    arr = None
    if _pd is not None:  # pandas' C parser is ~5x faster than np.loadtxt
        try:
            arr = _pd.read_csv(path, header=None, dtype=np.float64, skip_blank_lines=True).to_numpy()
        except _pd.errors.EmptyDataError:
            return np.zeros((0, 5))
        except (ValueError, TypeError, _pd.errors.ParserError):
            return None
        if np.isnan(arr).any():  # ragged lines were padded with NaN
            return None
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # empty file
                arr = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
        except (ValueError, IndexError):
            return None
    if arr.size == 0:
        return np.zeros((0, 5))
    n = arr.shape[1]
    if n == 4:
        return np.column_stack([arr[:, :2], np.zeros(len(arr)), arr[:, 2:]])
    if n == 5:
        return arr
    if n == 6:
        arr[:, 5] *= distance_scale
        return arr
    if n == 7:
        az, el = cartesian_to_polar(arr[:, 3:6])
        return np.column_stack([arr[:, :3], az, el, arr[:, 6] * distance_scale])
    return None


def read_dcase_csv(path: str | os.PathLike, distance_scale: float = 1.0) -> np.ndarray:
    """Read a DCASE CSV into polar rows, in file order.

    Accepted line forms (no header; a first line that does not start with a digit is skipped):
    4 fields `frame,class,azimuth,elevation` (track 0), 5 `frame,class,track,azimuth,elevation`,
    6 `frame,class,track,azimuth,elevation,distance`, 7 `frame,class,track,x,y,z,distance` (the
    baseline's Cartesian output, converted to angles as the DCASE code does). Distances are
    multiplied by `distance_scale` (0.01 reads STARSS23 centimetres as metres).

    Returns (rows, 5) float64, or (rows, 6) when any line carries a distance (NaN where a line has none).
    """
    fast = _read_uniform_csv(path, distance_scale)
    if fast is not None:
        return fast
    out: list[list[float]] = []
    has_dist = False
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            words = line.split(",")
            if lineno == 1 and not words[0].strip().lstrip("-").isdigit():
                continue  # header
            try:
                vals = [float(w) for w in words]
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: expected comma-separated numbers, got {line!r}.") from err
            n = len(vals)
            if n == 4:
                out.append([vals[0], vals[1], 0.0, vals[2], vals[3], math.nan])
            elif n == 5:
                out.append(vals + [math.nan])
            elif n == 6:
                has_dist = True
                out.append(vals[:5] + [vals[5] * distance_scale])
            elif n == 7:
                has_dist = True
                az, el = cartesian_to_polar(np.asarray(vals[3:6]))
                out.append(vals[:3] + [float(az), float(el), vals[6] * distance_scale])
            else:
                raise ValueError(
                    f"{path}:{lineno}: a DCASE row has 4, 5, 6 (polar) or 7 (Cartesian) fields, got {n}: {line!r}."
                )
    arr = np.asarray(out, dtype=np.float64).reshape(-1, 6)
    return arr if has_dist else arr[:, :5]

"""Readers of the DCASE SELD metadata CSVs: every format returns rows at 100 ms label resolution.

Formats (one reader each):

- ``tau2019``: header ``sound_event_recording,start_time,end_time,ele,azi,dist``; one row per event, times in
  seconds, ELEVATION BEFORE AZIMUTH, distance in metres. Converted to label frames as the DCASE 2019 baseline
  converts them (`cls_feature_class.read_desc_file` + `get_labels_for_file`, there at 50 frames/s, here at
  10 frames/s): first frame ``floor(start * 10)``, last frame ``ceil(end * 10)`` INCLUSIVE (the baseline fills
  ``[start_frame, end_frame + 1)``), with the same float arithmetic (``float(text) * 10.0``). The event's row order
  in the file is its ``source_id``, so two overlapping events of one class stay distinct.
- ``tau2020``: ``frame,class,track,azimuth,elevation`` (no header); ``track`` becomes ``source_id``.
- ``tau2021``: ``frame,class,source,azimuth,elevation`` (no header).
- ``starss22``: ``frame,class,source,azimuth,elevation`` (no header).
- ``starss23`` / ``synthetic``: ``frame,class,source,azimuth,elevation[,distance_cm]`` (no header); the distance
  is returned in METRES (``distance_cm / 100``).

Azimuth/elevation are degrees (azimuth in [-180, 180], elevation in [-90, 90]).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from typing import NamedTuple

from .classes import CLASS_NAMES, check_dataset_name

LABEL_RESOLUTION_S = 0.1
TAU2019_HEADER = ("sound_event_recording", "start_time", "end_time", "ele", "azi", "dist")


class MetadataRow(NamedTuple):
    """One active source in one 100 ms label frame."""

    frame: int
    class_index: int
    source_id: int
    azimuth_deg: float
    elevation_deg: float
    distance_m: float | None


class MetadataError(ValueError):
    """A malformed metadata file; the message names the file and the line."""


class _RowError(Exception):
    pass


def _int_field(text: str, name: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise _RowError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value) or value != int(value):
        raise _RowError(f"{name} {text!r} is not an integer")
    return int(value)


def _float_field(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _RowError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _RowError(f"{name} {text!r} is not finite")
    return value


def _check_angles(az: float, el: float) -> None:
    if not -180.0 <= az <= 180.0:
        raise _RowError(f"azimuth {az:g} is outside [-180, 180] degrees")
    if not -90.0 <= el <= 90.0:
        raise _RowError(f"elevation {el:g} is outside [-90, 90] degrees")


def _check_class(cls: int, dataset: str) -> None:
    n = len(CLASS_NAMES[dataset])
    if not 0 <= cls < n:
        raise _RowError(f"class index {cls} is outside [0, {n - 1}] ({dataset} has {n} classes)")


_EXPECTED_COLUMNS = {
    "tau2020": ((5,), "frame,class,track,azimuth,elevation"),
    "tau2021": ((5,), "frame,class,source,azimuth,elevation"),
    "starss22": ((5,), "frame,class,source,azimuth,elevation"),
    "starss23": ((5, 6), "frame,class,source,azimuth,elevation[,distance_cm]"),
    "synthetic": ((5, 6), "frame,class,source,azimuth,elevation[,distance_cm]"),
}


def _parse_frame_row(fields: list[str], dataset: str) -> MetadataRow:
    counts, layout = _EXPECTED_COLUMNS[dataset]
    if len(fields) not in counts:
        raise _RowError(f"expected {' or '.join(map(str, counts))} columns ({layout}), got {len(fields)}")
    frame = _int_field(fields[0], "frame")
    if frame < 0:
        raise _RowError(f"frame {frame} is negative")
    cls = _int_field(fields[1], "class")
    _check_class(cls, dataset)
    source = _int_field(fields[2], "source/track")
    az = _float_field(fields[3], "azimuth")
    el = _float_field(fields[4], "elevation")
    _check_angles(az, el)
    dist = None
    if len(fields) == 6:
        dist_cm = _float_field(fields[5], "distance")
        if dist_cm < 0:
            raise _RowError(f"distance {dist_cm:g} cm is negative")
        dist = dist_cm / 100.0
    return MetadataRow(frame, cls, source, az, el, dist)


_TRAILING_DIGITS = re.compile(r"\d+$")


def tau2019_class_index(name: str) -> int:
    """Class index of a TAU2019 `sound_event_recording` entry: a class name (``speech``) or a source file name
    (``speech023.wav``: extension and trailing digits are stripped)."""
    classes = CLASS_NAMES["tau2019"]
    if name in classes:
        return classes.index(name)
    stem = _TRAILING_DIGITS.sub("", name.rsplit(".", 1)[0] if name.endswith((".wav", ".WAV")) else name)
    if stem in classes:
        return classes.index(stem)
    raise _RowError(f"sound event {name!r} is not a TAU2019 class (expected one of {list(classes)})")


def tau2019_frames(start_s: float, end_s: float, label_resolution: float = LABEL_RESOLUTION_S) -> range:
    """Label frames of a TAU2019 event as the DCASE 2019 baseline computes them: floor(start*rate) to
    ceil(end*rate), both inclusive."""
    rate = 1.0 / label_resolution
    return range(math.floor(start_s * rate), math.ceil(end_s * rate) + 1)


def _parse_tau2019_row(fields: list[str], event_index: int) -> list[MetadataRow]:
    if len(fields) != 6:
        raise _RowError(f"expected 6 columns ({','.join(TAU2019_HEADER)}), got {len(fields)}")
    cls = tau2019_class_index(fields[0].strip())
    start = _float_field(fields[1], "start_time")
    end = _float_field(fields[2], "end_time")
    if start < 0:
        raise _RowError(f"start_time {start:g} s is negative")
    if end < start:
        raise _RowError(f"end_time {end:g} s is before start_time {start:g} s")
    el = _float_field(fields[3], "ele")  # elevation comes BEFORE azimuth in TAU2019
    az = _float_field(fields[4], "azi")
    _check_angles(az, el)
    dist = _float_field(fields[5], "dist")
    if dist < 0:
        raise _RowError(f"dist {dist:g} m is negative")
    return [MetadataRow(f, cls, event_index, az, el, dist) for f in tau2019_frames(start, end)]


def read_metadata(path: str | os.PathLike, dataset: str, strict: bool = True,
                  num_frames: int | None = None) -> list[MetadataRow]:
    """Read one metadata CSV of `dataset` into 100 ms rows.

    Args:
        path: the CSV file.
        dataset: one of `DATASET_NAMES` ("tau2019", "tau2020", "tau2021", "starss22", "starss23", "synthetic").
        strict: raise `MetadataError` (naming file, line and problem) on the first malformed row; with
            `strict=False` malformed rows are skipped and ONE warning gives their count and the first problem.
        num_frames: if given, rows at frames >= num_frames are dropped (the baselines clip labels to the audio).
    Returns:
        `list[MetadataRow]`: `(frame, class_index, source_id, azimuth_deg, elevation_deg, distance_m or None)`. File
        order for the frame-wise formats; TAU2019 events are expanded to frames and sorted by frame (stable).
    """
    check_dataset_name(dataset)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Metadata file not found: {path}")
    with open(path, encoding="utf-8-sig") as fh:
        lines = fh.read().splitlines()
    rows: list[MetadataRow] = []
    bad: list[str] = []
    start_line = 1
    if dataset == "tau2019":
        header = tuple(f.strip() for f in lines[0].split(",")) if lines else ()
        if header != TAU2019_HEADER:
            raise MetadataError(
                f"{path}:1: expected the TAU2019 header {','.join(TAU2019_HEADER)!r}, got {lines[0] if lines else ''!r}."
                " Is this a TAU2019 file? Frame-wise files (2020-2023) are read with dataset='tau2020'/'tau2021'/"
                "'starss23'."
            )
        start_line = 2
    event_index = 0
    for line_no, line in enumerate(lines[start_line - 1:], start=start_line):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            if dataset == "tau2019":
                rows.extend(_parse_tau2019_row(fields, event_index))
                event_index += 1
            else:
                rows.append(_parse_frame_row(fields, dataset))
        except _RowError as err:
            msg = f"{path}:{line_no}: {err} in {line!r}"
            if line_no == 1 and dataset != "tau2019" and not fields[0].lstrip("-").replace(".", "").isdigit():
                msg += f" ({dataset} files have no header line)"
            if strict:
                raise MetadataError(msg + ". Fix the row, or pass strict=False to skip malformed rows.") from None
            bad.append(msg)
    if bad:
        warnings.warn(f"Skipped {len(bad)} malformed row(s) in {path}; first: {bad[0]}", stacklevel=2)
    if dataset == "tau2019":
        rows.sort(key=lambda r: r.frame)
    if num_frames is not None:
        rows = [r for r in rows if r.frame < num_frames]
    return rows


def write_metadata(path: str | os.PathLike, rows, dataset: str = "starss23") -> None:
    """Write frame-wise rows in a 2020-2023 format (distance back in integer cm for starss23/synthetic)."""
    check_dataset_name(dataset)
    if dataset == "tau2019":
        raise ValueError("write_metadata writes the frame-wise formats only (tau2020/2021, starss22/23, synthetic).")
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            base = f"{int(r[0])},{int(r[1])},{int(r[2])},{round(r[3])},{round(r[4])}"
            if dataset in ("starss23", "synthetic") and len(r) > 5 and r[5] is not None:
                base += f",{round(r[5] * 100)}"
            fh.write(base + "\n")


__all__ = [
    "LABEL_RESOLUTION_S",
    "TAU2019_HEADER",
    "MetadataError",
    "MetadataRow",
    "read_metadata",
    "tau2019_class_index",
    "tau2019_frames",
    "write_metadata",
]

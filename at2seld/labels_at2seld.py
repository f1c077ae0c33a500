"""Track-wise SELD targets from DCASE metadata rows (the `labels` the AT2SELD model consumes).

Layout of `encode_labels(...)` (per 100 ms label frame and track), float32 `(num_frames, num_tracks, 6)`:

    [..., 0]    activity: 1 if the track carries an event in this frame, else 0
    [..., 1]    class index (0 when inactive)
    [..., 2:5]  unit Cartesian DOA (x, y, z) = (cos az cos el, sin az cos el, sin el), zeros when inactive
    [..., 5]    source distance in metres, 0 when unknown or inactive

A batch stacks these into `(batch, frames, tracks, 6)`; padded frames are excluded with the model's `frame_mask`.
This file travels to a Hub repository as remote code (stdlib and numpy only).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

LABEL_FIELDS = 6


def doa_to_unit_vector(azimuth_deg: float, elevation_deg: float) -> tuple[float, float, float]:
    """DCASE convention: azimuth 0 = front, positive to the left; elevation positive up. Returns (x, y, z)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return (math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el))


def encode_labels(
    rows: Iterable[tuple],
    num_frames: int,
    num_classes: int,
    num_tracks: int = 3,
) -> np.ndarray:
    """Place DCASE events on tracks, frame by frame.

    Args:
        rows: `(frame, class_index, source_id, azimuth_deg, elevation_deg, distance_m_or_None)` per event and 100 ms
            frame (DCASE 2020-2023 metadata with the distance already in metres; the 5-field form without distance
            is accepted too).
        num_frames: label frames of the audio (rows at `frame >= num_frames` are dropped with a warning).
        num_classes: size of the class set.
        num_tracks: N output tracks. Events of one frame go on tracks in order of (class, source id); beyond N
            simultaneous events the first N are kept and a warning gives the count of dropped events.

    Returns:
        `(num_frames, num_tracks, 6)` float32, layout in the module docstring.

    Raises:
        ValueError on a class index outside [0, num_classes), a negative or non-integer frame, or a malformed row.
    """
    if num_frames < 0 or num_classes < 1 or num_tracks < 1:
        raise ValueError(
            f"Need num_frames >= 0, num_classes >= 1 and num_tracks >= 1; got {num_frames}, {num_classes}, {num_tracks}."
        )
    per_frame: dict[int, list[tuple]] = defaultdict(list)
    beyond = 0
    for i, row in enumerate(rows):
        row = tuple(row)
        if len(row) == 5:
            row = (*row, None)
        if len(row) != 6:
            raise ValueError(
                f"Row {i} has {len(row)} fields; expected (frame, class, source, azimuth, elevation[, distance_m]): {row!r}."
            )
        frame, cls, source, az, el, dist = row
        if int(frame) != frame or frame < 0:
            raise ValueError(f"Row {i}: frame must be a non-negative integer, got {frame!r}.")
        if int(cls) != cls or not 0 <= cls < num_classes:
            raise ValueError(f"Row {i}: class index {cls!r} is outside [0, {num_classes - 1}] ({num_classes} classes).")
        if not (math.isfinite(az) and math.isfinite(el)):
            raise ValueError(f"Row {i}: azimuth/elevation must be finite degrees, got {az!r}, {el!r}.")
        if int(frame) >= num_frames:
            beyond += 1
            continue
        per_frame[int(frame)].append((int(cls), source, float(az), float(el), dist))
    if beyond:
        warnings.warn(
            f"{beyond} metadata row(s) lie at or beyond frame {num_frames} (the audio is shorter than its metadata); "
            "they were dropped.",
            stacklevel=2,
        )
    out = np.zeros((num_frames, num_tracks, LABEL_FIELDS), dtype=np.float32)
    dropped = 0
    for frame, events in per_frame.items():
        events.sort(key=lambda e: (e[0], _source_key(e[1])))
        dropped += max(0, len(events) - num_tracks)
        for track, (cls, _, az, el, dist) in enumerate(events[:num_tracks]):
            out[frame, track, 0] = 1.0
            out[frame, track, 1] = cls
            out[frame, track, 2:5] = doa_to_unit_vector(az, el)
            if dist is not None and math.isfinite(float(dist)) and float(dist) > 0:
                out[frame, track, 5] = float(dist)
    if dropped:
        warnings.warn(
            f"{dropped} event(s) dropped: more than num_tracks={num_tracks} simultaneous events in some frames.",
            stacklevel=2,
        )
    return out


def _source_key(source) -> tuple:
    # Source ids are ints in DCASE files; fall back to text for anything else so sorting never fails.
    try:
        return (0, int(source), "")
    except (TypeError, ValueError):
        return (1, 0, str(source))


__all__ = ["LABEL_FIELDS", "doa_to_unit_vector", "encode_labels"]

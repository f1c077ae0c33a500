"""Deterministic synthetic DCASE label sets shared by the metric tests and the reference runs.

`make_case(seed, ...)` builds references and predictions for a few recordings from
`np.random.default_rng(seed)` (PCG64: identical on every platform and numpy version), with the
things that stress SELD metrics: several events, moving sources, polyphony up to 3, two instances of
one class at once, missed events, false alarms, class confusions, onset jitter, small and large
DOA errors and distances. `write_case` writes them as the official code reads them: references
`REF/<split>/<name>.csv` polar (`frame,class,source,azimuth,elevation[,distance_cm]`, integer angles
like STARSS23) and predictions `PRED/<name>.csv` in the baseline's Cartesian form
(`frame,class,track,x,y,z,distance_m`).

The official numbers embedded in test_official_reproduction.py were produced by running the
official code on exactly these files (see that file's docstring).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _events(rng, n_frames, num_classes, n_events, same_class_pairs):
    ev = []
    for _ in range(n_events):
        dur = int(rng.integers(5, max(6, n_frames // 2)))
        start = int(rng.integers(0, max(1, n_frames - dur)))
        ev.append(
            {
                "cls": int(rng.integers(0, num_classes)), "start": start, "stop": min(n_frames, start + dur),
                "az": float(rng.uniform(-180, 180)), "el": float(rng.uniform(-45, 45)),
                "vaz": float(rng.normal(0, 2.0)), "dist": float(rng.uniform(80, 400)),
            }
        )
    for _ in range(same_class_pairs):  # a second instance of an existing class, overlapping it
        base = ev[int(rng.integers(0, len(ev)))]
        start = base["start"] + int(rng.integers(0, max(1, (base["stop"] - base["start"]) // 2)))
        ev.append(
            {
                "cls": base["cls"], "start": start, "stop": min(n_frames, start + int(rng.integers(5, 40))),
                "az": float(rng.uniform(-180, 180)), "el": float(rng.uniform(-45, 45)), "vaz": 0.0,
                "dist": float(rng.uniform(80, 400)),
            }
        )
    return ev


def _wrap(az):
    return (az + 180.0) % 360.0 - 180.0


def make_case(seed: int, n_files: int = 3, n_frames: int = 120, num_classes: int = 13, n_events: int = 8):
    """-> (references, predictions): dict name -> (rows, 6) float arrays.

    Reference rows `(frame, class, source, az, el, distance_cm)` with integer angles; prediction rows
    `(frame, class, track, az, el, distance_m)`; rows ordered by frame (then event).
    """
    rng = np.random.default_rng(seed)
    refs, preds = {}, {}
    for f in range(n_files):
        name = f"fold4_room{f + 1}_mix{seed:03d}.csv"
        nf = int(n_frames + rng.integers(-15, 16))
        ev = _events(rng, nf, num_classes, n_events, same_class_pairs=2)
        ref_rows, pred_rows = [], []
        for src, e in enumerate(ev):
            mode = rng.random()
            shift = int(rng.integers(-2, 3))
            pcls = e["cls"] if rng.random() > 0.08 else int(rng.integers(0, num_classes))
            bias = float(rng.normal(0, 25.0 if rng.random() < 0.3 else 6.0))
            for t in range(e["start"], e["stop"]):
                az = _wrap(e["az"] + e["vaz"] * (t - e["start"]))
                ref_rows.append((t, e["cls"], src, round(az), round(e["el"]), round(e["dist"])))
                if mode < 0.1:  # missed event
                    continue
                tp = t + shift
                if tp < 0 or rng.random() < 0.07:
                    continue
                paz = _wrap(az + bias + rng.normal(0, 4.0))
                pel = float(np.clip(e["el"] + rng.normal(0, 5.0), -89, 89))
                pdist = e["dist"] / 100.0 * float(np.exp(rng.normal(0, 0.4)))
                pred_rows.append((tp, pcls, int(rng.integers(0, 3)), paz, pel, pdist))
        for _ in range(int(rng.integers(1, 4))):  # false alarms
            start = int(rng.integers(0, nf))
            c = int(rng.integers(0, num_classes))
            az, el = float(rng.uniform(-180, 180)), float(rng.uniform(-60, 60))
            for t in range(start, min(nf + 3, start + int(rng.integers(2, 15)))):
                pred_rows.append((t, c, int(rng.integers(0, 3)), az, el, float(rng.uniform(0.5, 4))))
        ref_rows.sort(key=lambda r: r[0])
        pred_rows.sort(key=lambda r: r[0])
        refs[name] = np.asarray(ref_rows, dtype=np.float64)
        preds[name] = np.asarray(pred_rows, dtype=np.float64)
    return refs, preds


def write_case(refs, preds, ref_dir: Path, pred_dir: Path, with_distance: bool, split: str = "dev-test-sony"):
    """Write references (polar, integer angles) and predictions (Cartesian 7 fields) as DCASE CSVs."""
    (Path(ref_dir) / split).mkdir(parents=True, exist_ok=True)
    Path(pred_dir).mkdir(parents=True, exist_ok=True)
    for name, rows in refs.items():
        with open(Path(ref_dir) / split / name, "w") as fh:
            for r in rows:
                tail = f",{int(r[5])}" if with_distance else ""
                fh.write(f"{int(r[0])},{int(r[1])},{int(r[2])},{int(r[3])},{int(r[4])}{tail}\n")
    for name, rows in preds.items():
        with open(Path(pred_dir) / name, "w") as fh:
            for r in rows:
                az, el = np.deg2rad(r[3]), np.deg2rad(r[4])
                x, y, z = np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)
                fh.write(f"{int(r[0])},{int(r[1])},{int(r[2])},{float(x)!r},{float(y)!r},{float(z)!r},{float(r[5])!r}\n")


TAU2019_NAMES = [
    "knock", "drawer", "clearthroat", "phone", "keysDrop", "speech", "keyboard", "pageturn", "cough", "doorslam",
    "laughter",
]  # fmt: skip


def make_case_2019(seed: int, n_files: int = 2, n_events: int = 12):
    """-> (metadata, predictions): dict name -> TAU2019 metadata events (class, start_s, end_s, ele, azi) on
    the 10-degree grid, and dict name -> 2019 prediction rows (frame, class, azimuth, elevation) at 20 ms
    with integer angles (off-grid), misses, false alarms and onset jitter, over 3000 frames."""
    rng = np.random.default_rng(seed)
    meta, preds = {}, {}
    for f in range(n_files):
        name = f"split1_ir0_ov2_{seed * 10 + f}.csv"
        events, rows = [], []
        for _ in range(n_events):
            start = round(float(rng.uniform(0, 58)), 3)
            end = round(min(59.99, start + float(rng.uniform(0.2, 3.0))), 3)
            ev = (int(rng.integers(0, 11)), start, end, int(rng.integers(-4, 5)) * 10, int(rng.integers(-18, 18)) * 10)
            events.append(ev)
            if rng.random() < 0.15:
                continue
            cls = ev[0] if rng.random() > 0.1 else int(rng.integers(0, 11))
            s, e = int(np.floor(start * 50)) + int(rng.integers(-5, 6)), int(np.ceil(end * 50)) + int(rng.integers(-5, 6))
            err = 8.0 if rng.random() < 0.7 else 40.0
            for t in range(max(0, s), min(3005, e + 1)):
                azi = int(np.clip(round(ev[4] + rng.normal(0, err)), -180, 179))
                ele = int(np.clip(round(ev[3] + rng.normal(0, err / 2)), -45, 45))
                rows.append((t, cls, azi, ele))
        for _ in range(3):  # false alarms
            s = int(rng.integers(0, 2950))
            c, azi, ele = int(rng.integers(0, 11)), int(rng.integers(-180, 180)), int(rng.integers(-40, 41))
            rows.extend((t, c, azi, ele) for t in range(s, s + int(rng.integers(5, 60))))
        rows.sort(key=lambda r: r[0])
        meta[name] = events
        preds[name] = np.asarray(rows, dtype=np.float64)
    return meta, preds


def write_case_2019(meta, preds, ref_dir: Path, pred_dir: Path):
    Path(ref_dir).mkdir(parents=True, exist_ok=True)
    Path(pred_dir).mkdir(parents=True, exist_ok=True)
    for name, events in meta.items():
        with open(Path(ref_dir) / name, "w") as fh:
            fh.write("sound_event_recording,start_time,end_time,ele,azi,dist\n")
            fh.writelines(f"{TAU2019_NAMES[cls]},{start},{end},{ele},{azi},2\n" for cls, start, end, ele, azi in events)
    for name, rows in preds.items():
        with open(Path(pred_dir) / name, "w") as fh:
            fh.writelines(f"{int(r[0])},{int(r[1])},{int(r[2])},{int(r[3])}\n" for r in rows)

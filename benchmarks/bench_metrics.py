"""Speed of the SELD metrics: 10 hours of labels (60 recordings x 6000 frames, 13 classes, 3 tracks).

    python benchmarks/bench_metrics.py [--official-dir /path/to/seld-dcase2023] [--files 60 --frames 6000]

Writes a synthetic STARSS23-like reference folder and baseline-style Cartesian prediction files to a
temporary folder, then times at2seld (reading the folders + scoring, and scoring alone) and, when
--official-dir points to a local clone of sharathadavanne/seld-dcase2023 (never part of this
repository), the official `ComputeSELDResults` on the same files. Both give the same numbers; the
script checks that. Results go to BENCHMARKS.md ("Metrics").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from at2seld.decoding_at2seld import write_dcase_csv
from at2seld.evaluation import compute_seld_metrics, read_prediction_folder, read_reference_folder


def synth_labels(rng: np.random.Generator, frames: int, num_classes: int = 13, tracks: int = 3):
    """Reference and prediction rows of one recording: events of 1-20 s on up to `tracks` tracks
    (same-class overlaps allowed), moving sources; predictions with DOA noise, misses, false alarms."""
    ref, pred = [], []
    for track in range(tracks):
        t = int(rng.integers(0, 100))
        while t < frames:
            dur = int(rng.integers(10, 200))
            stop = min(frames, t + dur)
            cls = int(rng.integers(0, num_classes))
            az0, el = rng.uniform(-180, 180), rng.uniform(-40, 40)
            tt = np.arange(t, stop)
            az = (az0 + rng.normal(0, 1.0) * (tt - t) + 180) % 360 - 180
            ref.extend(zip(tt, [cls] * tt.size, [track] * tt.size, np.round(az), [round(el)] * tt.size))
            if rng.random() > 0.1:  # detected (possibly as another class), DOA noise
                pcls = cls if rng.random() > 0.1 else int(rng.integers(0, num_classes))
                keep = rng.random(tt.size) > 0.05
                paz = az + rng.normal(0, 8.0, tt.size)
                pel = np.clip(el + rng.normal(0, 5.0, tt.size), -89, 89)
                ptrack = int(rng.integers(0, tracks))
                pred.extend(zip(tt[keep], [pcls] * keep.sum(), [ptrack] * keep.sum(), paz[keep], pel[keep]))
            t = stop + int(rng.integers(0, 150))
    ref.sort(key=lambda r: (r[0], r[2]))
    pred.sort(key=lambda r: (r[0], r[2]))
    return ref, pred


def write_dataset(root: Path, files: int, frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref_dir, pred_dir = root / "metadata_dev" / "dev-test-sony", root / "pred"
    ref_dir.mkdir(parents=True)
    pred_dir.mkdir(parents=True)
    n_ref = 0
    for i in range(files):
        ref, pred = synth_labels(rng, frames)
        name = f"fold4_room{i % 10}_mix{i:03d}.csv"
        with open(ref_dir / name, "w") as fh:  # STARSS23 metadata form: integer angles
            fh.writelines(f"{int(r[0])},{int(r[1])},{int(r[2])},{int(r[3])},{int(r[4])}\n" for r in ref)
        write_dcase_csv(pred, pred_dir / name, cartesian=True)
        n_ref += len(ref)
    return root / "metadata_dev", pred_dir, n_ref


def run_official(official_dir: str, ref_dir: Path, pred_dir: Path, average: str):
    """Import the official code from a local clone with stubs for its unused heavy imports."""
    np.float = float  # removed in numpy >= 1.24, used by the 2023 code
    for name in ("IPython", "sklearn", "sklearn.preprocessing", "joblib", "librosa", "parameters"):
        mod = types.ModuleType(name)
        mod.embed = lambda *a, **k: None
        mod.get_ipython = lambda: None
        sys.modules.setdefault(name, mod)
    sys.modules["librosa"].filters = types.SimpleNamespace(mel=lambda **k: np.zeros((64, 513)))
    sys.path.insert(0, official_dir)
    import cls_compute_seld_results as ccs

    params = {"feat_label_dir": "/tmp", "dataset_dir": "/tmp", "dataset": "foa", "fs": 24000, "hop_len_s": 0.02,
                  "label_hop_len_s": 0.1, "multi_accdoa": True, "use_salsalite": False, "nb_mel_bins": 64,
                  "unique_classes": 13, "lad_doa_thresh": 20, "average": average}  # fmt: skip
    t0 = time.perf_counter()
    obj = ccs.ComputeSELDResults(params, ref_files_folder=str(ref_dir))
    res = obj.get_SELD_Results(str(pred_dir))
    return time.perf_counter() - t0, [float(x) for x in res[:5]]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=60)
    p.add_argument("--frames", type=int, default=6000)
    p.add_argument("--average", default="macro", choices=["macro", "micro"])
    p.add_argument("--official-dir", default=None, help="local clone of sharathadavanne/seld-dcase2023")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ref_dir, pred_dir, n_ref = write_dataset(Path(tmp), args.files, args.frames)
        times_full, times_score = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            refs, preds = read_reference_folder(ref_dir), read_prediction_folder(pred_dir)
            t1 = time.perf_counter()
            ours = compute_seld_metrics(refs, preds, 13, average=args.average)
            t2 = time.perf_counter()
            times_full.append(t2 - t0)
            times_score.append(t2 - t1)
        t_jk = []
        for _ in range(2):  # the first call also pays the one-time `scipy.stats` import
            t0 = time.perf_counter()
            compute_seld_metrics(refs, preds, 13, average=args.average, jackknife=True)
            t_jk.append(time.perf_counter() - t0)
        t_jk = min(t_jk)
        result = {
            "files": args.files, "frames_per_file": args.frames, "reference_rows": n_ref,
            "ours_read_and_score_s": min(times_full), "ours_score_only_s": min(times_score), "ours_jackknife_s": t_jk,
            "ours": [ours[k] for k in ("ER", "F", "LE", "LR", "SELD")], "cpu_count": os.cpu_count(),
        }  # fmt: skip
        if args.official_dir:
            t_off, off = run_official(args.official_dir, ref_dir, pred_dir, args.average)
            result.update(official_read_and_score_s=t_off, official=off,
                          speedup=t_off / result["ours_read_and_score_s"],
                          max_abs_diff=float(np.max(np.abs(np.array(off) - np.array(result["ours"])))))  # fmt: skip
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

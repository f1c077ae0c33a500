"""Speed of the synthetic FOA scene generator (`at2seld.data.synthesize`).

Writes `--scenes` scenes of `--duration` seconds (default 8 x 30 s = 4 min of 24 kHz 4-channel audio, default
profile: polyphony up to 3, early reflections + diffuse tail, ambient noise) into a temporary folder, best of
`--repeats`, and reports the real-time factor (audio seconds per wall-clock second, WAV + CSV writing included) and a
CPU-time factor (robust when other jobs share the cores), and a per-stage split (planning, source generation, spatial rendering incl. reverb and noise) of one scene.

Run: `.venv/bin/python benchmarks/bench_synth.py [--scenes 8] [--duration 30] [--repeats 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch

from at2seld.data import synthesize
from at2seld.data.classes import SYNTH_CLASSES
from at2seld.data.synth import ROOM_PRESETS, SceneConfig, generate_source, plan_scene, render_scene


def stage_split(duration: float) -> dict:
    rng = np.random.default_rng(0)
    cfg = SceneConfig(duration_s=duration, room=ROOM_PRESETS[3])
    t0 = time.perf_counter()
    events = plan_scene(rng, cfg)
    t1 = time.perf_counter()
    for ev in events:
        generate_source(SYNTH_CLASSES[ev.class_index], np.random.default_rng(1), int(ev.duration_s * 24000), 24000)
    t2 = time.perf_counter()
    render_scene(np.random.default_rng(0), events, cfg)
    t3 = time.perf_counter()
    return {"events": len(events), "plan_s": round(t1 - t0, 4), "sources_s": round(t2 - t1, 3),
            "render_total_s": round(t3 - t2, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    best, best_cpu = None, float("inf")
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cpu0 = time.process_time()
            rep = synthesize(os.path.join(tmp, "synth"), n_train=args.scenes, n_val=0, n_test=0, seed=r,
                             duration_s=args.duration)
            best_cpu = min(best_cpu, time.process_time() - cpu0)
            best = rep if best is None or rep.elapsed_seconds < best.elapsed_seconds else best
    result = {
        "audio_s": best.audio_seconds,
        "wall_s": round(best.elapsed_seconds, 2),
        "realtime_factor": round(best.realtime_factor, 1),
        "cpu_s": round(best_cpu, 2),  # process CPU time (all threads): robust to other jobs on the cores
        "realtime_factor_per_cpu_second": round(best.audio_seconds / best_cpu, 1),
        "one_scene_stages": stage_split(args.duration),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

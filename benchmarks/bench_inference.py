"""End-to-end inference time of the sound-event-localization pipeline vs the backbone's forward alone.

On a 60 s synthetic FOA recording (24 kHz; two moving plane waves of noise plus diffuse noise), for the AST-base
configuration (`AT2SELDConfig(backbone_type="ast")`: the backbone is `ASTConfig()` with its defaults, 12 layers,
768 wide; random weights, nothing is downloaded) and for `AT2SELDConfig.tiny()`:

  - pipeline: `pipe({"array": audio, "sampling_rate": 24000})` with the default windows (30 s, 3 s stride), i.e.
    loading checks, FOA features + backbone fbank per block, the whole model per window, stitching, decoding, events;
  - backbone alone: `model.backbone(fbank, frames)` (the transformers `ASTModel` layers plus the frequency pooling
    and token-to-frame alignment) on the fbank of the very same windows, precomputed outside the timer;
  - overhead = pipeline / backbone - 1: everything that is ours (front end, spatial branch, fusion, tracks, GRU,
    heads, windowing, decoding).

Each figure is the best of `--repeats` runs; pipeline and backbone runs alternate so they see the same load.
Run: `.venv/bin/python benchmarks/bench_inference.py [--seconds 60] [--repeats 2] [--threads N] [--configs base,tiny]`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from at2seld import (
    AT2SELDConfig,
    AT2SELDFeatureExtractor,
    AT2SELDForSoundEventLocalization,
    SoundEventLocalizationPipeline,
)
from at2seld.feature_extraction_at2seld import foa_encode

SR = 24000


def synthetic_scene(seconds: float, seed: int = 0) -> np.ndarray:
    """(4, samples) FOA: two moving noise sources and a weak diffuse background."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    audio = foa_encode(rng.standard_normal(n) * 0.1, 90.0 * np.sin(2 * np.pi * t / 20.0), 10.0)
    audio += foa_encode(rng.standard_normal(n) * 0.05, -120.0 + 3.0 * t, -20.0)
    audio += (rng.standard_normal((4, n)) * 0.005).astype(np.float32)
    return audio.astype(np.float32)


def build(name: str) -> SoundEventLocalizationPipeline:
    torch.manual_seed(0)
    config = AT2SELDConfig(backbone_type="ast") if name == "base" else AT2SELDConfig.tiny(backbone_type="ast")
    model = AT2SELDForSoundEventLocalization(config).eval()
    fe = AT2SELDFeatureExtractor(backbone_type="ast", descriptors=config.descriptors)
    return SoundEventLocalizationPipeline(model=model, feature_extractor=fe, device="cpu")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(name: str, audio: np.ndarray, repeats: int, chunk_length_s: float, stride_length_s: float) -> dict:
    pipe = build(name)
    inputs = {"array": audio, "sampling_rate": SR}
    call = {"chunk_length_s": chunk_length_s, "stride_length_s": stride_length_s}
    windows = list(pipe.preprocess(inputs, **call))  # the pipeline's own windows, features computed once here
    fpl = pipe.feature_extractor.frames_per_label

    def backbone_only():
        with torch.no_grad():
            for w in windows:
                pipe.model.backbone(w["backbone_values"], w["spatial_features"].shape[2] // fpl)

    def model_only():
        for w in windows:
            pipe.forward(w)

    def features_only():
        for _ in pipe.preprocess(inputs, **call):
            pass

    with torch.no_grad():  # warm-up (allocator, kernels)
        pipe.forward(windows[0])
    result = {"config": name, "parameters": sum(p.numel() for p in pipe.model.parameters()),
              "backbone_parameters": sum(p.numel() for p in pipe.model.backbone.parameters()),
              "windows": [(int(w["window_start"]), int(w["window_start"]) + w["spatial_features"].shape[2] // fpl)
                          for w in windows]}
    runs = {"pipeline": [], "backbone": [], "model": [], "features": []}
    events = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        events = pipe(inputs, **call)
        runs["pipeline"].append(time.perf_counter() - t0)
        runs["backbone"].append(timed(backbone_only))
        runs["model"].append(timed(model_only))
        runs["features"].append(timed(features_only))
    best = {k: min(v) for k, v in runs.items()}
    result.update({f"{k}_s": round(v, 3) for k, v in best.items()})
    result["all_runs_s"] = {k: [round(x, 3) for x in v] for k, v in runs.items()}
    result["overhead"] = round(best["pipeline"] / best["backbone"] - 1.0, 4)
    result["events"] = len(events)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--configs", default="base,tiny")
    parser.add_argument("--chunk_length_s", type=float, default=30.0)
    parser.add_argument("--stride_length_s", type=float, default=3.0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    audio = synthetic_scene(args.seconds)
    header = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "load_avg_before": os.getloadavg(), "seconds": args.seconds}
    print(json.dumps(header))
    results = []
    for name in args.configs.split(","):
        res = bench(name, audio, args.repeats, args.chunk_length_s, args.stride_length_s)
        print(json.dumps(res), flush=True)
        results.append(res)
    print(f"{'config':<8}{'pipeline s':>12}{'backbone s':>12}{'overhead':>10}{'model s':>10}{'features s':>12}")
    for r in results:
        print(f"{r['config']:<8}{r['pipeline_s']:>12.2f}{r['backbone_s']:>12.2f}{r['overhead']:>10.1%}"
              f"{r['model_s']:>10.2f}{r['features_s']:>12.2f}")
    print(json.dumps({"load_avg_after": os.getloadavg()}))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"header": header, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()

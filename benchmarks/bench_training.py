"""Training throughput (5 s chunks per second) of AT2SELD configurations on this machine.

For each configuration: batches of random 4-channel FOA chunks go through the feature extractor (as the training
collator does) and a forward + backward + AdamW step. Reported: chunks/s for the model step alone and for
features + step. Random weights (no download): the cost does not depend on the values.

Run: `.venv/bin/python benchmarks/bench_training.py [--configs tiny demo ast-base] [--steps 5] [--batch 8]`
On a GPU machine add `--device cuda --bf16` for the bf16 autocast path.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from transformers import ASTConfig

from at2seld import AT2SELDConfig
from at2seld.labels_at2seld import encode_labels
from at2seld.modeling_at2seld import AT2SELDForSoundEventLocalization
from at2seld.training import feature_extractor_for

SR = 24000
CONFIGS = {
    "tiny": lambda: AT2SELDConfig.tiny(),
    "demo": lambda: AT2SELDConfig.tiny(spatial_channels=[16, 32, 64], spatial_time_pool=[5, 1, 1],
                                       spatial_freq_pool=[2, 2, 2], fusion_dim=64, track_layers=1, track_heads=4,
                                       gru_layers=1, gru_hidden=64, class_pos_weight=[5.0] * 13),
    # the paper's setting: AST-base (the MIT/ast-finetuned-audioset-10-10-0.4593 architecture), fully trainable
    "ast-base": lambda: AT2SELDConfig(backbone_type="ast", backbone_config=ASTConfig().to_dict()),
    "ast-base-frozen": lambda: AT2SELDConfig(backbone_type="ast", backbone_config=ASTConfig().to_dict(),
                                             backbone_trainable_layers=0),
}


def run_config(name: str, steps: int, batch: int, chunk_s: float, device: str, bf16: bool) -> dict:
    config = CONFIGS[name]()
    model = AT2SELDForSoundEventLocalization(config).to(device)
    model.train()
    fe = feature_extractor_for(config)
    rng = np.random.default_rng(0)
    audio = [(rng.standard_normal((4, int(chunk_s * SR))) * 0.1).astype(np.float32) for _ in range(batch)]
    frames = int(round(chunk_s * 10))
    rows = [(t, t % config.num_labels, 0, float(rng.uniform(-180, 180)), 0.0, None) for t in range(frames)]
    labels = torch.from_numpy(np.stack([encode_labels(rows, frames, config.num_labels, config.num_tracks)] * batch))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def features():
        out = fe(audio, sampling_rate=SR)
        return {k: v.to(device) for k, v in out.items() if isinstance(v, torch.Tensor)}

    def step(inputs):
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs, labels=labels.to(device)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    inputs = features()
    step(inputs)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(inputs)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    model_s = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for _ in range(max(1, steps // 2)):
        features()
    feat_s = (time.perf_counter() - t0) / max(1, steps // 2)
    n_params = sum(p.numel() for p in model.parameters())
    return {"config": name, "parameters": n_params, "batch": batch, "chunk_s": chunk_s,
            "step_s": round(model_s, 4), "features_s": round(feat_s, 4),
            "chunks_per_s_model": round(batch / model_s, 2), "chunks_per_s_with_features": round(batch / (model_s + feat_s), 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "demo", "ast-base"], choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--chunk_s", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else (
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    results = [run_config(c, args.steps, args.batch, args.chunk_s, args.device, args.bf16) for c in args.configs]
    print(json.dumps({"machine": machine, "torch": torch.__version__, "bf16": args.bf16, "results": results}, indent=2))


if __name__ == "__main__":
    main()

"""`make demo`: the FOA front end on a short synthetic scene (until the training pipeline lands).

Builds a 4 s FOA scene with two sources (a harmonic tone moving from the front towards the left, a noise burst from behind),
runs `AT2SELDFeatureExtractor`, prints the descriptor names and shapes, the intensity-vector direction of each
source, and writes a PNG of the log-mel and intensity-vector maps.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from at2seld import AT2SELDFeatureExtractor
from at2seld.feature_extraction_at2seld import foa_encode

SR = 24000


def demo_scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(4 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * (440 * t + 3 * np.sin(2 * np.pi * 5 * t))) * (t < 2.0)
    azimuth = np.linspace(0.0, 80.0, t.size)  # moving front -> left at 40 deg/s
    burst = 0.2 * rng.standard_normal(t.size) * ((t > 2.2) & (t < 3.6))
    scene = foa_encode(tone, azimuth, 10.0) + foa_encode(burst, 180.0, -20.0)
    return scene + 0.002 * rng.standard_normal(scene.shape).astype(np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="demo_output")
    parser.add_argument("--data_dir", default=None, help="(used once training lands)")
    parser.add_argument("--backbone", default=None, help="(used once training lands)")
    args = parser.parse_args(argv)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    fe = AT2SELDFeatureExtractor(descriptors=["logmel", "phase", "iv"], backbone_type="ast")
    scene = demo_scene()
    feats = fe(scene, sampling_rate=SR)
    print("spatial_feature_names:", feats["spatial_feature_names"])
    for key in ("spatial_features", "backbone_values", "frame_mask", "num_label_frames"):
        print(f"{key:>18}: {tuple(feats[key].shape)}")

    f = feats["spatial_features"][0].numpy()
    names = feats["spatial_feature_names"]
    energy = 10 ** (f[names.index("logmel_w")] / 10)
    for label, (a, b) in {"tone (moving 0->40 deg over 2 s, el 10; mean 20)": (0, 100), "burst (az 180, el -20)": (115, 175)}.items():
        iv = [(energy[a:b] * f[names.index(f"iv_{c}")][a:b]).sum() for c in "xyz"]
        az = math.degrees(math.atan2(iv[1], iv[0]))
        el = math.degrees(math.atan2(iv[2], math.hypot(iv[0], iv[1])))
        print(f"IV direction of the {label}: azimuth {az:6.1f}, elevation {el:5.1f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["logmel_w", "iv_x", "iv_y", "iv_z"]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 8), sharex=True)
    for ax, name in zip(axes, panels):
        im = ax.imshow(f[names.index(name)].T, origin="lower", aspect="auto", extent=[0, 4, 0, 64],
                       cmap="magma" if name.startswith("logmel") else "coolwarm",
                       vmin=None if name.startswith("logmel") else -0.75,
                       vmax=None if name.startswith("logmel") else 0.75)
        ax.set_ylabel(f"{name}\nmel bin")
        fig.colorbar(im, ax=ax)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle("AT2SELD front end: log-mel (W) and intensity vectors")
    fig.tight_layout()
    png = out_dir / "front_end.png"
    fig.savefig(png, dpi=100)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()

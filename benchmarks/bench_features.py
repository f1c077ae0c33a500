"""Feature extraction speed on 10 minutes of synthetic FOA (24 kHz).

Compares the full descriptor set of `AT2SELDFeatureExtractor` (log-mel of 4 channels + phase + IV, 64 mel bins,
spatial branch only) with
  (a) the floor: the bare `torch.stft` of the same 4 channels with the same framing, and
  (b) a reference written in the style of the DCASE 2023 baseline feature code: librosa STFT per channel,
      log-mel with `librosa.power_to_db`, intensity vectors normalised per bin and mel-projected with numpy
      (written here from the baseline's description, not copied).

Run: `.venv/bin/python benchmarks/bench_features.py [--minutes 10] [--repeats 3]` (needs `pip install .[bench]`).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from at2seld import AT2SELDFeatureExtractor

SR, N_FFT, HOP, WIN, N_MELS = 24000, 1024, 480, 960, 64


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def librosa_style_reference(audio: np.ndarray) -> np.ndarray:
    """(samples, 4) -> (frames, 7 * 64): per-channel librosa STFT, log-mel, normalised mel IVs (baseline style)."""
    import librosa

    n_frames = audio.shape[0] // HOP
    spectra = np.stack(
        [librosa.stft(np.asfortranarray(audio[:, ch]), n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hann")[:, :n_frames].T
         for ch in range(audio.shape[1])],
        axis=-1,
    )  # (frames, bins, 4)
    mel_wts = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS).T  # (bins, mels)
    mag = np.abs(spectra) ** 2
    logmel = np.stack([librosa.power_to_db(np.dot(mag[:, :, ch], mel_wts)) for ch in range(4)], axis=-1)
    w = spectra[:, :, 0]
    iv = np.real(np.conj(w)[:, :, None] * spectra[:, :, 1:])
    energy = 1e-8 + (np.abs(w) ** 2 + (np.abs(spectra[:, :, 1:]) ** 2).sum(-1) / 3.0)
    iv_mel = np.stack([np.dot(iv[:, :, i] / energy, mel_wts) for i in range(3)], axis=-1)
    return np.concatenate([logmel, iv_mel], axis=-1).reshape(n_frames, -1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    n = int(args.minutes * 60 * SR)
    audio = (np.random.default_rng(0).standard_normal((4, n)) * 0.1).astype(np.float32)
    audio_t = torch.from_numpy(audio)
    window = torch.hann_window(WIN)

    fe_full = AT2SELDFeatureExtractor(descriptors=["logmel", "phase", "iv"], backbone_type="none")
    fe_base = AT2SELDFeatureExtractor(descriptors=["logmel", "iv"], backbone_type="none")
    fe_ast = AT2SELDFeatureExtractor(descriptors=["logmel", "phase", "iv"], backbone_type="ast")

    results = {
        "audio_minutes": args.minutes,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    results["stft_floor_s"] = best_of(lambda: torch.stft(audio_t, N_FFT, HOP, WIN, window, center=True, return_complex=True), args.repeats)
    results["at2seld_logmel_phase_iv_s"] = best_of(lambda: fe_full(audio, sampling_rate=SR), args.repeats)
    results["at2seld_logmel_iv_s"] = best_of(lambda: fe_base(audio, sampling_rate=SR), args.repeats)
    results["at2seld_full_with_ast_fbank_s"] = best_of(lambda: fe_ast(audio, sampling_rate=SR), 1)
    results["ratio_full_vs_stft_floor"] = results["at2seld_logmel_phase_iv_s"] / results["stft_floor_s"]
    if not args.skip_reference:
        results["librosa_style_reference_logmel_iv_s"] = best_of(lambda: librosa_style_reference(audio.T), 1)
        results["speedup_vs_reference_same_descriptors"] = (
            results["librosa_style_reference_logmel_iv_s"] / results["at2seld_logmel_iv_s"]
        )
        results["speedup_vs_reference_full_set"] = (
            results["librosa_style_reference_logmel_iv_s"] / results["at2seld_logmel_phase_iv_s"]
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

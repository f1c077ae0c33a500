"""Procedural mono sources: one generator per synthetic class, each with a clear spectral/temporal identity.

Every generator is a pure function `gen(rng, num_samples, sr) -> (num_samples,) float64` that draws its per-event
variation (pitch, rate, bandwidth, decay...) from the given `np.random.Generator`; the result is normalised by
`normalise_loudness` (mean power of the loudest quarter of 20 ms frames = 1), so impulsive and steady classes have
comparable loudness while active.

| class | identity |
|---|---|
| tone | harmonic tone (f0 180-520 Hz, 4-6 partials) with 4.5-7 Hz vibrato |
| chirp | repeated exponential sweeps (0.6-1.2 kHz <-> 2.5-5 kHz), mostly upward |
| rumble | low-pass noise (< 250-500 Hz) with slow amplitude modulation |
| hiss | steady high band noise (2-3.5 kHz to 7-10 kHz) with fast flutter: water-tap like |
| knock | 2-6 damped low resonances (120-350 Hz) with a short click, 0.1-0.25 s apart |
| babble | speech-like: glottal pulse train (f0 100-230 Hz, drifting) through two morphing formant pairs, syllabic AM 3-6 Hz |
| bell | inharmonic partials (hum, prime, minor third, fifth, octave...) of 700-1400 Hz, long decays, 1-2 strikes |
| footsteps | heel-toe pairs of band noise (80-1500 Hz) at 1.6-2.3 steps/s |
| phone | two-tone warble (0.8-1.1 kHz and x1.15-1.35, switched at 16-25 Hz) in 0.35-0.5 s rings |
| clapping | very short broadband bursts (0.8-4.5 kHz) at 2.5-5 claps/s, irregular |
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft as sfft
from scipy.signal import lfilter

from ..classes import SYNTH_CLASSES

TWO_PI = 2.0 * np.pi

# Event duration range (seconds) per class, in SYNTH_CLASSES order.
DURATION_RANGE_S = {
    "tone": (0.6, 2.5), "chirp": (0.6, 2.0), "rumble": (1.0, 3.0), "hiss": (0.8, 3.0), "knock": (0.5, 1.5),
    "babble": (0.8, 3.0), "bell": (0.8, 2.5), "footsteps": (1.0, 3.0), "phone": (1.0, 3.0), "clapping": (0.6, 2.5),
}


def fade(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    """Raised-cosine attack/release envelope `(n,)`."""
    env = np.ones(n)
    a = min(n // 2, max(1, int(attack_s * sr)))
    r = min(n // 2, max(1, int(release_s * sr)))
    env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    env[n - r:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(r) / r)
    return env


def band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float, tilt_db_per_oct: float = 0.0) -> np.ndarray:
    """White Gaussian noise band-limited to [lo, hi] Hz (raised-cosine edges), optional spectral tilt; `(n,)`.
    (Computed on a fast FFT length >= n and cut, so odd lengths cost no more than round ones.)"""
    size = sfft.next_fast_len(n, real=True)
    spec = sfft.rfft(rng.standard_normal(size, dtype=np.float32))
    f = np.fft.rfftfreq(size, 1.0 / sr)
    edge = 0.15
    mask = np.clip((f - lo * (1 - edge)) / (lo * edge + 1e-9), 0, 1) * np.clip((hi * (1 + edge) - f) / (hi * edge), 0, 1)
    mask = 0.5 - 0.5 * np.cos(np.pi * mask)
    if tilt_db_per_oct:
        mask = mask * (np.maximum(f, 20.0) / 1000.0) ** (tilt_db_per_oct / 6.0206)
    return sfft.irfft(spec * mask.astype(np.float32), size)[:n].astype(np.float64)


def smooth_random(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """Smooth random curve `(n,)` in about [-1, 1]: knots at `rate_hz`, linearly interpolated."""
    knots = max(2, int(n / sr * rate_hz) + 2)
    return np.interp(np.arange(n), np.linspace(0, n - 1, knots), rng.uniform(-1, 1, knots))


def decaying_bursts(n: int, sr: int, onsets_s: np.ndarray, decay_s: float, burst: Callable[[int], np.ndarray],
                    gains: np.ndarray | None = None) -> np.ndarray:
    """Sum of bursts `burst(length)` starting at `onsets_s`, each shaped by exp(-t / decay_s)."""
    out = np.zeros(n)
    length = int(decay_s * 7 * sr)
    shape = np.exp(-np.arange(length) / (decay_s * sr))
    for k, t0 in enumerate(onsets_s):
        i = int(t0 * sr)
        if i >= n:
            break
        m = min(length, n - i)
        g = 1.0 if gains is None else gains[k]
        out[i: i + m] += g * burst(length)[:m] * shape[:m]
    return out


def _pulse_times(rng: np.random.Generator, duration_s: float, rate_hz: float, jitter: float) -> np.ndarray:
    period = 1.0 / rate_hz
    count = max(1, int(duration_s / period) + 1)
    times = np.cumsum(np.full(count, period) * (1 + jitter * rng.uniform(-1, 1, count))) - period
    times[0] = rng.uniform(0, 0.03)
    return times[times < max(duration_s - 0.05, 0.01)]


# ---------------------------------------------------------------------------------------------------- generators
def gen_tone(rng, n, sr):
    t = np.arange(n) / sr
    f0 = rng.uniform(180, 520)
    depth, rate = rng.uniform(0.008, 0.025), rng.uniform(4.5, 7.0)
    phase = TWO_PI * np.cumsum(f0 * (1 + depth * np.sin(TWO_PI * rate * t + rng.uniform(0, TWO_PI)))) / sr
    k = np.arange(1, rng.integers(4, 7) + 1)
    amps = k ** -rng.uniform(0.8, 1.6)
    sig = amps @ np.sin(np.outer(k, phase))
    return sig * fade(n, sr, rng.uniform(0.03, 0.08), rng.uniform(0.1, 0.2))


def gen_chirp(rng, n, sr):
    sweep, gap = rng.uniform(0.15, 0.4), rng.uniform(0.05, 0.15)
    f_lo, f_hi = rng.uniform(600, 1200), rng.uniform(2500, 5000)
    up = rng.random() < 0.7
    tau = np.mod(np.arange(n) / sr, sweep + gap)
    x = np.clip(tau / sweep, 0, 1) if up else 1 - np.clip(tau / sweep, 0, 1)
    freq = f_lo * (f_hi / f_lo) ** x
    gate = (tau < sweep).astype(float)
    ramp = np.minimum(1.0, np.minimum(tau, np.maximum(sweep - tau, 0)) / 0.01)
    phase = TWO_PI * np.cumsum(freq) / sr
    return (np.sin(phase) + 0.2 * np.sin(2 * phase)) * gate * ramp


def gen_rumble(rng, n, sr):
    x = band_noise(rng, n, sr, 30.0, rng.uniform(250, 500), tilt_db_per_oct=-3.0)
    am = 1 + 0.5 * np.sin(TWO_PI * rng.uniform(1, 3) * np.arange(n) / sr + rng.uniform(0, TWO_PI))
    return x * am * fade(n, sr, 0.15, 0.25)


def gen_hiss(rng, n, sr):
    x = band_noise(rng, n, sr, rng.uniform(2000, 3500), rng.uniform(7000, 10000))
    flutter = 1 + 0.3 * smooth_random(rng, n, sr, rng.uniform(20, 40))
    return x * flutter * fade(n, sr, 0.05, 0.1)


def gen_knock(rng, n, sr):
    fr = rng.uniform(120, 350)
    decay = rng.uniform(0.025, 0.05)
    t = np.arange(int(decay * 7 * sr)) / sr
    body = np.sin(TWO_PI * fr * t) + 0.5 * np.sin(TWO_PI * 2.3 * fr * t)
    click_len = int(0.003 * sr)

    def burst(length):
        out = body[:length].copy()
        out[:click_len] += 0.8 * rng.standard_normal(click_len)
        return out

    count = rng.integers(2, 7)
    times = np.cumsum(rng.uniform(0.1, 0.25, count)) - 0.1 + rng.uniform(0, 0.02)
    times = times[times < max(n / sr - 0.08, 0.01)]
    return decaying_bursts(n, sr, times, decay, burst, rng.uniform(0.7, 1.0, len(times)))


def _resonator(f: float, bw: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.exp(-np.pi * bw / sr)
    return np.array([1 - r]), np.array([1.0, -2 * r * np.cos(TWO_PI * f / sr), r * r])


def gen_babble(rng, n, sr):
    t = np.arange(n) / sr
    f0 = rng.uniform(100, 230) * (1 + 0.15 * smooth_random(rng, n, sr, 4.0))
    saw = 2.0 * np.mod(np.cumsum(f0) / sr, 1.0) - 1.0  # glottal-like pulse train (harmonics at k * f0)
    vowels = []
    for _ in range(2):
        y = saw
        f1, f2 = rng.uniform(300, 800), rng.uniform(900, 2300)
        y = lfilter(*_resonator(f1, 90, sr), y) + 0.6 * lfilter(*_resonator(f2, 120, sr), y)
        vowels.append(y)
    morph = 0.5 + 0.5 * smooth_random(rng, n, sr, 5.0)
    voiced = morph * vowels[0] + (1 - morph) * vowels[1]
    rate = rng.uniform(3, 6)
    syll = np.abs(np.sin(np.pi * rate * t + rng.uniform(0, np.pi))) ** 0.7
    syll *= 0.6 + 0.4 * (0.5 + 0.5 * smooth_random(rng, n, sr, rate))
    return voiced * syll * fade(n, sr, 0.03, 0.08)


BELL_RATIOS = np.array([0.5, 1.0, 1.19, 1.5, 2.0, 2.51, 2.66, 3.01])


def gen_bell(rng, n, sr):
    t = np.arange(n) / sr
    f = rng.uniform(700, 1400)
    ratios = BELL_RATIOS * (1 + 0.01 * rng.uniform(-1, 1, len(BELL_RATIOS)))
    ratios = ratios[ratios * f < 0.45 * sr]
    base_decay = rng.uniform(0.6, 1.2)
    decays = base_decay / ratios**0.7
    amps = rng.uniform(0.4, 1.0, len(ratios))
    strikes = [0.0] + ([rng.uniform(0.6, n / sr - 0.3)] if n / sr > 1.5 and rng.random() < 0.5 else [])
    sig = np.zeros(n)
    for s in strikes:
        tt = np.clip(t - s, 0, None)
        on = (t >= s).astype(float)
        sig += on * (amps @ (np.sin(TWO_PI * np.outer(f * ratios, tt)) * np.exp(-np.outer(1 / decays, tt))))
    return sig * fade(n, sr, 0.002, 0.1)


def gen_footsteps(rng, n, sr):
    times = _pulse_times(rng, n / sr, rng.uniform(1.6, 2.3), 0.08)
    heel_toe = rng.uniform(0.03, 0.06)
    lo, hi = rng.uniform(80, 150), rng.uniform(900, 1500)
    decay = rng.uniform(0.03, 0.06)
    noise = band_noise(rng, int(decay * 7 * sr) * 8, sr, lo, hi)

    def burst(length):
        i = rng.integers(0, len(noise) - length)
        return noise[i: i + length]

    onsets = np.sort(np.concatenate([times, times + heel_toe]))
    gains = np.where(np.isin(onsets, times), 1.0, 0.5) * rng.uniform(0.7, 1.0, len(onsets))
    return decaying_bursts(n, sr, onsets, decay, burst, gains)


def gen_phone(rng, n, sr):
    t = np.arange(n) / sr
    f1 = rng.uniform(800, 1100)
    f2 = f1 * rng.uniform(1.15, 1.35)
    switch = (np.mod(t * rng.uniform(16, 25), 1.0) < 0.5)
    freq = np.where(switch, f1, f2)
    phase = TWO_PI * np.cumsum(freq) / sr
    on, off = rng.uniform(0.35, 0.5), rng.uniform(0.15, 0.3)
    tau = np.mod(t, on + off)
    gate = np.clip(np.minimum(tau, on - tau) / 0.01, 0, 1)
    return (np.sin(phase) + 0.3 * np.sin(3 * phase)) * gate


def gen_clapping(rng, n, sr):
    times = _pulse_times(rng, n / sr, rng.uniform(2.5, 5.0), 0.2)
    decay = rng.uniform(0.008, 0.015)
    length = int(decay * 7 * sr)
    noise = band_noise(rng, length * 16, sr, rng.uniform(800, 1200), rng.uniform(3500, 4500))

    def burst(m):
        i = rng.integers(0, len(noise) - m)
        return noise[i: i + m]

    return decaying_bursts(n, sr, times, decay, burst, rng.uniform(0.6, 1.0, len(times)))


GENERATORS: dict[str, Callable] = {
    "tone": gen_tone, "chirp": gen_chirp, "rumble": gen_rumble, "hiss": gen_hiss, "knock": gen_knock,
    "babble": gen_babble, "bell": gen_bell, "footsteps": gen_footsteps, "phone": gen_phone, "clapping": gen_clapping,
}
assert tuple(GENERATORS) == SYNTH_CLASSES


def normalise_loudness(x: np.ndarray, sr: int, frame_s: float = 0.02) -> np.ndarray:
    """Scale so that the mean power of the loudest quarter of `frame_s` frames is 1 (silence stays silence)."""
    hop = max(1, int(frame_s * sr))
    m = len(x) // hop
    if m == 0:
        return x
    power = np.sort((x[: m * hop].reshape(m, hop) ** 2).mean(axis=1))
    top = power[-max(1, m // 4):].mean()
    return x / np.sqrt(top) if top > 0 else x


def generate_source(class_name: str, rng: np.random.Generator, num_samples: int, sr: int) -> np.ndarray:
    """One event of a synthetic class, loudness-normalised; `(num_samples,)` float64."""
    if class_name not in GENERATORS:
        raise ValueError(f"Unknown synthetic class {class_name!r}; expected one of {list(GENERATORS)}.")
    return normalise_loudness(GENERATORS[class_name](rng, num_samples, sr), sr)


__all__ = ["DURATION_RANGE_S", "GENERATORS", "band_noise", "fade", "generate_source", "normalise_loudness"]

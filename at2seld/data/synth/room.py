"""Room effect of the synthetic scenes: first-order image-source reflections and a diffuse FOA reverberation tail.

Model (per event, relative to the direct sound of amplitude 1 in W):
- early reflections: the 6 first-order image sources of a shoebox room; each arrives from its image direction
  with delay (|image - mic| - |source - mic|) / c and relative amplitude beta * |source - mic| / |image - mic|;
- late tail: 4 independent exponentially decaying Gaussian noises (T60 of the room) with the SN3D diffuse-field
  channel energies (W: 1, Y/Z/X: 1/3 each: the mean of sin^2/cos^2 terms over the sphere), starting after the
  early part;
- the reverberant energy (early + late, in W) is set by the event's direct-to-reverberant ratio
  DRR = 10 log10(E_direct / E_reverberant); the room's `early_fraction` of it goes to the early reflections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

SPEED_OF_SOUND = 343.0
DIFFUSE_SN3D_GAINS = np.array([1.0, 1.0 / np.sqrt(3.0), 1.0 / np.sqrt(3.0), 1.0 / np.sqrt(3.0)])


@dataclass(frozen=True)
class RoomPreset:
    """A shoebox room: size (m), microphone position (m), reverberation time T60 (s), wall reflection amplitude,
    and the share of reverberant energy in the first-order reflections."""

    room_id: int
    size: tuple[float, float, float]
    mic: tuple[float, float, float]
    rt60: float
    beta: float = 0.8
    early_fraction: float = 0.4


ROOM_PRESETS: dict[int, RoomPreset] = {
    1: RoomPreset(1, (4.0, 3.5, 2.6), (2.1, 1.6, 1.3), 0.30, 0.70),
    2: RoomPreset(2, (6.0, 4.5, 2.8), (2.8, 2.4, 1.4), 0.45, 0.75),
    3: RoomPreset(3, (8.0, 6.0, 3.0), (4.2, 2.7, 1.5), 0.60, 0.80),
    4: RoomPreset(4, (5.0, 5.0, 3.2), (2.4, 2.6, 1.6), 0.50, 0.85, 0.5),
    5: RoomPreset(5, (10.0, 7.0, 3.5), (4.5, 3.8, 1.5), 0.80, 0.85, 0.3),
    6: RoomPreset(6, (12.0, 9.0, 4.0), (6.3, 4.2, 1.6), 1.00, 0.90, 0.3),
}


def direction_vector(azimuth_deg, elevation_deg) -> np.ndarray:
    """Unit vectors `(..., 3)` (x front, y left, z up) of DCASE azimuth/elevation in degrees."""
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.stack([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)], axis=-1)


def vector_to_doa(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(azimuth, elevation) in degrees of vectors `(..., 3)`."""
    v = np.asarray(v, dtype=np.float64)
    az = np.rad2deg(np.arctan2(v[..., 1], v[..., 0]))
    el = np.rad2deg(np.arctan2(v[..., 2], np.hypot(v[..., 0], v[..., 1])))
    return az, el


def max_distance(room: RoomPreset, direction: np.ndarray, margin: float = 0.3) -> float:
    """Largest distance from the microphone along unit `direction` that stays `margin` inside the walls."""
    mic, size = np.asarray(room.mic), np.asarray(room.size)
    limits = []
    for d, m, s in zip(direction, mic, size):
        if d > 1e-9:
            limits.append((s - margin - m) / d)
        elif d < -1e-9:
            limits.append((margin - m) / d)
    return float(min(limits)) if limits else float("inf")


def first_order_images(source: np.ndarray, room: RoomPreset) -> np.ndarray:
    """The 6 first-order image positions `(6, 3)` of a source inside a shoebox room (walls at 0 and size)."""
    size = np.asarray(room.size)
    images = np.repeat(source[None, :], 6, axis=0)
    for axis in range(3):
        images[2 * axis, axis] = -source[axis]
        images[2 * axis + 1, axis] = 2 * size[axis] - source[axis]
    return images


def early_reflections(source: np.ndarray, room: RoomPreset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Delays (s), relative amplitudes, azimuths and elevations (deg) of the 6 first-order reflections."""
    mic = np.asarray(room.mic)
    d0 = np.linalg.norm(source - mic)
    rel = first_order_images(source, room) - mic
    dist = np.linalg.norm(rel, axis=1)
    az, el = vector_to_doa(rel)
    return (dist - d0) / SPEED_OF_SOUND, room.beta * d0 / dist, az, el


def diffuse_tail(rng: np.random.Generator, rt60: float, sr: int, predelay_s: float = 0.01,
                 length_s: float | None = None) -> np.ndarray:
    """Diffuse FOA reverberation tail `(4, L)` with unit energy in W: decorrelated noise decaying 60 dB in `rt60` s,
    SN3D diffuse channel gains, a 5 ms fade-in after `predelay_s`."""
    length = int((length_s or 1.2 * rt60) * sr)
    start = int(predelay_s * sr)
    t = np.arange(length - start) / sr
    decay = np.exp(-3.0 * np.log(10.0) * t / rt60)
    ramp = np.minimum(1.0, t / 0.005)
    noise = rng.standard_normal((4, length - start)) * (decay * ramp)[None]
    noise *= DIFFUSE_SN3D_GAINS[:, None] / np.sqrt(np.sum(noise[0] ** 2))
    return np.concatenate([np.zeros((4, start)), noise], axis=1)


# -3 dB/octave ("pink") IIR approximation over the audio band (J. O. Smith's classic 3-pole/3-zero design).
PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])


def diffuse_noise(rng: np.random.Generator, num_samples: int, sr: int) -> np.ndarray:
    """Diffuse ambient noise `(4, num_samples)` float32: decorrelated pink noise per channel with SN3D diffuse
    channel energies (W: 1, Y/Z/X: 1/3), unit power in W."""
    white = rng.standard_normal((4, num_samples), dtype=np.float32)
    x = lfilter(PINK_B.astype(np.float32), PINK_A.astype(np.float32), white, axis=1)
    x /= np.sqrt(np.mean(np.square(x[0], dtype=np.float64)))
    return (x * DIFFUSE_SN3D_GAINS[:, None].astype(np.float32)).astype(np.float32)


__all__ = [
    "DIFFUSE_SN3D_GAINS",
    "ROOM_PRESETS",
    "RoomPreset",
    "diffuse_noise",
    "diffuse_tail",
    "direction_vector",
    "early_reflections",
    "first_order_images",
    "max_distance",
    "vector_to_doa",
]

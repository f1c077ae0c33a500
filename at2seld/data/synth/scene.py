"""Synthetic FOA scenes in the STARSS23 layout: planning (events), rendering (FOA audio) and writing (WAV + CSV).

Everything random comes from an explicit `np.random.Generator`; scene (split s, mix m) of `synthesize(seed=k)`
uses `np.random.default_rng([k, s, m])`, so a scene does not depend on how many other scenes are generated.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

from ...feature_extraction_at2seld import foa_encode, foa_encoding_gains, resample
from ..classes import SYNTH_CLASSES
from ..dcase import LABEL_RESOLUTION_S, MetadataRow, write_metadata
from .room import (
    ROOM_PRESETS,
    RoomPreset,
    diffuse_noise,
    diffuse_tail,
    direction_vector,
    early_reflections,
    max_distance,
)
from .sources import DURATION_RANGE_S, generate_source, normalise_loudness

SAMPLING_RATE = 24000
SPLIT_FOLDERS = {"train": "dev-train-synth", "val": "dev-val-synth", "test": "dev-test-synth"}
SPLIT_FOLDS = {"train": 1, "val": 2, "test": 3}


@dataclass(frozen=True)
class SynthProfile:
    """A named synthetic data set: which classes (names from `SYNTH_CLASSES`) and rooms (`ROOM_PRESETS` ids).
    Class indices in the CSVs are always indices of `SYNTH_CLASSES`, so profiles share one label space."""

    classes: tuple[str, ...]
    rooms: tuple[int, ...]


PROFILES: dict[str, SynthProfile] = {
    "default": SynthProfile(SYNTH_CLASSES, (1, 2, 3, 4)),
    # two disjoint-room, partly different-class sets for transfer experiments
    "a": SynthProfile(("tone", "chirp", "hiss", "knock", "babble", "bell", "footsteps", "phone"), (1, 2, 3)),
    "b": SynthProfile(("tone", "rumble", "knock", "babble", "bell", "footsteps", "phone", "clapping"), (4, 5, 6)),
}


@dataclass(frozen=True)
class SceneConfig:
    """Parameters of one scene.

    Attributes:
        duration_s: scene length.
        classes: class indices (into `SYNTH_CLASSES`) that may occur.
        room: the room preset.
        snr_db: power of the direct sound (W, mean over events) over the ambient noise; None: no noise.
        drr_db: direct-to-reverberant ratio per event, a value or a (low, high) range drawn per event; None: dry.
        max_polyphony: 1-3 simultaneous events (lanes).
        moving_prob: probability that an event moves; max_angular_velocity: deg/s bound of moving sources.
        same_class_prob: probability that an event on lanes 2-3 copies the class of an event already sounding.
        level_range_db: per-event level.
    """

    duration_s: float = 30.0
    classes: tuple[int, ...] = tuple(range(len(SYNTH_CLASSES)))
    room: RoomPreset = ROOM_PRESETS[1]
    snr_db: float | None = 20.0
    drr_db: float | tuple[float, float] | None = (4.0, 14.0)
    max_polyphony: int = 3
    moving_prob: float = 0.4
    max_angular_velocity: float = 40.0
    same_class_prob: float = 0.3
    level_range_db: tuple[float, float] = (-6.0, 0.0)
    sampling_rate: int = SAMPLING_RATE


@dataclass
class SceneEvent:
    """One event: class, onset/duration (s), instance id, start DOA (deg), angular velocities (deg/s), distance (m),
    level (dB) and DRR (dB, None = dry)."""

    class_index: int
    onset_s: float
    duration_s: float
    source_id: int = 0
    azimuth_deg: float = 0.0
    elevation_deg: float = 0.0
    azimuth_velocity: float = 0.0
    elevation_velocity: float = 0.0
    distance_m: float = 1.5
    level_db: float = 0.0
    drr_db: float | None = None

    @property
    def offset_s(self) -> float:
        return self.onset_s + self.duration_s

    def doa_at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(azimuth wrapped to [-180, 180), elevation) in degrees at times `t` (s, relative to onset, clipped to the
        event)."""
        t = np.clip(t, 0.0, self.duration_s)
        az = np.mod(self.azimuth_deg + self.azimuth_velocity * t + 180.0, 360.0) - 180.0
        el = np.clip(self.elevation_deg + self.elevation_velocity * t, -80.0, 80.0)
        return az, el


@dataclass
class SceneResult:
    """Rendered scene: `audio` `(4, samples)` float32 (ACN/SN3D), label `rows`, the `events` and the room."""

    audio: np.ndarray
    rows: list[MetadataRow]
    events: list[SceneEvent]
    room: RoomPreset
    extras: dict = field(default_factory=dict)


def _draw_doa(rng: np.random.Generator, active: list[SceneEvent], min_sep_deg: float = 40.0) -> tuple[float, float]:
    best = (0.0, 0.0)
    for _ in range(20):
        az, el = rng.uniform(-180, 180), rng.uniform(-40, 40)
        v = direction_vector(az, el)
        seps = [np.rad2deg(np.arccos(np.clip(v @ direction_vector(e.azimuth_deg, e.elevation_deg), -1, 1)))
                for e in active]
        best = (az, el)
        if not seps or min(seps) >= min_sep_deg:
            break
    return best


def plan_scene(rng: np.random.Generator, cfg: SceneConfig) -> list[SceneEvent]:
    """Draw the events of a scene: lanes of decreasing density give polyphony 1..max_polyphony; lanes 2+ copy a
    sounding event's class with `same_class_prob` (same-class overlaps); DOAs of overlapping events >= 40 deg apart;
    instance ids are the smallest free id among overlapping events of the same class."""
    if not cfg.classes:
        raise ValueError("SceneConfig.classes is empty; give at least one class index.")
    if not 1 <= cfg.max_polyphony <= 3:
        raise ValueError(f"max_polyphony must be 1, 2 or 3, got {cfg.max_polyphony}.")
    densities = (0.7, 0.4, 0.25)[: cfg.max_polyphony]
    events: list[SceneEvent] = []
    for lane, density in enumerate(densities):
        t = rng.uniform(0.0, 1.0 + 2.0 * lane)
        while True:
            sounding = [e for e in events if e.onset_s <= t < e.offset_s]
            if lane > 0 and sounding and rng.random() < cfg.same_class_prob:
                cls = sounding[int(rng.integers(len(sounding)))].class_index
            else:
                cls = int(cfg.classes[int(rng.integers(len(cfg.classes)))])
            lo, hi = DURATION_RANGE_S[SYNTH_CLASSES[cls]]
            dur = rng.uniform(lo, hi)
            if t + dur > cfg.duration_s - 0.05:
                dur = cfg.duration_s - 0.05 - t
                if dur < 0.5:
                    break
            overlapping = [e for e in events if e.onset_s < t + dur and t < e.offset_s]
            az, el = _draw_doa(rng, overlapping)
            moving = rng.random() < cfg.moving_prob
            az_vel = rng.uniform(10.0, cfg.max_angular_velocity) * rng.choice([-1.0, 1.0]) if moving else 0.0
            el_vel = rng.uniform(-5.0, 5.0) if moving else 0.0
            used = {e.source_id for e in overlapping if e.class_index == cls}
            source_id = min(set(range(len(used) + 1)) - used)
            drr = cfg.drr_db if cfg.drr_db is None or np.isscalar(cfg.drr_db) else rng.uniform(*cfg.drr_db)
            ev = SceneEvent(cls, t, dur, source_id, az, el, az_vel, el_vel, 0.0,
                            rng.uniform(*cfg.level_range_db), None if drr is None else float(drr))
            ev.distance_m = _fit_distance(rng, ev, cfg.room)
            events.append(ev)
            mean_dur = 0.5 * (lo + hi)
            t += dur + rng.exponential(mean_dur * (1.0 - density) / density) + 0.05
    return sorted(events, key=lambda e: e.onset_s)


def _fit_distance(rng: np.random.Generator, ev: SceneEvent, room: RoomPreset) -> float:
    az, el = ev.doa_at(np.linspace(0.0, ev.duration_s, 5))
    limit = min(max_distance(room, v) for v in direction_vector(az, el))
    return float(max(0.5, min(rng.uniform(1.0, 3.0), limit)))


def label_rows(events: Sequence[SceneEvent], num_frames: int,
               label_resolution: float = LABEL_RESOLUTION_S) -> list[MetadataRow]:
    """STARSS-style rows: an event is active in frame f when it covers at least half of it (frames
    round(onset/res) .. round(offset/res) - 1, at least one); the DOA is the source's at the frame centre."""
    rows = []
    for ev in events:
        first = round(ev.onset_s / label_resolution)
        last = max(first + 1, round(ev.offset_s / label_resolution))
        frames = np.arange(first, min(last, num_frames))
        az, el = ev.doa_at((frames + 0.5) * label_resolution - ev.onset_s)
        for f, a, e in zip(frames, az, el):
            a = float(np.round(a))
            rows.append(MetadataRow(int(f), ev.class_index, ev.source_id, -180.0 if a == 180.0 else a,
                                    float(np.round(e)), round(ev.distance_m, 2)))
    return sorted(rows, key=lambda r: (r.frame, r.class_index, r.source_id))


def render_scene(rng: np.random.Generator, events: list[SceneEvent], cfg: SceneConfig,
                 clips: dict[int, list[np.ndarray]] | None = None) -> SceneResult:
    """Render planned events to FOA.

    Direct sound: `foa_encode` with the per-sample trajectory. Early reflections: 6 first-order images, directions
    from the source position at the event's middle. Late tail: one diffuse tail per scene, fed by each event
    scaled to its DRR (see `room`). Noise: diffuse pink noise at `snr_db` below the mean direct power.
    Returns audio `(4, samples)` float32 (peak <= 0.95) and the label rows.
    """
    sr = cfg.sampling_rate
    n = round(cfg.duration_s * sr)
    out = np.zeros((4, n), dtype=np.float32)
    send = np.zeros(n)
    powers = []
    for ev in events:
        on = round(ev.onset_s * sr)
        m = min(round(ev.duration_s * sr), n - on)
        if clips and ev.class_index in clips:
            sig = _clip_excerpt(rng, clips[ev.class_index], m, sr)
            m = len(sig)
            ev.duration_s = m / sr
        else:
            sig = generate_source(SYNTH_CLASSES[ev.class_index], rng, m, sr)
        sig = sig * 10.0 ** (ev.level_db / 20.0)
        powers.append(float(np.mean(sig**2)))
        if ev.azimuth_velocity or ev.elevation_velocity:
            az, el = ev.doa_at(np.arange(m) / sr)  # per-sample trajectory
        else:
            az, el = ev.azimuth_deg, ev.elevation_deg
        out[:, on: on + m] += foa_encode(sig, az, el)
        if ev.drr_db is None:
            continue
        r = 10.0 ** (-ev.drr_db / 10.0)
        mid_az, mid_el = ev.doa_at(np.array(ev.duration_s / 2))
        source = np.asarray(cfg.room.mic) + ev.distance_m * direction_vector(mid_az, mid_el)
        delays, amps, r_az, r_el = early_reflections(source, cfg.room)
        amps = amps * np.sqrt(r * cfg.room.early_fraction / np.sum(amps**2))
        gains = foa_encoding_gains(r_az, r_el)  # (6, 4)
        for d, a, g in zip(delays, amps, gains):
            i = on + round(d * sr)
            k = min(m, n - i)
            if k > 0:
                out[:, i: i + k] += (a * g)[:, None] * sig[None, :k]
        send[on: on + m] += np.sqrt(r * (1.0 - cfg.room.early_fraction)) * sig
    if np.any(send):
        predelay = 0.5 * min(cfg.room.size) / 343.0 + 0.005
        tail = diffuse_tail(rng, cfg.room.rt60, sr, predelay)
        out += fftconvolve(send.astype(np.float32)[None, :], tail.astype(np.float32), axes=1)[:, :n]
    if cfg.snr_db is not None and powers:
        out += diffuse_noise(rng, n, sr) * np.sqrt(np.mean(powers) / 10.0 ** (cfg.snr_db / 10.0))
    peak = np.max(np.abs(out)) if n else 0.0
    scale = 0.95 / peak if peak > 0.95 else 1.0
    num_frames = math.ceil(n / (LABEL_RESOLUTION_S * sr) - 1e-9)
    return SceneResult((out * scale).astype(np.float32), label_rows(events, num_frames), events, cfg.room,
                       {"gain": scale})


def _clip_excerpt(rng: np.random.Generator, clips: list[np.ndarray], m: int, sr: int) -> np.ndarray:
    clip = clips[int(rng.integers(len(clips)))]
    if len(clip) > m:
        i = int(rng.integers(0, len(clip) - m + 1))
        clip = clip[i: i + m]
    return normalise_loudness(clip.astype(np.float64), sr)


def load_clips(clips_dir: str | os.PathLike, classes: Sequence[int], sr: int = SAMPLING_RATE) -> dict[int, list[np.ndarray]]:
    """User mono clips: `clips_dir/<class name>/*.wav|flac` (multi-channel files use their first channel), resampled
    to `sr`. Classes without a folder keep their procedural generator."""
    import soundfile

    out: dict[int, list[np.ndarray]] = {}
    root = Path(clips_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"clips_dir {root} does not exist; expected one sub-folder per class name {SYNTH_CLASSES}.")
    for c in classes:
        folder = root / SYNTH_CLASSES[c]
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".wav", ".flac")) if folder.is_dir() else []
        for p in files:
            data, file_sr = soundfile.read(str(p), dtype="float32", always_2d=True)
            mono = resample(data[:, :1].T, file_sr, sr)[0]
            if len(mono) >= int(0.3 * sr):
                out.setdefault(c, []).append(mono)
    return out


def _resolve_classes(classes, profile: SynthProfile) -> tuple[int, ...]:
    if classes is None:
        classes = profile.classes
    out = []
    for c in classes:
        if isinstance(c, str):
            if c not in SYNTH_CLASSES:
                raise ValueError(f"Unknown synthetic class {c!r}; expected names from {SYNTH_CLASSES}.")
            out.append(SYNTH_CLASSES.index(c))
        elif isinstance(c, (int, np.integer)) and 0 <= int(c) < len(SYNTH_CLASSES):
            out.append(int(c))
        else:
            raise ValueError(f"Class {c!r} is neither a name nor an index in [0, {len(SYNTH_CLASSES) - 1}].")
    if not out:
        raise ValueError("classes is empty; give at least one synthetic class.")
    return tuple(sorted(set(out)))


@dataclass
class SynthesisReport:
    """What `synthesize` wrote: paths per split, audio seconds, wall-clock seconds, real-time factor."""

    out_dir: str
    files: dict[str, list[str]]
    audio_seconds: float
    elapsed_seconds: float

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / max(self.elapsed_seconds, 1e-9)


def synthesize(out_dir: str | os.PathLike, n_train: int = 32, n_val: int = 8, n_test: int = 8, seed: int = 0,
               duration_s: float = 30.0, classes: Sequence[str | int] | None = None,
               rooms: Sequence[int] | None = None, snr_db: float | None = 20.0,
               drr_db: float | tuple[float, float] | None = (4.0, 14.0), profile: str = "default",
               max_polyphony: int = 3, moving_prob: float = 0.4, max_angular_velocity: float = 40.0,
               clips_dir: str | os.PathLike | None = None, overwrite: bool = False) -> SynthesisReport:
    """Write a synthetic FOA SELD data set in the STARSS23 layout.

    `out_dir/foa_dev/dev-{train,val,test}-synth/fold{1,2,3}_room{r}_mix{m:03d}.wav` (24 kHz, 4 ch ACN/SN3D, 16 bit)
    and `out_dir/metadata_dev/dev-{...}-synth/<same>.csv` (`frame,class,source,azimuth,elevation,distance_cm`),
    readable with `read_metadata(path, "synthetic")` (or "starss23") and `load_dcase("synthetic", out_dir)`.

    Args:
        n_train, n_val, n_test: scenes per split.
        seed: everything is a function of it (scene (s, m) uses `np.random.default_rng([seed, s, m])`).
        duration_s: scene length in seconds.
        classes: subset of `SYNTH_CLASSES` (names or indices); default: the profile's.
        rooms: subset of `ROOM_PRESETS` ids; default: the profile's.
        snr_db: direct-sound-to-ambient-noise ratio (None: no noise). drr_db: per-event DRR value or range (None: dry).
        profile: "default", "a" or "b" (see `PROFILES`; two different synthetic data sets for transfer studies).
        max_polyphony, moving_prob, max_angular_velocity: scene statistics (see `SceneConfig`).
        clips_dir: optional user mono clips per class (`clips_dir/<class>/*.wav`) replacing the generators.
        overwrite: allow writing into a non-empty `foa_dev/`.
    """
    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}; expected one of {list(PROFILES)}.")
    prof = PROFILES[profile]
    class_ids = _resolve_classes(classes, prof)
    room_ids = tuple(rooms) if rooms is not None else prof.rooms
    unknown = [r for r in room_ids if r not in ROOM_PRESETS]
    if unknown or not room_ids:
        raise ValueError(f"Unknown room id(s) {unknown or room_ids}; expected ids from {sorted(ROOM_PRESETS)}.")
    if duration_s < 1.0:
        raise ValueError(f"duration_s must be at least 1 s, got {duration_s}.")
    counts = {"train": n_train, "val": n_val, "test": n_test}
    if any(c < 0 for c in counts.values()) or not sum(counts.values()):
        raise ValueError(f"Scene counts must be >= 0 and not all zero, got {counts}.")
    out = Path(out_dir)
    if (out / "foa_dev").is_dir() and any((out / "foa_dev").rglob("*.wav")) and not overwrite:
        raise FileExistsError(f"{out / 'foa_dev'} already holds audio; pass overwrite=True or another out_dir.")
    import soundfile

    clips = load_clips(clips_dir, class_ids) if clips_dir is not None else None
    start = time.perf_counter()
    files: dict[str, list[str]] = {}
    for s_idx, (split, count) in enumerate(counts.items()):
        audio_dir = out / "foa_dev" / SPLIT_FOLDERS[split]
        meta_dir = out / "metadata_dev" / SPLIT_FOLDERS[split]
        if count:
            audio_dir.mkdir(parents=True, exist_ok=True)
            meta_dir.mkdir(parents=True, exist_ok=True)
        for mix in range(1, count + 1):
            rng = np.random.default_rng([seed, s_idx, mix])
            room = ROOM_PRESETS[int(room_ids[int(rng.integers(len(room_ids)))])]
            cfg = SceneConfig(duration_s, class_ids, room, snr_db, drr_db, max_polyphony, moving_prob,
                              max_angular_velocity)
            scene = render_scene(rng, plan_scene(rng, cfg), cfg, clips)
            stem = f"fold{SPLIT_FOLDS[split]}_room{room.room_id}_mix{mix:03d}"
            soundfile.write(str(audio_dir / f"{stem}.wav"), scene.audio.T, cfg.sampling_rate, subtype="PCM_16")
            write_metadata(meta_dir / f"{stem}.csv", scene.rows, "synthetic")
            files.setdefault(split, []).append(str(audio_dir / f"{stem}.wav"))
    elapsed = time.perf_counter() - start
    return SynthesisReport(str(out), files, duration_s * sum(counts.values()), elapsed)


__all__ = [
    "PROFILES",
    "SAMPLING_RATE",
    "SPLIT_FOLDERS",
    "SceneConfig",
    "SceneEvent",
    "SceneResult",
    "SynthProfile",
    "SynthesisReport",
    "label_rows",
    "load_clips",
    "plan_scene",
    "render_scene",
    "synthesize",
]

"""FOA front end of AT2SELD: pure DSP functions and `AT2SELDFeatureExtractor`.

Conventions (DCASE): FOA channel order ACN (W, Y, Z, X), SN3D normalisation; azimuth in degrees, 0 = front,
positive counter-clockwise (to the left); elevation positive up. A plane wave from (azimuth phi, elevation theta)
is W = s, Y = s sin(phi) cos(theta), Z = s sin(theta), X = s cos(phi) cos(theta).

This file travels to a Hub repository as remote code: its absolute imports are limited to numpy, torch,
transformers (and `soxr`, optional, behind `try:`), and it imports its sibling flat.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank, window_function
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature

from .configuration_at2seld import descriptor_channel_names, frames_per_label

try:  # optional: only needed when the input rate differs from the extractor's
    import soxr
except ImportError:  # pragma: no cover - exercised only without soxr
    soxr = None

try:  # optional: only needed to read files by path
    import soundfile
except ImportError:  # pragma: no cover
    soundfile = None


FOA_CHANNEL_NAMES = ("w", "y", "z", "x")
# Kaldi-style filter-bank front ends of the pretrained tagging backbones (16 kHz, 25 ms / 10 ms, 128 bins).
BACKBONE_FRONT_ENDS = {
    # transformers' ASTFeatureExtractor numpy path (MIT/ast-finetuned-audioset-10-10-0.4593), AudioSet stats
    "ast": {"window": "hann", "waveform_scale": 1.0, "mean": -4.2677393, "std": 4.5689974},
    # official BEATs preprocessing: torchaudio Kaldi fbank (Povey window) on 16-bit scaled audio
    "beats": {"window": "povey", "waveform_scale": 32768.0, "mean": 15.41663, "std": 6.55582},
}
BACKBONE_SAMPLING_RATE = 16000
BACKBONE_HOP = 160  # 10 ms at 16 kHz
BACKBONE_WIN = 400  # 25 ms at 16 kHz


# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------
def foa_encoding_gains(azimuth_deg, elevation_deg) -> np.ndarray:
    """ACN/SN3D first-order encoding gains of a plane wave.

    Args:
        azimuth_deg, elevation_deg: scalars or arrays of the same shape `(...)`, in degrees.
    Returns:
        `(..., 4)` array of gains for (W, Y, Z, X).
    """
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    az, el = np.broadcast_arrays(az, el)
    return np.stack([np.ones_like(az), np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)], axis=-1)


def foa_encode(signal: np.ndarray, azimuth_deg, elevation_deg) -> np.ndarray:
    """Encode a mono signal `(samples,)` as an FOA plane wave, returning `(4, samples)` (ACN/SN3D).

    `azimuth_deg`/`elevation_deg` are scalars (static source) or `(samples,)` arrays (moving source).
    """
    gains = foa_encoding_gains(azimuth_deg, elevation_deg)  # (4,) or (samples, 4)
    return (np.asarray(signal)[None, :] * np.atleast_2d(gains).T).astype(np.float32)


def fuma_to_acn(audio: np.ndarray) -> np.ndarray:
    """Convert first-order FuMa `(4, samples)` (W, X, Y, Z; W scaled by 1/sqrt(2)) to ACN/SN3D (W, Y, Z, X)."""
    w, x, y, z = audio
    return np.stack([w * math.sqrt(2.0), y, z, x]).astype(audio.dtype, copy=False)


def pcm_to_float(audio: np.ndarray) -> np.ndarray:
    """Convert integer PCM to float32 in [-1, 1) by its dtype range; floats are cast to float32.

    int8/int16/int32/int64 are divided by 2**(bits-1); uint8 is centred on 128 first.
    """
    audio = np.asarray(audio)
    if audio.dtype == np.uint8:
        return ((audio.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if np.issubdtype(audio.dtype, np.signedinteger):
        return (audio.astype(np.float64) / float(2 ** (8 * audio.dtype.itemsize - 1))).astype(np.float32)
    if np.issubdtype(audio.dtype, np.floating):
        return audio.astype(np.float32, copy=False)
    raise TypeError(f"Audio must be integer PCM or floating point, got dtype {audio.dtype}.")


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Anti-aliased resampling of `(channels, samples)` float audio with soxr (very high quality)."""
    if orig_sr == target_sr:
        return audio
    if soxr is None:
        raise ImportError(f"Resampling {orig_sr} Hz -> {target_sr} Hz needs soxr. Run `pip install soxr`.")
    out = soxr.resample(np.ascontiguousarray(audio.T), orig_sr, target_sr, quality="VHQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)


def num_label_frames(num_samples: int, sampling_rate: int, label_resolution: float) -> int:
    """Number of label frames covering `num_samples` (the last, partial frame counts)."""
    return int(math.ceil(num_samples / (label_resolution * sampling_rate) - 1e-9))


def framed_stft(audio: torch.Tensor, start_frame: int, num_frames: int, n_fft: int, hop_length: int,
                win_length: int) -> torch.Tensor:
    """Centred STFT frames `[start_frame, start_frame + num_frames)` of a signal zero-padded on both sides.

    Frame t is centred on sample t * hop_length (librosa/torch `center=True` with zero padding), so computing a
    file in chunks gives exactly the frames of the whole-file STFT.

    Args:
        audio: `(channels, samples)` float tensor.
    Returns:
        `(channels, n_fft // 2 + 1, num_frames)` complex tensor.
    """
    half = n_fft // 2
    first = start_frame * hop_length - half  # first sample of the first frame
    last = (start_frame + num_frames - 1) * hop_length + (n_fft - half)  # one past the last sample needed
    left_pad = max(0, -first)
    right_pad = max(0, last - audio.shape[-1])
    segment = audio[:, max(0, first): min(audio.shape[-1], last)]
    if left_pad or right_pad:
        segment = torch.nn.functional.pad(segment, (left_pad, right_pad))
    window = torch.hann_window(win_length, periodic=True, dtype=audio.dtype, device=audio.device)
    return torch.stft(segment, n_fft, hop_length, win_length, window, center=False, return_complex=True)


def foa_cross_spectra(spec: torch.Tensor) -> torch.Tensor:
    """Cross-spectra conj(W) * [X, Y, Z] of an ACN STFT `(4, bins, frames)` -> complex `(3, bins, frames)`."""
    w, y, z, x = spec
    return torch.conj(w)[None] * torch.stack([x, y, z])


def foa_intensity_vector(spec: torch.Tensor, eps: float = 1e-8, power: torch.Tensor | None = None,
                         cross: torch.Tensor | None = None) -> torch.Tensor:
    """Energy-normalised active intensity vector per time-frequency bin (DCASE FOA baseline).

    I = Re(conj(W) [X, Y, Z]) / (eps + |W|^2 + (|X|^2 + |Y|^2 + |Z|^2) / 3); it points towards the source.

    Args:
        spec: `(4, bins, frames)` complex ACN STFT.
        power, cross: optional precomputed `|spec|^2` `(4, bins, frames)` and `foa_cross_spectra(spec)`.
    Returns:
        `(3, bins, frames)` real tensor, components (x, y, z).
    """
    power = spec.real**2 + spec.imag**2 if power is None else power
    cross = foa_cross_spectra(spec) if cross is None else cross
    energy = eps + power[0] + power[1:].sum(0) / 3.0
    return cross.real / energy


def mel_project(values: torch.Tensor, mel_filters: torch.Tensor) -> torch.Tensor:
    """Project `(channels, bins, frames)` linear-frequency values onto mel bands `(bins, mels)` -> `(channels, mels, frames)`."""
    if values.is_complex():
        return torch.complex(mel_project(values.real, mel_filters), mel_project(values.imag, mel_filters))
    return torch.matmul(mel_filters.T, values)  # (mels, bins) @ (channels, bins, frames): a batched GEMM, no copies


def power_to_db(power: torch.Tensor, amin: float = 1e-10) -> torch.Tensor:
    """10 log10(max(power, amin)), without per-file `top_db` clipping (so chunked and whole-file agree)."""
    return 10.0 * torch.log10(torch.clamp(power, min=amin))


def phase_cos_sin(cross: torch.Tensor) -> torch.Tensor:
    """cos/sin of the phase of complex cross-spectra `(3, bins, frames)` -> `(6, bins, frames)` ordered
    (cos_x, sin_x, cos_y, sin_y, cos_z, sin_z). Scale-invariant; a zero cross-spectrum gives (1, 0)."""
    magnitude = torch.abs(cross)
    zero = magnitude == 0
    cos = torch.where(zero, 1.0, cross.real / torch.where(zero, 1.0, magnitude))
    sin = torch.where(zero, 0.0, cross.imag / torch.where(zero, 1.0, magnitude))
    return torch.stack([cos, sin], dim=1).reshape(-1, *cross.shape[1:])


def spatial_descriptors(spec: torch.Tensor, descriptors: Sequence[str], mel_filters: torch.Tensor,
                        eps: float = 1e-8, amin: float = 1e-10) -> torch.Tensor:
    """Stack the requested descriptor families from an ACN STFT.

    Args:
        spec: `(4, n_fft // 2 + 1, frames)` complex STFT of (W, Y, Z, X).
        descriptors: family names (see `configuration_at2seld.DESCRIPTOR_FAMILIES`), in output order.
        mel_filters: `(n_fft // 2 + 1, mels)` filter bank.
    Returns:
        `(channels, bins, frames)` float tensor, channels as `descriptor_channel_names(descriptors)`.
    """
    out = []
    power = cross = mel_cross = None
    for family in descriptors:
        if family in ("logmel", "iv", "linspec") and power is None:
            power = spec.real**2 + spec.imag**2
        if family in ("iv", "phase", "linspec") and cross is None:
            cross = foa_cross_spectra(spec)
        if family == "logmel":
            out.append(power_to_db(mel_project(power, mel_filters), amin))
        elif family == "iv":
            # band average (filters scaled to unit sum): bounded in [-3/4, 3/4] like the per-bin IV. The DCASE
            # baseline projects with the raw slaney filters, i.e. this times a per-band constant that its feature
            # scaler (and our model's input normalisation) removes.
            band_average = mel_filters / mel_filters.sum(0, keepdim=True).clamp_min(1e-12)
            out.append(mel_project(foa_intensity_vector(spec, eps, power, cross), band_average))
        elif family == "phase":
            mel_cross = mel_project(cross, mel_filters) if mel_cross is None else mel_cross
            out.append(phase_cos_sin(mel_cross))
        elif family == "linspec":
            out.append(power_to_db(power[:, :-1], amin))
            out.append(phase_cos_sin(cross[:, :-1]))
        else:
            raise ValueError(f"Unknown descriptor family {family!r}.")
    return torch.cat(out, dim=0)


def kaldi_fbank(waveform: np.ndarray, window: str, mel_filters: np.ndarray, block_frames: int = 4096) -> np.ndarray:
    """Kaldi-style 128-bin log-mel filter bank of 16 kHz mono audio (25 ms window, 10 ms hop, `snip_edges`).

    Vectorised form of `transformers.audio_utils.spectrogram` with the parameters of transformers'
    `ASTFeatureExtractor` (numpy path): the same operations in the same order and precision (float64 frames, DC
    removal, pre-emphasis 0.97, window, 512-point rFFT stored as complex64, power, mel, floor 1.19e-7, log), so the
    values are identical to it. `window="povey"` gives the torchaudio Kaldi fbank used by BEATs.

    Args:
        waveform: `(samples,)` float array at 16 kHz, already scaled as the backbone expects.
        block_frames: frames processed at once (bounds memory on long inputs; results do not depend on it).
    Returns:
        `(frames, 128)` float32 array, frames = 1 + (samples - 400) // 160.
    """
    win = window_function(BACKBONE_WIN, window, periodic=False).astype(np.float64)
    signal = np.asarray(waveform).astype(np.float64)
    n_frames = 1 + (signal.size - BACKBONE_WIN) // BACKBONE_HOP
    if n_frames < 1:
        raise ValueError(f"kaldi_fbank needs at least {BACKBONE_WIN} samples, got {signal.size}.")
    all_frames = np.lib.stride_tricks.sliding_window_view(signal, BACKBONE_WIN)[::BACKBONE_HOP][:n_frames]
    out = np.empty((n_frames, mel_filters.shape[1]), dtype=np.float32)
    for start in range(0, n_frames, block_frames):
        frames = np.array(all_frames[start:start + block_frames])  # (block, 400) float64 copy
        frames -= frames.mean(axis=1, keepdims=True)
        frames[:, 1:] -= 0.97 * frames[:, :-1].copy()
        frames[:, 0] *= 1 - 0.97
        frames *= win
        spec = np.fft.rfft(frames, n=512, axis=1).astype(np.complex64)
        power = np.abs(spec, dtype=np.float64) ** 2.0
        # float64 GEMM through torch (its thread settings hold in DataLoader workers; numpy's multithreaded BLAS
        # thrashes there), the same product as transformers' `np.dot(mel_filters.T, spectrogram)`
        mel = np.maximum(1.192092955078125e-07, (torch.from_numpy(mel_filters.T) @ torch.from_numpy(power.T)).numpy())
        out[start:start + block_frames] = np.log(mel).T
    return out


def kaldi_mel_filters(num_mel_bins: int = 128) -> np.ndarray:
    """Kaldi mel filter bank `(257, num_mel_bins)` for 16 kHz, 512-point FFT, 20 Hz to Nyquist.

    With 128 bins the lowest filter is empty, as in the AST/BEATs checkpoints' own front end; its warning is muted.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
        return _kaldi_mel_filters(num_mel_bins)


def _kaldi_mel_filters(num_mel_bins: int) -> np.ndarray:
    return mel_filter_bank(
        num_frequency_bins=257,
        num_mel_filters=num_mel_bins,
        min_frequency=20,
        max_frequency=BACKBONE_SAMPLING_RATE // 2,
        sampling_rate=BACKBONE_SAMPLING_RATE,
        norm=None,
        mel_scale="kaldi",
        triangularize_in_mel_space=True,
    )


# ----------------------------------------------------------------------------------------------------------------
# The feature extractor
# ----------------------------------------------------------------------------------------------------------------
class AT2SELDFeatureExtractor(SequenceFeatureExtractor):
    r"""FOA front end of AT2SELD: turns 4-channel FOA audio into the inputs of both model branches.

    Input: one recording or a batch; each recording a numpy array or torch tensor of shape `(samples, 4)` or
    `(4, samples)` (integer PCM is scaled by its dtype range), or a path to an audio file. ACN/SN3D channel order
    (W, Y, Z, X) by default; `channel_format="fuma"` converts FuMa (W, X, Y, Z with W at -3 dB). Higher-order
    ambisonics is rejected unless `hoa_to_foa=True`, which keeps the first four ACN channels. Audio at another rate
    is resampled (soxr, anti-aliased) to `sampling_rate`.

    Output `BatchFeature`:
        - `spatial_features`: `(batch, channels, frames, bins)` float32, `frames = frames_per_label * label_frames`
          (5 feature frames per 100 ms label frame by default).
        - `spatial_feature_names`: list of `channels` names, in order.
        - `backbone_values` (unless `backbone_type="none"`): `(batch, 10 * label_frames, 128)` Kaldi fbank of the W
          channel at 16 kHz, normalised as the backbone was pretrained (10 fbank frames per label frame).
        - `frame_mask`: `(batch, label_frames)` bool, True on label frames covered by real audio.
        - `num_label_frames`: `(batch,)` int64.

    Args:
        sampling_rate: rate of the spatial front end (24 kHz, DCASE FOA).
        n_fft, hop_length, win_length: STFT framing (1024, 480 = 20 ms, 960 = 40 ms).
        num_mel_bins: mel bands of the mel descriptor families (64).
        label_resolution: seconds per label frame (0.1).
        descriptors: descriptor families, see `configuration_at2seld.DESCRIPTOR_FAMILIES`.
        backbone_type: "ast", "beats" or "none": which pretrained front end `backbone_values` reproduces.
        iv_eps: energy floor of the intensity-vector normalisation.
        chunk_label_frames: label frames computed at once (bounds memory on long files; results do not depend on it).
    """

    model_input_names = ["spatial_features", "backbone_values", "frame_mask"]

    def __init__(
        self,
        sampling_rate: int = 24000,
        n_fft: int = 1024,
        hop_length: int = 480,
        win_length: int = 960,
        num_mel_bins: int = 64,
        label_resolution: float = 0.1,
        descriptors: Sequence[str] = ("logmel", "phase", "iv"),
        backbone_type: str = "ast",
        backbone_num_mel_bins: int = 128,
        iv_eps: float = 1e-8,
        chunk_label_frames: int = 50,
        padding_value: float = 0.0,
        **kwargs,
    ):
        kwargs.pop("feature_size", None)
        self.descriptors = list(descriptors)
        names = descriptor_channel_names(self.descriptors)
        super().__init__(feature_size=len(names), sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        if win_length > n_fft:
            raise ValueError(f"win_length={win_length} must not exceed n_fft={n_fft}.")
        if backbone_type not in (*BACKBONE_FRONT_ENDS, "none"):
            raise ValueError(f"backbone_type must be one of {[*BACKBONE_FRONT_ENDS, 'none']}, got {backbone_type!r}.")
        if chunk_label_frames < 1:
            raise ValueError(f"chunk_label_frames must be >= 1, got {chunk_label_frames}.")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.num_mel_bins = num_mel_bins
        self.label_resolution = label_resolution
        self.frames_per_label = frames_per_label(sampling_rate, hop_length, label_resolution)
        self.backbone_type = backbone_type
        self.backbone_num_mel_bins = backbone_num_mel_bins
        self.iv_eps = iv_eps
        self.chunk_label_frames = chunk_label_frames
        self.spatial_feature_names = names
        backbone_label_samples = label_resolution * BACKBONE_SAMPLING_RATE
        if abs(backbone_label_samples / BACKBONE_HOP - round(backbone_label_samples / BACKBONE_HOP)) > 1e-6:
            raise ValueError(f"label_resolution={label_resolution} s is not a whole number of 10 ms backbone frames.")
        self.backbone_frames_per_label = int(round(backbone_label_samples / BACKBONE_HOP))

    # Derived tables are built on use, not serialised.
    def _mel_filters(self) -> torch.Tensor:
        fb = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=self.num_mel_bins,
            min_frequency=0.0,
            max_frequency=self.sampling_rate / 2,
            sampling_rate=self.sampling_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        return torch.from_numpy(fb.astype(np.float32))

    def to_dict(self):
        out = super().to_dict()
        out.pop("spatial_feature_names", None)
        out.pop("frames_per_label", None)
        out.pop("backbone_frames_per_label", None)
        return out

    # -------------------------------------------------------------------------------------------- input checks
    def load_audio(self, audio, sampling_rate: int | None = None, channel_format: str = "acn",
                   hoa_to_foa: bool = False, index: int | None = None) -> np.ndarray:
        """Validate one recording and return it as float32 ACN/SN3D `(4, samples)` at `self.sampling_rate`."""
        where = "" if index is None else f" (batch item {index})"
        if isinstance(audio, (str, os.PathLike)):
            audio, file_sr = self._read_file(os.fspath(audio))
            if sampling_rate is not None and sampling_rate != file_sr:
                raise ValueError(
                    f"sampling_rate={sampling_rate} was passed, but the file{where} is at {file_sr} Hz; "
                    "leave sampling_rate out for files."
                )
            sampling_rate = file_sr
            audio = audio.T  # soundfile gives (samples, channels)
        if sampling_rate is None:
            raise ValueError(
                "`sampling_rate` is required: pass the rate of the audio in Hz (e.g. sampling_rate=24000); "
                f"it is resampled to {self.sampling_rate} Hz if it differs."
            )
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        audio = np.asarray(audio)
        if audio.dtype == object:
            raise TypeError(f"Audio{where} must be a numeric array, got an object array.")
        audio = pcm_to_float(audio)
        audio = self._to_channels_first(audio, hoa_to_foa, where)
        if channel_format == "fuma":
            audio = fuma_to_acn(audio)
        elif channel_format != "acn":
            raise ValueError(f"channel_format must be 'acn' or 'fuma', got {channel_format!r}.")
        block = 1 << 20  # checked block by block: no full-length boolean copy of a long recording
        bad = sum(int(np.count_nonzero(~np.isfinite(audio[:, i:i + block]))) for i in range(0, audio.shape[1], block))
        if bad:
            raise ValueError(
                f"Audio{where} contains {bad} NaN/Inf samples; clean or drop the recording before feature extraction."
            )
        min_samples = int(math.ceil(self.win_length * sampling_rate / self.sampling_rate))
        if audio.shape[1] < min_samples:
            raise ValueError(
                f"Audio{where} has {audio.shape[1]} samples at {sampling_rate} Hz, shorter than one analysis window "
                f"({self.win_length / self.sampling_rate * 1000:.0f} ms = {min_samples} samples)."
            )
        return resample(audio, int(sampling_rate), self.sampling_rate)

    @staticmethod
    def _read_file(path: str) -> tuple[np.ndarray, int]:
        if not os.path.exists(path):
            raise FileNotFoundError(f"Audio file not found: {path}")
        if soundfile is None:
            raise ImportError("Reading audio files needs soundfile. Run `pip install soundfile`.")
        try:
            data, sr = soundfile.read(path, dtype="float32", always_2d=True)
        except Exception as err:  # soundfile raises LibsndfileError/RuntimeError for non-audio content
            raise ValueError(f"{path} could not be decoded as audio ({err}); pass a WAV/FLAC FOA file.") from err
        return data, int(sr)

    @staticmethod
    def _to_channels_first(audio: np.ndarray, hoa_to_foa: bool, where: str) -> np.ndarray:
        if audio.ndim != 2:
            raise ValueError(
                f"Expected FOA audio{where} with 4 channels as a (samples, 4) or (4, samples) array, got shape "
                f"{audio.shape}" + (" (mono)" if audio.ndim == 1 else "") + "."
            )
        # The axis of length 4 is the channel axis; otherwise the shorter one (recordings are longer than wide).
        channels_first = audio.shape[0] == 4 or (audio.shape[1] != 4 and audio.shape[0] <= audio.shape[1])
        audio = audio if channels_first else audio.T
        n_ch = audio.shape[0]
        if n_ch == 4:
            return np.ascontiguousarray(audio)
        order = math.isqrt(n_ch) - 1
        if hoa_to_foa and n_ch > 4 and (order + 1) ** 2 == n_ch:
            return np.ascontiguousarray(audio[:4])
        hint = (
            f" It looks like order-{order} ambisonics: pass hoa_to_foa=True to keep its first 4 ACN channels."
            if n_ch > 4 and (order + 1) ** 2 == n_ch
            else ""
        )
        raise ValueError(
            f"Expected 4 FOA channels (ACN W, Y, Z, X){where}, got {n_ch} channels (array shape {audio.shape})."
            + hint
        )

    # ------------------------------------------------------------------------------------------ feature maths
    def _backbone_signal(self, foa: np.ndarray) -> np.ndarray | None:
        """W channel at 16 kHz, scaled for the backbone and zero-padded so every label frame has its fbank frames."""
        if self.backbone_type == "none":
            return None
        w = resample(foa[:1], self.sampling_rate, BACKBONE_SAMPLING_RATE)[0]
        w = w * BACKBONE_FRONT_ENDS[self.backbone_type]["waveform_scale"]
        n_lab = num_label_frames(foa.shape[1], self.sampling_rate, self.label_resolution)
        needed = n_lab * self.backbone_frames_per_label * BACKBONE_HOP + (BACKBONE_WIN - BACKBONE_HOP)
        return np.pad(w, (0, max(0, needed - w.shape[0])))[:needed].astype(np.float32)

    def _spatial_for_frames(self, foa: torch.Tensor, start: int, stop: int, mel_filters: torch.Tensor) -> torch.Tensor:
        """Spatial descriptors `(channels, frames, bins)` of label frames [start, stop) of one recording."""
        fpl = self.frames_per_label
        spec = framed_stft(foa, start * fpl, (stop - start) * fpl, self.n_fft, self.hop_length, self.win_length)
        return spatial_descriptors(spec, self.descriptors, mel_filters, self.iv_eps).transpose(1, 2)

    def _backbone_for_frames(self, w16: np.ndarray, start: int, stop: int, kaldi_filters: np.ndarray) -> torch.Tensor:
        """Normalised backbone fbank `(10 * (stop - start), 128)` of label frames [start, stop)."""
        bpl = self.backbone_frames_per_label
        seg = w16[start * bpl * BACKBONE_HOP: stop * bpl * BACKBONE_HOP + BACKBONE_WIN - BACKBONE_HOP]
        front = BACKBONE_FRONT_ENDS[self.backbone_type]
        fbank = kaldi_fbank(seg, front["window"], kaldi_filters)
        return torch.from_numpy((fbank - front["mean"]) / (2.0 * front["std"]))

    def _prepare(self, audio, sampling_rate, channel_format, hoa_to_foa, index=None):
        foa = self.load_audio(audio, sampling_rate, channel_format, hoa_to_foa, index=index)
        n_lab = num_label_frames(foa.shape[1], self.sampling_rate, self.label_resolution)
        w16 = self._backbone_signal(foa)
        kaldi_filters = kaldi_mel_filters(self.backbone_num_mel_bins) if w16 is not None else None
        return torch.from_numpy(foa), w16, n_lab, self._mel_filters(), kaldi_filters

    def iter_chunks(self, audio, sampling_rate: int | None = None, chunk_label_frames: int | None = None,
                    channel_format: str = "acn", hoa_to_foa: bool = False) -> Iterator[tuple[int, int, dict]]:
        """Yield `(start, stop, features)` for consecutive label-frame ranges of ONE recording.

        Feature tensors have no batch axis: `spatial_features` `(channels, frames, bins)`, `backbone_values`
        `(fbank_frames, 128)`. Concatenating the chunks along time gives the whole-file features exactly, and only
        one chunk's spectrogram is held at a time.
        """
        foa, w16, n_lab, mel_filters, kaldi_filters = self._prepare(audio, sampling_rate, channel_format, hoa_to_foa)
        step = chunk_label_frames or self.chunk_label_frames
        for start in range(0, n_lab, step):
            stop = min(n_lab, start + step)
            feats = {"spatial_features": self._spatial_for_frames(foa, start, stop, mel_filters)}
            if w16 is not None:
                feats["backbone_values"] = self._backbone_for_frames(w16, start, stop, kaldi_filters)
            yield start, stop, feats

    def _features_one(self, audio, sampling_rate, channel_format, hoa_to_foa, index) -> dict[str, torch.Tensor]:
        foa, w16, n_lab, mel_filters, kaldi_filters = self._prepare(audio, sampling_rate, channel_format, hoa_to_foa,
                                                                    index)
        step = self.chunk_label_frames  # bounds the size of the STFT held at once
        out = {
            "spatial_features": torch.cat(
                [self._spatial_for_frames(foa, s, min(n_lab, s + step), mel_filters) for s in range(0, n_lab, step)],
                dim=1,
            ),
            "num_label_frames": n_lab,
        }
        if w16 is not None:  # fbank frames are independent: one call over the whole file is the same and faster
            out["backbone_values"] = self._backbone_for_frames(w16, 0, n_lab, kaldi_filters)
        return out

    def __call__(
        self,
        audio,
        sampling_rate: int | None = None,
        return_tensors: str | None = "pt",
        channel_format: str = "acn",
        hoa_to_foa: bool = False,
        **kwargs,
    ) -> BatchFeature:
        """Featurise one FOA recording or a batch (list, or a 3-D array `(batch, 4, samples)`/`(batch, samples, 4)`).

        Recordings of different lengths are padded at the end with silence; `frame_mask` marks the real frames.
        """
        if kwargs:
            raise TypeError(f"Unexpected arguments {sorted(kwargs)}.")
        batch = self._as_batch(audio)
        items = [self._features_one(a, sampling_rate, channel_format, hoa_to_foa, i if len(batch) > 1 else None)
                 for i, a in enumerate(batch)]
        max_lab = max(item["num_label_frames"] for item in items)
        fpl, bpl = self.frames_per_label, self.backbone_frames_per_label
        spatial, backbone, mask = [], [], torch.zeros(len(items), max_lab, dtype=torch.bool)
        for i, item in enumerate(items):
            n = item["num_label_frames"]
            mask[i, :n] = True
            spatial.append(self._pad_time(item["spatial_features"], max_lab * fpl, dim=1))
            if "backbone_values" in item:
                backbone.append(self._pad_time(item["backbone_values"], max_lab * bpl, dim=0))
        data = {
            "spatial_features": torch.stack(spatial),
            "frame_mask": mask,
            "num_label_frames": torch.tensor([item["num_label_frames"] for item in items], dtype=torch.long),
        }
        if backbone:
            data["backbone_values"] = torch.stack(backbone)
        if return_tensors == "np":
            data = {k: v.numpy() for k, v in data.items()}
        elif return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}.")
        data["spatial_feature_names"] = list(self.spatial_feature_names)
        return BatchFeature(data)

    def _pad_time(self, x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
        """Pad a time axis with the features of silence so padded frames look like a shorter recording's tail."""
        missing = length - x.shape[dim]
        if missing <= 0:
            return x
        silence = self._silence_frame(x, dim)
        reps = [1] * x.dim()
        reps[dim] = missing
        return torch.cat([x, silence.repeat(*reps)], dim=dim)

    def _silence_frame(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        # Spatial features of an all-zero signal are computed rather than assumed (log floors, zero IV, phase 0).
        if dim == 1:
            zeros = torch.zeros(4, self.n_fft, dtype=torch.float32)
            spec = framed_stft(zeros, 1, 1, self.n_fft, self.hop_length, self.win_length)
            frame = spatial_descriptors(spec, self.descriptors, self._mel_filters(), self.iv_eps)  # (C, bins, 1)
            return frame.transpose(1, 2)
        front = BACKBONE_FRONT_ENDS[self.backbone_type]
        fbank = kaldi_fbank(np.zeros(BACKBONE_WIN, np.float32), front["window"], kaldi_mel_filters(self.backbone_num_mel_bins))
        return torch.from_numpy((fbank - front["mean"]) / (2.0 * front["std"]))

    @staticmethod
    def _as_batch(audio) -> list:
        if isinstance(audio, (str, os.PathLike)):
            return [audio]
        if isinstance(audio, (list, tuple)):
            if len(audio) == 0:
                raise ValueError("Got an empty batch; pass at least one recording.")
            if all(isinstance(a, (int, float, np.number)) for a in audio):
                return [np.asarray(audio)]  # a bare list of samples: rejected later as mono
            return list(audio)
        if isinstance(audio, (np.ndarray, torch.Tensor)):
            if audio.ndim == 3:
                return list(audio)
            return [audio]
        raise TypeError(
            f"Audio must be a numpy array, torch tensor, file path, or a list of them; got {type(audio).__name__}."
        )


__all__ = [
    "AT2SELDFeatureExtractor",
    "foa_encoding_gains",
    "foa_encode",
    "fuma_to_acn",
    "pcm_to_float",
    "resample",
    "framed_stft",
    "foa_cross_spectra",
    "foa_intensity_vector",
    "mel_project",
    "power_to_db",
    "phase_cos_sin",
    "spatial_descriptors",
    "kaldi_fbank",
    "kaldi_mel_filters",
    "num_label_frames",
]

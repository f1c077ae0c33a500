"""Training windows: a lazy torch `Dataset` over manifests and the collator that cuts chunks and builds targets.

`SELDCollator(train=True)` cuts one random fixed-length chunk per recording, on 100 ms label-frame boundaries, with
an explicit `np.random.Generator`; `train=False` keeps whole recordings (evaluation). Both run the feature
extractor and add the track-wise targets of `at2seld.labels_at2seld.encode_labels`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .dcase import LABEL_RESOLUTION_S, MetadataRow, read_metadata
from .hf import decode_audio, example_rows
from .manifests import Recording


class FOARecordingDataset(torch.utils.data.Dataset):
    """Map-style dataset over `Recording`s; audio is decoded on access (nothing is held in memory).

    Item: `{"audio": (samples, 4) float32, "sampling_rate": int, "rows": list[MetadataRow], "file_id": str}`.
    """

    def __init__(self, recordings: Sequence[Recording], strict: bool = True):
        self.recordings = list(recordings)
        self.strict = strict
        self._rows: dict[int, list[MetadataRow]] = {}

    def __len__(self) -> int:
        return len(self.recordings)

    def rows(self, index: int) -> list[MetadataRow]:
        if index not in self._rows:
            rec = self.recordings[index]
            self._rows[index] = read_metadata(rec.metadata_path, rec.dataset, self.strict) if rec.metadata_path else []
        return self._rows[index]

    def __getitem__(self, index: int) -> dict:
        """The recording with its audio still on disk (`"audio"` is the path): `SELDCollator` reads only the chunk
        it cuts, and `decode_audio(item)` reads the whole file."""
        rec = self.recordings[index]
        return {"audio": rec.audio_path, "sampling_rate": rec.sampling_rate, "num_samples": rec.num_samples,
                "rows": self.rows(index), "file_id": rec.file_id}


def random_chunk(num_label_frames: int, chunk_frames: int, rng: np.random.Generator) -> int:
    """Start frame of a random chunk: uniform over [0, max(0, num_label_frames - chunk_frames)]."""
    return int(rng.integers(0, max(0, num_label_frames - chunk_frames) + 1))


def cut_chunk(audio: np.ndarray, sampling_rate: int, rows: Sequence[MetadataRow], start_frame: int,
              chunk_frames: int, label_resolution: float = LABEL_RESOLUTION_S) -> tuple[np.ndarray, list[MetadataRow]]:
    """Cut label frames [start_frame, start_frame + chunk_frames) of a recording.

    Args:
        audio: `(samples, channels)`.
    Returns:
        audio `(chunk_samples, channels)` (shorter at the end of the file) and the rows inside, frames re-based to 0.
    """
    hop = label_resolution * sampling_rate
    if abs(hop - round(hop)) > 1e-6:
        raise ValueError(f"{sampling_rate} Hz does not give a whole number of samples per {label_resolution} s frame.")
    hop = round(hop)
    piece = audio[start_frame * hop: (start_frame + chunk_frames) * hop]
    end = start_frame + chunk_frames
    kept = [r._replace(frame=r.frame - start_frame) for r in rows if start_frame <= r.frame < end]
    return piece, kept


def _default_label_encoder():
    from ..labels_at2seld import encode_labels

    return encode_labels


class SELDCollator:
    """Batch examples into feature-extractor inputs plus track-wise targets.

    Examples: dicts with the audio (a `(samples, 4)` array with `sampling_rate`, or the `{"bytes", "path"}` struct of
    `load_dcase`) and the metadata (`rows` list, or the column lists of `load_dcase`).

    Output: the extractor's `BatchFeature` (`spatial_features`, `backbone_values`, `frame_mask` (B, T),
    `num_label_frames`, ...) plus `labels` float32 `(B, T, num_tracks, 6)` (zeros on padded frames; layout of
    `encode_labels`) and `file_id` (list of B str). T = chunk frames when training, the longest recording otherwise.

    Args:
        feature_extractor: an `AT2SELDFeatureExtractor` (any callable `fe(list_of_audio, sampling_rate=sr)`).
        num_classes, num_tracks: label set size and number of output tracks.
        chunk_length_s: training chunk length (a whole number of 100 ms frames).
        train: random chunks (True) or whole recordings (False).
        seed / rng: the chunk positions come from `rng` or from `np.random.default_rng(seed)`; no global RNG.
        label_encoder: `encode_labels(rows, num_frames, num_classes, num_tracks)`; defaults to
            `at2seld.labels_at2seld.encode_labels`.
    """

    def __init__(self, feature_extractor, num_classes: int, num_tracks: int = 3, chunk_length_s: float = 5.0,
                 train: bool = True, seed: int | None = 0, rng: np.random.Generator | None = None,
                 label_encoder: Callable | None = None, label_resolution: float = LABEL_RESOLUTION_S):
        frames = chunk_length_s / label_resolution
        if chunk_length_s <= 0 or abs(frames - round(frames)) > 1e-6:
            raise ValueError(
                f"chunk_length_s={chunk_length_s} must be a positive multiple of the {label_resolution} s label frame."
            )
        self.feature_extractor = feature_extractor
        self.num_classes = num_classes
        self.num_tracks = num_tracks
        self.chunk_frames = round(frames)
        self.train = train
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.seed = seed
        self._worker_key = None
        self.label_encoder = label_encoder or _default_label_encoder()
        self.label_resolution = label_resolution

    def _read_random_chunk(self, example: dict) -> tuple[np.ndarray, int, list[MetadataRow], int]:
        """Training chunk of a recording stored as a file: only the chunk's samples are read from disk."""
        import soundfile

        path = example["audio"]
        info = soundfile.info(path)
        sr = int(info.samplerate)
        hop = round(self.label_resolution * sr)
        n_frames = math.ceil(info.frames / hop - 1e-9)
        start = random_chunk(n_frames, self.chunk_frames, self.rng)
        audio, _ = soundfile.read(path, start=start * hop, stop=min(info.frames, (start + self.chunk_frames) * hop),
                                  dtype="float32", always_2d=True)
        end = start + self.chunk_frames
        rows = [r._replace(frame=r.frame - start) for r in example_rows(example) if start <= r.frame < end]
        return audio, sr, rows, math.ceil(audio.shape[0] / hop - 1e-9)

    def _prepare(self, example: dict) -> tuple[np.ndarray, int, list[MetadataRow], int]:
        if self.train and isinstance(example.get("audio"), (str, os.PathLike)):
            return self._read_random_chunk(example)
        audio, sr = decode_audio(example)
        if audio.ndim != 2:
            raise ValueError(f"Expected (samples, 4) FOA audio for {example.get('file_id')!r}, got shape {audio.shape}.")
        if audio.shape[0] == 4 and audio.shape[1] != 4:
            audio = audio.T
        rows = example_rows(example)
        hop = round(self.label_resolution * sr)
        n_frames = math.ceil(audio.shape[0] / hop - 1e-9)
        if self.train:
            start = random_chunk(n_frames, self.chunk_frames, self.rng)
            audio, rows = cut_chunk(audio, sr, rows, start, self.chunk_frames, self.label_resolution)
            n_frames = math.ceil(audio.shape[0] / hop - 1e-9)
        else:
            rows = [r for r in rows if r.frame < n_frames]
        return audio, sr, rows, n_frames

    def _reseed_for_worker(self) -> None:
        """In a DataLoader worker, draw chunk positions from a generator of (seed, worker id, worker seed).

        Each worker holds a copy of this collator; without this they would all replay the same positions, and
        non-persistent workers would replay them every epoch (the worker seed changes per epoch).
        """
        info = torch.utils.data.get_worker_info()
        if info is None:
            return
        key = (info.id, info.seed)
        if key != self._worker_key:
            self._worker_key = key
            self.rng = np.random.default_rng([self.seed or 0, info.id, info.seed % 2**63])

    def __call__(self, examples: Sequence[dict]):
        if self.train:
            self._reseed_for_worker()
        prepared = [self._prepare(ex) for ex in examples]
        rates = {sr for _, sr, _, _ in prepared}
        if len(rates) != 1:
            raise ValueError(f"All recordings of a batch must share one sampling rate, got {sorted(rates)}.")
        sr = rates.pop()
        batch = self.feature_extractor([a for a, _, _, _ in prepared], sampling_rate=sr)
        t_max = int(batch["frame_mask"].shape[1])
        labels = np.zeros((len(prepared), t_max, self.num_tracks, 6), dtype=np.float32)
        for i, (_, _, rows, _) in enumerate(prepared):
            n = int(batch["num_label_frames"][i])  # the extractor's count (after any resampling)
            labels[i, :n] = self.label_encoder([r for r in rows if r.frame < n], n, self.num_classes, self.num_tracks)
        batch["labels"] = torch.from_numpy(labels)
        batch["file_id"] = [ex.get("file_id", "") for ex in examples]
        return batch


class CachedFeatureDataset(torch.utils.data.Dataset):
    """Whole-recording features computed once, so that many random training chunks cost no feature extraction.

    For small data sets and CPU training (the `make demo` set: 24 x 30 s take ~160 MB): every recording of
    `dataset` goes through `feature_extractor` once. Item: `{"spatial_features": (C, frames_per_label * L, bins),
    "backbone_values": (10 L, 128) or absent, "num_label_frames": L, "rows": [...], "file_id": str}`.
    Cut chunks with `CachedChunkCollator`. A chunk cut from whole-file features sees the real audio around its
    edges, where a chunk cut from the audio sees zeros (STFT context of half a window, ~20 ms).
    """

    def __init__(self, dataset, feature_extractor):
        self.items = []
        for i in range(len(dataset)):
            example = dataset[i]
            audio, sr = decode_audio(example)
            feats = feature_extractor(audio, sampling_rate=sr)
            item = {"spatial_features": feats["spatial_features"][0],
                    "num_label_frames": int(feats["num_label_frames"][0]),
                    "rows": example_rows(example), "file_id": example.get("file_id", str(i))}
            if "backbone_values" in feats:
                item["backbone_values"] = feats["backbone_values"][0]
            self.items.append(item)
        self.frames_per_label = int(getattr(feature_extractor, "frames_per_label", 5))
        self.backbone_frames_per_label = int(getattr(feature_extractor, "backbone_frames_per_label", 10))
        self.spatial_feature_names = list(getattr(feature_extractor, "spatial_feature_names", []))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


class CachedChunkCollator:
    """Random fixed-length chunks cut from `CachedFeatureDataset` items, with their track-wise targets.

    Output as `SELDCollator(train=True)`: `spatial_features (B, C, fpl * T, bins)`, `backbone_values (B, 10 T, 128)`,
    `frame_mask (B, T)`, `num_label_frames (B,)`, `labels (B, T, N, 6)`; recordings shorter than the chunk are padded
    with their last frame's features and masked. Chunk positions come from an explicit generator, reseeded per
    DataLoader worker like `SELDCollator`.
    """

    def __init__(self, cached: CachedFeatureDataset, num_classes: int, num_tracks: int = 3,
                 chunk_length_s: float = 5.0, seed: int | None = 0, label_encoder: Callable | None = None,
                 label_resolution: float = LABEL_RESOLUTION_S):
        frames = chunk_length_s / label_resolution
        if chunk_length_s <= 0 or abs(frames - round(frames)) > 1e-6:
            raise ValueError(
                f"chunk_length_s={chunk_length_s} must be a positive multiple of the {label_resolution} s label frame."
            )
        self.chunk_frames = round(frames)
        self.fpl, self.bpl = cached.frames_per_label, cached.backbone_frames_per_label
        self.names = cached.spatial_feature_names
        self.num_classes, self.num_tracks = num_classes, num_tracks
        self.seed, self.rng, self._worker_key = seed, np.random.default_rng(seed), None
        self.label_encoder = label_encoder or _default_label_encoder()

    _reseed_for_worker = SELDCollator._reseed_for_worker

    @staticmethod
    def _fit(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
        missing = length - x.shape[dim]
        if missing <= 0:
            return x
        last = x.narrow(dim, x.shape[dim] - 1, 1)
        return torch.cat([x, last.expand(*[missing if d == dim else -1 for d in range(x.dim())])], dim=dim)

    def __call__(self, items: Sequence[dict]) -> dict:
        self._reseed_for_worker()
        t = self.chunk_frames
        spatial, backbone, labels, mask, lengths = [], [], [], [], []
        for item in items:
            n = item["num_label_frames"]
            start = random_chunk(n, t, self.rng)
            stop = min(n, start + t)
            spatial.append(self._fit(item["spatial_features"][:, start * self.fpl: stop * self.fpl], t * self.fpl, 1))
            if "backbone_values" in item:
                backbone.append(self._fit(item["backbone_values"][start * self.bpl: stop * self.bpl], t * self.bpl, 0))
            rows = [r._replace(frame=r.frame - start) for r in item["rows"] if start <= r.frame < stop]
            target = np.zeros((t, self.num_tracks, 6), dtype=np.float32)
            target[: stop - start] = self.label_encoder(rows, stop - start, self.num_classes, self.num_tracks)
            labels.append(torch.from_numpy(target))
            m = torch.zeros(t, dtype=torch.bool)
            m[: stop - start] = True
            mask.append(m)
            lengths.append(stop - start)
        batch = {"spatial_features": torch.stack(spatial), "frame_mask": torch.stack(mask),
                 "num_label_frames": torch.tensor(lengths, dtype=torch.long), "labels": torch.stack(labels)}
        if backbone:
            batch["backbone_values"] = torch.stack(backbone)
        if self.names:
            batch["spatial_feature_names"] = self.names
        return batch


__all__ = ["CachedChunkCollator", "CachedFeatureDataset", "FOARecordingDataset", "SELDCollator", "cut_chunk", "random_chunk"]

"""`datasets` integration: DCASE folders as `datasets.Dataset` / `IterableDataset`, and Hub-ready Parquet shards.

datasets 5.x has no loading scripts and its `Audio` feature needs torchcodec to encode or decode. The examples
therefore hold the audio as the `Audio` storage struct `{"bytes": binary, "path": string}` (path for local folders,
FLAC bytes in Parquet) and `decode_audio(example)` decodes it with soundfile. In the Parquet files the column is
typed `Audio(decode=False)`, so the Hub viewer plays it and `load_dataset("parquet", ...)` needs no torchcodec.

One example per recording:

| column | type | meaning |
|---|---|---|
| file_id | string | file stem, e.g. "fold3_room21_mix001" |
| audio | {bytes, path} | the FOA file; decode with `decode_audio` -> `(samples, 4)` float32 |
| sampling_rate, num_samples | int32, int64 | of the audio |
| dataset, split, split_folder | string | data-set name, train/val/test/eval, sub-folder |
| fold, room | int32 (null when absent) | parsed from the name |
| labeled | bool | False for evaluation audio without metadata |
| frame, class_index, source_id | list<int32> | one entry per metadata row (100 ms frames) |
| azimuth, elevation | list<float32> | degrees |
| distance | list<float32> (null entries) | metres, null when the data set has no distance |
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .classes import CLASS_NAMES, check_dataset_name
from .dcase import MetadataRow, read_metadata
from .manifests import Recording, scan_dcase, select_split

ROW_COLUMNS = ("frame", "class_index", "source_id", "azimuth", "elevation", "distance")


def dcase_features(audio_as: str = "struct"):
    """`datasets.Features` of the examples; `audio_as="audio"` types the audio column `Audio(decode=False)`
    (for Parquet files), `"struct"` as its plain storage struct (for in-process generation without torchcodec)."""
    from datasets import Audio, Features, List, Value

    audio = Audio(decode=False) if audio_as == "audio" else {"bytes": Value("binary"), "path": Value("string")}
    return Features({
        "file_id": Value("string"),
        "audio": audio,
        "sampling_rate": Value("int32"),
        "num_samples": Value("int64"),
        "dataset": Value("string"),
        "split": Value("string"),
        "split_folder": Value("string"),
        "fold": Value("int32"),
        "room": Value("int32"),
        "labeled": Value("bool"),
        "frame": List(Value("int32")),
        "class_index": List(Value("int32")),
        "source_id": List(Value("int32")),
        "azimuth": List(Value("float32")),
        "elevation": List(Value("float32")),
        "distance": List(Value("float32")),
    })


def recording_example(rec: Recording, audio_bytes: bytes | None = None, strict: bool = True) -> dict:
    """The example dict of one recording (rows read from its metadata; audio by path unless bytes are given)."""
    rows = read_metadata(rec.metadata_path, rec.dataset, strict=strict) if rec.metadata_path else []
    cols = {c: [] for c in ROW_COLUMNS}
    for r in rows:
        cols["frame"].append(r.frame)
        cols["class_index"].append(r.class_index)
        cols["source_id"].append(r.source_id)
        cols["azimuth"].append(r.azimuth_deg)
        cols["elevation"].append(r.elevation_deg)
        cols["distance"].append(r.distance_m)
    return {
        "file_id": rec.file_id,
        "audio": {"bytes": audio_bytes, "path": rec.audio_path if audio_bytes is None else Path(rec.audio_path).name},
        "sampling_rate": rec.sampling_rate,
        "num_samples": rec.num_samples,
        "dataset": rec.dataset,
        "split": rec.split,
        "split_folder": rec.split_folder,
        "fold": rec.fold,
        "room": rec.room,
        "labeled": rec.labeled,
        **cols,
    }


def example_rows(example: dict) -> list[MetadataRow]:
    """The metadata rows of an example (the inverse of the column split in `recording_example`)."""
    if "rows" in example:
        return [MetadataRow(*r) for r in example["rows"]]
    dist = example.get("distance") or [None] * len(example["frame"])
    return [
        MetadataRow(int(f), int(c), int(s), float(a), float(e), None if d is None or math.isnan(d) else float(d))
        for f, c, s, a, e, d in zip(example["frame"], example["class_index"], example["source_id"],
                                    example["azimuth"], example["elevation"], dist)
    ]


def decode_audio(example: dict) -> tuple[np.ndarray, int]:
    """Decode an example's audio with soundfile -> (`(samples, channels)` float32, sampling rate).

    Accepts the `{"bytes", "path"}` struct (bytes win when present), a path, or an already decoded
    `{"array", "sampling_rate"}` dict / numpy array (with `example["sampling_rate"]`).
    """
    import soundfile

    audio = example["audio"] if isinstance(example, dict) and "audio" in example else example
    if isinstance(audio, np.ndarray):
        return audio.astype(np.float32, copy=False), int(example["sampling_rate"])
    if isinstance(audio, (str, os.PathLike)):
        data, sr = soundfile.read(os.fspath(audio), dtype="float32", always_2d=True)
        return data, int(sr)
    if isinstance(audio, dict):
        if audio.get("array") is not None:
            arr = np.asarray(audio["array"], dtype=np.float32)
            return arr, int(audio.get("sampling_rate") or example["sampling_rate"])
        if audio.get("bytes"):
            data, sr = soundfile.read(io.BytesIO(audio["bytes"]), dtype="float32", always_2d=True)
            return data, int(sr)
        if audio.get("path"):
            if not os.path.isfile(audio["path"]):
                raise FileNotFoundError(
                    f"Audio file {audio['path']} of example {example.get('file_id')!r} not found, and the example "
                    "holds no bytes; was the data folder moved?"
                )
            data, sr = soundfile.read(audio["path"], dtype="float32", always_2d=True)
            return data, int(sr)
    raise TypeError(
        f"Cannot decode audio of type {type(audio).__name__}; expected a {{'bytes', 'path'}} dict, a path, or an array."
    )


def content_fingerprint(recordings: list[Recording], strict: bool) -> str:
    """Cache key of a `load_dcase` result: every file's path, size and modification time (so an edited CSV or a
    replaced WAV is never served from a stale Arrow cache), plus the reader settings."""
    h = hashlib.sha256(f"at2seld-dcase-v1|{strict}".encode())
    for rec in recordings:
        h.update(repr(rec).encode())
        for path in (rec.audio_path, rec.metadata_path):
            if path:
                st = os.stat(path)
                h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _generate(recordings: list[Recording], strict: bool) -> Iterator[dict]:
    for rec in recordings:
        yield recording_example(rec, strict=strict)


def _decode_batch(batch: dict) -> dict:
    """`with_transform`/`map` helper: add the decoded `array` (samples, 4) float32 to each audio struct."""
    out = dict(batch)
    audio = []
    for a in batch["audio"]:
        data, sr = decode_audio({"audio": a})
        audio.append({**a, "array": data, "sampling_rate": sr})
    out["audio"] = audio
    return out


def load_dcase(name: str, data_dir: str | os.PathLike, split: str = "train", streaming: bool = False,
               folds: tuple[int, ...] | None = None, cache_dir: str | None = None, strict: bool = True,
               decode: bool = False):
    """A DCASE folder as a `datasets.Dataset` (or `IterableDataset` with `streaming=True`), one example per recording.

    Args:
        name: "tau2019", "tau2020", "tau2021", "starss22", "starss23" or "synthetic".
        data_dir: folder with `foa_dev/` + `metadata_dev/` (+ optional `foa_eval/`).
        split: "train", "val", "test" (the DCASE baseline split of that year, see `manifests`), "eval" or "dev".
        folds: override the split rule with explicit fold numbers (e.g. another TAU2019 CV fold).
        cache_dir: Arrow cache of the non-streaming dataset (datasets' default cache when None).
        strict: metadata errors raise (True) or skip bad rows with a warning (False).
        decode: decode the audio with soundfile on access: `example["audio"]["array"]` `(samples, 4)` float32 (a
            `with_transform` on `Dataset`, a lazy `map` on `IterableDataset`). Off by default so that metadata-only
            passes (filtering, class statistics) do not read audio; `decode_audio(example)` works either way.
    Columns: see the module docstring.
    """
    import datasets

    check_dataset_name(name)
    recordings = select_split(scan_dcase(name, data_dir), split, folds)
    if not recordings:
        raise ValueError(
            f"No {name} recordings in split {split!r} under {data_dir}; available splits: "
            f"{sorted({r.split for r in scan_dcase(name, data_dir)})}."
        )
    features = dcase_features("struct")
    gen_kwargs = {"recordings": recordings, "strict": strict}
    if streaming:
        ds = datasets.IterableDataset.from_generator(_generate, features=features, gen_kwargs=gen_kwargs)
        return ds.map(_decode_batch, batched=True, batch_size=1) if decode else ds
    ds = datasets.Dataset.from_generator(_generate, features=features, gen_kwargs=gen_kwargs, cache_dir=cache_dir,
                                         fingerprint=content_fingerprint(recordings, strict))
    return ds.with_transform(_decode_batch) if decode else ds


# ------------------------------------------------------------------------------------------ Parquet / Hub export
def encode_flac(path: str) -> bytes:
    """Lossless FLAC bytes of an audio file (16- or 24-bit PCM as the source; float sources as 24-bit)."""
    import soundfile

    info = soundfile.info(path)
    subtype = "PCM_16" if info.subtype in ("PCM_16", "PCM_S8", "PCM_U8") else "PCM_24"
    data, sr = soundfile.read(path, dtype="int32" if subtype == "PCM_24" else "int16", always_2d=True)
    buf = io.BytesIO()
    soundfile.write(buf, data, sr, format="FLAC", subtype=subtype)
    return buf.getvalue()


def export_splits(name: str) -> tuple[str, ...]:
    """Hub splits written by `convert_to_parquet`: STARSS has no separate validation folders (its "val" is "test")."""
    return ("train", "test", "eval") if name.startswith("starss") else ("train", "val", "test", "eval")


HUB_SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test", "eval": "eval"}


def convert_to_parquet(name: str, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       max_shard_bytes: int = 500_000_000, strict: bool = True) -> dict[str, list[str]]:
    """Write a DCASE folder as Parquet shards (audio as FLAC bytes) plus a dataset card `README.md`.

    Layout: `out_dir/data/{train,validation,test,eval}-{i:05d}-of-{n:05d}.parquet` and `out_dir/README.md` (YAML
    `configs` pointing at the shards), loadable with `load_dataset("parquet", data_files=...)` or, once pushed,
    `load_dataset("org/name", streaming=True)`.

    Returns:
        Hub split name -> list of shard paths.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_dataset_name(name)
    recordings = scan_dcase(name, data_dir)
    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    schema = dcase_features("audio").arrow_schema
    written: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for split in export_splits(name):
        recs = select_split(recordings, split)
        if not recs:
            continue
        hub_split = HUB_SPLIT_NAMES[split]
        shards: list[list[dict]] = [[]]
        size = 0
        for rec in recs:
            ex = recording_example(rec, audio_bytes=encode_flac(rec.audio_path), strict=strict)
            ex["split"] = split
            n = len(ex["audio"]["bytes"])
            if shards[-1] and size + n > max_shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append(ex)
            size += n
        paths = []
        for i, shard in enumerate(shards):
            path = out / "data" / f"{hub_split}-{i:05d}-of-{len(shards):05d}.parquet"
            pq.write_table(pa.Table.from_pylist(shard, schema=schema), path)
            paths.append(str(path))
        written[hub_split] = paths
        counts[hub_split] = len(recs)
    (out / "README.md").write_text(dataset_card(name, counts), encoding="utf-8")
    return written


def dataset_card(name: str, counts: dict[str, int]) -> str:
    """Dataset card with the YAML `configs` block the Hub uses to find the Parquet shards."""
    classes = CLASS_NAMES[name]
    yaml_splits = "\n".join(f"  - split: {s}\n    path: data/{s}-*.parquet" for s in counts)
    class_lines = "\n".join(f"| {i} | {c} |" for i, c in enumerate(classes))
    split_lines = "\n".join(f"| {s} | {n} |" for s, n in counts.items())
    return f"""---
configs:
- config_name: default
  data_files:
{yaml_splits}
task_categories:
- audio-classification
tags:
- sound-event-localization-and-detection
- ambisonics
- dcase
- at2seld
---

# {name} (FOA) in Parquet, converted with at2seld

First-order Ambisonics recordings (ACN channel order W, Y, Z, X; SN3D) with their DCASE metadata at 100 ms label
resolution, one row per recording. Converted with `hub_scripts/convert_dcase.py` from the original folder layout;
the original data set's licence and citation apply.

## Columns
- `audio`: FLAC bytes (`Audio(decode=False)`); decode with `at2seld.data.decode_audio(example)` or soundfile.
- `frame`, `class_index`, `source_id`, `azimuth`, `elevation` (degrees), `distance` (metres, null if absent):
  one entry per active source and 100 ms frame.
- `file_id`, `sampling_rate`, `num_samples`, `dataset`, `split`, `split_folder`, `fold`, `room`, `labeled`.

## Splits
| split | recordings |
|---|---|
{split_lines}

## Classes
| index | class |
|---|---|
{class_lines}

## Loading
```python
from datasets import load_dataset
ds = load_dataset("parquet", data_files={{"train": "data/train-*.parquet"}}, streaming=True)
```
"""


def push_to_hub(out_dir: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None,
                api=None) -> str:
    """Upload a converted folder (shards + README.md) to a Hub dataset repository; returns the repo URL."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    out = Path(out_dir)
    if not (out / "README.md").is_file() or not any((out / "data").glob("*.parquet")):
        raise FileNotFoundError(f"{out} holds no converted data set (README.md + data/*.parquet); run the conversion first.")
    api.create_repo(repo_id=repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(out), repo_id=repo_id, repo_type="dataset",
                      commit_message="Add Parquet shards converted with at2seld")
    return f"https://huggingface.co/datasets/{repo_id}"


__all__ = [
    "ROW_COLUMNS",
    "convert_to_parquet",
    "dataset_card",
    "dcase_features",
    "decode_audio",
    "encode_flac",
    "example_rows",
    "load_dcase",
    "push_to_hub",
    "recording_example",
]

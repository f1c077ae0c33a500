"""Typed manifests of DCASE folders: which recordings exist, where their metadata is, and which split they are in.

Only this module knows the folder layouts (lhotse-style recipe layer):

| data set | audio | metadata | split rule (DCASE baseline) |
|---|---|---|---|
| tau2019 | `foa_dev/split{1-4}_ir{0-4}_ov{1,2}_{n}.wav` (48 kHz) | `metadata_dev/<same stem>.csv` | 4-fold CV; default = first fold: test split1, val split2, train split3-4 |
| tau2020 | `foa_dev/fold{1-6}_room{r}_mix{m}_ov{o}.wav` | `metadata_dev/` | test fold1, val fold2, train folds 3-6 |
| tau2021 | `foa_dev/dev-{train,val,test}/fold{n}_room{r}_mix{m}.wav` | `metadata_dev/dev-*/` | dev-train (folds 1-4), dev-val (fold 5), dev-test (fold 6) |
| starss22/23 | `foa_dev/dev-{train,test}-{sony,tau}/fold{n}_room{r}_mix{m}.wav` | `metadata_dev/dev-*/` | dev-train-* (fold 3) / dev-test-* (fold 4); the baselines validate on the test folders, so "val" = "test" |
| synthetic | `foa_dev/dev-{train,val,test}-synth/fold{1,2,3}_room{r}_mix{m}.wav` | `metadata_dev/dev-*-synth/` | dev-train / dev-val / dev-test |

Evaluation audio lives in `foa_eval/` (any names, any sub-folders); its metadata (`metadata_eval/`) is optional:
recordings without it are returned unlabeled (`metadata_path=None`). Hidden files (".DS_Store", "._*" resource
forks) are ignored.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .classes import check_dataset_name

AUDIO_EXTENSIONS = (".wav", ".flac")
SPLITS = ("train", "val", "test", "eval", "dev")


@dataclass(frozen=True)
class DatasetLayout:
    """Folder layout, audio format and split rule of one data set."""

    name: str
    sampling_rate: int
    num_channels: int = 4
    dev_audio_dir: str = "foa_dev"
    dev_metadata_dir: str = "metadata_dev"
    eval_audio_dir: str = "foa_eval"
    eval_metadata_dir: str = "metadata_eval"
    # split -> folds (rule on the fold number in the file name) ...
    split_folds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # ... or split -> split-folder prefixes (rule on the sub-folder of foa_dev)
    split_folders: dict[str, tuple[str, ...]] = field(default_factory=dict)


LAYOUTS: dict[str, DatasetLayout] = {
    "tau2019": DatasetLayout("tau2019", 48000, split_folds={"train": (3, 4), "val": (2,), "test": (1,)}),
    "tau2020": DatasetLayout("tau2020", 24000, split_folds={"train": (3, 4, 5, 6), "val": (2,), "test": (1,)}),
    "tau2021": DatasetLayout(
        "tau2021", 24000, split_folders={"train": ("dev-train",), "val": ("dev-val",), "test": ("dev-test",)}
    ),
    "starss22": DatasetLayout(
        "starss22", 24000, split_folders={"train": ("dev-train",), "val": ("dev-test",), "test": ("dev-test",)}
    ),
    "starss23": DatasetLayout(
        "starss23", 24000, split_folders={"train": ("dev-train",), "val": ("dev-test",), "test": ("dev-test",)}
    ),
    "synthetic": DatasetLayout(
        "synthetic", 24000,
        split_folders={"train": ("dev-train",), "val": ("dev-val",), "test": ("dev-test",)},
    ),
}


@dataclass(frozen=True)
class Recording:
    """One FOA recording and its metadata file.

    Attributes:
        file_id: file stem, e.g. "fold3_room21_mix001".
        audio_path / metadata_path: absolute paths; `metadata_path` is None for unlabeled (evaluation) audio.
        split_folder: sub-folder of the audio directory ("dev-train-sony"; "" for flat layouts); eval audio is
            "eval" or "eval/<sub-folder>".
        split: "train", "val", "test" or "eval" by the data set's rule ("" when no rule applies to it).
        fold, room: parsed from the name (`fold{n}`/`split{n}`, `room{r}`/`ir{r}`), None when absent.
    """

    dataset: str
    file_id: str
    audio_path: str
    metadata_path: str | None
    split_folder: str
    split: str
    fold: int | None
    room: int | None
    sampling_rate: int
    num_channels: int
    num_samples: int

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sampling_rate

    @property
    def labeled(self) -> bool:
        return self.metadata_path is not None


class DatasetLayoutError(ValueError):
    """A DCASE folder does not match its expected layout (missing pairs, wrong audio format, empty folder)."""


_FOLD = re.compile(r"(?:^|_)(?:fold|split)(\d+)")
_ROOM = re.compile(r"(?:^|_)(?:room|ir)(\d+)")


def parse_file_id(file_id: str) -> tuple[int | None, int | None]:
    """(fold, room) from a DCASE file stem: `fold3_room21_mix001` -> (3, 21); `split1_ir0_ov1_7` -> (1, 0)."""
    fold = _FOLD.search(file_id)
    room = _ROOM.search(file_id)
    return (int(fold.group(1)) if fold else None, int(room.group(1)) if room else None)


def split_of(layout: DatasetLayout, split_folder: str, fold: int | None) -> list[str]:
    """Splits ("train"/"val"/"test") a dev recording belongs to; STARSS test recordings are in "val" and "test"."""
    out = []
    if layout.split_folds:
        out = [s for s, folds in layout.split_folds.items() if fold in folds]
    else:
        top = split_folder.split("/")[0]
        out = [s for s, prefixes in layout.split_folders.items() if any(top.startswith(p) for p in prefixes)]
    return out


def _visible(p: Path, root: Path) -> bool:
    # hidden files and folders (".DS_Store", macOS "._fold1..." resource forks) are not part of a data set
    return not any(part.startswith(".") for part in p.relative_to(root).parts)


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and _visible(p, root))


def _metadata_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.csv") if p.is_file() and _visible(p, root))


def _list_some(paths, n: int = 5) -> str:
    paths = [str(p) for p in paths]
    more = f" ... and {len(paths) - n} more" if len(paths) > n else ""
    return ", ".join(paths[:n]) + more


def _audio_info(path: Path) -> tuple[int, int, int]:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as err:  # libsndfile errors for non-audio content
        raise DatasetLayoutError(f"{path} could not be opened as audio ({err}).") from err
    return int(info.samplerate), int(info.channels), int(info.frames)


def _scan_folder(dataset: str, layout: DatasetLayout, audio_root: Path, meta_root: Path | None,
                 require_metadata: bool, eval_folder: bool) -> list[Recording]:
    audio = _audio_files(audio_root)
    if not audio:
        raise DatasetLayoutError(
            f"No audio files ({'/'.join(AUDIO_EXTENSIONS)}) found under {audio_root}; expected the {dataset} layout "
            f"{layout.dev_audio_dir}/... with 4-channel FOA files (see at2seld.data.manifests)."
        )
    meta_by_key: dict[str, Path] = {}
    if meta_root is not None and meta_root.is_dir():
        for m in _metadata_files(meta_root):
            meta_by_key[str(m.relative_to(meta_root).with_suffix(""))] = m
    elif require_metadata:
        raise DatasetLayoutError(
            f"Metadata folder {meta_root} is missing; {dataset} development audio needs its CSVs "
            f"({layout.dev_metadata_dir}/ next to {layout.dev_audio_dir}/)."
        )
    audio_keys = {str(a.relative_to(audio_root).with_suffix("")): a for a in audio}
    if meta_by_key or require_metadata:
        missing_meta = [audio_keys[k] for k in audio_keys if k not in meta_by_key]
        missing_audio = [meta_by_key[k] for k in meta_by_key if k not in audio_keys]
        if missing_meta:
            raise DatasetLayoutError(
                f"{len(missing_meta)} audio file(s) have no metadata CSV under {meta_root} (same relative path, .csv): "
                f"{_list_some(missing_meta)}. Restore the metadata or remove the audio."
            )
        if missing_audio:
            raise DatasetLayoutError(
                f"{len(missing_audio)} metadata file(s) have no audio under {audio_root}: {_list_some(missing_audio)}. "
                "Restore the audio or remove the CSVs."
            )
    bad_format = []
    recordings = []
    for key, path in audio_keys.items():
        sr, ch, n = _audio_info(path)
        if sr != layout.sampling_rate or ch != layout.num_channels:
            bad_format.append(f"{path} ({ch} ch, {sr} Hz)")
            continue
        rel_parent = str(Path(key).parent).replace(os.sep, "/")
        rel_parent = "" if rel_parent == "." else rel_parent
        fold, room = parse_file_id(path.stem)
        if eval_folder:
            split_folder = "eval" + (f"/{rel_parent}" if rel_parent else "")
            split = "eval"
        else:
            split_folder = rel_parent
            splits = split_of(layout, rel_parent, fold)
            split = "test" if "test" in splits else (splits[0] if splits else "")
        recordings.append(Recording(
            dataset=dataset, file_id=path.stem, audio_path=str(path.resolve()),
            metadata_path=str(meta_by_key[key].resolve()) if key in meta_by_key else None,
            split_folder=split_folder, split=split, fold=fold, room=room, sampling_rate=sr, num_channels=ch,
            num_samples=n,
        ))
    if bad_format:
        raise DatasetLayoutError(
            f"{len(bad_format)} file(s) under {audio_root} are not {layout.num_channels}-channel "
            f"{layout.sampling_rate} Hz FOA as {dataset} requires: {_list_some(bad_format)}. Pass the FOA (not MIC) "
            "version at its original rate, or the right dataset name."
        )
    return recordings


def scan_dcase(name: str, data_dir: str | os.PathLike, include_eval: bool = True) -> list[Recording]:
    """Find every recording of a DCASE folder and pair it with its metadata.

    Args:
        name: data-set name ("tau2019", "tau2020", "tau2021", "starss22", "starss23", "synthetic").
        data_dir: the folder holding `foa_dev/` + `metadata_dev/` (and optionally `foa_eval/` [+ `metadata_eval/`]).
        include_eval: also scan `foa_eval/` when it exists.
    Returns:
        `list[Recording]` sorted by (split folder, file id).
    Raises:
        ValueError for an unknown name; FileNotFoundError when `data_dir` does not exist; `DatasetLayoutError` for an
        empty audio folder, audio without metadata, metadata without audio, or files of the wrong channel count or
        sampling rate.
    """
    check_dataset_name(name)
    layout = LAYOUTS[name]
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Data folder not found: {root}")
    dev_audio, eval_audio = root / layout.dev_audio_dir, root / layout.eval_audio_dir
    if not dev_audio.is_dir() and not eval_audio.is_dir():
        raise DatasetLayoutError(
            f"{root} has neither {layout.dev_audio_dir}/ nor {layout.eval_audio_dir}/; pass the folder that holds "
            f"the unpacked {name} FOA data ({layout.dev_audio_dir}/ and {layout.dev_metadata_dir}/)."
        )
    recordings: list[Recording] = []
    if dev_audio.is_dir():
        recordings += _scan_folder(name, layout, dev_audio, root / layout.dev_metadata_dir, True, False)
    if include_eval and eval_audio.is_dir():
        recordings += _scan_folder(name, layout, eval_audio, root / layout.eval_metadata_dir, False, True)
    return sorted(recordings, key=lambda r: (r.split_folder, r.file_id))


def select_split(recordings: list[Recording], split: str, folds: tuple[int, ...] | None = None) -> list[Recording]:
    """Recordings of one split: "train", "val", "test" (data-set rule, or `folds` when given), "eval"
    (the foa_eval folder) or "dev" (every development recording)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}.")
    if split == "eval":
        return [r for r in recordings if r.split == "eval"]
    dev = [r for r in recordings if r.split != "eval"]
    if split == "dev":
        return dev
    if folds is not None:
        return [r for r in dev if r.fold in folds]
    if not dev:
        return []
    layout = LAYOUTS[dev[0].dataset]
    return [r for r in dev if split in split_of(layout, r.split_folder, r.fold)]


__all__ = [
    "AUDIO_EXTENSIONS",
    "LAYOUTS",
    "SPLITS",
    "DatasetLayout",
    "DatasetLayoutError",
    "Recording",
    "parse_file_id",
    "scan_dcase",
    "select_split",
    "split_of",
]

"""Fine-tuning AT2SELD with the transformers `Trainer` (plain `python` or `accelerate launch`), then calibration,
test scoring, saving with remote code, a model card, and an optional Hub push.

`hub_scripts/train.py` and the `at2seld-train` command are thin front ends over `main()`; every step is a function
here so it can be tested alone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import HfArgumentParser, Trainer, TrainerCallback, TrainingArguments, set_seed

from .configuration_at2seld import AT2SELDConfig
from .data import (
    CLASS_NAMES,
    CachedChunkCollator,
    CachedFeatureDataset,
    FOARecordingDataset,
    SELDCollator,
    example_rows,
    scan_dcase,
    select_split,
)
from .decoding_at2seld import decode, write_dcase_csv
from .evaluation import calibrate_thresholds, compute_seld_metrics
from .evaluation.metrics import to_plain
from .feature_extraction_at2seld import AT2SELDFeatureExtractor
from .modeling_at2seld import AT2SELDForSoundEventLocalization

logger = logging.getLogger(__name__)

LOSS_PARTS = ["sed_loss", "doa_loss", "distance_loss", "permutation"]  # not gathered as predictions


# ------------------------------------------------------------------------------------------------------- arguments
@dataclass
class ModelArguments:
    """What to train. Architecture fields left unset keep the values of the base configuration."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "Continue from a saved at2seld model."})
    config_json: str | None = field(default=None, metadata={"help": "JSON of AT2SELDConfig fields (e.g. a NAS winner)."})
    tiny: bool = field(default=False, metadata={"help": "Start from AT2SELDConfig.tiny() (CPU demo, tests)."})
    backbone_type: str | None = field(default=None, metadata={"help": "ast | beats | none"})
    backbone_name_or_path: str | None = field(
        default=None, metadata={"help": "Pretrained backbone: Hub id or folder (MIT/ast-finetuned-audioset-10-10-0.4593)."}
    )
    backbone_trainable_layers: int | None = field(default=None, metadata={"help": "0 frozen, k last k blocks, -1 all."})
    unfreeze_backbone_after_epochs: float | None = field(
        default=None, metadata={"help": "Train the whole backbone from this epoch on (freezing schedule)."}
    )
    descriptors: list[str] | None = field(default=None, metadata={"help": "Spatial descriptor families."})
    fusion: str | None = None
    num_tracks: int | None = None
    sed_loss: str | None = field(default=None, metadata={"help": "bce | focal"})
    focal_gamma: float | None = None
    doa_supervision: str | None = field(default=None, metadata={"help": "active | all"})
    predict_distance: bool | None = None
    class_balancing: bool = field(
        default=False,
        metadata={"help": "Per-class positive weights from the training set (multiplying the configured class_pos_weight)."},
    )


@dataclass
class DataArguments:
    """Where the data comes from: a DCASE folder (or the synthetic set) or Parquet shards (local or Hub)."""

    dataset: str = field(default="synthetic", metadata={"help": "tau2019 | tau2020 | tau2021 | starss22 | starss23 | synthetic"})
    data_dir: str | None = field(default=None, metadata={"help": "DCASE folder with foa_dev/ and metadata_dev/."})
    parquet_dataset: str | None = field(
        default=None, metadata={"help": "Folder written by convert_dcase.py, or a Hub dataset id (Parquet)."}
    )
    streaming: bool = field(default=False, metadata={"help": "Stream the training split of a Parquet dataset."})
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    chunk_length_s: float = field(default=5.0, metadata={"help": "Random training chunk length (seconds)."})
    train_repeats: int = field(default=1, metadata={"help": "Random chunks drawn per training recording per epoch."})
    cache_features: bool = field(
        default=False,
        metadata={"help": "Compute the features of whole training recordings once and cut chunks from them "
                  "(small data sets, CPU training; needs memory for all training features)."},
    )
    max_train_recordings: int | None = None
    max_eval_recordings: int | None = None


@dataclass
class SELDArguments:
    """Decoding, calibration and scoring."""

    calibrate: bool = field(default=True, metadata={"help": "Select per-class thresholds on the validation split."})
    calibration_objective: str = field(default="f", metadata={"help": "f (maximise F20) | seld (minimise SELD)"})
    merge_angle_deg: float = 15.0
    median_filter: int = 0
    average: str = field(default="macro", metadata={"help": "macro (DCASE 2022+) | micro (2020/2021)"})
    doa_threshold: float = 20.0


@dataclass
class SELDTrainingArguments(TrainingArguments):
    """`TrainingArguments` with SELD defaults: select the best checkpoint by validation SELD score (lower is better)."""

    output_dir: str | None = field(default="outputs/at2seld")
    remove_unused_columns: bool = field(default=False)
    eval_strategy: str = field(default="epoch")
    save_strategy: str = field(default="epoch")
    logging_strategy: str = field(default="steps")
    logging_steps: float = field(default=10)
    load_best_model_at_end: bool = field(default=True)
    metric_for_best_model: str | None = field(default="seld")
    greater_is_better: bool | None = field(default=False)
    save_total_limit: int | None = field(default=2)
    report_to: None | str | list[str] = field(default="tensorboard")
    learning_rate: float = field(default=1e-3)
    per_device_train_batch_size: int = field(default=8)
    per_device_eval_batch_size: int = field(default=1)
    auto_resume: bool = field(
        default=True, metadata={"help": "Continue from the last checkpoint in output_dir when there is one."}
    )


def parse_args(argv: Sequence[str] | None = None):
    parser = HfArgumentParser((ModelArguments, DataArguments, SELDArguments, SELDTrainingArguments))
    if argv is not None and len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


# ------------------------------------------------------------------------------------------------------------ data
@dataclass
class EvalSet:
    """Whole recordings to score: examples for the collator plus exact references and frame counts."""

    examples: Any  # indexable: FOARecordingDataset or datasets.Dataset
    file_ids: list[str]
    references: dict[str, list[tuple]]  # file id -> rows (frame, class, source, azimuth, elevation)
    num_frames: dict[str, int]

    def __len__(self) -> int:
        return len(self.file_ids)


class RepeatDataset(torch.utils.data.Dataset):
    """Each recording `repeats` times per epoch (a fresh random chunk each time)."""

    def __init__(self, dataset, repeats: int):
        if repeats < 1:
            raise ValueError(f"train_repeats must be >= 1, got {repeats}.")
        self.dataset, self.repeats = dataset, repeats

    def __len__(self):
        return len(self.dataset) * self.repeats

    def __getitem__(self, index):
        return self.dataset[index % len(self.dataset)]


def _label_frames(num_samples: int, sampling_rate: int) -> int:
    return int(math.ceil(num_samples / (0.1 * sampling_rate) - 1e-9))


def _eval_set_from_folder(dataset: FOARecordingDataset) -> EvalSet:
    refs, frames, ids = {}, {}, []
    for i, rec in enumerate(dataset.recordings):
        ids.append(rec.file_id)
        refs[rec.file_id] = [tuple(r[:5]) for r in dataset.rows(i)]
        frames[rec.file_id] = _label_frames(rec.num_samples, rec.sampling_rate)
    return EvalSet(dataset, ids, refs, frames)


def _eval_set_from_hf(dataset) -> EvalSet:
    refs, frames, ids = {}, {}, []
    for example in dataset:
        fid = example["file_id"]
        ids.append(fid)
        refs[fid] = [tuple(r[:5]) for r in example_rows(example)]
        frames[fid] = _label_frames(int(example["num_samples"]), int(example["sampling_rate"]))
    return EvalSet(dataset, ids, refs, frames)


def load_splits(args: DataArguments):
    """-> (train dataset, validation EvalSet, test EvalSet or None, class names)."""
    names = list(CLASS_NAMES[args.dataset]) if args.dataset in CLASS_NAMES else None
    if args.parquet_dataset:
        from datasets import load_dataset

        hub_split = {"train": "train", "val": "validation", "test": "test", "eval": "eval"}
        local = Path(args.parquet_dataset)

        def get(split, streaming=False):
            if local.is_dir():
                files = sorted(str(p) for p in (local / "data").glob(f"{hub_split[split]}-*.parquet"))
                if not files:
                    raise FileNotFoundError(f"No {hub_split[split]}-*.parquet shards under {local / 'data'}.")
                return load_dataset("parquet", data_files={"x": files}, split="x", streaming=streaming)
            return load_dataset(args.parquet_dataset, split=hub_split[split], streaming=streaming)

        train = get(args.train_split, streaming=args.streaming)
        if args.max_train_recordings and not args.streaming:
            train = train.select(range(min(args.max_train_recordings, len(train))))
        val = get(args.val_split)
        test = get(args.test_split) if args.test_split else None
        if args.max_eval_recordings:
            val = val.select(range(min(args.max_eval_recordings, len(val))))
            test = test.select(range(min(args.max_eval_recordings, len(test)))) if test is not None else None
        return train, _eval_set_from_hf(val), (_eval_set_from_hf(test) if test is not None else None), names
    if not args.data_dir:
        raise ValueError("Pass --data_dir (a DCASE folder) or --parquet_dataset (Parquet shards or a Hub dataset id).")
    if args.streaming:
        raise ValueError("--streaming applies to --parquet_dataset; DCASE folders are already read lazily.")
    recordings = scan_dcase(args.dataset, args.data_dir, include_eval=False)

    def pick(split, limit):
        recs = select_split(recordings, split)
        if not recs:
            raise ValueError(f"The {split!r} split of {args.data_dir} ({args.dataset}) is empty.")
        return FOARecordingDataset(recs[:limit] if limit else recs)

    train = pick(args.train_split, args.max_train_recordings)
    val = _eval_set_from_folder(pick(args.val_split, args.max_eval_recordings))
    test = _eval_set_from_folder(pick(args.test_split, args.max_eval_recordings)) if args.test_split else None
    return train, val, test, names


def class_pos_weights_from_rows(rows_per_recording: Sequence[Sequence[tuple]], num_classes: int) -> list[float]:
    """Per-class positive weights from the (frame, class, ...) rows of the training recordings."""
    from .losses_at2seld import compute_class_pos_weights

    counts = np.zeros(num_classes)
    for rows in rows_per_recording:
        for r in rows:
            counts[int(r[1])] += 1
    return compute_class_pos_weights(counts)


# ---------------------------------------------------------------------------------------------------- model set-up
def build_config(args: ModelArguments, class_names: Sequence[str] | None, num_classes: int) -> AT2SELDConfig:
    """Base configuration (saved model, JSON, tiny or default) with the architecture overrides applied."""
    if args.model_name_or_path:
        config = AT2SELDConfig.from_pretrained(args.model_name_or_path)
        base = config.to_dict()
    else:
        base = {}
        if args.tiny:
            base = AT2SELDConfig.tiny().to_dict()
        if args.config_json:
            base.update(json.loads(Path(args.config_json).read_text()))
    overrides = {
        k: getattr(args, k)
        for k in ("backbone_type", "backbone_name_or_path", "backbone_trainable_layers", "descriptors", "fusion",
                  "num_tracks", "sed_loss", "focal_gamma", "doa_supervision", "predict_distance")
        if getattr(args, k) is not None
    }
    if overrides.get("backbone_type") not in (None, base.get("backbone_type")) and "backbone_config" in base:
        base.pop("backbone_config")  # the nested config belongs to the previous backbone type
    base.update(overrides)
    labels = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    base["id2label"] = dict(enumerate(labels))
    base["label2id"] = {n: i for i, n in enumerate(labels)}
    for key in ("model_type", "transformers_version", "architectures", "auto_map"):
        base.pop(key, None)
    return AT2SELDConfig(**base)


def feature_extractor_for(config: AT2SELDConfig) -> AT2SELDFeatureExtractor:
    """The front end whose outputs this model expects."""
    return AT2SELDFeatureExtractor(
        sampling_rate=config.sampling_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        win_length=config.win_length, num_mel_bins=config.num_mel_bins, label_resolution=config.label_resolution,
        descriptors=config.descriptors, backbone_type=config.backbone_type,
    )


class TrainerCollator:
    """`SELDCollator` output as model keyword arguments (drops the file ids)."""

    def __init__(self, collator: SELDCollator):
        self.collator = collator

    def __call__(self, examples):
        batch = dict(self.collator(examples))
        batch.pop("file_id", None)
        return batch


class BackboneSchedule(TrainerCallback):
    """Freezing policy of the backbone: `trainable_layers` at first, everything from `unfreeze_after_epochs` on.

    The optimizer is built while every parameter requires grad, so parameters unfrozen later are in it; frozen ones
    get no gradient and AdamW leaves them untouched.
    """

    def __init__(self, trainable_layers: int, unfreeze_after_epochs: float | None = None):
        self.trainable_layers = trainable_layers
        self.unfreeze_after_epochs = unfreeze_after_epochs
        self.current: int | None = None

    def policy(self, epoch: float) -> int:
        if self.unfreeze_after_epochs is not None and epoch >= self.unfreeze_after_epochs - 1e-9:
            return -1
        return self.trainable_layers

    def apply(self, model, epoch: float) -> None:
        backbone = getattr(model, "backbone", None)
        wanted = self.policy(epoch)
        if backbone is not None and wanted != self.current:
            backbone.freeze(wanted)
            self.current = wanted
            logger.info("backbone trainable layers: %s (epoch %.2f)", wanted, epoch)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.apply(model, state.epoch or 0.0)

    def on_epoch_begin(self, args, state, control, model=None, **kwargs):
        self.apply(model, state.epoch or 0.0)


# ---------------------------------------------------------------------------------------------------------- scoring
def _rows_for_metrics(rows: list[tuple]) -> list[tuple]:
    return [tuple(r[:5]) for r in rows]


def decode_all(outputs: dict[str, dict], thresholds, seld: SELDArguments) -> dict[str, list[tuple]]:
    """file id -> decoded DCASE rows (frame, class, track, azimuth, elevation[, distance])."""
    return {
        fid: decode(o["sed_logits"], o["doa"], thresholds=thresholds, merge_angle_deg=seld.merge_angle_deg,
                    median_filter=seld.median_filter, distance=o.get("distance"))
        for fid, o in outputs.items()
    }


def score(references: dict[str, list], predictions: dict[str, list], num_classes: int, seld: SELDArguments) -> dict:
    """DCASE 2023 SELD scores (ER20, F20, LE_CD, LR_CD, SELD) as plain floats (+ class-wise lists in macro mode)."""
    res = compute_seld_metrics({k: _rows_for_metrics(v) for k, v in references.items()},
                               {k: _rows_for_metrics(predictions.get(k, [])) for k in references},
                               num_classes, average=seld.average, doa_threshold=seld.doa_threshold)
    return to_plain(res)


def make_compute_metrics(eval_set: EvalSet, num_classes: int, seld: SELDArguments, thresholds_of):
    """`compute_metrics` for `Trainer`: decode the gathered track outputs (in evaluation-set order) and score them.

    `thresholds_of()` returns the current thresholds (the model config's calibrated ones, or 0.5).
    """

    def compute_metrics(eval_pred) -> dict[str, float]:
        preds = eval_pred.predictions
        sed, doa = preds[0], preds[1]
        distance = preds[2] if len(preds) > 2 and preds[2] is not None and np.ndim(preds[2]) == 3 else None
        outputs = {}
        for i, fid in enumerate(eval_set.file_ids):
            n = min(eval_set.num_frames[fid], sed.shape[1])
            outputs[fid] = {"sed_logits": sed[i, :n], "doa": doa[i, :n]}
            if distance is not None:
                outputs[fid]["distance"] = distance[i, :n]
        scores = score(eval_set.references, decode_all(outputs, thresholds_of(), seld), num_classes, seld)
        return {"seld": scores["SELD"], "er20": scores["ER"], "f20": scores["F"], "le_cd": scores["LE"],
                "lr_cd": scores["LR"]}

    return compute_metrics


@torch.no_grad()
def predict_recordings(model, feature_extractor, eval_set: EvalSet, num_classes: int, num_tracks: int) -> dict[str, dict]:
    """Run the model over whole recordings -> file id -> {"sed_logits" (T,N,C), "doa" (T,N,3)[, "distance"]} numpy."""
    model.eval()
    collator = SELDCollator(feature_extractor, num_classes, num_tracks, train=False)
    device = next(model.parameters()).device
    outputs = {}
    for i, fid in enumerate(eval_set.file_ids):
        batch = collator([eval_set.examples[i]])
        inputs = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor) and k != "labels"}
        out = model(**inputs)
        n = eval_set.num_frames[fid]
        outputs[fid] = {"sed_logits": out.sed_logits[0, :n].float().cpu().numpy(),
                        "doa": out.doa[0, :n].float().cpu().numpy()}
        if out.distance is not None:
            outputs[fid]["distance"] = out.distance[0, :n].float().cpu().numpy()
    return outputs


def baseline_predictions(eval_set: EvalSet, train_rows: Sequence[Sequence[tuple]], num_classes: int) -> dict[str, dict]:
    """Reference points: an all-silent system, and "the most frequent training class, from the front, always"."""
    counts = np.bincount([int(r[1]) for rows in train_rows for r in rows], minlength=num_classes)
    top = int(np.argmax(counts))
    silent = {fid: [] for fid in eval_set.file_ids}
    front = {fid: [(t, top, 0, 0.0, 0.0) for t in range(eval_set.num_frames[fid])] for fid in eval_set.file_ids}
    return {"all silent": silent, "most frequent class, front": front}


# --------------------------------------------------------------------------------------------------------- artefacts
def write_predictions(predictions: dict[str, list], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for fid, rows in predictions.items():
        write_dcase_csv(rows, folder / f"{fid}.csv")


def metrics_table(results: dict[str, dict]) -> str:
    """Markdown table of ER20/F20/LE_CD/LR_CD/SELD per system."""
    lines = ["| system | ER20 | F20 | LE_CD (deg) | LR_CD | SELD |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['ER']:.3f} | {r['F']:.3f} | {r['LE']:.1f} | {r['LR']:.3f} | {r['SELD']:.3f} |")
    return "\n".join(lines)


def model_card(config: AT2SELDConfig, data_args: DataArguments, training_args: TrainingArguments,
               results: dict[str, dict], report: dict | None = None) -> str:
    """README.md of the saved model: data, metrics, training arguments, intended use, limitations."""
    name = training_args.hub_model_id or Path(training_args.output_dir).name
    source = data_args.parquet_dataset or f"{data_args.dataset} ({data_args.data_dir})"
    hyper = {k: getattr(training_args, k) for k in (
        "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps",
        "warmup_steps", "weight_decay", "seed", "bf16", "fp16")}
    arch = {k: getattr(config, k, None) for k in (
        "backbone_type", "backbone_name_or_path", "backbone_trainable_layers", "descriptors", "fusion", "num_tracks",
        "track_layers", "gru_layers", "sed_loss", "doa_supervision")}
    cost = ""
    if report:
        cost = (f"\nParameters: {report.get('total_parameters', 'n/a'):,}; "
                f"MACs per second of audio: {report.get('total_macs_per_second', 0) / 1e9:.2f} G.\n")
    return f"""---
library_name: transformers
tags: [audio, sound-event-localization-and-detection, seld, ambisonics, at2seld]
pipeline_tag: audio-classification
---

# {name}

An AT2SELD sound event localization and detection model for First-Order Ambisonics (ACN/SN3D) recordings:
a {config.backbone_type.upper() if config.backbone_type != "none" else "spatial-only"} semantic branch on the
omni channel, a residual convolutional FOA encoder, `{config.fusion}` cross-stitch coupling and {config.num_tracks}
output tracks (per 100 ms frame: class activity and a Cartesian DOA).

## Use

```python
from transformers import pipeline
pipe = pipeline("sound-event-localization", model="{name}", trust_remote_code=True)
pipe("recording_foa.wav")  # [{{"label", "start", "end", "azimuth", "elevation", "score", "track"}}, ...]
```

## Training data

{source}; training split `{data_args.train_split}` (random {data_args.chunk_length_s} s chunks), validation
split `{data_args.val_split}` (checkpoint selection by SELD score, threshold calibration), test split
`{data_args.test_split}`.

## Results (test split, DCASE 2023 metrics, {getattr(config, "num_labels", "?")} classes, 20 degree threshold)

{metrics_table(results)}

Per-class thresholds selected on the validation split: `{config.class_thresholds}`.
{cost}
## Architecture

```json
{json.dumps(arch, indent=2, default=str)}
```

## Training arguments

```json
{json.dumps(hyper, indent=2, default=str)}
```

## Intended use and limitations

For research on SELD with FOA microphones (DCASE conventions: azimuth 0 = front, positive to the left).
The model knows only the classes above, and only the acoustic conditions of its training data; scores on other
rooms, microphones or class sets can be much lower. Check the metrics on your own data before relying on it.
Synthetic-data models (the `make demo` one) only show that the pipeline works end to end.
"""


def save_model_folder(model, feature_extractor, out_dir: Path) -> None:
    """Model (safetensors + remote code), feature extractor, and the custom pipeline when it is available."""
    model.save_pretrained(out_dir)
    feature_extractor.save_pretrained(out_dir)
    try:
        from .pipeline_at2seld import save_for_hub
    except ImportError:
        return
    save_for_hub(model, feature_extractor, out_dir)


def push_folder_to_hub(folder: Path, repo_id: str, token: str | None = None, private: bool | None = None,
                       api=None) -> str:
    """Create (if needed) the model repo and upload the folder; returns the commit URL."""
    from huggingface_hub import HfApi

    api = api or HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                             commit_message="Upload AT2SELD model", ignore_patterns=["checkpoint-*", "runs/*"])
    return str(getattr(info, "commit_url", info))


# ------------------------------------------------------------------------------------------------------------- main
def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` folder that was written to the end, or None.

    A run killed while saving leaves a folder without `trainer_state.json` (written last); transformers'
    `get_last_checkpoint` would pick it and the resume would fail, so incomplete folders are skipped.
    """
    if not os.path.isdir(output_dir):
        return None
    steps = []
    for name in os.listdir(output_dir):
        folder = Path(output_dir) / name
        if name.startswith("checkpoint-") and name.split("-", 1)[1].isdigit() and (folder / "trainer_state.json").exists():
            steps.append(int(name.split("-", 1)[1]))
    return str(Path(output_dir) / f"checkpoint-{max(steps)}") if steps else None


def run(model_args: ModelArguments, data_args: DataArguments, seld_args: SELDArguments,
        training_args: SELDTrainingArguments, extra_callbacks: Sequence[TrainerCallback] = ()) -> dict:
    """Train, calibrate, test, save; returns the results dict that is also written to `metrics.json`."""
    out_dir = Path(training_args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_ds, val_set, test_set, class_names = load_splits(data_args)
    num_classes = len(class_names) if class_names else None
    if num_classes is None:
        raise ValueError(f"Unknown class list for dataset {data_args.dataset!r}.")
    config = build_config(model_args, class_names, num_classes)

    train_rows = None  # metadata of the training recordings (class balancing, reference systems)
    if isinstance(train_ds, FOARecordingDataset):
        train_rows = [train_ds.rows(i) for i in range(len(train_ds))]
    if model_args.class_balancing:
        if train_rows is None and hasattr(train_ds, "__len__"):
            train_rows = [example_rows(ex) for ex in train_ds]
        if train_rows is None:
            raise ValueError("--class_balancing needs a map-style training set (not --streaming).")
        balance = class_pos_weights_from_rows(train_rows, num_classes)
        # balancing redistributes the positive weight across classes; a configured weight (e.g. 5x for rare
        # positives) keeps its overall scale, so "balancing on/off" compares only the per-class distribution
        scale = config.class_pos_weight or [1.0] * num_classes
        config.class_pos_weight = [float(s * b) for s, b in zip(scale, balance)]

    # Trainer seeds only when it is created; the model is built before, so seed here: a run's initial weights must
    # depend on --seed alone, not on what ran earlier in the process (NAS trials, study runs, tests)
    set_seed(training_args.seed)
    if model_args.model_name_or_path:
        model = AT2SELDForSoundEventLocalization.from_pretrained(model_args.model_name_or_path, config=config)
    else:
        model = AT2SELDForSoundEventLocalization(config)
    fe = feature_extractor_for(config)
    callbacks = list(extra_callbacks)
    if model.backbone is not None:
        schedule = BackboneSchedule(config.backbone_trainable_layers, model_args.unfreeze_backbone_after_epochs)
        model.backbone.freeze(-1)  # the optimizer must see every parameter; the schedule freezes at train begin
        callbacks.append(schedule)

    if data_args.cache_features:
        if data_args.streaming:
            raise ValueError("--cache_features needs a map-style training set (not --streaming).")
        train_ds = CachedFeatureDataset(train_ds, fe)
        chunker = CachedChunkCollator(train_ds, num_classes, config.num_tracks, data_args.chunk_length_s,
                                      seed=training_args.seed)
    else:
        chunker = SELDCollator(fe, num_classes, config.num_tracks, data_args.chunk_length_s, train=True,
                               seed=training_args.seed)
    train_collator = TrainerCollator(chunker)
    eval_collator = TrainerCollator(SELDCollator(fe, num_classes, config.num_tracks, train=False))

    if data_args.train_repeats > 1 and hasattr(train_ds, "__len__") and not data_args.streaming:
        train_ds = RepeatDataset(train_ds, data_args.train_repeats)
    push = training_args.push_to_hub
    trainer_args = dataclasses.replace(training_args, push_to_hub=False)
    if model.backbone is not None and trainer_args.ddp_find_unused_parameters is None and (
        config.backbone_trainable_layers != -1 or model_args.unfreeze_backbone_after_epochs is not None
    ):
        # frozen backbone blocks get no gradient: DistributedDataParallel must be told they are unused
        trainer_args = dataclasses.replace(trainer_args, ddp_find_unused_parameters=True)
    trainer = SELDTrainer(
        model=model,
        args=trainer_args,
        data_collator=train_collator,
        eval_data_collator=eval_collator,
        train_dataset=train_ds,
        eval_dataset=_IndexedExamples(val_set),
        compute_metrics=make_compute_metrics(val_set, num_classes, seld_args,
                                             lambda: model.config.class_thresholds or 0.5),
        callbacks=callbacks,
    )
    resume = training_args.resume_from_checkpoint
    if (resume is None and training_args.auto_resume) or resume in ("true", "True", "last"):
        resume = last_complete_checkpoint(out_dir)  # continue an interrupted run
    start = time.perf_counter()
    train_result = trainer.train(resume_from_checkpoint=resume, ignore_keys_for_eval=LOSS_PARTS)
    train_seconds = time.perf_counter() - start
    model = trainer.model
    if model.backbone is not None:
        model.backbone.freeze(config.backbone_trainable_layers)

    results: dict[str, Any] = {"train_runtime_s": train_seconds, "train": train_result.metrics}
    if not trainer.is_world_process_zero():
        return results  # calibration, test scoring and saving happen once, on the main process
    val_out = predict_recordings(model, fe, val_set, num_classes, config.num_tracks)
    if seld_args.calibrate:
        cal = calibrate_thresholds(val_out, val_set.references, num_classes, objective=seld_args.calibration_objective,
                                   merge_angle_deg=seld_args.merge_angle_deg, median_filter=seld_args.median_filter,
                                   average=seld_args.average, doa_threshold=seld_args.doa_threshold)
        model.config.class_thresholds = [float(t) for t in cal.thresholds]
        results["calibration"] = {"thresholds": model.config.class_thresholds,
                                  "validation_before": to_plain(cal.report["before"]),
                                  "validation_after": to_plain(cal.report["after"])}
    systems: dict[str, dict] = {}
    if test_set is not None:
        test_out = predict_recordings(model, fe, test_set, num_classes, config.num_tracks)
        fixed = decode_all(test_out, 0.5, seld_args)
        systems["AT2SELD, thresholds 0.5"] = score(test_set.references, fixed, num_classes, seld_args)
        if seld_args.calibrate:
            calibrated = decode_all(test_out, model.config.class_thresholds, seld_args)
            systems["AT2SELD, calibrated thresholds"] = score(test_set.references, calibrated, num_classes, seld_args)
            write_predictions(calibrated, out_dir / "predictions" / data_args.test_split)
        else:
            write_predictions(fixed, out_dir / "predictions" / data_args.test_split)
        if train_rows is not None:
            for name, preds in baseline_predictions(test_set, train_rows, num_classes).items():
                systems[name] = score(test_set.references, preds, num_classes, seld_args)
    results["test"] = systems
    report = None
    try:
        report = model.report(print_report=False)
    except Exception as err:  # the cost report is informative only
        logger.warning("model.report() failed: %s", err)
    save_model_folder(model, fe, out_dir)
    (out_dir / "README.md").write_text(model_card(model.config, data_args, training_args, systems, report))
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2, default=to_plain))
    if push:
        if not training_args.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id org/name.")
        results["hub_commit"] = push_folder_to_hub(out_dir, training_args.hub_model_id, training_args.hub_token,
                                                   training_args.hub_private_repo)
    return results


class SELDTrainer(Trainer):
    """`Trainer` that collates random chunks for training and whole recordings for evaluation."""

    def __init__(self, *args, eval_data_collator=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_data_collator = eval_data_collator

    def get_eval_dataloader(self, eval_dataset=None):
        if self.eval_data_collator is None:
            return super().get_eval_dataloader(eval_dataset)
        train_collator, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    # Checkpoints are written by `save_pretrained`, which stores the AST backbone under its original (legacy) key
    # names; reading them back must go through `from_pretrained`, which converts them, not a raw `load_state_dict`.
    def _copy_weights_from(self, folder: str, model=None) -> None:
        target = model if model is not None else self.model
        loaded = type(target).from_pretrained(folder)
        target.load_state_dict(loaded.state_dict())

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        self._copy_weights_from(resume_from_checkpoint, model)

    def _load_best_model(self):
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._load_best_model()
        logger.info("Loading best model from %s (score: %s).", self.state.best_model_checkpoint, self.state.best_metric)
        self._copy_weights_from(self.state.best_model_checkpoint)


class _IndexedExamples(torch.utils.data.Dataset):
    def __init__(self, eval_set: EvalSet):
        self.eval_set = eval_set

    def __len__(self):
        return len(self.eval_set)

    def __getitem__(self, i):
        return self.eval_set.examples[i]


def main(argv: Sequence[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model_args, data_args, seld_args, training_args = parse_args(argv if argv is not None else sys.argv[1:])
    results = run(model_args, data_args, seld_args, training_args)
    if results.get("test"):
        print(metrics_table(results["test"]))
    return results


__all__ = [
    "BackboneSchedule",
    "DataArguments",
    "EvalSet",
    "ModelArguments",
    "SELDArguments",
    "SELDTrainer",
    "SELDTrainingArguments",
    "build_config",
    "class_pos_weights_from_rows",
    "decode_all",
    "feature_extractor_for",
    "last_complete_checkpoint",
    "load_splits",
    "main",
    "make_compute_metrics",
    "model_card",
    "predict_recordings",
    "push_folder_to_hub",
    "run",
    "score",
]


if __name__ == "__main__":
    main()

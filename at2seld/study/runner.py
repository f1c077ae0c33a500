"""Running a diagnostic study: train the base on every data set and every variant on the primary one (re-using
finished runs), then score the diagnostics on the test splits and store everything in `study.json`.

Layout of `output_dir`:

    runs/<data name>/<variant>/   one `at2seld-train` run each (model, metrics.json, study_run.json)
    study.json                    raw numbers, command line, base config, versions, wall time
    REPORT.md, plots/*.png        written by `report.write_report`
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import platform
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import CLASS_NAMES, DATASET_NAMES, class_mapping
from ..evaluation import oracle_analysis
from ..evaluation.metrics import to_plain
from .spec import BASE, StudySpec

logger = logging.getLogger(__name__)

STUDY_FILE = "study.json"
RUN_SETTINGS_FILE = "study_run.json"
CALIBRATED = "AT2SELD, calibrated thresholds"
FIXED = "AT2SELD, thresholds 0.5"
METRIC_KEYS = ("ER", "F", "LE", "LR", "SELD")
_DATA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ------------------------------------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class DataSource:
    """One data set of the study: a short name (folder and table label), its format and its folder."""

    name: str
    dataset: str
    data_dir: str


def parse_data_arg(text: str) -> DataSource:
    """`NAME=DATASET:DIR` (e.g. `synth_a=synthetic:/data/a`) -> DataSource; ValueError on bad syntax or names.

    The folder must exist; DATASET is one of `at2seld.data.DATASET_NAMES`.
    """
    usage = "expected NAME=DATASET:DIR, e.g. starss23=starss23:/data/STARSS23"
    if "=" not in text:
        raise ValueError(f"--data {text!r}: no '=' ({usage}).")
    name, rest = text.split("=", 1)
    if ":" not in rest:
        raise ValueError(f"--data {text!r}: no ':' between data set and folder ({usage}).")
    dataset, data_dir = rest.split(":", 1)
    if not _DATA_NAME.match(name):
        raise ValueError(f"--data {text!r}: the name {name!r} must be letters, digits, '_', '.', '-' ({usage}).")
    if dataset not in DATASET_NAMES:
        raise ValueError(f"--data {text!r}: unknown data set {dataset!r}; expected one of {list(DATASET_NAMES)}.")
    if not data_dir:
        raise ValueError(f"--data {text!r}: empty folder ({usage}).")
    if not Path(data_dir).is_dir():
        raise FileNotFoundError(f"--data {text!r}: the folder {data_dir} does not exist.")
    return DataSource(name, dataset, str(Path(data_dir).resolve()))


def check_sources(sources: Sequence[DataSource]) -> list[DataSource]:
    if not sources:
        raise ValueError("Give at least one data set with --data NAME=DATASET:DIR (the first is the primary one).")
    names = [s.name for s in sources]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"Data set name(s) {dup} given twice in --data; every NAME must be unique.")
    return list(sources)


def check_data(sources: Sequence[DataSource]) -> None:
    """Read the split lists of every data set once before anything is trained: a wrong folder or format, or an empty
    train/val/test split, is a ValueError naming the `--data` entry."""
    from ..training import DataArguments, load_splits

    for s in sources:
        try:
            load_splits(DataArguments(dataset=s.dataset, data_dir=s.data_dir))
        except (ValueError, FileNotFoundError) as err:
            raise ValueError(f"--data {s.name}={s.dataset}:{s.data_dir}: {err}") from err


@dataclass
class StudyTraining:
    """Short-training arguments shared by every run of the study."""

    max_steps: int = 300
    batch_size: int = 8
    learning_rate: float = 3e-3
    eval_steps: int | None = None  # None: max_steps // 4
    seed: int = 0
    cache_features: bool = False
    train_repeats: int = 1
    chunk_length_s: float = 5.0
    warmup_steps: int | None = None  # None: max_steps // 10

    def __post_init__(self):
        for key in ("max_steps", "batch_size", "train_repeats"):
            if getattr(self, key) < 1:
                raise ValueError(f"--{key} must be >= 1, got {getattr(self, key)}.")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ValueError(f"--eval_steps must be >= 1, got {self.eval_steps}.")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps < self.max_steps:
            raise ValueError(f"--warmup_steps must be in [0, max_steps={self.max_steps}), got {self.warmup_steps}.")
        if self.learning_rate <= 0 or self.chunk_length_s <= 0:
            raise ValueError(f"--learning_rate and --chunk_length_s must be > 0, got {self.learning_rate}, "
                             f"{self.chunk_length_s}.")

    @property
    def resolved_eval_steps(self) -> int:
        return self.eval_steps or max(1, self.max_steps // 4)

    @property
    def resolved_warmup_steps(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else self.max_steps // 10


def run_dir(output_dir: str | os.PathLike, data_name: str, variant: str) -> Path:
    return Path(output_dir) / "runs" / data_name / variant


def training_arguments(source: DataSource, overrides: Mapping[str, Any], training: StudyTraining, out_dir: Path,
                       config_json: str | None = None, tiny: bool = False):
    """(ModelArguments, DataArguments, SELDArguments, SELDTrainingArguments) of one study run."""
    from ..training import DataArguments, ModelArguments, SELDArguments, SELDTrainingArguments

    model_args = ModelArguments(config_json=config_json, tiny=tiny, **dict(overrides))
    data_args = DataArguments(dataset=source.dataset, data_dir=source.data_dir, cache_features=training.cache_features,
                              train_repeats=training.train_repeats, chunk_length_s=training.chunk_length_s)
    steps = training.resolved_eval_steps
    training_args = SELDTrainingArguments(
        output_dir=str(out_dir), max_steps=training.max_steps, per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=1, learning_rate=training.learning_rate,
        warmup_steps=training.resolved_warmup_steps, lr_scheduler_type="cosine", weight_decay=0.01,
        eval_strategy="steps", save_strategy="steps", eval_steps=steps, save_steps=steps,
        logging_steps=max(1, steps), save_total_limit=1, seed=training.seed, report_to="none", auto_resume=False,
        disable_tqdm=True, dataloader_num_workers=0,
    )
    return model_args, data_args, SELDArguments(), training_args


def _run_settings(source, overrides, training, base_config, tiny) -> dict[str, Any]:
    return {"data": dataclasses.asdict(source), "overrides": dict(overrides), "training": dataclasses.asdict(training),
            "base_config": base_config, "tiny": tiny}


def train_or_reuse(source: DataSource, variant: str, overrides: Mapping[str, Any], training: StudyTraining,
                   output_dir: str | os.PathLike, config_json: str | None = None, tiny: bool = False,
                   train_fn: Callable | None = None, keep_checkpoints: bool = False) -> tuple[dict, bool]:
    """Train one run, or read its `metrics.json` when it already finished -> (results, reused).

    The Trainer's `checkpoint-N` folders (weights + optimizer state) are deleted after a finished run unless
    `keep_checkpoints`; the final model stays in the run folder.

    A finished run whose settings (data, overrides, training arguments, base config) differ from the requested ones
    raises a ValueError instead of being re-used silently.
    """
    from ..training import run as training_run

    out = run_dir(output_dir, source.name, variant)
    base_config = json.loads(Path(config_json).read_text()) if config_json else None
    settings = json.loads(json.dumps(to_plain(_run_settings(source, overrides, training, base_config, tiny))))
    metrics, settings_file = out / "metrics.json", out / RUN_SETTINGS_FILE
    if metrics.exists():
        if settings_file.exists():
            old = json.loads(settings_file.read_text())
            if old != settings:
                diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise ValueError(
                    f"{out} holds a finished run with other settings (differ in {diff}); use another --output_dir or "
                    f"delete that folder to retrain it."
                )
        logger.info("re-using %s", out)
        return json.loads(metrics.read_text()), True
    out.mkdir(parents=True, exist_ok=True)
    # `training.run` seeds before it builds the model: every run starts from the same initial weights whatever ran
    # before it in this process (run order, resumed studies)
    results = (train_fn or training_run)(*training_arguments(source, overrides, training, out, config_json, tiny))
    settings_file.write_text(json.dumps(settings, indent=2))
    if not metrics.exists():  # train_fn did not write it (e.g. a non-main process): keep the run resumable anyway
        metrics.write_text(json.dumps(results, indent=2, default=to_plain))
    if not keep_checkpoints:
        import shutil

        for folder in out.glob("checkpoint-*"):
            if folder.is_dir():
                shutil.rmtree(folder)
    return json.loads(metrics.read_text()), False


# ------------------------------------------------------------------------------------------------------- diagnostics
def headline(results: Mapping[str, Any]) -> dict[str, float]:
    """ER/F/LE/LR/SELD of the model as it is used: calibrated thresholds when calibrated, else 0.5."""
    test = results.get("test") or {}
    system = CALIBRATED if CALIBRATED in test else FIXED
    if system not in test:
        raise ValueError(f"The run has no test scores (systems: {sorted(test)}); it needs a test split.")
    return {k: float(test[system][k]) for k in METRIC_KEYS}


def transfer_class_map(source_dataset: str, target_dataset: str) -> dict[int, int]:
    """Source class index -> target class index used by the transfer matrix.

    Same label set (same data-set name, e.g. two synthetic profiles): the identity over the whole label set, so that
    classes a source model never saw in training stay scored (as misses). Different label sets: `class_mapping`.
    """
    if source_dataset == target_dataset:
        return {i: i for i in range(len(CLASS_NAMES[source_dataset]))}
    return class_mapping(source_dataset, target_dataset)


def score_transfer(predictions: Mapping[str, Sequence[Sequence]], references: Mapping[str, Sequence[Sequence]],
                   source_dataset: str, target_dataset: str, seld_args=None) -> dict[str, Any]:
    """Score predictions made in the source label set against target references, on the target classes the source
    model can output.

    predictions: file id -> decoded rows (frame, class, track, azimuth, elevation[, distance]) in `source_dataset`
    classes; references: file id -> rows in `target_dataset` classes. Predicted classes are mapped with
    `transfer_class_map` (unmapped ones dropped); reference rows of target classes no source class maps to are left
    out, and the scored classes are renumbered 0..K-1 (macro average over those K classes).
    Returns the `score` dict (ER, F, LE, LR, SELD, classwise) plus "scored_classes" (target names), or None scores
    when no class is shared.
    """
    from ..training import SELDArguments, score

    seld_args = seld_args or SELDArguments()
    mapping = transfer_class_map(source_dataset, target_dataset)
    scored = sorted(set(mapping.values()))
    names = [CLASS_NAMES[target_dataset][t] for t in scored]
    if not scored:
        return {**{k: None for k in METRIC_KEYS}, "scored_classes": []}
    compact = {t: i for i, t in enumerate(scored)}
    preds = {fid: [(int(r[0]), compact[mapping[int(r[1])]], *r[2:5]) for r in rows if int(r[1]) in mapping]
             for fid, rows in predictions.items()}
    refs = {fid: [(int(r[0]), compact[int(r[1])], *r[2:5]) for r in rows if int(r[1]) in compact]
            for fid, rows in references.items()}
    result = score(refs, {fid: preds.get(fid, []) for fid in refs}, len(scored), seld_args)
    result["scored_classes"] = names
    return result


def _device():
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _load_model(folder: Path):
    from ..modeling_at2seld import AT2SELDForSoundEventLocalization

    return AT2SELDForSoundEventLocalization.from_pretrained(str(folder)).to(_device()).eval()


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("at2seld", "torch", "transformers", "numpy", "optuna"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def diagnostics(output_dir: str | os.PathLike, sources: Sequence[DataSource], variants: Sequence[str],
                run_results: Mapping[str, Mapping[str, dict]]) -> dict[str, Any]:
    """Variants, calibration, oracle activity and transfer matrix from the finished runs (see docs/study.md)."""
    from ..training import (
        DataArguments,
        SELDArguments,
        decode_all,
        feature_extractor_for,
        load_splits,
        predict_recordings,
    )

    seld = SELDArguments()
    primary = sources[0].name
    base_of = {s.name: run_results[s.name][BASE] for s in sources}

    out: dict[str, Any] = {"primary": primary}
    out["variants"] = {
        "data": primary, "system": "calibrated thresholds",
        "rows": {name: headline(run_results[primary][name]) for name in [BASE, *variants]},
    }
    cal = {}
    for s in sources:
        test = base_of[s.name].get("test", {})
        cal[s.name] = {"thresholds 0.5": {k: test[FIXED][k] for k in METRIC_KEYS},
                       "calibrated": ({k: test[CALIBRATED][k] for k in METRIC_KEYS} if CALIBRATED in test else None),
                       "thresholds": (base_of[s.name].get("calibration") or {}).get("thresholds")}
    out["calibration"] = cal

    splits = {}
    for s in sources:
        train, _val, test, _names = load_splits(DataArguments(dataset=s.dataset, data_dir=s.data_dir))
        seen = sorted({int(r[1]) for i in range(len(train)) for r in train.rows(i)}) if hasattr(train, "rows") else None
        splits[s.name] = (test, seen)

    oracle, matrix = {}, {}
    for src in sources:
        model = _load_model(run_dir(output_dir, src.name, BASE))
        fe = feature_extractor_for(model.config)
        thresholds = model.config.class_thresholds or 0.5
        matrix[src.name] = {}
        for tgt in sources:
            test, _ = splits[tgt.name]
            n_tgt = len(CLASS_NAMES[tgt.dataset])
            outputs = predict_recordings(model, fe, test, n_tgt, model.config.num_tracks)
            if tgt.name == src.name:
                res = oracle_analysis(outputs, test.references, n_tgt, thresholds=thresholds,
                                      merge_angle_deg=seld.merge_angle_deg, median_filter=seld.median_filter,
                                      average=seld.average, doa_threshold=seld.doa_threshold)
                oracle[src.name] = {k: {m: float(v[m]) for m in METRIC_KEYS} for k, v in res.items()}
            preds = decode_all(outputs, thresholds, seld)
            cell = score_transfer(preds, test.references, src.dataset, tgt.dataset, seld)
            seen_src = splits[src.name][1]
            if seen_src is not None:
                src_map = transfer_class_map(src.dataset, tgt.dataset)
                seen_tgt = {src_map[c] for c in seen_src if c in src_map}
                cell["scored_classes_unseen_in_training"] = [
                    CLASS_NAMES[tgt.dataset][t] for t in sorted(set(src_map.values())) if t not in seen_tgt]
            matrix[src.name][tgt.name] = to_plain(cell)
        del model
    out["oracle"] = oracle
    out["transfer"] = {"datasets": [s.name for s in sources], "matrix": matrix,
                       "class_rule": ("same label set: every class of the label set is scored (classes absent from the "
                                      "source training data count as misses); different label sets: the target "
                                      "classes some source class maps to (at2seld.data.class_mapping)")}
    return out


# ---------------------------------------------------------------------------------------------------------- the study
def run_study(output_dir: str | os.PathLike, sources: Sequence[DataSource], spec: StudySpec,
              config_json: str | None = None, tiny: bool = False, training: StudyTraining | None = None,
              command: Sequence[str] | None = None, train_fn: Callable | None = None,
              write_report: bool = True, keep_checkpoints: bool = False) -> dict[str, Any]:
    """Train (or re-use) every run, compute the diagnostics, write `study.json` (and REPORT.md) -> the study dict.

    train_fn: replaces `at2seld.training.run` (same signature), e.g. to count calls in tests.
    """
    start, started = time.perf_counter(), _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    sources = check_sources(sources)
    check_data(sources)
    training = training or StudyTraining()
    if config_json is not None:
        if not Path(config_json).is_file():
            raise FileNotFoundError(f"--config_json {config_json} does not exist.")
        config_json = str(Path(config_json).resolve())
    if config_json is None and not tiny:
        logger.warning("neither --config_json nor --tiny: every run trains the default (full-size) AT2SELD config")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(s, BASE) for s in sources] + [(sources[0], v) for v in spec.variants]
    run_results: dict[str, dict[str, dict]] = {}
    runs: dict[str, Any] = {}
    for i, (source, variant) in enumerate(jobs, 1):
        logger.info("[%d/%d] %s / %s", i, len(jobs), source.name, variant)
        t0 = time.perf_counter()
        results, reused = train_or_reuse(source, variant, spec.overrides(variant), training, out, config_json, tiny,
                                         train_fn, keep_checkpoints)
        run_results.setdefault(source.name, {})[variant] = results
        runs[f"{source.name}/{variant}"] = {
            "dir": str(run_dir(".", source.name, variant)), "data": source.name, "variant": variant,
            "overrides": spec.overrides(variant), "reused": reused, "wall_time_s": time.perf_counter() - t0,
            "train_runtime_s": results.get("train_runtime_s"), "test": results.get("test"),
            "calibration": results.get("calibration"),
        }
    diag = diagnostics(out, sources, list(spec.variants), run_results)
    study = {
        "command": list(command) if command is not None else None,
        "started": started,
        "wall_time_s": time.perf_counter() - start,
        "versions": _versions(),
        "device": str(_device()),
        "data": [dataclasses.asdict(s) for s in sources],
        "spec": spec.to_dict(),
        "base_config": {"config_json": config_json, "tiny": tiny,
                        "fields": json.loads(Path(config_json).read_text()) if config_json else None},
        "training": dataclasses.asdict(training),
        "runs": runs,
        "diagnostics": diag,
    }
    (out / STUDY_FILE).write_text(json.dumps(to_plain(study), indent=2, default=to_plain))
    if write_report:
        from .report import write_report as _write

        _write(out)
    return study


__all__ = [
    "CALIBRATED",
    "FIXED",
    "METRIC_KEYS",
    "STUDY_FILE",
    "DataSource",
    "StudyTraining",
    "check_data",
    "check_sources",
    "diagnostics",
    "headline",
    "parse_data_arg",
    "run_dir",
    "run_study",
    "score_transfer",
    "train_or_reuse",
    "training_arguments",
    "transfer_class_map",
]

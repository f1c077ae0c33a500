"""The informed multi-stage architecture search on Optuna.

One Optuna study per stage, all in one RDB storage (SQLite by default, PostgreSQL/MySQL for many machines). A trial
is a short `at2seld-train` run (`at2seld.training.run`) of the stage's base configuration with the sampled choices;
its objective is the best validation SELD score of the run (lower is better) and, in the multi-objective mode, the
cost of the architecture (MACs per second of audio, or parameters). Stage k starts from the configuration of stage
k-1's chosen trial, read back from the storage, so a stage can be run (or resumed) by any worker at any time.

Several workers pointed at one storage share a stage: each runs trials until the stage has `n_trials` complete,
pruned or running ones, then waits until no trial of the stage is running before it moves on, so every worker starts
the next stage from the same winner. Trials of a worker that died are detected by Optuna's heartbeat and re-queued
once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from transformers import TrainerCallback

from ..configuration_at2seld import AT2SELDConfig
from .space import DEFAULT_SPACE_FILES, SearchSpace, load_search_space

logger = logging.getLogger(__name__)

# flags the search sets on every trial's at2seld-train command line (users pass the rest)
_MANAGED_FLAGS = ("--config_json", "--output_dir", "--seed", "--calibrate", "--test_split", "--eval_strategy",
                  "--save_strategy", "--load_best_model_at_end", "--metric_for_best_model", "--greater_is_better",
                  "--auto_resume", "--report_to", "--tiny", "--model_name_or_path", "--push_to_hub")
# not part of a searched configuration: transformers' bookkeeping, label2id (derived from id2label), calibration output
_BOOKKEEPING = ("model_type", "transformers_version", "architectures", "auto_map", "label2id", "class_thresholds")


@dataclass
class NASSettings:
    """Everything a worker needs; the parts that define the experiment are stored in the studies and checked on resume.

    Attributes:
        storage: Optuna storage URL (`sqlite:///nas.db`, `postgresql://user:pw@host/db`, ...).
        study_name: prefix of the per-stage study names (`<study_name>.stage<k>-<space name>`).
        output_dir: where trial runs write (checkpoints are deleted after each trial; metrics and config kept).
        train_args: at2seld-train flags of every trial: data (`--dataset`, `--data_dir` or `--parquet_dataset`) and
            budget (`--max_steps`, `--eval_steps`, `--learning_rate`, ...). The search sets the flags in
            `_MANAGED_FLAGS` itself.
        base_config: AT2SELDConfig fields of the first stage's base (e.g. `AT2SELDConfig.tiny().to_dict()`).
        space_files: one file per stage, in stage order.
        n_trials: trials per stage (an int for all stages, or one per stage).
        objective: "multi" (validation SELD and cost, Pareto front) or "single" (validation SELD).
        cost: "macs" (MACs per second of audio) or "params" (parameters), the second objective.
        seed: sampler seed (stage k uses seed + k) and the training seed of every trial (same initialisation and
            chunks for every candidate, so that options are compared on equal terms).
        pruning: stop a trial whose intermediate validation SELD is worse than the median of the finished trials'
            at the same step (Optuna's `MedianPruner` in single-objective mode; the same rule on the recorded
            intermediate values in multi-objective mode, where Optuna pruners do not apply).
        prune_startup_trials: finished trials needed before pruning starts.
        sampler: "auto" (grid over a finite space, TPE otherwise), "grid", "tpe" or "random".
        wait_timeout_s: how long a worker waits for other workers to finish the previous stage.
    """

    storage: str
    study_name: str
    output_dir: str
    train_args: list[str]
    base_config: dict[str, Any]
    space_files: list[str] = field(default_factory=lambda: [str(p) for p in DEFAULT_SPACE_FILES])
    n_trials: int | list[int] = 8
    objective: str = "multi"
    cost: str = "macs"
    seed: int = 0
    pruning: bool = True
    prune_startup_trials: int = 2
    sampler: str = "auto"
    wait_timeout_s: float = 24 * 3600.0
    heartbeat_interval_s: int = 60
    grace_period_s: int = 300
    keep_checkpoints: bool = False

    def __post_init__(self):
        if self.objective not in ("multi", "single"):
            raise ValueError(f"objective must be 'multi' or 'single', got {self.objective!r}.")
        if self.cost not in ("macs", "params"):
            raise ValueError(f"cost must be 'macs' or 'params', got {self.cost!r}.")
        if self.sampler not in ("auto", "grid", "tpe", "random"):
            raise ValueError(f"sampler must be auto, grid, tpe or random, got {self.sampler!r}.")
        managed = [a for a in self.train_args if a.split("=")[0] in _MANAGED_FLAGS]
        if managed:
            raise ValueError(f"train_args set {managed}, which the search manages itself; remove them.")
        if not self.space_files:
            raise ValueError("space_files is empty: give one search-space file per stage.")
        counts = self.n_trials if isinstance(self.n_trials, list) else [self.n_trials] * len(self.space_files)
        if len(counts) != len(self.space_files) or any(int(n) < 1 for n in counts):
            raise ValueError(f"n_trials must be a positive int or one per stage ({len(self.space_files)}), got "
                             f"{self.n_trials!r}.")

    def trials_for(self, stage_index: int) -> int:
        return int(self.n_trials[stage_index] if isinstance(self.n_trials, list) else self.n_trials)

    def experiment(self) -> dict[str, Any]:
        """What must be identical for workers (and resumed runs) to share a study."""
        return {"train_args": list(self.train_args), "objective": self.objective, "cost": self.cost,
                "seed": self.seed}


# ------------------------------------------------------------------------------------------------------ storage
def open_storage(url: str, heartbeat_interval_s: int | None = 60, grace_period_s: int | None = 300):
    """Optuna RDB storage with heartbeats (a trial whose worker died is failed and re-queued once).

    A bare path (`nas.db`) means SQLite. SQLite connections wait up to 60 s for a lock, so a few local workers can
    share one file; many workers on many machines need PostgreSQL or MySQL (see docs/nas.md).
    """
    if "://" not in url:
        url = f"sqlite:///{Path(url).resolve()}"
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if heartbeat_interval_s:
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        if retry is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # marked experimental
                kwargs["heartbeat_stale_trial_callback"] = retry(max_retry=1)
        else:  # optuna < 4.9
            kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(max_retry=1)
        kwargs.update(heartbeat_interval=heartbeat_interval_s, grace_period=grace_period_s)
    return _create_storage(url, kwargs)


def _create_storage(url: str, kwargs: dict[str, Any], attempts: int = 6):
    """`RDBStorage(url, **kwargs)`, retried: workers started together on a new database race to create its tables
    (the loser gets an IntegrityError on the schema version row); a moment later the tables exist and it connects."""
    from sqlalchemy.exc import SQLAlchemyError

    rng = np.random.default_rng()
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeats are marked experimental
                return optuna.storages.RDBStorage(url, **kwargs)
        except SQLAlchemyError as err:
            if attempt == attempts - 1:
                raise
            logger.info("storage %s not ready (%s); retrying", url, type(err).__name__)
            time.sleep(0.2 + rng.random() * (attempt + 1))
    raise AssertionError("unreachable")


def stage_study_name(prefix: str, space: SearchSpace) -> str:
    return f"{prefix}.stage{space.stage}-{space.name}"


def stage_studies(storage, prefix: str) -> list[optuna.study.StudySummary]:
    """The stage studies of a search, in stage order."""
    out = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        name = summary.study_name
        if name.startswith(prefix + ".stage") and "stage" in summary.user_attrs:
            out.append(summary)
    return sorted(out, key=lambda s: s.user_attrs["stage"])


# ------------------------------------------------------------------------------------------------- the winner
def objective_seld(trial: optuna.trial.FrozenTrial) -> float:
    return float(trial.values[0])


def chosen_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The trial a stage hands to the next: the best validation SELD (single objective), or the Pareto-optimal trial
    with the best validation SELD, ties broken by lower cost (multi-objective)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise RuntimeError(f"Study {study.study_name!r} has no complete trial yet; run (or finish) that stage first.")
    candidates = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    return min(candidates, key=lambda t: (t.values[0], t.values[1] if len(t.values) > 1 else 0.0, t.number))


def full_config(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Complete AT2SELDConfig fields (without bookkeeping) of `base` + `overrides`, validated."""
    out = AT2SELDConfig(**{k: v for k, v in {**base, **overrides}.items() if k not in _BOOKKEEPING}).to_dict()
    for key in _BOOKKEEPING:
        out.pop(key, None)
    return out


# ------------------------------------------------------------------------------------------------- objective
class IntermediateScores(TrainerCallback):
    """Reports every validation SELD to the trial and stops the run when the pruning rule says so."""

    def __init__(self, trial: optuna.Trial, multi_objective: bool, pruning: bool, startup_trials: int):
        self.trial, self.multi, self.pruning, self.startup = trial, multi_objective, pruning, startup_trials
        self.history: list[tuple[int, float]] = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics or "eval_seld" not in metrics:
            return
        step, value = int(state.global_step), float(metrics["eval_seld"])
        self.history.append((step, value))
        self.trial.set_user_attr("intermediate_seld", [list(h) for h in self.history])
        if state.max_steps and step >= state.max_steps:
            return  # the run is finished: its last evaluation completes the trial instead of pruning it
        if self.multi:
            if self.pruning and _median_rule_prunes(self.trial.study, step, value, self.startup):
                raise optuna.TrialPruned(f"validation SELD {value:.4f} at step {step} is worse than the median")
        else:
            self.trial.report(value, step)
            if self.pruning and self.trial.should_prune():
                raise optuna.TrialPruned(f"validation SELD {value:.4f} at step {step} is worse than the median")


def _median_rule_prunes(study: optuna.Study, step: int, value: float, startup_trials: int) -> bool:
    """Median stopping on recorded intermediate values (what `MedianPruner` does for one objective)."""
    at_step = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.state == TrialState.COMPLETE:
            values = {int(s): v for s, v in t.user_attrs.get("intermediate_seld", [])}
            if step in values:
                at_step.append(values[step])
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete < startup_trials or not at_step:
        return False
    return value > float(np.median(at_step))


def cost_of(config: dict[str, Any]) -> dict[str, float]:
    """Parameters and MACs per second of audio of a configuration (random weights, 10 s input)."""
    from ..modeling_at2seld import AT2SELDForSoundEventLocalization

    counted = AT2SELDConfig(**config)
    counted.backbone_name_or_path = None  # counts only: the architecture is in backbone_config, no weight download
    model = AT2SELDForSoundEventLocalization(counted)
    report = model.report(print_report=False)
    return {"parameters": float(report["total_parameters"]), "macs_per_second": float(report["total_macs_per_second"])}


def trial_train_argv(settings: NASSettings, config_path: Path, trial_dir: Path) -> list[str]:
    """The exact at2seld-train command line of a trial (stored with the trial; running it again reproduces it)."""
    argv = list(settings.train_args)
    flags = {a.split("=")[0] for a in argv if a.startswith("--")}
    if "--eval_steps" not in flags:
        steps = _flag_value(argv, "--max_steps")
        argv += ["--eval_steps", str(max(1, int(steps) // 4) if steps else 50)]
    eval_steps = _flag_value(argv, "--eval_steps")
    argv += [
        "--config_json", str(config_path), "--output_dir", str(trial_dir), "--seed", str(settings.seed),
        "--calibrate", "false", "--test_split", "", "--eval_strategy", "steps", "--save_strategy", "steps",
        "--save_steps", str(eval_steps), "--load_best_model_at_end", "true", "--metric_for_best_model", "seld",
        "--greater_is_better", "false", "--auto_resume", "false", "--report_to", "none",
    ]
    if "--save_total_limit" not in flags:
        argv += ["--save_total_limit", "1"]
    if "--disable_tqdm" not in flags:
        argv += ["--disable_tqdm", "true"]
    return argv


def _flag_value(argv: Sequence[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def make_objective(settings: NASSettings, space: SearchSpace, base: dict[str, Any], stage_dir: Path):
    from ..training import parse_args, run

    multi = settings.objective == "multi"

    def objective(trial: optuna.Trial):
        params = {p.name: p.suggest(trial) for p in space.parameters}
        config = full_config(base, space.overrides(params))
        cost = cost_of(config)
        trial_dir = stage_dir / f"trial_{trial.number:04d}"
        trial_dir.mkdir(parents=True, exist_ok=True)
        config_path = trial_dir / "trial_config.json"
        config_path.write_text(json.dumps(config, indent=2))
        argv = trial_train_argv(settings, config_path, trial_dir)
        worker = f"{socket.gethostname()}:{os.getpid()}"
        for key, value in {"config": config, "seed": settings.seed, "train_argv": argv, "worker": worker,
                           **cost}.items():
            trial.set_user_attr(key, value)
        scores = IntermediateScores(trial, multi, settings.pruning, settings.prune_startup_trials)
        start = time.perf_counter()
        try:
            model_args, data_args, seld_args, training_args = parse_args(argv)
            run(model_args, data_args, seld_args, training_args, extra_callbacks=[scores])
        finally:
            trial.set_user_attr("train_seconds", time.perf_counter() - start)
            if not settings.keep_checkpoints:
                for ckpt in trial_dir.glob("checkpoint-*"):
                    shutil.rmtree(ckpt, ignore_errors=True)
        if not scores.history:
            raise RuntimeError("The trial's training run reported no validation SELD; check --eval_steps/--max_steps.")
        best = min(v for _, v in scores.history)
        trial.set_user_attr("val_seld", best)
        if not multi:
            return best
        return best, cost["macs_per_second" if settings.cost == "macs" else "parameters"]

    return objective


# ------------------------------------------------------------------------------------------------------ stages
def _sampler(settings: NASSettings, space: SearchSpace, multi: bool):
    seed = settings.seed + space.stage
    kind = settings.sampler
    if kind == "auto":
        kind = "grid" if space.is_finite else "tpe"
    if kind == "grid":
        return optuna.samplers.GridSampler(space.grid, seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    n_trials = settings.trials_for(space.stage - 1)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(1, n_trials // 2)))


def _pruner(settings: NASSettings):
    if not settings.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=settings.prune_startup_trials, n_warmup_steps=0)


def open_stage(settings: NASSettings, storage, space: SearchSpace, base: dict[str, Any]) -> optuna.Study:
    """Create or load the stage's study; a new study records its space, base config and experiment settings, a loaded
    one must have been created with the same ones (otherwise the trials would not be comparable)."""
    multi = settings.objective == "multi"
    study = optuna.create_study(
        storage=storage, study_name=stage_study_name(settings.study_name, space), load_if_exists=True,
        directions=["minimize", "minimize"] if multi else ["minimize"],
        sampler=_sampler(settings, space, multi), pruner=_pruner(settings),
    )
    record = {"stage": space.stage, "space": space.to_dict(), "base_config": base, "experiment": settings.experiment()}
    if "experiment" not in study.user_attrs:
        for key, value in record.items():
            study.set_user_attr(key, value)
        return study
    stored = study.user_attrs
    for key in ("experiment", "base_config"):
        if stored.get(key) != json.loads(json.dumps(record[key])):
            diff = _first_difference(stored.get(key), json.loads(json.dumps(record[key])))
            raise ValueError(
                f"Study {study.study_name!r} in {settings.storage} was created with a different {key} ({diff}). "
                "Resume with the same settings, or pass another --study_name."
            )
    if stored["space"]["parameters"] != json.loads(json.dumps(record["space"]["parameters"])):
        raise ValueError(f"Study {study.study_name!r} was created with a different search space than {space.path}; "
                         "resume with the same file, or pass another --study_name.")
    return study


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
    return f"{path or 'value'}: stored {a!r}, now {b!r}"


def _fail_stale(study: optuna.Study) -> None:
    """Fail (and, through the storage's callback, re-queue) trials whose worker stopped sending heartbeats."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def wait_until_finished(study: optuna.Study, timeout_s: float, poll_s: float = 5.0) -> None:
    """Block until no trial of the study is running or queued (other workers finishing the stage)."""
    deadline = time.monotonic() + timeout_s
    while True:
        _fail_stale(study)
        busy = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        if not busy:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Stage study {study.study_name!r} still has {len(busy)} running trial(s) after "
                               f"{timeout_s:.0f} s; is a worker stuck?")
        time.sleep(poll_s)


def run_stage(settings: NASSettings, storage, space: SearchSpace, base: dict[str, Any], n_trials: int) -> optuna.Study:
    """Run trials of one stage until it has `n_trials` (complete + pruned + running), then wait for the others."""
    study = open_stage(settings, storage, space, base)
    if settings.sampler in ("auto", "grid") and space.is_finite:
        n_trials = min(n_trials, space.grid_size)  # the grid sampler stops the study once every point was tried
    stage_dir = Path(settings.output_dir) / study.study_name
    objective = make_objective(settings, space, study.user_attrs["base_config"], stage_dir)
    while True:
        _fail_stale(study)
        trials = study.get_trials(deepcopy=False)
        counted = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        if counted >= n_trials and not waiting:
            break
        logger.info("%s: trial %d of %d", study.study_name, counted + 1, n_trials)
        study.optimize(objective, n_trials=1, gc_after_trial=True)
    wait_until_finished(study, settings.wait_timeout_s)
    return study


def run_search(settings: NASSettings, stages: Sequence[int] | None = None) -> list[optuna.Study]:
    """Run (or resume, or join) the informed search; returns the stage studies in order.

    `stages`: 1-based stage numbers to run now (default all); an earlier stage must already be finished in the
    storage.
    """
    storage = open_storage(settings.storage, settings.heartbeat_interval_s, settings.grace_period_s)
    spaces_in_order: list[SearchSpace] = []
    base = dict(settings.base_config)
    studies = []
    wanted = set(stages) if stages else None
    for index, path in enumerate(settings.space_files):
        space = load_search_space(path, base)
        if space.stage != index + 1:
            raise ValueError(f"{path}: declares stage {space.stage} but is stage file number {index + 1}.")
        spaces_in_order.append(space)
        if wanted is None or space.stage in wanted:
            study = run_stage(settings, storage, space, base, settings.trials_for(index))
        else:
            try:
                study = optuna.load_study(study_name=stage_study_name(settings.study_name, space), storage=storage)
            except KeyError as err:
                raise RuntimeError(f"Stage {space.stage} ({space.name}) has not been run in {settings.storage}; "
                                   f"run it first (--stages {space.stage}).") from err
            wait_until_finished(study, settings.wait_timeout_s)
        studies.append(study)
        if wanted is not None and space.stage >= max(wanted):
            break
        base = chosen_trial(study).user_attrs["config"]
    return studies


__all__ = [
    "IntermediateScores",
    "NASSettings",
    "chosen_trial",
    "cost_of",
    "full_config",
    "make_objective",
    "open_stage",
    "open_storage",
    "run_search",
    "run_stage",
    "stage_studies",
    "stage_study_name",
    "trial_train_argv",
    "wait_until_finished",
]

"""`at2seld-nas report`: Markdown per stage, PNG plots and the winning configuration, read from the storage alone."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from .search import chosen_trial, open_storage, stage_studies

_COST_LABEL = {"macs": "GMACs per second of audio", "params": "parameters (M)"}


def _cost_value(trial, cost: str) -> float | None:
    key = "macs_per_second" if cost == "macs" else "parameters"
    value = trial.user_attrs.get(key)
    return None if value is None else float(value) / (1e9 if cost == "macs" else 1e6)


def _seld(trial) -> float | None:
    """Best validation SELD of a trial: its objective when complete, the best intermediate value when pruned."""
    if trial.state == TrialState.COMPLETE:
        return float(trial.values[0])
    history = trial.user_attrs.get("intermediate_seld") or []
    return min(v for _, v in history) if history else None


def _history(trial) -> str:
    history = trial.user_attrs.get("intermediate_seld") or []
    return ", ".join(f"{int(step)}: {value:.3f}" for step, value in history) or "n/a"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def option_effects(trials: Sequence, parameter: str) -> list[dict[str, Any]]:
    """Per option of a parameter: complete trials, mean and best validation SELD, pruned trials, and the mean validation
    SELD at the first evaluation over all (complete and pruned) trials, where every trial is compared at equal steps."""
    rows: dict[str, dict[str, Any]] = {}
    for t in trials:
        if parameter not in t.params or t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        row = rows.setdefault(str(t.params[parameter]),
                              {"option": str(t.params[parameter]), "scores": [], "pruned": 0, "first": []})
        history = t.user_attrs.get("intermediate_seld") or []
        if history:
            row["first"].append(float(history[0][1]))
        if t.state == TrialState.COMPLETE:
            row["scores"].append(float(t.values[0]))
        else:
            row["pruned"] += 1
    out = []
    for row in rows.values():
        scores, first = row.pop("scores"), row.pop("first")
        row.update(trials=len(scores), mean=float(np.mean(scores)) if scores else None,
                   best=float(np.min(scores)) if scores else None,
                   first_eval=float(np.mean(first)) if first else None)
        out.append(row)
    return sorted(out, key=lambda r: (r["best"] is None, r["best"] if r["best"] is not None else 0.0))


def _plot_pareto(study, cost: str, path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    points = [(_cost_value(t, cost), float(t.values[0]), t) for t in complete if _cost_value(t, cost) is not None]
    if not points:
        return False
    front = {t.number for t in (study.best_trials if len(study.directions) > 1 else [study.best_trial])}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for x, y, t in points:
        on_front = t.number in front
        ax.scatter(x, y, s=40, color="tab:red" if on_front else "tab:gray", zorder=3 if on_front else 2)
        ax.annotate(f"#{t.number}", (x, y), fontsize=8, xytext=(4, 3), textcoords="offset points")
    fx = sorted((x, y) for x, y, t in points if t.number in front)
    if len(fx) > 1:
        ax.plot(*zip(*fx), color="tab:red", lw=1, zorder=1, label="Pareto front")
    pruned = [(_cost_value(t, cost), _seld(t), t) for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
              if _cost_value(t, cost) is not None and _seld(t) is not None]
    if pruned:
        ax.scatter([p[0] for p in pruned], [p[1] for p in pruned], marker="x", color="tab:gray", s=30,
                   label="pruned (best value before stopping)")
        for x, y, t in pruned:
            ax.annotate(f"#{t.number}", (x, y), fontsize=8, xytext=(4, -9), textcoords="offset points", color="gray")
    ax.set_xlabel(_COST_LABEL[cost])
    ax.set_ylabel("validation SELD score (lower is better)")
    ax.set_title(title + " (trial numbers as in the table)", fontsize=9)
    ax.grid(alpha=0.3)
    if len(fx) > 1 or pruned:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_options(trials, parameter: str, path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    effects = option_effects(trials, parameter)
    options = [e["option"] for e in effects]
    if not options:
        return False
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(options) + 2), 3.8))
    for i, option in enumerate(options):
        scores = [float(t.values[0]) for t in trials
                  if t.state == TrialState.COMPLETE and str(t.params.get(parameter)) == option]
        pruned = [_seld(t) for t in trials
                  if t.state == TrialState.PRUNED and str(t.params.get(parameter)) == option and _seld(t) is not None]
        ax.scatter([i] * len(scores), scores, color="tab:blue", s=30, zorder=3)
        ax.scatter([i] * len(pruned), pruned, color="tab:gray", marker="x", s=30, zorder=3)
        if scores:
            ax.hlines(np.mean(scores), i - 0.3, i + 0.3, color="tab:blue", lw=2)
    ax.set_xticks(range(len(options)), options, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("validation SELD (lower is better)")
    ax.set_title(f"{title}: {parameter} (dots: trials, bar: mean, x: pruned)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _stage_section(study, summary, out_dir: Path, cost: str) -> tuple[list[str], Any]:
    attrs = summary.user_attrs
    space = attrs["space"]
    stage = attrs["stage"]
    trials = study.get_trials(deepcopy=False)
    parameters = [p["name"] for p in space["parameters"]]
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState if any(t.state == s for t in trials)}
    multi = len(study.directions) > 1
    lines = [f"## Stage {stage}: {space['name']}", "", space.get("description", ""), "",
             f"Search space: `{space.get('path', '')}`. Trials: " + ", ".join(f"{n} {s}" for s, n in states.items()) + "."]
    chosen = None
    try:
        chosen = chosen_trial(study)
    except RuntimeError:
        lines += ["", "No complete trial yet."]
    if stage > 1:
        lines += ["", "Starts from the configuration chosen in stage " + str(stage - 1) + " (see above)."]
    if study.user_attrs.get("base_config") and stage == 1:
        base = study.user_attrs["base_config"]
        keys = ("backbone_type", "descriptors", "spatial_channels", "track_layers", "gru_layers", "gru_hidden", "fusion")
        lines += ["", "Base configuration: " + ", ".join(f"`{k}={base.get(k)}`" for k in keys) + "."]
    header = ["trial", *parameters, "state", "val SELD", "val SELD at each evaluation (step: score)",
              _COST_LABEL["macs"], "parameters (M)", "train s"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    front = set()
    if any(t.state == TrialState.COMPLETE for t in trials):
        front = {t.number for t in (study.best_trials if multi else [study.best_trial])}
    for t in sorted(trials, key=lambda t: (_seld(t) is None, _seld(t) or 0.0, t.number)):
        mark = " (chosen)" if chosen is not None and t.number == chosen.number else (" (Pareto)" if t.number in front and multi else "")
        cells = [f"#{t.number}{mark}", *(str(t.params.get(p, "")) for p in parameters), t.state.name.lower(),
                 _fmt(_seld(t)), _history(t), _fmt(_cost_value(t, "macs"), 2), _fmt(_cost_value(t, "params"), 3),
                 _fmt(t.user_attrs.get("train_seconds"), 0)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", ("Validation SELD of pruned trials: the best intermediate value before they were stopped; compare "
              "options at the same step with the per-evaluation column.")]
    for parameter in parameters:
        effects = option_effects(trials, parameter)
        lines += ["", f"Effect of `{parameter}`:", "",
                  ("| option | complete trials | mean val SELD | best val SELD | pruned | mean val SELD at the first "
                  "evaluation (all trials) |"), "|---|---|---|---|---|---|"]
        for e in effects:
            lines.append(f"| {e['option']} | {e['trials']} | {_fmt(e['mean'])} | {_fmt(e['best'])} | {e['pruned']} | "
                         f"{_fmt(e['first_eval'])} |")
        png = out_dir / f"stage{stage}_{parameter}.png"
        if _plot_options(trials, parameter, png, f"stage {stage}"):
            lines += ["", f"![score per option of {parameter}]({png.name})"]
    if multi:
        png = out_dir / f"stage{stage}_pareto.png"
        if _plot_pareto(study, cost, png, f"stage {stage} ({space['name']}): validation SELD vs cost"):
            lines += ["", f"Pareto front of validation SELD and {_COST_LABEL[cost]}:", "", f"![Pareto front]({png.name})"]
    return lines, chosen


def write_report(storage_url: str, study_name: str, output_dir: str | Path) -> Path:
    """Write `REPORT.md`, the PNG plots and `winner_config.json` (+ `stage<k>_trials.json`) into `output_dir`."""
    storage = open_storage(storage_url, heartbeat_interval_s=None)
    summaries = stage_studies(storage, study_name)
    if not summaries:
        known = sorted({s.study_name.split(".stage")[0] for s in optuna.get_all_study_summaries(storage, False)})
        raise ValueError(f"No stage studies named {study_name!r}.stage<k>-... in {storage_url}; studies there: {known}.")
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    experiment = summaries[0].user_attrs.get("experiment", {})
    cost = experiment.get("cost", "macs")
    lines = [f"# Architecture search `{study_name}`", "",
             f"Storage `{storage_url}`; generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by "
             f"`at2seld-nas report`. Objective: {experiment.get('objective', '?')} (validation SELD"
             + (f" and {_COST_LABEL[cost]}" if experiment.get("objective") == "multi" else "") + "). "
             f"Training seed {experiment.get('seed')}; every trial ran "
             f"`at2seld-train {shlex.join(experiment.get('train_args', []))} ...` (full command in each trial's "
             "`train_argv` attribute).", "", "| stage | chosen trial | choice | val SELD | GMACs/s | parameters (M) |",
             "|---|---|---|---|---|---|"]
    sections, winner, chosen_rows = [], None, []
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        section, chosen = _stage_section(study, summary, out_dir, cost)
        sections += ["", *section]
        stage = summary.user_attrs["stage"]
        trials_json = [{"number": t.number, "state": t.state.name, "params": t.params, "values": t.values,
                        "user_attrs": t.user_attrs} for t in study.get_trials(deepcopy=False)]
        (out_dir / f"stage{stage}_trials.json").write_text(json.dumps(trials_json, indent=1, default=str))
        if chosen is not None:
            winner = chosen
            choice = ", ".join(f"{k}={v}" for k, v in chosen.params.items())
            chosen_rows.append(f"| {stage} ({summary.user_attrs['space']['name']}) | #{chosen.number} | {choice} | "
                               f"{_fmt(chosen.values[0])} | {_fmt(_cost_value(chosen, 'macs'), 2)} | "
                               f"{_fmt(_cost_value(chosen, 'params'), 3)} |")
    lines += chosen_rows
    if winner is not None:
        config = dict(winner.user_attrs["config"])
        for key in ("id2label", "label2id"):
            config.pop(key, None)  # the training data set names the classes
        (out_dir / "winner_config.json").write_text(json.dumps(config, indent=2))
        train_args = experiment.get("train_args", [])
        lines += ["", "The last stage's chosen configuration is in `winner_config.json`; train it in full with:", "",
                  "```bash", (f"at2seld-train --config_json winner_config.json {shlex.join(train_args)} "
                  f"--seed {experiment.get('seed', 0)} --output_dir outputs/nas_winner"), "```",
                  "", "(raise `--max_steps` for a full training run; the search's runs were short on purpose)."]
    lines += sections
    report = out_dir / "REPORT.md"
    report.write_text("\n".join(lines) + "\n")
    return report


__all__ = ["option_effects", "write_report"]

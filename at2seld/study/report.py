"""REPORT.md and plots of a finished study, rendered from `study.json` alone (so `at2seld-study report` can redo them)."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .runner import BASE, METRIC_KEYS, STUDY_FILE

REPORT_FILE = "REPORT.md"
PLOTS_DIR = "plots"
TABLE_HEADER = "| {first} | ER20 | F20 | LE_CD (deg) | LR_CD | SELD | ΔSELD |"


def fmt_metrics(m: Mapping[str, Any] | None) -> list[str]:
    """ER, F, LR, SELD with 3 decimals, LE with 1 (the precision of the tables)."""
    if m is None or m.get("SELD") is None:
        return ["n/a"] * 5
    return [f"{m['ER']:.3f}", f"{m['F']:.3f}", f"{m['LE']:.1f}", f"{m['LR']:.3f}", f"{m['SELD']:.3f}"]


def fmt_delta(value: float | None, reference: float | None) -> str:
    if value is None or reference is None:
        return "n/a"
    return f"{value - reference:+.3f}"


def metrics_table(rows: Mapping[str, Mapping[str, Any] | None], reference: str, first: str = "system") -> str:
    """One Markdown row per entry of `rows`; ΔSELD = SELD - SELD of `rows[reference]` (negative = better)."""
    ref = (rows.get(reference) or {}).get("SELD")
    lines = [TABLE_HEADER.format(first=first), "|---|---|---|---|---|---|---|"]
    for name, m in rows.items():
        delta = fmt_delta(m.get("SELD") if m else None, ref)
        lines.append(f"| {name} | " + " | ".join(fmt_metrics(m)) + f" | {delta} |")
    return "\n".join(lines)


def transfer_tables(transfer: Mapping[str, Any]) -> str:
    names = transfer["datasets"]
    matrix = transfer["matrix"]
    head = "| train \\ test | " + " | ".join(names) + " |"
    sep = "|---|" + "---|" * len(names)
    seld = [head, sep]
    f_le = [head, sep]
    for src in names:
        cells = [matrix[src][tgt] for tgt in names]
        seld.append(f"| {src} | " + " | ".join("n/a" if c.get("SELD") is None else f"{c['SELD']:.3f}" for c in cells) + " |")
        f_le.append(f"| {src} | " + " | ".join(
            "n/a" if c.get("SELD") is None else f"{c['F']:.3f} / {c['LE']:.1f}" for c in cells) + " |")
    notes = []
    for src in names:
        for tgt in names:
            c = matrix[src][tgt]
            unseen = c.get("scored_classes_unseen_in_training") or []
            line = f"- {src} → {tgt}: {len(c.get('scored_classes', []))} classes scored"
            if unseen:
                line += f"; scored although never in {src}'s training data: {', '.join(unseen)}"
            notes.append(line)
    return ("SELD score (lower is better):\n\n" + "\n".join(seld) + "\n\nF20 / LE_CD (deg):\n\n" + "\n".join(f_le)
            + "\n\nScored classes: " + transfer.get("class_rule", "") + ".\n\n" + "\n".join(notes))


def plot_variants(rows: Mapping[str, Mapping[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    values = [rows[n]["SELD"] for n in names]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.2))
    colors = ["tab:gray" if n == BASE else "tab:blue" for n in names]
    bars = ax.bar(names, values, color=colors)
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("SELD score (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, max(1.0, max(values) * 1.15))
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_transfer(transfer: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = transfer["datasets"]
    m = np.array([[np.nan if transfer["matrix"][s][t].get("SELD") is None else transfer["matrix"][s][t]["SELD"]
                   for t in names] for s in names], dtype=float)
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2.5, 1.0 * len(names) + 1.5))
    im = ax.imshow(m, cmap="viridis_r", vmin=0.0, vmax=max(1.0, float(np.nanmax(m)) if np.isfinite(m).any() else 1.0))
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("test set")
    ax.set_ylabel("training set")
    for i in range(len(names)):
        for j in range(len(names)):
            light = np.isfinite(m[i, j]) and m[i, j] < 0.45 * im.get_clim()[1]  # yellow end of viridis_r
            ax.text(j, i, "n/a" if np.isnan(m[i, j]) else f"{m[i, j]:.3f}", ha="center", va="center",
                    color="k" if light else "w")
    fig.colorbar(im, ax=ax, label="SELD score (lower is better)")
    ax.set_title("Transfer matrix", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render_report(study: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """REPORT.md text of a study dict (`study.json`); `plots`: name -> path relative to the report."""
    plots = plots or {}
    diag = study["diagnostics"]
    primary = diag["primary"]
    tr = study.get("training", {})
    data_list = ", ".join("`{}` ({})".format(d["name"], d["dataset"]) for d in study["data"])
    lines = [
        "# AT2SELD diagnostic study",
        "",
        (f"Data sets: {data_list}; primary: `{primary}`. "
         f"Runs: {len(study['runs'])} ({sum(1 for r in study['runs'].values() if r['reused'])} re-used). "
         f"Training: {tr.get('max_steps')} steps, batch {tr.get('batch_size')}, learning rate "
         f"{tr.get('learning_rate')}, seed {tr.get('seed')}. Device: {study.get('device')}. "
         f"Wall time of this invocation: {study.get('wall_time_s', 0):.0f} s; training time of all runs: "
         f"{sum(r.get('train_runtime_s') or 0 for r in study['runs'].values()):.0f} s."),
        "",
        ("All scores: test split, DCASE 2023 metrics (macro over classes, 20° threshold). "
         "SELD = (ER20 + (1 - F20) + LE_CD/180 + (1 - LR_CD)) / 4, lower is better; "
         "ΔSELD = SELD - SELD of the reference row (negative: better than the reference)."),
        "",
        "Command:",
        "",
        "```",
        shlex.join(study.get("command") or ["(not recorded)"]),
        "```",
        "",
        f"## Training variants (`{primary}`, calibrated thresholds)",
        "",
        "Each variant changes the base training in one respect (spec: `" + str(study["spec"].get("path")) + "`):",
        "",
    ]
    lines.append(f"- `{BASE}`: {json.dumps(study['spec']['base'])}")
    for name, overrides in study["spec"]["variants"].items():
        lines.append(f"- `{name}`: {json.dumps(overrides)}")
    lines += ["", metrics_table(diag["variants"]["rows"], BASE, "variant"), ""]
    if "variants" in plots:
        lines += [f"![SELD per variant]({plots['variants']})", ""]
    lines += ["## Calibration (base model: fixed 0.5 thresholds vs per-class thresholds from the validation split)", ""]
    cal_rows: dict[str, Any] = {}
    for name, c in diag["calibration"].items():
        cal_rows[f"{name}: calibrated"] = c["calibrated"]
        cal_rows[f"{name}: thresholds 0.5"] = c["thresholds 0.5"]
    for name in diag["calibration"]:
        ref = f"{name}: calibrated"
        sub = {k: v for k, v in cal_rows.items() if k.startswith(f"{name}: ")}
        lines += [metrics_table(sub, ref, "system"), ""]
        thr = diag["calibration"][name].get("thresholds")
        if thr:
            lines += [f"Calibrated thresholds of `{name}`: {', '.join(f'{t:.2f}' for t in thr)}", ""]
    lines += ["## Oracle activity (base model, calibrated thresholds)", "",
              ("`predicted`: the model as decoded; `oracle_activity`: reference activity, the model's own DOAs "
               "(localization alone); `oracle_doa`: the model's activity, reference DOAs (detection alone)."), ""]
    for name, rows in diag["oracle"].items():
        lines += [f"`{name}`:", "", metrics_table(rows, "predicted", "scoring"), ""]
    lines += ["## Transfer matrix (base models, each on every test split, calibrated thresholds of the training set)", "",
              transfer_tables(diag["transfer"]), ""]
    if "transfer" in plots:
        lines += [f"![Transfer matrix]({plots['transfer']})", ""]
    v = study.get("versions", {})
    lines += ["## Environment", "",
              ", ".join(f"{k} {v[k]}" for k in ("at2seld", "torch", "transformers", "python") if k in v)
              + f"; started {study.get('started')}. Raw numbers: `{STUDY_FILE}`.", ""]
    return "\n".join(lines)


def write_report(output_dir: str | os.PathLike) -> Path:
    """Render `<output_dir>/REPORT.md` and `<output_dir>/plots/*.png` from `<output_dir>/study.json`."""
    out = Path(output_dir)
    study_file = out / STUDY_FILE
    if not study_file.is_file():
        raise FileNotFoundError(f"{study_file} does not exist; run `at2seld-study run --output_dir {out} ...` first.")
    study = json.loads(study_file.read_text())
    (out / PLOTS_DIR).mkdir(exist_ok=True)
    diag = study["diagnostics"]
    plots = {"variants": f"{PLOTS_DIR}/variants_seld.png", "transfer": f"{PLOTS_DIR}/transfer_seld.png"}
    plot_variants(diag["variants"]["rows"], out / plots["variants"], f"SELD per variant ({diag['primary']}, test)")
    plot_transfer(diag["transfer"], out / plots["transfer"])
    path = out / REPORT_FILE
    path.write_text(render_report(study, plots), encoding="utf-8")
    return path




__all__ = ["METRIC_KEYS", "REPORT_FILE", "metrics_table", "render_report", "write_report"]

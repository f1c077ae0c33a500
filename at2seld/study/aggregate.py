"""`at2seld-study aggregate`: the same study repeated with several seeds -> mean, spread and paired differences.

Short training runs are noisy: a single seed cannot tell a real effect of a variant from the luck of one
initialisation and one draw of training chunks. Given the folders of studies that differ only in `--seed`, this
reports per variant (primary data set) the mean and sample standard deviation of every score over the seeds, and
the paired change of the SELD score against the base (variant minus base within each seed, then mean and standard
deviation), with how many seeds the variant was better in. The same for calibration (calibrated minus 0.5) and
the oracle scorings (oracle minus predicted).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .runner import BASE, METRIC_KEYS, STUDY_FILE

AGGREGATE_FILE = "AGGREGATE.md"
_LABELS = {"ER": "ER20", "F": "F20", "LE": "LE_CD (deg)", "LR": "LR_CD", "SELD": "SELD"}


def load_studies(folders: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read `study.json` of each folder; they must share data, spec, base config and training except the seed."""
    if len(folders) < 2:
        raise ValueError(f"Aggregating needs the folders of at least two studies (one per seed), got {len(folders)}.")
    studies = []
    for folder in folders:
        path = Path(folder) / STUDY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: pass folders of finished `at2seld-study run`s.")
        studies.append(json.loads(path.read_text()))

    def key(study):
        training = {k: v for k, v in study["training"].items() if k != "seed"}
        return json.dumps([study["data"], study["spec"], study["base_config"]["fields"], training], sort_keys=True)

    first = key(studies[0])
    for folder, study in zip(folders, studies):
        if key(study) != first:
            raise ValueError(f"{folder}: this study differs from {folders[0]} in more than the seed (data, spec, base "
                             "config or training settings); aggregate only repeats of one study.")
    seeds = [s["training"]["seed"] for s in studies]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"Two of the studies have the same seed ({seeds}); each repeat needs its own --seed.")
    return studies


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def _paired(rows: Sequence[Mapping[str, Any]], name: str, reference: str) -> dict[str, Any]:
    deltas = [r[name]["SELD"] - r[reference]["SELD"] for r in rows]
    out = _stats(deltas)
    out["better_in"] = int(sum(d < 0 for d in deltas))
    out["deltas"] = deltas
    return out


def aggregate(studies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """-> {"seeds", "variants": {name: {metric: stats, "delta_seld": paired stats}}, "calibration", "oracle"}."""
    seeds = [s["training"]["seed"] for s in studies]
    diags = [s["diagnostics"] for s in studies]
    primary = diags[0]["primary"]
    out: dict[str, Any] = {"seeds": seeds, "primary": primary, "variants": {}, "calibration": {}, "oracle": {}}
    variant_rows = [d["variants"]["rows"] for d in diags]
    for name in variant_rows[0]:
        out["variants"][name] = {m: _stats([r[name][m] for r in variant_rows]) for m in METRIC_KEYS}
        out["variants"][name]["delta_seld"] = _paired(variant_rows, name, BASE)
    for data in diags[0]["calibration"]:
        rows = [{"0.5": d["calibration"][data]["thresholds 0.5"], "cal": d["calibration"][data]["calibrated"]}
                for d in diags if d["calibration"][data]["calibrated"] is not None]
        if len(rows) == len(diags):
            out["calibration"][data] = {
                "thresholds 0.5": {m: _stats([r["0.5"][m] for r in rows]) for m in METRIC_KEYS},
                "calibrated": {m: _stats([r["cal"][m] for r in rows]) for m in METRIC_KEYS},
                "delta_seld": _paired(rows, "cal", "0.5"),
            }
    for data in diags[0]["oracle"]:
        rows = [d["oracle"][data] for d in diags]
        out["oracle"][data] = {
            kind: {**{m: _stats([r[kind][m] for r in rows]) for m in METRIC_KEYS},
                   "delta_seld": _paired(rows, kind, "predicted")}
            for kind in rows[0]
        }
    return out


def _cell(stats: Mapping[str, float], digits: int) -> str:
    return f"{stats['mean']:.{digits}f} ± {stats['sd']:.{digits}f}"


def _table(rows: Mapping[str, Mapping[str, Any]], first: str, reference_label: str) -> list[str]:
    head = [first, *(_LABELS[m] for m in METRIC_KEYS), f"ΔSELD vs {reference_label} (paired)", "better in"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        d = r["delta_seld"]
        cells = [_cell(r[m], 1 if m == "LE" else 3) for m in METRIC_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {d['mean']:+.3f} ± {d['sd']:.3f} | "
                     f"{d['better_in']} of {d['n']} |")
    return lines


def render_aggregate(agg: Mapping[str, Any], folders: Sequence[str]) -> str:
    n = len(agg["seeds"])
    lines = [
        "# AT2SELD diagnostic study: repeats over seeds", "",
        f"{n} repeats of one study with seeds {agg['seeds']} (folders: " + ", ".join(f"`{f}`" for f in folders) + "). "
        "Cells: mean ± sample standard deviation over the seeds. ΔSELD is paired: the difference within each seed, "
        "then its mean ± standard deviation; \"better in\" counts the seeds in which the row has the lower SELD. A "
        "difference smaller than its standard deviation, or better in only some seeds, is not an effect this "
        "budget can show.", "",
        f"## Training variants (`{agg['primary']}`, calibrated thresholds)", "",
        *_table(agg["variants"], "variant", "base"),
    ]
    for data, cal in agg["calibration"].items():
        rows = {"thresholds 0.5": {**cal["thresholds 0.5"], "delta_seld": {"mean": 0.0, "sd": 0.0, "better_in": 0,
                                                                            "n": n}},
                "calibrated": {**cal["calibrated"], "delta_seld": cal["delta_seld"]}}
        lines += ["", f"## Calibration (`{data}`, base model)", "", *_table(rows, "thresholds", "0.5")]
    for data, oracle in agg["oracle"].items():
        lines += ["", f"## Oracle scorings (`{data}`, base model)", "", *_table(oracle, "scoring", "predicted")]
    return "\n".join(lines) + "\n"


def write_aggregate(folders: Sequence[str | Path], output_dir: str | Path) -> Path:
    """Aggregate the studies in `folders` into `output_dir/AGGREGATE.md` and `output_dir/aggregate.json`."""
    folders = [str(f) for f in folders]
    agg = aggregate(load_studies(folders))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "aggregate.json").write_text(json.dumps({"folders": folders, **agg}, indent=2))
    path = out / AGGREGATE_FILE
    path.write_text(render_aggregate(agg, folders))
    return path


__all__ = ["AGGREGATE_FILE", "aggregate", "load_studies", "render_aggregate", "write_aggregate"]

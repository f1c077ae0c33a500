"""`at2seld-evaluate`: score a folder of DCASE prediction CSVs against reference metadata.

    at2seld-evaluate --ref REF_DIR --pred PRED_DIR [--metric dcase2023|dcase2024|dcase2019]
                     [--average macro|micro] [--jackknife] [--json]

REF_DIR is read as the official code reads it (`REF_DIR/<split>/*.csv`, polar rows; for dcase2019
TAU2019 metadata `REF_DIR[/<split>]/*.csv`); PRED_DIR holds one CSV per recording, in the
baseline's Cartesian form or as polar rows. With --json one JSON object is printed with ER, F, LE,
LR, SELD (and class-wise arrays under "classwise" in macro mode).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from ..decoding_at2seld import read_dcase_csv
from .io import read_prediction_folder, read_reference_folder
from .metrics import compute_seld_metrics
from .metrics_2019 import compute_dcase2019_metrics, read_tau2019_metadata, tau2019_events_to_rows

DEFAULT_CLASSES = {"dcase2023": 13, "dcase2024": 13, "dcase2019": 11}


def read_folders_2019(ref_dir, pred_dir) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """TAU2019 metadata (REF_DIR/*.csv or REF_DIR/<split>/*.csv) -> 2019 rows per file, and the
    prediction CSVs of PRED_DIR (2019 `frame,class,azi,ele` or later polar/Cartesian forms)."""
    root = Path(ref_dir)
    files = sorted(root.glob("*.csv")) + sorted(root.glob("*/*.csv"))
    if not files:
        raise FileNotFoundError(f"No TAU2019 metadata CSV in {str(root)!r} (expected metadata_dev/*.csv).")
    refs = {p.name: tau2019_events_to_rows(read_tau2019_metadata(p)) for p in files}
    preds = {p.name: read_dcase_csv(p) for p in sorted(Path(pred_dir).glob("*.csv"))}
    if not preds:
        raise FileNotFoundError(f"No prediction CSV in {str(pred_dir)!r}.")
    return refs, preds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="at2seld-evaluate",
        description="DCASE SELD scores of prediction CSVs (numbers identical to the official evaluation code).",
    )
    p.add_argument("--ref", required=True, help="reference folder: REF_DIR/<split>/*.csv (DCASE metadata_dev layout)")
    p.add_argument("--pred", required=True, help="prediction folder: PRED_DIR/<recording>.csv")
    p.add_argument("--metric", default="dcase2023", choices=["dcase2023", "dcase2024", "dcase2019"])
    p.add_argument("--average", default="macro", choices=["macro", "micro"], help="class averaging (2020-2024 metrics)")
    p.add_argument("--jackknife", action="store_true", help="leave-one-file-out estimates and 95%% confidence intervals")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--num-classes", type=int, default=None, help="default: 13 (STARSS23), 11 for dcase2019")
    p.add_argument("--doa-threshold", type=float, default=20.0, help="degrees (location-aware detection)")
    p.add_argument(
        "--missing", default=None, choices=["error", "empty", "skip"],
        help="reference files without prediction: error (default), empty prediction, or skip (official)",
    )  # fmt: skip
    p.add_argument(
        "--official-quirks", action="store_true",
        help="reproduce the official bugs (jackknife point values of the last leave-one-out run; skip missing files)",
    )  # fmt: skip
    return p


def _finite(x):
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no NaN
    return x


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    num_classes = args.num_classes or DEFAULT_CLASSES[args.metric]
    try:
        if args.metric == "dcase2019":
            if args.jackknife:
                raise ValueError("--jackknife is not available for dcase2019 (the official 2019 code has none).")
            refs, preds = read_folders_2019(args.ref, args.pred)
            result = compute_dcase2019_metrics(refs, preds, num_classes, missing=args.missing or "error")
        else:
            # the 2024 code reads STARSS23 reference distances in cm and converts them to m
            refs = read_reference_folder(args.ref, distance_scale=0.01 if args.metric == "dcase2024" else 1.0)
            preds = read_prediction_folder(args.pred)
            result = compute_seld_metrics(
                refs, preds, num_classes, average=args.average, doa_threshold=args.doa_threshold, metric=args.metric,
                jackknife=args.jackknife, official_quirks=args.official_quirks, missing=args.missing,
            )  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        print(f"at2seld-evaluate: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_finite(result)))
        return 0
    print(f"{args.metric} ({'' if args.metric == 'dcase2019' else args.average + ', '}{result['num_files']} files)")
    ci = result.get("jackknife", {})

    def fmt(name, scale=1.0, digits=3):
        s = f"{result[name] * scale:.{digits}f}"
        if name in ci:
            lo, hi = ci[name]["ci"]
            s += f" [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"
        return s

    print(f"SELD score: {fmt('SELD')}")
    print(f"ER: {fmt('ER')}  F: {fmt('F', 100, 1)} %")
    print(f"LE: {fmt('LE', 1, 1)} deg  LR: {fmt('LR', 100, 1)} %")
    if "RDE" in result:
        print(f"DOAE: {fmt('DOAE', 1, 1)} deg  RDE: {fmt('RDE')}  DE: {fmt('DE', 1, 2)}")
    if "classwise" in result:
        cw = result["classwise"]
        names = [k for k in ("ER", "F", "LE", "DE", "RDE", "LR", "SELD") if k in cw]
        print("class\t" + "\t".join(names))
        for c in range(num_classes):
            print(f"{c}\t" + "\t".join(f"{cw[n][c]:.3f}" for n in names))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

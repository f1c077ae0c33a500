"""SELD evaluation: DCASE metrics (2019, 2020-2023, 2024), threshold calibration, oracle analysis.

The numbers are those the official DCASE evaluation code prints on the same files; see
docs/metrics.md for every reproduced quirk and the two official bugs behind `official_quirks`.
"""

from pathlib import Path

from ..decoding_at2seld import decode, read_dcase_csv, write_dcase_csv
from .calibration import CalibrationResult, calibrate_thresholds
from .io import read_prediction_folder, read_reference_folder
from .metrics import compute_seld_metrics, count_file, jackknife_estimate, scores_from_counts
from .metrics_2019 import compute_dcase2019_metrics, read_tau2019_metadata, tau2019_events_to_rows
from .oracle import oracle_activity_rows, oracle_analysis, oracle_doa_rows

#: folder of the `evaluate` metric module: `evaluate.load(SELD_METRIC_PATH)`
SELD_METRIC_PATH = str(Path(__file__).with_name("seld_metric") / "seld_metric.py")

__all__ = [
    "SELD_METRIC_PATH",
    "CalibrationResult",
    "calibrate_thresholds",
    "compute_dcase2019_metrics",
    "compute_seld_metrics",
    "count_file",
    "decode",
    "jackknife_estimate",
    "oracle_activity_rows",
    "oracle_analysis",
    "oracle_doa_rows",
    "read_dcase_csv",
    "read_prediction_folder",
    "read_reference_folder",
    "read_tau2019_metadata",
    "scores_from_counts",
    "tau2019_events_to_rows",
    "write_dcase_csv",
]

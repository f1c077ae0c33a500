"""The diagnostic study (`at2seld-study`): training variants (class balancing, focal loss, DOA supervision),
threshold calibration, oracle activity and a transfer matrix, from one base configuration. See docs/study.md."""

from .aggregate import aggregate, write_aggregate
from .report import render_report, write_report
from .runner import (
    DataSource,
    StudyTraining,
    parse_data_arg,
    run_study,
    score_transfer,
    train_or_reuse,
    transfer_class_map,
)
from .spec import DEFAULT_SPEC_PATH, StudySpec, load_spec, validate_spec

__all__ = [
    "DEFAULT_SPEC_PATH",
    "DataSource",
    "StudySpec",
    "StudyTraining",
    "aggregate",
    "load_spec",
    "parse_data_arg",
    "render_report",
    "run_study",
    "score_transfer",
    "train_or_reuse",
    "transfer_class_map",
    "validate_spec",
    "write_aggregate",
    "write_report",
]

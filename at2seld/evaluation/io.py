"""Reading DCASE reference and prediction folders into {recording id: rows}.

References are read as the official code reads them: every CSV in every sub-folder of REF_DIR
(`REF_DIR/<split>/*.csv`, e.g. metadata_dev/dev-test-sony), polar `frame,class,source,az,el[,dist]`.
Predictions: every CSV directly in PRED_DIR, Cartesian `frame,class,track,x,y,z,distance` (the
baseline's output) or polar rows. Recordings are keyed by file name (with `.csv`), as officially.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..decoding_at2seld import read_dcase_csv

__all__ = ["read_prediction_folder", "read_reference_folder"]


def read_reference_folder(ref_dir: str | os.PathLike, distance_scale: float = 1.0) -> dict[str, np.ndarray]:
    """REF_DIR/<split>/*.csv -> {file name: rows}. `distance_scale=0.01` turns STARSS23 cm into m
    (what the DCASE 2024 code does for references). A CSV directly in REF_DIR is also accepted."""
    root = Path(ref_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Reference folder {str(root)!r} does not exist; expected REF_DIR/<split>/*.csv.")
    files = sorted(p for p in root.glob("*/*.csv")) + sorted(root.glob("*.csv"))
    if not files:
        raise FileNotFoundError(
            f"No CSV found in {str(root)!r} or its sub-folders; expected the DCASE layout REF_DIR/<split>/*.csv "
            "(e.g. metadata_dev/dev-test-sony/fold4_room23_mix001.csv)."
        )
    out: dict[str, np.ndarray] = {}
    for p in files:
        if p.name in out:
            raise ValueError(f"Reference file name {p.name!r} appears in two splits; recordings are keyed by file name.")
        out[p.name] = read_dcase_csv(p, distance_scale=distance_scale)
    return out


def read_prediction_folder(pred_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """PRED_DIR/*.csv -> {file name: polar rows}; Cartesian files are converted as the official code does."""
    root = Path(pred_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Prediction folder {str(root)!r} does not exist.")
    files = sorted(root.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"No prediction CSV in {str(root)!r}; expected PRED_DIR/<recording>.csv.")
    return {p.name: read_dcase_csv(p) for p in files}

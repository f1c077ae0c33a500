"""DCASE SELD metric for the Hugging Face `evaluate` library.

Load it offline from the installed package:

    import evaluate
    from at2seld.evaluation import SELD_METRIC_PATH
    seld = evaluate.load(SELD_METRIC_PATH)
    seld.compute(predictions=[rows_rec1, rows_rec2], references=[ref_rec1, ref_rec2], num_classes=13)

Each prediction/reference is one recording: a list of rows `(frame, class, track, azimuth_deg,
elevation_deg[, distance])` (100 ms frames). Keyword arguments of `compute` are those of
`at2seld.evaluation.compute_seld_metrics` (num_classes, average, doa_threshold, metric, jackknife,
official_quirks). The result is its dict: ER, F, LE, LR, SELD (+ "classwise" in macro mode).
"""

import datasets
import evaluate

from at2seld.evaluation.metrics import compute_seld_metrics

_DESCRIPTION = __doc__
_CITATION = """\
@inproceedings{mesaros2019joint,
  title={Joint Measurement of Localization and Detection of Sound Events},
  author={Mesaros, Annamaria and Adavanne, Sharath and Politis, Archontis and Heittola, Toni and Virtanen, Tuomas},
  booktitle={IEEE WASPAA}, year={2019}
}
"""
_KWARGS_DESCRIPTION = """
Args:
    predictions: list (one item per recording) of lists of rows (frame, class, track, azimuth, elevation[, distance]).
    references: same structure, reference rows.
    num_classes (int): number of classes (13 for STARSS23).
    average (str): "macro" (default) or "micro".
    doa_threshold (float): degrees, default 20.
    metric (str): "dcase2023" (default) or "dcase2024" (rows need distances).
    jackknife (bool), official_quirks (bool), missing (str): see compute_seld_metrics.
Returns:
    dict with ER, F, LE, LR, SELD (floats), "classwise" (macro), "jackknife" (if asked), "num_files".
Example:
    >>> seld = evaluate.load(SELD_METRIC_PATH)
    >>> ref = [[t, 0, 0, 0.0, 0.0] for t in range(10)]
    >>> seld.compute(predictions=[ref], references=[ref], num_classes=1)["F"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SeldMetric(evaluate.Metric):
    def _info(self):
        rows = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": rows, "references": rows}),
            reference_urls=["https://github.com/sharathadavanne/seld-dcase2023"],
        )

    def _compute(self, predictions, references, num_classes=13, **kwargs):
        names = [f"recording_{i:05d}" for i in range(len(references))]
        return compute_seld_metrics(
            dict(zip(names, references)), dict(zip(names, predictions)), num_classes, **kwargs
        )

"""The `evaluate` metric module: `evaluate.load(at2seld.evaluation.SELD_METRIC_PATH)`."""

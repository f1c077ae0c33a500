"""The informed multi-stage architecture search (`at2seld-nas`): Optuna studies, search spaces as data, reports."""

from .search import NASSettings, chosen_trial, open_storage, run_search, stage_studies
from .space import DEFAULT_SPACE_FILES, SearchSpace, SearchSpaceError, load_search_space

__all__ = [
    "DEFAULT_SPACE_FILES",
    "NASSettings",
    "SearchSpace",
    "SearchSpaceError",
    "chosen_trial",
    "load_search_space",
    "open_storage",
    "run_search",
    "stage_studies",
]

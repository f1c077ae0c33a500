"""Search spaces as data: one YAML (or JSON) file per stage, mapped onto `AT2SELDConfig` fields.

File format (see `at2seld/nas/spaces/*.yaml` for the shipped ones)::

    stage: 2                       # position in the informed search (1, 2, 3, ...)
    name: capacity                 # short name, used in the study name and the report
    description: free text
    fixed:                         # AT2SELDConfig fields set for every trial of this stage (optional)
      dropout: 0.0
    parameters:
      spatial_encoder:             # a parameter name; not a config field -> every choice is a mapping of fields
        type: categorical
        choices:
          "3 blocks 16-32-64": {spatial_channels: [16, 32, 64], spatial_time_pool: [5, 1, 1], spatial_freq_pool: [2, 2, 2]}
      track_layers:                # a config field -> choices are values of that field
        type: categorical
        choices: [1, 2]
      gru_hidden:
        type: int
        low: 32
        high: 128
        step: 32

Categorical `choices` are a list of values (labelled by their text) or a mapping label -> value. `int` takes
`low`, `high`, optional `step` (default 1) and `log`; `float` takes `low`, `high`, optional `step` and `log`.
`field` names the config field explicitly when the parameter name differs from it.

Every choice (and both ends of every range) is checked by building an `AT2SELDConfig` from the search's base
configuration, the stage's `fixed` fields and that choice: a file that names an unknown field or a value the model
cannot take fails at load time with the file and the key in the message, not hours into a search.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..configuration_at2seld import AT2SELDConfig

SPACES_DIR = Path(__file__).with_name("spaces")
DEFAULT_SPACE_FILES = (
    SPACES_DIR / "stage1_descriptors.yaml",
    SPACES_DIR / "stage2_capacity.yaml",
    SPACES_DIR / "stage3_fusion.yaml",
)
_TOP_KEYS = {"stage", "name", "description", "fixed", "parameters"}
_PARAM_KEYS = {
    "categorical": {"type", "field", "choices", "description"},
    "int": {"type", "field", "low", "high", "step", "log", "description"},
    "float": {"type", "field", "low", "high", "step", "log", "description"},
}
# fields a search must not set: bookkeeping of transformers, the label set (comes from the data), calibration output
_FORBIDDEN_FIELDS = {"id2label", "label2id", "class_thresholds", "num_labels"}


def config_fields() -> set[str]:
    """Names of the `AT2SELDConfig` fields a search space may set (the model's own, not the generic ones)."""
    from transformers import PreTrainedConfig

    generic = {f.name for f in dataclasses.fields(PreTrainedConfig)} if dataclasses.is_dataclass(PreTrainedConfig) else set()
    return {f.name for f in dataclasses.fields(AT2SELDConfig)} - generic - _FORBIDDEN_FIELDS


class SearchSpaceError(ValueError):
    """A search-space file that cannot be used; the message names the file and the key."""


@dataclass
class Parameter:
    """One searched parameter. `choices`: label -> {config field: value} for categorical parameters."""

    name: str
    type: str
    field: str | None = None
    choices: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def labels(self) -> list[str]:
        return list(self.choices)

    def overrides(self, value: Any) -> dict[str, Any]:
        """Config fields for a sampled value (a label for categorical parameters, a number otherwise)."""
        if self.type == "categorical":
            return dict(self.choices[value])
        return {self.field: int(value) if self.type == "int" else float(value)}

    def suggest(self, trial) -> Any:
        """Sample with an Optuna trial; returns the label (categorical) or the number."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, self.labels)
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)


@dataclass
class SearchSpace:
    """One stage of the search, as read from `path`."""

    stage: int
    name: str
    description: str
    fixed: dict[str, Any]
    parameters: list[Parameter]
    path: str = ""

    @property
    def is_finite(self) -> bool:
        return all(p.type == "categorical" for p in self.parameters)

    @property
    def grid(self) -> dict[str, list[str]]:
        """The full grid of a categorical space (parameter -> labels), for `optuna.samplers.GridSampler`."""
        if not self.is_finite:
            raise ValueError(f"{self.path}: the space has numeric ranges and no finite grid.")
        return {p.name: p.labels for p in self.parameters}

    @property
    def grid_size(self) -> int:
        return math.prod(len(p.choices) for p in self.parameters) if self.is_finite else 0

    def overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """Config fields of a trial: the stage's `fixed` fields, then every parameter's choice."""
        out = dict(self.fixed)
        for p in self.parameters:
            if p.name not in params:
                raise KeyError(f"{self.path}: the trial has no value for parameter {p.name!r}.")
            out.update(p.overrides(params[p.name]))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "name": self.name, "description": self.description, "fixed": self.fixed,
                "parameters": [dataclasses.asdict(p) for p in self.parameters], "path": self.path}


def _read(path: Path) -> Any:
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


def _config_error(base: dict[str, Any], overrides: dict[str, Any]) -> str | None:
    try:
        AT2SELDConfig(**{**base, **overrides})
    except Exception as err:  # noqa: BLE001 - strict dataclass validation raises its own exception types
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return None


def load_search_space(path: str | Path, base_config: dict[str, Any] | None = None) -> SearchSpace:
    """Read and validate a stage file.

    Args:
        path: YAML (`.yaml`/`.yml`) or JSON file.
        base_config: the configuration the stage starts from (`AT2SELDConfig.to_dict()` style); every choice is
            validated on top of it. Default: `AT2SELDConfig.tiny()`.
    Raises:
        SearchSpaceError naming the file and the key (`parameters.<name>.choices.<label>`) of the first problem.
    """
    path = Path(path)
    if not path.is_file():
        raise SearchSpaceError(f"Search-space file {path} does not exist.")
    try:
        data = _read(path)
    except Exception as err:
        raise SearchSpaceError(f"{path}: cannot parse ({err}).") from err
    where = str(path)
    if not isinstance(data, dict):
        raise SearchSpaceError(f"{where}: expected a mapping with keys {sorted(_TOP_KEYS)}, got {type(data).__name__}.")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SearchSpaceError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}.")
    for key in ("stage", "name", "parameters"):
        if key not in data:
            raise SearchSpaceError(f"{where}: missing key {key!r}.")
    if not isinstance(data["stage"], int) or data["stage"] < 1:
        raise SearchSpaceError(f"{where}: key 'stage' must be a positive integer, got {data['stage']!r}.")
    if not isinstance(data["name"], str) or not data["name"].replace("_", "").replace("-", "").isalnum():
        raise SearchSpaceError(f"{where}: key 'name' must be a short word (letters, digits, - or _), got {data['name']!r}.")
    known = config_fields()
    base = dict(base_config) if base_config is not None else AT2SELDConfig.tiny().to_dict()
    for key in ("model_type", "transformers_version", "architectures", "auto_map"):
        base.pop(key, None)

    def check_fields(mapping: Any, key: str) -> dict[str, Any]:
        if not isinstance(mapping, dict):
            raise SearchSpaceError(f"{where}: key {key!r} must be a mapping of AT2SELDConfig fields, got {mapping!r}.")
        bad = sorted(set(mapping) - known)
        if bad:
            raise SearchSpaceError(
                f"{where}: key {key!r} sets unknown AT2SELDConfig field(s) {bad}; known fields: {sorted(known)}."
            )
        return dict(mapping)

    fixed = check_fields(data.get("fixed") or {}, "fixed")
    err = _config_error(base, fixed)
    if err:
        raise SearchSpaceError(f"{where}: key 'fixed' gives an impossible configuration: {err}")
    params_data = data["parameters"]
    if not isinstance(params_data, dict) or not params_data:
        raise SearchSpaceError(f"{where}: key 'parameters' must be a non-empty mapping of parameter name -> spec.")
    parameters = []
    for name, spec in params_data.items():
        key = f"parameters.{name}"
        if not isinstance(spec, dict) or spec.get("type") not in _PARAM_KEYS:
            raise SearchSpaceError(f"{where}: key {key!r} needs 'type' in {sorted(_PARAM_KEYS)}, got {spec!r}.")
        kind = spec["type"]
        unknown = sorted(set(spec) - _PARAM_KEYS[kind])
        if unknown:
            raise SearchSpaceError(f"{where}: key {key!r} has unknown entr(y/ies) {unknown}; a {kind} parameter "
                                   f"takes {sorted(_PARAM_KEYS[kind])}.")
        target = spec.get("field", name if name in known else None)
        if target is not None and target not in known:
            raise SearchSpaceError(f"{where}: key '{key}.field' names unknown AT2SELDConfig field {target!r}.")
        param = Parameter(name=name, type=kind, field=target)
        if kind == "categorical":
            raw = spec.get("choices")
            if isinstance(raw, list):
                raw = {(json.dumps(v) if not isinstance(v, str) else v): v for v in raw}
            if not isinstance(raw, dict) or not raw:
                raise SearchSpaceError(f"{where}: key '{key}.choices' must be a non-empty list or mapping.")
            for label, value in raw.items():
                ckey = f"{key}.choices.{label}"
                if target is None:
                    param.choices[str(label)] = check_fields(value, ckey)
                else:
                    param.choices[str(label)] = {target: value}
                err = _config_error(base, {**fixed, **param.choices[str(label)]})
                if err:
                    raise SearchSpaceError(f"{where}: key {ckey!r} is not a possible configuration: {err}")
        else:
            if target is None:
                raise SearchSpaceError(f"{where}: key {key!r} is a {kind} range but {name!r} is not an AT2SELDConfig "
                                       "field; add 'field: <config field>'.")
            for bound in ("low", "high"):
                if not isinstance(spec.get(bound), (int, float)) or isinstance(spec.get(bound), bool):
                    raise SearchSpaceError(f"{where}: key '{key}.{bound}' must be a number, got {spec.get(bound)!r}.")
            if spec["low"] > spec["high"]:
                raise SearchSpaceError(f"{where}: key {key!r} has low {spec['low']} > high {spec['high']}.")
            step = spec.get("step")
            if step is not None and (not isinstance(step, (int, float)) or step <= 0):
                raise SearchSpaceError(f"{where}: key '{key}.step' must be a positive number, got {step!r}.")
            if spec.get("log") and spec["low"] <= 0:
                raise SearchSpaceError(f"{where}: key {key!r} is log-scaled and needs low > 0, got {spec['low']}.")
            if kind == "int" and not all(float(spec[b]).is_integer() for b in ("low", "high")):
                raise SearchSpaceError(f"{where}: key {key!r} is an int range with non-integer bounds.")
            param.low, param.high, param.step, param.log = spec["low"], spec["high"], step, bool(spec.get("log"))
            for bound in ("low", "high"):
                err = _config_error(base, {**fixed, **param.overrides(spec[bound])})
                if err:
                    raise SearchSpaceError(f"{where}: key '{key}.{bound}' = {spec[bound]} is not a possible "
                                           f"configuration: {err}")
        parameters.append(param)
    return SearchSpace(stage=data["stage"], name=data["name"], description=str(data.get("description", "")).strip(),
                       fixed=fixed, parameters=parameters, path=where)


__all__ = [
    "DEFAULT_SPACE_FILES",
    "SPACES_DIR",
    "Parameter",
    "SearchSpace",
    "SearchSpaceError",
    "config_fields",
    "load_search_space",
]

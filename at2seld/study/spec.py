"""The study specification: base training overrides and named variants (YAML), checked when it is read."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..configuration_at2seld import DESCRIPTOR_FAMILIES, FUSION_TYPES

DEFAULT_SPEC_PATH = Path(__file__).with_name("default_study.yaml")
BASE = "base"  # name of the base run (a variant may not use it)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _is_bool(v):
    return isinstance(v, bool)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# key -> (check, what the value must be)
OVERRIDE_CHECKS: dict[str, tuple[Any, str]] = {
    "class_balancing": (_is_bool, "true or false"),
    "sed_loss": (lambda v: v in ("bce", "focal"), "bce | focal"),
    "focal_gamma": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "doa_supervision": (lambda v: v in ("active", "all"), "active | all"),
    "backbone_type": (lambda v: v in ("ast", "beats", "none"), "ast | beats | none"),
    "backbone_name_or_path": (lambda v: isinstance(v, str) and v != "", "a Hub id or a folder"),
    "backbone_trainable_layers": (lambda v: _is_int(v) and v >= -1, "an int >= -1 (0 frozen, -1 all)"),
    "unfreeze_backbone_after_epochs": (lambda v: _is_number(v) and v >= 0, "a number of epochs >= 0"),
    "descriptors": (
        lambda v: isinstance(v, list) and len(v) > 0 and all(d in DESCRIPTOR_FAMILIES for d in v),
        f"a non-empty list of {sorted(DESCRIPTOR_FAMILIES)}",
    ),
    "fusion": (lambda v: v in FUSION_TYPES, " | ".join(FUSION_TYPES)),
    "num_tracks": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "predict_distance": (_is_bool, "true or false"),
}
TOP_LEVEL_KEYS = ("base", "variants", "description")


@dataclass
class StudySpec:
    """base: training overrides of every run; variants: name -> overrides against `base` (in file order)."""

    base: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    path: str = ""

    def overrides(self, variant: str) -> dict[str, Any]:
        """Overrides of one run: `base` for "base", `base` updated by the variant's otherwise."""
        if variant == BASE:
            return dict(self.base)
        if variant not in self.variants:
            raise KeyError(f"Unknown variant {variant!r}; the spec {self.path} has {list(self.variants)}.")
        return {**self.base, **self.variants[variant]}

    def select(self, names: Sequence[str] | None) -> StudySpec:
        """The same spec with only the variants `names` (None: all), in the given order."""
        if names is None:
            return self
        unknown = [n for n in names if n not in self.variants]
        if unknown:
            raise ValueError(f"Unknown variant(s) {unknown} for --variants; the spec {self.path} has {list(self.variants)}.")
        return StudySpec(dict(self.base), {n: self.variants[n] for n in names}, self.description, self.path)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "description": self.description, "base": self.base, "variants": self.variants}


def _check_overrides(overrides: Any, where: str, path: str) -> dict[str, Any]:
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{path}: `{where}` must be a mapping of overrides (key: value), got {type(overrides).__name__}.")  # noqa: TRY004
    for key, value in overrides.items():
        if key not in OVERRIDE_CHECKS:
            raise ValueError(
                f"{path}: unknown key {key!r} in `{where}`; allowed keys: {sorted(OVERRIDE_CHECKS)}."
            )
        check, expected = OVERRIDE_CHECKS[key]
        if not check(value):
            raise ValueError(f"{path}: `{where}.{key}` must be {expected}, got {value!r}.")
    return dict(overrides)


def validate_spec(data: Any, path: str = "<spec>") -> StudySpec:
    """Check a parsed spec (dict) and return it as a `StudySpec`; ValueError naming `path` and the key otherwise."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: a study spec is a mapping with keys {list(TOP_LEVEL_KEYS)}, got {type(data).__name__}.")  # noqa: TRY004
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; allowed: {list(TOP_LEVEL_KEYS)}.")
    base = _check_overrides(data.get("base"), "base", path)
    raw_variants = data.get("variants") or {}
    if not isinstance(raw_variants, Mapping):
        raise ValueError(f"{path}: `variants` must map variant names to overrides, got {type(raw_variants).__name__}.")  # noqa: TRY004
    variants = {}
    for name, overrides in raw_variants.items():
        if not isinstance(name, str) or not _NAME.match(name) or name == BASE:
            raise ValueError(
                f"{path}: variant name {name!r} must be letters, digits, '_', '.', '-' (it becomes a folder name) and "
                f"not {BASE!r}."
            )
        variants[name] = _check_overrides(overrides, f"variants.{name}", path)
        if not variants[name]:
            raise ValueError(f"{path}: variant `{name}` has no overrides; it would repeat the base run.")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ValueError(f"{path}: `description` must be a string.")  # noqa: TRY004
    return StudySpec(base, variants, description, path)


def load_spec(path: str | os.PathLike | None = None) -> StudySpec:
    """Read and check a study spec (YAML); None reads the shipped `default_study.yaml`."""
    import yaml

    p = Path(path) if path is not None else DEFAULT_SPEC_PATH
    if not p.is_file():
        raise FileNotFoundError(f"Study spec {p} does not exist; pass --spec with a YAML file (see {DEFAULT_SPEC_PATH}).")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{p}: not valid YAML: {err}") from err
    return validate_spec(data, str(p))


__all__ = ["BASE", "DEFAULT_SPEC_PATH", "OVERRIDE_CHECKS", "StudySpec", "load_spec", "validate_spec"]

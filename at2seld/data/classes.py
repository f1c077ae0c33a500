"""Class lists of the DCASE SELD data sets and the class-mapping table between them.

Index orders follow each year's DCASE baseline (`sharathadavanne/seld-dcase2019` ... `seld-dcase2023`):
TAU2019 from the 2019 baseline README table, TAU-NIGENS 2020/2021 from the baselines' `unique_classes`, STARSS22/23
from the STARSS data-set description (13 classes, same order in both years).

The mapping table assigns every class a *concept* (a short, data-set independent name). Two classes of different
data sets correspond when they share a concept, or when the source concept is a child of the target concept (e.g.
TAU-NIGENS `female_speech` -> TAU2019 `speech`, `piano` -> STARSS `Musical instrument`). The reverse direction
(a coarse class onto one of several finer ones, e.g. TAU2019 `speech` -> STARSS female/male speech) is ambiguous
and left unmapped, as are classes without a counterpart.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

DATASET_NAMES = ("tau2019", "tau2020", "tau2021", "starss22", "starss23", "synthetic")

TAU2019_CLASSES = (
    "knock", "drawer", "clearthroat", "phone", "keysDrop", "speech", "keyboard", "pageturn", "cough", "doorslam",
    "laughter",
)
TAU2020_CLASSES = (
    "alarm", "baby", "crash", "dog", "engine", "female_scream", "female_speech", "fire", "footsteps", "knock",
    "male_scream", "male_speech", "phone", "piano",
)
TAU2021_CLASSES = (
    "alarm", "baby", "crash", "dog", "female_scream", "female_speech", "footsteps", "knock", "male_scream",
    "male_speech", "phone", "piano",
)
STARSS_CLASSES = (
    "Female speech, woman speaking", "Male speech, man speaking", "Clapping", "Telephone", "Laughter",
    "Domestic sounds", "Walk, footsteps", "Door, open or close", "Music", "Musical instrument", "Water tap, faucet",
    "Bell", "Knock",
)
# The procedural classes of `at2seld.data.synth` (index = class column of the synthetic CSVs, in every profile).
SYNTH_CLASSES = (
    "tone", "chirp", "rumble", "hiss", "knock", "babble", "bell", "footsteps", "phone", "clapping",
)

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "tau2019": TAU2019_CLASSES,
    "tau2020": TAU2020_CLASSES,
    "tau2021": TAU2021_CLASSES,
    "starss22": STARSS_CLASSES,
    "starss23": STARSS_CLASSES,
    "synthetic": SYNTH_CLASSES,
}

# Concept of every class, aligned with CLASS_NAMES (None: no counterpart anywhere).
CLASS_CONCEPTS: dict[str, tuple[str | None, ...]] = {
    "tau2019": (
        "knock", "drawer", "throat_clearing", "telephone", "keys_drop", "speech", "keyboard", "page_turn", "cough",
        "door_slam", "laughter",
    ),
    "tau2020": (
        "alarm", "baby_cry", "crash", "dog", "engine", "female_scream", "female_speech", "fire", "footsteps",
        "knock", "male_scream", "male_speech", "telephone", "piano",
    ),
    "tau2021": (
        "alarm", "baby_cry", "crash", "dog", "female_scream", "female_speech", "footsteps", "knock", "male_scream",
        "male_speech", "telephone", "piano",
    ),
    "starss22": (
        "female_speech", "male_speech", "clapping", "telephone", "laughter", "domestic_sounds", "footsteps", "door",
        "music", "musical_instrument", "water_tap", "bell", "knock",
    ),
    "synthetic": (
        "musical_instrument", None, None, "water_tap", "knock", "speech", "bell", "footsteps", "telephone",
        "clapping",
    ),
}
CLASS_CONCEPTS["starss23"] = CLASS_CONCEPTS["starss22"]

# child -> parent: a child class may be scored as its parent class in a data set that only has the parent.
CONCEPT_PARENTS: dict[str, str] = {
    "female_speech": "speech",
    "male_speech": "speech",
    "piano": "musical_instrument",
    "door_slam": "door",
    "female_scream": "scream",
    "male_scream": "scream",
}


def check_dataset_name(name: str) -> str:
    """Return `name` if it is a known data-set name, else raise a ValueError listing the known ones."""
    if name not in CLASS_NAMES:
        raise ValueError(f"Unknown data set {name!r}; expected one of {list(DATASET_NAMES)}.")
    return name


def num_classes(dataset: str) -> int:
    """Number of classes of a data set (11, 14, 12, 13, 13, 10)."""
    return len(CLASS_NAMES[check_dataset_name(dataset)])


def class_mapping(source_dataset: str, target_dataset: str) -> dict[int, int]:
    """Source class index -> target class index for every class that has one unambiguous counterpart.

    A source class maps to the target class with the same concept; failing that, to the target class whose concept
    is the source concept's parent. Classes missing from the returned dict are unmapped (see `unmapped_classes`).
    """
    src = CLASS_CONCEPTS[check_dataset_name(source_dataset)]
    tgt = CLASS_CONCEPTS[check_dataset_name(target_dataset)]
    out: dict[int, int] = {}
    for i, concept in enumerate(src):
        if concept is None:
            continue
        for candidate in (concept, CONCEPT_PARENTS.get(concept)):
            hits = [j for j, c in enumerate(tgt) if candidate is not None and c == candidate]
            if len(hits) == 1:
                out[i] = hits[0]
                break
    return out


def unmapped_classes(source_dataset: str, target_dataset: str) -> list[str]:
    """Names of the source classes that `class_mapping` cannot place in the target label set."""
    mapping = class_mapping(source_dataset, target_dataset)
    return [name for i, name in enumerate(CLASS_NAMES[source_dataset]) if i not in mapping]


def map_classes(rows: Iterable[Sequence], source_dataset: str, target_dataset: str,
                drop_unmapped: bool = True) -> list:
    """Rewrite the class index of metadata rows from one data set's label set to another's.

    Args:
        rows: `MetadataRow`s or tuples `(frame, class_index, source_id, azimuth, elevation[, distance])`.
        drop_unmapped: rows of classes without a counterpart are dropped (with a warning giving the count) when True;
            when False such a row raises a ValueError.
    Returns:
        A list of rows of the same type with `class_index` replaced.
    """
    mapping = class_mapping(source_dataset, target_dataset)
    out, dropped = [], 0
    for row in rows:
        cls = int(row[1])
        if cls not in mapping:
            if not drop_unmapped:
                raise ValueError(
                    f"Class {cls} ({CLASS_NAMES[source_dataset][cls]!r}) of {source_dataset} has no counterpart in "
                    f"{target_dataset}; pass drop_unmapped=True to drop such rows."
                )
            dropped += 1
            continue
        new = (row[0], mapping[cls], *tuple(row)[2:])
        out.append(type(row)(*new) if hasattr(row, "_fields") else new)
    if dropped:
        warnings.warn(
            f"map_classes: dropped {dropped} row(s) of {source_dataset} classes without a {target_dataset} counterpart "
            f"({unmapped_classes(source_dataset, target_dataset)}).",
            stacklevel=2,
        )
    return out


def mapping_table_markdown(datasets: Sequence[str] = ("tau2019", "tau2020", "tau2021", "starss23", "synthetic")) -> str:
    """The concept table as Markdown: one row per concept, one column per data set (class index: name)."""
    concepts: list[str] = []
    for ds in datasets:
        for c in CLASS_CONCEPTS[ds]:
            if c is not None and c not in concepts:
                concepts.append(c)
    lines = ["| concept | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    for concept in concepts:
        cells = []
        for ds in datasets:
            names = [f"{i}: {CLASS_NAMES[ds][i]}" for i, c in enumerate(CLASS_CONCEPTS[ds]) if c == concept]
            cells.append(", ".join(names) or "-")
        parent = CONCEPT_PARENTS.get(concept)
        label = f"{concept} (< {parent})" if parent else concept
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "CLASS_CONCEPTS",
    "CLASS_NAMES",
    "CONCEPT_PARENTS",
    "DATASET_NAMES",
    "STARSS_CLASSES",
    "SYNTH_CLASSES",
    "TAU2019_CLASSES",
    "TAU2020_CLASSES",
    "TAU2021_CLASSES",
    "check_dataset_name",
    "class_mapping",
    "map_classes",
    "mapping_table_markdown",
    "num_classes",
    "unmapped_classes",
]

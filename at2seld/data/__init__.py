"""DCASE data layer of at2seld: metadata readers, manifests, `datasets` integration, training windows, and the
synthetic FOA scene generator. See docs/data.md.

Data-set names used everywhere: "tau2019", "tau2020", "tau2021", "starss22", "starss23", "synthetic".
"""

from .classes import (
    CLASS_CONCEPTS,
    CLASS_NAMES,
    DATASET_NAMES,
    STARSS_CLASSES,
    SYNTH_CLASSES,
    TAU2019_CLASSES,
    TAU2020_CLASSES,
    TAU2021_CLASSES,
    class_mapping,
    map_classes,
    num_classes,
    unmapped_classes,
)
from .dcase import MetadataError, MetadataRow, read_metadata, write_metadata
from .hf import convert_to_parquet, decode_audio, example_rows, load_dcase, push_to_hub
from .manifests import LAYOUTS, DatasetLayoutError, Recording, scan_dcase, select_split
from .synth import PROFILES, ROOM_PRESETS, SynthesisReport, synthesize
from .windows import CachedChunkCollator, CachedFeatureDataset, FOARecordingDataset, SELDCollator

__all__ = [
    "CachedChunkCollator",
    "CachedFeatureDataset",
    "CLASS_CONCEPTS",
    "CLASS_NAMES",
    "DATASET_NAMES",
    "LAYOUTS",
    "PROFILES",
    "ROOM_PRESETS",
    "STARSS_CLASSES",
    "SYNTH_CLASSES",
    "TAU2019_CLASSES",
    "TAU2020_CLASSES",
    "TAU2021_CLASSES",
    "DatasetLayoutError",
    "FOARecordingDataset",
    "MetadataError",
    "MetadataRow",
    "Recording",
    "SELDCollator",
    "SynthesisReport",
    "class_mapping",
    "convert_to_parquet",
    "decode_audio",
    "example_rows",
    "load_dcase",
    "map_classes",
    "num_classes",
    "push_to_hub",
    "read_metadata",
    "scan_dcase",
    "select_split",
    "synthesize",
    "unmapped_classes",
    "write_metadata",
]

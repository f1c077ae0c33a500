"""Synthetic FOA SELD scene generator (the embedded default data of at2seld); see `scene.synthesize`."""

from .room import ROOM_PRESETS, RoomPreset
from .scene import (
    PROFILES,
    SAMPLING_RATE,
    SceneConfig,
    SceneEvent,
    SceneResult,
    SynthesisReport,
    SynthProfile,
    label_rows,
    plan_scene,
    render_scene,
    synthesize,
)
from .sources import DURATION_RANGE_S, GENERATORS, generate_source

__all__ = [
    "DURATION_RANGE_S",
    "GENERATORS",
    "PROFILES",
    "ROOM_PRESETS",
    "SAMPLING_RATE",
    "RoomPreset",
    "SceneConfig",
    "SceneEvent",
    "SceneResult",
    "SynthProfile",
    "SynthesisReport",
    "generate_source",
    "label_rows",
    "plan_scene",
    "render_scene",
    "synthesize",
]

"""AT2SELD configuration and the catalogue of FOA spatial descriptors.

This file travels to a Hub repository as remote code: it imports only the standard library,
``huggingface_hub`` and ``transformers``.
"""

from __future__ import annotations

import copy
import importlib
import math
import os
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import ASTConfig, PreTrainedConfig

# --------------------------------------------------------------------------------------------------
# Descriptor catalogue. A descriptor *family* is a group of channels of `spatial_features`; each family
# lives on a frequency axis ("mel": `num_mel_bins` mel bands, "linear": `n_fft // 2` STFT bins).
# Families on different axes cannot be stacked into one (batch, channels, frames, bins) tensor.
# --------------------------------------------------------------------------------------------------
DESCRIPTOR_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    # per-channel log-mel power, ACN channel order
    "logmel": ("mel", ("logmel_w", "logmel_y", "logmel_z", "logmel_x")),
    # energy-normalised active intensity vector, mel-projected (DCASE FOA baseline)
    "iv": ("mel", ("iv_x", "iv_y", "iv_z")),
    # cos/sin of the phase of X, Y, Z relative to W, from mel-projected cross-spectra
    "phase": (
        "mel",
        ("phase_cos_x", "phase_sin_x", "phase_cos_y", "phase_sin_y", "phase_cos_z", "phase_sin_z"),
    ),
    # contrasting interface for the architecture search: linear-frequency log-magnitude of the four
    # channels and the inter-channel phase (cos/sin) of X, Y, Z relative to W, without mel projection
    "linspec": (
        "linear",
        (
            "linmag_w", "linmag_y", "linmag_z", "linmag_x",
            "linphase_cos_x", "linphase_sin_x", "linphase_cos_y", "linphase_sin_y",
            "linphase_cos_z", "linphase_sin_z",
        ),
    ),
}


def descriptor_channel_names(descriptors: list[str] | tuple[str, ...]) -> list[str]:
    """Channel names of `spatial_features`, in order, for a list of descriptor families.

    Raises `ValueError` for an unknown, repeated or empty family list, or for families that live on
    different frequency axes (mel and linear), naming the offending entries.
    """
    if len(descriptors) == 0:
        raise ValueError(
            f"`descriptors` is empty; choose one or more of {sorted(DESCRIPTOR_FAMILIES)}, "
            "e.g. ['logmel', 'phase', 'iv']."
        )
    unknown = [d for d in descriptors if d not in DESCRIPTOR_FAMILIES]
    if unknown:
        raise ValueError(f"Unknown descriptor famil(y/ies) {unknown}; known: {sorted(DESCRIPTOR_FAMILIES)}.")
    if len(set(descriptors)) != len(descriptors):
        raise ValueError(f"`descriptors` lists a family twice: {list(descriptors)}.")
    axes = {d: DESCRIPTOR_FAMILIES[d][0] for d in descriptors}
    if len(set(axes.values())) > 1:
        raise ValueError(
            f"Descriptor families {axes} live on different frequency axes and cannot be stacked; "
            "use the mel families ('logmel', 'iv', 'phase') together, or 'linspec' alone."
        )
    return [name for d in descriptors for name in DESCRIPTOR_FAMILIES[d][1]]


def descriptor_num_bins(descriptors: list[str] | tuple[str, ...], num_mel_bins: int, n_fft: int) -> int:
    """Size of the frequency axis of `spatial_features` for these families."""
    axis = DESCRIPTOR_FAMILIES[descriptors[0]][0]
    return num_mel_bins if axis == "mel" else n_fft // 2


def frames_per_label(sampling_rate: int, hop_length: int, label_resolution: float) -> int:
    """Feature frames per label frame; raises unless the hop divides the label resolution exactly."""
    label_samples = label_resolution * sampling_rate
    ratio = label_samples / hop_length
    if abs(label_samples - round(label_samples)) > 1e-6 or abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise ValueError(
            f"hop_length={hop_length} samples must divide the label resolution "
            f"({label_resolution} s = {label_samples} samples at {sampling_rate} Hz) into a whole number of frames."
        )
    return int(round(ratio))


# STARSS22/23 sound event classes (DCASE 2022-2023 task 3), the default label set.
STARSS23_CLASSES: tuple[str, ...] = (
    "femaleSpeech", "maleSpeech", "clapping", "telephone", "laughter", "domesticSounds", "footsteps",
    "doorCupboard", "music", "musicalInstrument", "waterTap", "bell", "knock",
)
BACKBONE_TYPES = ("ast", "beats", "none")
FUSION_TYPES = ("none", "early", "late", "early+late", "early_concat")
MAX_TRACKS = 4


def _tiny_ast_config_dict() -> dict:
    """A 2-layer, 32-wide random AST (non-overlapping 16x16 frequency patches, 10-frame time stride)."""
    return backbone_config_to_dict(
        ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  frequency_stride=16, time_stride=10, max_length=1024, num_mel_bins=128)
    )


def backbone_config_to_dict(config: PreTrainedConfig | dict | None) -> dict | None:
    """The backbone configuration as a plain JSON-able dict (what `AT2SELDConfig.backbone_config` stores)."""
    if config is None:
        return None
    if isinstance(config, PreTrainedConfig):
        out = config.to_diff_dict()
        out["model_type"] = config.model_type
        # a tagging checkpoint's label maps (527 AudioSet classes) mean nothing to the encoder
        for key in ("id2label", "label2id", "architectures"):
            out.pop(key, None)
    elif isinstance(config, dict):
        out = copy.deepcopy(config)
    else:
        raise TypeError(
            f"backbone_config must be a dict or a PreTrainedConfig (ASTConfig / BEATsConfig), got {type(config).__name__}."
        )
    out.pop("transformers_version", None)
    out.pop("_name_or_path", None)
    return out


@strict
class AT2SELDConfig(PreTrainedConfig):
    r"""Configuration of an AT2SELD model (pretrained tagging backbone + FOA spatial branch + track-wise heads).

    Front-end fields (shared with `AT2SELDFeatureExtractor`; the model checks that the descriptor channels it
    was built for match the extractor's):

    sampling_rate (`int`, defaults to 24000): FOA sampling rate of `spatial_features`.
    n_fft (`int`, defaults to 1024), hop_length (`int`, defaults to 480 = 20 ms), win_length (`int`, defaults to
        960 = 40 ms): STFT framing of the spatial descriptors (DCASE FOA baseline framing).
    num_mel_bins (`int`, defaults to 64): mel bands of the mel descriptor families.
    label_resolution (`float`, defaults to 0.1): seconds per label frame (DCASE: 100 ms).
    descriptors (`list[str]`): descriptor families stacked into `spatial_features`, see `DESCRIPTOR_FAMILIES`.
    channel_order (`str`, "acn") and normalization (`str`, "sn3d"): the FOA convention of the inputs.

    Semantic branch (the pretrained general-purpose audio-tagging backbone, fed with the W channel's fbank):

    backbone_type (`str`, defaults to "ast"): "ast" (transformers `ASTModel`), "beats" (`beats_at2seld.BEATsEncoder`)
        or "none" (spatial-only CRNN reference).
    backbone_config (`dict`, *optional*): the backbone's configuration as a plain dict (`ASTConfig` / `BEATsConfig`
        fields; a config object is accepted and converted). Defaults to the base `ASTConfig()` / `BEATsConfig()`, or,
        with `backbone_name_or_path`, to the configuration stored there.
    backbone_name_or_path (`str`, *optional*): Hub id or local folder whose backbone weights are loaded when the model
        is built from this config (e.g. "MIT/ast-finetuned-audioset-10-10-0.4593"). Ignored by `from_pretrained`, whose
        checkpoint already holds the backbone.
    backbone_trainable_layers (`int`, defaults to -1): 0 freezes the backbone, k > 0 trains only its last k blocks
        (and the final norm), -1 trains all of it.

    Spatial branch (residual CNN over `spatial_features`):

    spatial_channels (`list[int]`, defaults to [64, 128, 256]): output channels of each conv block.
    spatial_time_pool (`list[int]`, defaults to [5, 1, 1]): time pooling after each block; the product must equal
        `frames_per_label` so the encoder runs at the label rate.
    spatial_freq_pool (`list[int]`, defaults to [4, 4, 2]): frequency pooling after each block; what remains of the
        frequency axis is flattened into the feature vector.
    spatial_residual (`bool`, defaults to True): residual (two 3x3 convs + shortcut) or plain conv blocks.

    Coupling and track-wise abstraction:

    fusion (`str`, defaults to "late"): "none" (streams concatenated before the recurrent stage), "early" (a cross-stitch
        unit right after both encoders), "late" (a cross-stitch unit per track after the track layers), "early+late",
        or "early_concat" (input-level fusion: projected backbone features are extra input channels of the spatial CNN).
    fusion_dim (`int`, defaults to 256): common width of both streams and of the track layers.
    early_concat_channels (`int`, defaults to 16): backbone channels appended to the CNN input with "early_concat".
    num_tracks (`int`, defaults to 3): output tracks N (1..4).
    track_layers (`int`, defaults to 2), track_heads (`int`, defaults to 4): transformer-encoder layers over time per
        track and their attention heads.
    gru_layers (`int`, defaults to 1), gru_hidden (`int`, defaults to 128): bidirectional GRU smoothing (0 disables).
    dropout (`float`, defaults to 0.1): dropout of the fusion / track / recurrent stages.
    predict_distance (`bool`, defaults to False): add a per-track source-distance head (metres, STARSS23).

    Loss (see `losses_at2seld.AT2SELDLoss`):

    sed_loss (`str`, "bce" or "focal"), focal_gamma (`float`, 2.0), focal_alpha (`float`, *optional*): activity loss.
    class_pos_weight (`list[float]`, *optional*): per-class positive weights (class balancing), see
        `losses_at2seld.compute_class_pos_weights`.
    doa_loss (`str`, "mse" or "cosine"), doa_supervision (`str`, "active" or "all"), doa_weight (`float`, 1.0).
    distance_weight (`float`, 1.0): weight of the relative distance error.
    pit (`str`, "frame" or "chunk"): permutation-invariant training per frame or one permutation per chunk.

    Calibration:

    class_thresholds (`list[float]`, *optional*): per-class detection thresholds on the sigmoid activity, written by
        calibration; 0.5 for every class when unset (see `detection_thresholds`).

    Class names live in `id2label` (default: the 13 STARSS23 classes).
    """

    model_type = "at2seld"

    # --- FOA front end ---
    sampling_rate: int = 24000
    n_fft: int = 1024
    hop_length: int = 480
    win_length: int = 960
    num_mel_bins: int = 64
    label_resolution: float = 0.1
    descriptors: list[str] | tuple[str, ...] = ("logmel", "phase", "iv")
    channel_order: str = "acn"
    normalization: str = "sn3d"

    # --- semantic branch ---
    backbone_type: str = "ast"
    backbone_config: dict[str, Any] | PreTrainedConfig | None = None
    backbone_name_or_path: str | None = None
    backbone_trainable_layers: int = -1

    # --- spatial branch ---
    spatial_channels: list[int] | tuple[int, ...] = (64, 128, 256)
    spatial_time_pool: list[int] | tuple[int, ...] = (5, 1, 1)
    spatial_freq_pool: list[int] | tuple[int, ...] = (4, 4, 2)
    spatial_residual: bool = True

    # --- coupling, tracks, recurrent smoothing, heads ---
    fusion: str = "late"
    fusion_dim: int = 256
    early_concat_channels: int = 16
    num_tracks: int = 3
    track_layers: int = 2
    track_heads: int = 4
    gru_layers: int = 1
    gru_hidden: int = 128
    dropout: float = 0.1
    predict_distance: bool = False
    initializer_range: float = 0.02

    # --- loss ---
    sed_loss: str = "bce"
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    class_pos_weight: list[float] | tuple[float, ...] | None = None
    doa_loss: str = "mse"
    doa_supervision: str = "active"
    doa_weight: float = 1.0
    distance_weight: float = 1.0
    pit: str = "frame"

    # --- calibration ---
    class_thresholds: list[float] | tuple[float, ...] | None = None

    def __post_init__(self, **kwargs):
        self.descriptors = list(self.descriptors)
        self.spatial_channels = [int(c) for c in self.spatial_channels]
        self.spatial_time_pool = [int(c) for c in self.spatial_time_pool]
        self.spatial_freq_pool = [int(c) for c in self.spatial_freq_pool]
        if self.class_pos_weight is not None:
            self.class_pos_weight = [float(w) for w in self.class_pos_weight]
        if self.class_thresholds is not None:
            self.class_thresholds = [float(t) for t in self.class_thresholds]
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(STARSS23_CLASSES))
            self.label2id = {name: i for i, name in self.id2label.items()}
        elif self.id2label is not None and self.label2id is None:
            self.label2id = {name: int(i) for i, name in self.id2label.items()}
        self.backbone_config = backbone_config_to_dict(self.backbone_config)
        if self.backbone_config is None and self.backbone_type == "ast":
            if self.backbone_name_or_path is not None:
                self.backbone_config = backbone_config_to_dict(ASTConfig.from_pretrained(self.backbone_name_or_path))
            else:
                self.backbone_config = backbone_config_to_dict(ASTConfig())
        if self.backbone_config is None and self.backbone_type == "beats":
            # flat sibling, imported by name so that the config's remote code does not depend on it
            beats = importlib.import_module(".beats_at2seld", __package__)
            if self.backbone_name_or_path is not None and os.path.isdir(self.backbone_name_or_path):
                beats_config = beats.BEATsConfig.from_json_file(os.path.join(self.backbone_name_or_path, "config.json"))
            elif self.backbone_name_or_path is not None:
                beats_config = beats.BEATsConfig.from_pretrained(self.backbone_name_or_path)
            else:
                beats_config = beats.BEATsConfig()
            self.backbone_config = backbone_config_to_dict(beats_config)
        super().__post_init__(**kwargs)

    @classmethod
    def tiny(cls, **overrides) -> AT2SELDConfig:
        """A small, fast configuration for tests, docs and the CPU demo (random 2-layer 32-wide AST-like backbone).

        A forward + backward pass on a batch of four 5 s chunks takes a fraction of a second on a laptop CPU.
        With `backbone_type="beats"`, the backbone is `BEATsConfig.tiny()`.
        """
        values: dict[str, Any] = {
            "spatial_channels": [8, 16], "spatial_time_pool": [5, 1], "spatial_freq_pool": [4, 4], "fusion_dim": 32,
            "early_concat_channels": 4, "track_layers": 1, "track_heads": 2, "gru_layers": 1, "gru_hidden": 16,
            "dropout": 0.0,
        }
        values.update(overrides)
        backbone_type = values.get("backbone_type", "ast")
        if backbone_type == "none":
            values.setdefault("fusion", "none")
        if values.get("backbone_config") is None and values.get("backbone_name_or_path") is None:
            if backbone_type == "ast":
                values["backbone_config"] = _tiny_ast_config_dict()
            elif backbone_type == "beats":
                # flat sibling, only needed for the BEATs backbone (imported by name so that the config's remote code
                # does not depend on it)
                beats = importlib.import_module(".beats_at2seld", __package__)
                values["backbone_config"] = beats.BEATsConfig.tiny()
        return cls(**values)

    # Derived, never stored twice.
    @property
    def spatial_feature_names(self) -> list[str]:
        return descriptor_channel_names(self.descriptors)

    @property
    def num_spatial_channels(self) -> int:
        return len(self.spatial_feature_names)

    @property
    def num_spatial_bins(self) -> int:
        return descriptor_num_bins(self.descriptors, self.num_mel_bins, self.n_fft)

    @property
    def frames_per_label(self) -> int:
        return frames_per_label(self.sampling_rate, self.hop_length, self.label_resolution)

    @property
    def detection_thresholds(self) -> list[float]:
        """Per-class activity thresholds: `class_thresholds` once calibrated, else 0.5 for every class."""
        if self.class_thresholds is None:
            return [0.5] * self.num_labels
        return list(self.class_thresholds)

    @property
    def num_spatial_output_bins(self) -> int:
        """Frequency bins left after the spatial encoder's pooling (flattened into its output vector)."""
        bins = self.num_spatial_bins
        for p in self.spatial_freq_pool:
            bins //= p
        return bins

    def validate_architecture(self):
        super().validate_architecture()
        descriptor_channel_names(self.descriptors)
        frames_per_label(self.sampling_rate, self.hop_length, self.label_resolution)
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length={self.win_length} must not exceed n_fft={self.n_fft}.")
        if self.channel_order != "acn" or self.normalization != "sn3d":
            raise ValueError(
                f"The model works on ACN/SN3D FOA (got channel_order={self.channel_order!r}, "
                f"normalization={self.normalization!r}); convert FuMa input in the feature extractor "
                "with channel_format='fuma'."
            )
        self._validate_model_fields()

    def _validate_model_fields(self):
        def choice(field: str, allowed: tuple):
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(f"{field}={value!r} is not supported; choose one of {list(allowed)}.")

        def positive(*fields: str, minimum: int = 1):
            for field in fields:
                value = getattr(self, field)
                if value < minimum:
                    raise ValueError(f"{field}={value} must be >= {minimum}.")

        choice("backbone_type", BACKBONE_TYPES)
        choice("fusion", FUSION_TYPES)
        choice("sed_loss", ("bce", "focal"))
        choice("doa_loss", ("mse", "cosine"))
        choice("doa_supervision", ("active", "all"))
        choice("pit", ("frame", "chunk"))
        if not 1 <= self.num_tracks <= MAX_TRACKS:
            raise ValueError(
                f"num_tracks={self.num_tracks} is out of range; use 1 to {MAX_TRACKS} tracks (the permutation-invariant "
                f"loss enumerates all num_tracks! track orders)."
            )
        if self.backbone_type == "none" and self.fusion != "none":
            raise ValueError(
                f"fusion={self.fusion!r} needs a semantic backbone but backbone_type='none'; use fusion='none' for the "
                "spatial-only model or pick backbone_type='ast' / 'beats'."
            )
        if self.backbone_type != "none" and not isinstance(self.backbone_config, dict):
            raise ValueError(
                f"backbone_type={self.backbone_type!r} needs backbone_config (got {self.backbone_config!r}); pass the "
                "backbone's config (ASTConfig / BEATsConfig or its dict) or backbone_name_or_path."
            )
        expected_type = {"ast": ASTConfig.model_type, "beats": "at2seld-beats"}.get(self.backbone_type)
        if expected_type is not None:
            model_type = self.backbone_config.get("model_type", expected_type)
            if model_type != expected_type:
                raise ValueError(
                    f"backbone_type={self.backbone_type!r} but backbone_config has model_type={model_type!r}; expected "
                    f"{expected_type!r}."
                )
        if self.backbone_trainable_layers < -1:
            raise ValueError(
                f"backbone_trainable_layers={self.backbone_trainable_layers}; use 0 (frozen), k > 0 (last k blocks) "
                "or -1 (all)."
            )
        positive("fusion_dim", "track_heads", "early_concat_channels")
        positive("track_layers", "gru_layers", minimum=0)
        if self.gru_layers > 0:
            positive("gru_hidden")
        if self.fusion_dim % self.track_heads != 0:
            raise ValueError(
                f"fusion_dim={self.fusion_dim} must be divisible by track_heads={self.track_heads} (attention heads "
                "split the track width)."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1).")
        n_blocks = len(self.spatial_channels)
        if n_blocks == 0:
            raise ValueError("spatial_channels is empty; the spatial encoder needs at least one conv block.")
        if len(self.spatial_time_pool) != n_blocks or len(self.spatial_freq_pool) != n_blocks:
            raise ValueError(
                f"spatial_channels ({n_blocks} blocks: {self.spatial_channels}), spatial_time_pool "
                f"({self.spatial_time_pool}) and spatial_freq_pool ({self.spatial_freq_pool}) must have the same length."
            )
        if any(c < 1 for c in self.spatial_channels) or any(p < 1 for p in self.spatial_time_pool + self.spatial_freq_pool):
            raise ValueError(
                f"spatial_channels={self.spatial_channels}, spatial_time_pool={self.spatial_time_pool} and "
                f"spatial_freq_pool={self.spatial_freq_pool} must all be positive."
            )
        time_pool = math.prod(self.spatial_time_pool)
        if time_pool != self.frames_per_label:
            raise ValueError(
                f"spatial_time_pool={self.spatial_time_pool} pools time by {time_pool}, but there are "
                f"{self.frames_per_label} feature frames per label frame (hop_length={self.hop_length}, "
                f"label_resolution={self.label_resolution}); make the product equal {self.frames_per_label}."
            )
        if self.num_spatial_output_bins < 1:
            raise ValueError(
                f"spatial_freq_pool={self.spatial_freq_pool} pools frequency by {math.prod(self.spatial_freq_pool)}, "
                f"more than the {self.num_spatial_bins} bins of descriptors={self.descriptors}."
            )
        if self.id2label is None or self.num_labels < 1:
            raise ValueError("id2label must name at least one class.")
        if self.sed_loss == "focal" and self.focal_gamma < 0:
            raise ValueError(f"focal_gamma={self.focal_gamma} must be >= 0.")
        if self.focal_alpha is not None and not 0.0 <= self.focal_alpha <= 1.0:
            raise ValueError(f"focal_alpha={self.focal_alpha} must be in [0, 1] (or None).")
        for field in ("doa_weight", "distance_weight"):
            if getattr(self, field) < 0:
                raise ValueError(f"{field}={getattr(self, field)} must be >= 0.")
        for field in ("class_pos_weight", "class_thresholds"):
            values = getattr(self, field)
            if values is not None and len(values) != self.num_labels:
                raise ValueError(
                    f"{field} has {len(values)} entries but the model has num_labels={self.num_labels} classes "
                    f"(id2label); give one value per class."
                )
        if self.class_pos_weight is not None and any(w <= 0 for w in self.class_pos_weight):
            raise ValueError(f"class_pos_weight={self.class_pos_weight} must be positive.")
        if self.class_thresholds is not None and any(not 0.0 < t < 1.0 for t in self.class_thresholds):
            raise ValueError(f"class_thresholds={self.class_thresholds} must lie strictly between 0 and 1.")

    def check_feature_names(self, names: list[str] | tuple[str, ...]) -> None:
        """Raise `ValueError` unless `names` (a feature extractor's `spatial_feature_names`) are this model's channels."""
        expected = self.spatial_feature_names
        if list(names) != expected:
            raise ValueError(
                f"The spatial descriptor channels do not match the model: the model was built for {len(expected)} "
                f"channels {expected} (descriptors={self.descriptors}), the features have {len(names)} channels "
                f"{list(names)}. Use a feature extractor with descriptors={self.descriptors}."
            )


__all__ = [
    "BACKBONE_TYPES",
    "DESCRIPTOR_FAMILIES",
    "FUSION_TYPES",
    "STARSS23_CLASSES",
    "AT2SELDConfig",
    "backbone_config_to_dict",
    "descriptor_channel_names",
    "descriptor_num_bins",
]

"""AT2SELD configuration and the catalogue of FOA spatial descriptors.

This file travels to a Hub repository as remote code: it imports only the standard library,
``huggingface_hub`` and ``transformers``.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

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

    def __post_init__(self, **kwargs):
        self.descriptors = list(self.descriptors)
        super().__post_init__(**kwargs)

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


__all__ = ["AT2SELDConfig", "DESCRIPTOR_FAMILIES", "descriptor_channel_names", "descriptor_num_bins"]

"""AT2SELD model: a pretrained audio-tagging backbone (AST / BEATs) coupled with a compact FOA spatial encoder,
cross-stitch fusion, track-wise abstraction, recurrent smoothing and per-track SED / Cartesian DOA heads.

Data flow (B batch, T label frames of 100 ms, N tracks, C classes, F fusion_dim):

    spatial_features (B, D, 5T, 64) -> input BatchNorm -> residual conv blocks (pool time 5x) -> (B, T, F)   spatial
    backbone_values  (B, 10T, 128)  -> AST/BEATs patch tokens -> pool frequency -> align to frames -> (B, T, F) semantic
    [early cross-stitch] -> per-track split + transformer layers over time (B, T, N, F) per stream
    [late cross-stitch per track] -> concat + linear -> bidirectional GRU -> heads:
    sed_logits (B, T, N, C), doa (B, T, N, 3) (tanh), distance (B, T, N) (softplus, optional)

This file travels to a Hub repository as remote code: it imports only the standard library, torch, transformers and
its siblings flat (`from .x import`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ASTConfig, ASTModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .beats_at2seld import BEATsConfig, BEATsEncoder, load_beats_backbone
from .configuration_at2seld import AT2SELDConfig
from .losses_at2seld import AT2SELDLoss, compute_class_pos_weights

BACKBONE_FRAME_SHIFT = 0.01  # seconds per fbank frame of the pretrained front ends (10 ms)


# ---------------------------------------------------------------------------------------------------------- outputs
@dataclass
class AT2SELDOutput(ModelOutput):
    r"""Outputs of `AT2SELDForSoundEventLocalization`.

    loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
        `sed_loss + doa_weight * doa_loss (+ distance_weight * distance_loss)`, permutation-invariant over tracks.
    sed_logits (`torch.FloatTensor` of shape `(batch, frames, tracks, classes)`):
        Per-track class logits; `sigmoid` gives the activity of each class on each track.
    doa (`torch.FloatTensor` of shape `(batch, frames, tracks, 3)`):
        Per-track Cartesian direction of arrival (x, y, z) in [-1, 1] (tanh); normalise it to get a unit vector.
    distance (`torch.FloatTensor` of shape `(batch, frames, tracks)`, *optional*):
        Per-track source distance in metres (only with `config.predict_distance`).
    sed_loss, doa_loss, distance_loss (`torch.FloatTensor` of shape `()`, *optional*): the loss terms.
    permutation (`torch.LongTensor` of shape `(batch, frames, tracks)`, *optional*):
        Target track matched with each predicted track by the permutation-invariant loss.
    """

    loss: torch.FloatTensor | None = None
    sed_logits: torch.FloatTensor | None = None
    doa: torch.FloatTensor | None = None
    distance: torch.FloatTensor | None = None
    sed_loss: torch.FloatTensor | None = None
    doa_loss: torch.FloatTensor | None = None
    distance_loss: torch.FloatTensor | None = None
    permutation: torch.LongTensor | None = None


# -------------------------------------------------------------------------------------------- pure tensor functions
def align_tokens_to_frames(
    tokens: torch.Tensor, num_frames: int, frames_per_label: int, token_stride: int, token_width: int
) -> torch.Tensor:
    """Linearly interpolate time-token features at the centres of the label frames.

    Token k covers input frames `[k * token_stride, k * token_stride + token_width)`; label frame j covers
    `[j * frames_per_label, (j + 1) * frames_per_label)`. The value at label frame j is the linear interpolation of
    the tokens at the position where the token centre coincides with the label-frame centre (clamped to the ends).

    Args:
        tokens: `(batch, num_tokens, dim)`.
    Returns:
        `(batch, num_frames, dim)`.
    """
    num_tokens = tokens.shape[1]
    centres = torch.arange(num_frames, dtype=torch.float64) * frames_per_label + (frames_per_label - 1) / 2
    pos = ((centres - (token_width - 1) / 2) / token_stride).clamp(0, num_tokens - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=num_tokens - 1)
    w = (pos - lo.double()).to(tokens.dtype).to(tokens.device).view(1, -1, 1)
    return tokens[:, lo.to(tokens.device)] * (1 - w) + tokens[:, hi.to(tokens.device)] * w


def interpolate_ast_position_embeddings(
    position_embeddings: torch.Tensor, grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """Resize AST position embeddings `(1, 2 + Fp * Tp, D)` (cls and distillation first, then frequency-major
    patches) to a `(Fp', Tp')` patch grid by bilinear interpolation; the two special tokens are kept."""
    if tuple(grid) == tuple(new_grid):
        return position_embeddings
    dim = position_embeddings.shape[-1]
    special, patches = position_embeddings[:, :2], position_embeddings[:, 2:]
    patches = patches.reshape(1, grid[0], grid[1], dim).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=tuple(new_grid), mode="bilinear", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim)
    return torch.cat([special, patches], dim=1)


# -------------------------------------------------------------------------------------------------------- backbones
class _FreezableBackbone(nn.Module):
    """Freezing policy shared by the backbone adapters (`self.encoder.layers` holds the transformer blocks)."""

    @property
    def layers(self) -> nn.ModuleList:
        return self.encoder.layers

    @property
    def num_layers(self) -> int:
        return len(self.encoder.layers)

    def final_norm(self) -> nn.Module | None:
        """The norm after the last block that trains together with it (None when there is none)."""
        return None

    def freeze(self, trainable_layers: int) -> None:
        """0: all frozen; k: only the last k blocks (and the final norm) train; -1: everything trains."""
        self.trainable_layers = trainable_layers
        train_all = trainable_layers == -1
        for p in self.encoder.parameters():
            p.requires_grad_(train_all)
        if trainable_layers > 0:
            for layer in self.encoder.layers[-trainable_layers:]:
                layer.requires_grad_(True)
            norm = self.final_norm()
            if norm is not None:
                norm.requires_grad_(True)


class ASTBackbone(_FreezableBackbone):
    """Semantic branch on a transformers `ASTModel`: fbank `(B, 10T, 128)` -> frame features `(B, T, hidden)`.

    Patch tokens are re-gridded to (frequency patches, time patches), averaged over frequency and interpolated to the
    label-frame centres. Position embeddings are interpolated for inputs shorter than `max_length`; longer inputs are
    processed in windows of whole label frames (<= `max_length` fbank frames) and concatenated.
    """

    def __init__(self, config: ASTConfig, trainable_layers: int = -1):
        super().__init__()
        self.encoder = ASTModel(config)
        self.hidden_size = config.hidden_size
        self.num_mel_bins = config.num_mel_bins
        self.trainable_layers = trainable_layers

    def final_norm(self) -> nn.Module:
        return self.encoder.layernorm

    def _frozen_prefix(self) -> int:
        if self.trainable_layers == -1:
            return -1  # nothing frozen, not even the embeddings
        return self.num_layers - self.trainable_layers

    def encode_window(self, fbank: torch.Tensor) -> torch.Tensor:
        """`(B, L, mel)` with L >= patch_size -> time tokens `(B, Tp, hidden)` (frequency-averaged)."""
        cfg = self.encoder.config
        emb = self.encoder.embeddings
        batch, length, mel = fbank.shape
        freq_patches = (mel - cfg.patch_size) // cfg.frequency_stride + 1
        time_patches = (length - cfg.patch_size) // cfg.time_stride + 1
        frozen = self._frozen_prefix()
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and frozen == -1):
            patches = emb.patch_embeddings(fbank)
            pos = interpolate_ast_position_embeddings(
                emb.position_embeddings, emb.get_shape(cfg), (freq_patches, time_patches)
            )
            special = torch.cat([emb.cls_token.expand(batch, -1, -1), emb.distillation_token.expand(batch, -1, -1)], 1)
            hidden = emb.dropout(torch.cat([special, patches], dim=1) + pos)
        for i, layer in enumerate(self.encoder.layers):
            with torch.set_grad_enabled(grad and i >= frozen):
                hidden = layer(hidden, None)
        with torch.set_grad_enabled(grad and frozen < self.num_layers):
            hidden = self.encoder.layernorm(hidden)
        tokens = hidden[:, 2:].reshape(batch, freq_patches, time_patches, -1)
        return tokens.mean(dim=1)

    def forward(self, fbank: torch.Tensor, num_frames: int) -> torch.Tensor:
        cfg = self.encoder.config
        if fbank.shape[-1] != cfg.num_mel_bins:
            raise ValueError(
                f"backbone_values has {fbank.shape[-1]} mel bins but the AST backbone expects {cfg.num_mel_bins}; "
                "use the AT2SELD feature extractor with backbone_type='ast'."
            )
        fpl = fbank.shape[1] // num_frames
        window = max(1, cfg.max_length // fpl) * fpl
        outputs = []
        for start in range(0, fbank.shape[1], window):
            chunk = fbank[:, start : start + window]
            frames = chunk.shape[1] // fpl
            if chunk.shape[1] < cfg.patch_size:  # a very short tail: repeat its last frame up to one patch
                chunk = F.pad(chunk.transpose(1, 2), (0, cfg.patch_size - chunk.shape[1]), mode="replicate").transpose(1, 2)
            tokens = self.encode_window(chunk)
            outputs.append(align_tokens_to_frames(tokens, frames, fpl, cfg.time_stride, cfg.patch_size))
        return torch.cat(outputs, dim=1)


class BEATsBackbone(_FreezableBackbone):
    """Semantic branch on the project's `BEATsEncoder` (official BEATs layout under `encoder.`): fbank `(B, 10T, 128)`
    -> frame features `(B, T, encoder_embed_dim)`.

    Patch tokens (time-major, 16 x 16 patches) are re-gridded to (time patches, frequency patches), averaged over
    frequency and interpolated to the label-frame centres. Relative positions make any length valid (no windows).
    `padding_mask` `(B, 10T)` (True = padded fbank frame) keeps padded patches out of the attention.
    """

    def __init__(self, config: BEATsConfig):
        super().__init__()
        self.encoder = BEATsEncoder(config)
        self.hidden_size = config.encoder_embed_dim
        self.num_mel_bins = config.num_mel_bins
        self.trainable_layers = -1
        for module in self.encoder.modules():  # initialised by BEATsEncoder itself, see `_init_weights`
            module._at2seld_backbone_module = True

    def final_norm(self) -> nn.Module | None:
        # post-norm BEATs normalises inside each block; pre-norm models have a final norm after the last block
        return self.encoder.encoder.layer_norm if self.encoder.config.layer_norm_first else None

    def forward(self, fbank: torch.Tensor, num_frames: int, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.encoder.config
        grad = torch.is_grad_enabled()
        frozen = -1 if self.trainable_layers == -1 else self.num_layers - self.trainable_layers
        with torch.set_grad_enabled(grad and frozen == -1):
            x, token_mask, grid = self.encoder.embed(fbank, padding_mask)
            bias = self.encoder.position_bias(x.shape[1])
        for i in range(self.num_layers):
            with torch.set_grad_enabled(grad and i >= frozen):
                x = self.encoder.run_layer(i, x, token_mask, bias)
        x = self.encoder.finalize(x)
        tokens = x.reshape(x.shape[0], grid[0], grid[1], -1).mean(dim=2)  # (B, T', D), time-major tokens
        fpl = fbank.shape[1] // num_frames
        return align_tokens_to_frames(tokens, num_frames, fpl, cfg.input_patch_size, cfg.input_patch_size)


# ---------------------------------------------------------------------------------------------------- spatial branch
class SpatialBlock(nn.Module):
    """Two 3x3 conv + BatchNorm layers (+ shortcut when residual), ReLU, then average pooling (time, frequency).

    `(B, C_in, frames, bins)` -> `(B, C_out, frames // time_pool, bins // freq_pool)`.
    """

    def __init__(self, in_channels: int, out_channels: int, time_pool: int, freq_pool: int, residual: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.residual = residual
        if residual and in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()
        self.pool = nn.AvgPool2d((time_pool, freq_pool)) if (time_pool, freq_pool) != (1, 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        if self.residual:
            h = h + self.shortcut(x)
        return self.pool(F.relu(h))


class SpatialEncoder(nn.Module):
    """Compact residual CNN over the FOA descriptors at the label rate.

    `(B, D, frames_per_label * T, bins)` (+ optional extra channels) -> `(B, T, fusion_dim)`. A learnable per-channel
    BatchNorm first puts log-mel (dB) and phase / intensity channels ([-1, 1]) on one scale.
    """

    def __init__(self, config: AT2SELDConfig, extra_channels: int = 0):
        super().__init__()
        self.input_norm = nn.BatchNorm2d(config.num_spatial_channels)
        blocks, cin = [], config.num_spatial_channels + extra_channels
        for cout, tp, fp in zip(config.spatial_channels, config.spatial_time_pool, config.spatial_freq_pool):
            blocks.append(SpatialBlock(cin, cout, tp, fp, config.spatial_residual))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.projection = nn.Linear(cin * config.num_spatial_output_bins, config.fusion_dim)

    def forward(self, spatial_features: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        x = self.input_norm(spatial_features)
        if extra is not None:
            x = torch.cat([x, extra], dim=1)
        for block in self.blocks:
            x = block(x)
        batch, channels, frames, bins = x.shape
        return self.projection(x.permute(0, 2, 1, 3).reshape(batch, frames, channels * bins))


# ----------------------------------------------------------------------------------------------- fusion and tracks
class CrossStitch(nn.Module):
    """Cross-stitch unit: per channel, `[a', b'] = W @ [a, b]` with a learned 2x2 matrix (initialised 0.9 / 0.1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(self.initial_weight(dim))

    @staticmethod
    def initial_weight(dim: int) -> torch.Tensor:
        return torch.tensor([[0.9, 0.1], [0.1, 0.9]]).unsqueeze(-1).repeat(1, 1, dim)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight
        return w[0, 0] * a + w[0, 1] * b, w[1, 0] * a + w[1, 1] * b


class TrackEncoder(nn.Module):
    """Per-track projection `(B, T, F)` -> `(B, T, N, F)`, then `track_layers` transformer-encoder layers over time,
    shared by the tracks (padded frames are masked out of the attention)."""

    def __init__(self, config: AT2SELDConfig):
        super().__init__()
        self.num_tracks = config.num_tracks
        self.split = nn.Linear(config.fusion_dim, config.num_tracks * config.fusion_dim)
        if config.track_layers > 0:
            layer = nn.TransformerEncoderLayer(
                config.fusion_dim, config.track_heads, dim_feedforward=2 * config.fusion_dim, dropout=config.dropout,
                activation="gelu", batch_first=True, norm_first=True,
            )
            self.layers = nn.TransformerEncoder(layer, config.track_layers, enable_nested_tensor=False)
        else:
            self.layers = None

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        batch, frames, dim = x.shape
        tracks = self.split(x).view(batch, frames, self.num_tracks, dim)
        if self.layers is None:
            return tracks
        flat = tracks.permute(0, 2, 1, 3).reshape(batch * self.num_tracks, frames, dim)
        padding = None
        if frame_mask is not None and not bool(frame_mask.all()):
            padding = ~frame_mask.repeat_interleave(self.num_tracks, dim=0)
        flat = self.layers(flat, src_key_padding_mask=padding)
        return flat.view(batch, self.num_tracks, frames, dim).permute(0, 2, 1, 3)


# ------------------------------------------------------------------------------------------------------------ model
class AT2SELDPreTrainedModel(PreTrainedModel):
    """Weight initialisation and Hub plumbing of the AT2SELD models."""

    config_class = AT2SELDConfig
    config: AT2SELDConfig
    base_model_prefix = "at2seld"
    main_input_name = "spatial_features"
    input_modalities = ("audio",)
    _no_split_modules: ClassVar[list[str]] = ["ASTLayer", "SpatialBlock"]

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then the backbone freezing policy is applied again (loading a checkpoint
        replaces the parameters, which resets `requires_grad`)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if getattr(model, "backbone", None) is not None:
            model.backbone.freeze(model.config.backbone_trainable_layers)
        return loaded

    def _init_weights(self, module):
        """New layers only: the AST backbone is a `PreTrainedModel` and initialises itself (and is usually loaded)."""
        std = self.config.initializer_range
        if getattr(module, "_at2seld_backbone_module", False):
            return  # BEATs initialises itself (official scheme); checkpoints then overwrite it
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.GRU):
            for name, param in module.named_parameters():
                if "weight" in name:
                    init.xavier_uniform_(param)
                else:
                    init.zeros_(param)
        elif isinstance(module, nn.MultiheadAttention):
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
        elif isinstance(module, CrossStitch):
            init.copy_(module.weight, CrossStitch.initial_weight(module.weight.shape[-1]).to(module.weight.device))


class AT2SELDForSoundEventLocalization(AT2SELDPreTrainedModel):
    """AT2SELD: pretrained tagging backbone + FOA spatial encoder + cross-stitch fusion + track-wise SED/DOA heads.

    Inputs are the outputs of `AT2SELDFeatureExtractor` (`model(**features)` works); `labels` follow
    `labels_at2seld.encode_labels`. See the module docstring for the data flow and `docs/model.md` for shapes.
    """

    def __init__(self, config: AT2SELDConfig):
        super().__init__(config)
        dim = config.fusion_dim
        self.backbone = build_backbone(config)
        has_backbone = self.backbone is not None
        self.two_stream = has_backbone and config.fusion != "early_concat"
        if has_backbone:
            out = config.early_concat_channels if config.fusion == "early_concat" else dim
            self.semantic_projection = nn.Sequential(nn.LayerNorm(self.backbone.hidden_size), nn.Linear(self.backbone.hidden_size, out))
        else:
            self.semantic_projection = None
        extra = config.early_concat_channels if config.fusion == "early_concat" else 0
        self.spatial_encoder = SpatialEncoder(config, extra_channels=extra)
        self.early_stitch = CrossStitch(dim) if config.fusion in ("early", "early+late") else None
        self.spatial_tracks = TrackEncoder(config)
        self.semantic_tracks = TrackEncoder(config) if self.two_stream else None
        self.late_stitch = CrossStitch(dim) if config.fusion in ("late", "early+late") else None
        self.merge = nn.Linear(2 * dim, dim) if self.two_stream else None
        self.dropout = nn.Dropout(config.dropout)
        if config.gru_layers > 0:
            self.gru = nn.GRU(
                dim, config.gru_hidden, num_layers=config.gru_layers, batch_first=True, bidirectional=True,
                dropout=config.dropout if config.gru_layers > 1 else 0.0,
            )
            head_dim = 2 * config.gru_hidden
        else:
            self.gru = None
            head_dim = dim
        self.sed_head = nn.Linear(head_dim, config.num_labels)
        self.doa_head = nn.Linear(head_dim, 3)
        self.distance_head = nn.Linear(head_dim, 1) if config.predict_distance else None
        self.loss_function_module = AT2SELDLoss(config)
        self.post_init()
        if has_backbone:
            if config.backbone_name_or_path is not None and not _building_on_meta_device():
                load_pretrained_backbone(self.backbone, config)
            trainable = config.backbone_trainable_layers
            if trainable > self.backbone.num_layers:
                raise ValueError(
                    f"backbone_trainable_layers={trainable} but the backbone has only {self.backbone.num_layers} "
                    "blocks; use 0..num_blocks or -1."
                )
            self.backbone.freeze(trainable)

    # ---------------------------------------------------------------------------------------------------- checks
    def _check_inputs(self, spatial_features, backbone_values, frame_mask, spatial_feature_names) -> int:
        cfg = self.config
        if spatial_feature_names is not None:
            cfg.check_feature_names(spatial_feature_names)
        if spatial_features.dim() != 4:
            raise ValueError(
                "spatial_features must be (batch, channels, frames, bins), got shape "
                f"{tuple(spatial_features.shape)}; pass the output of AT2SELDFeatureExtractor."
            )
        _, channels, frames, bins = spatial_features.shape
        if channels != cfg.num_spatial_channels or bins != cfg.num_spatial_bins:
            raise ValueError(
                f"The spatial descriptor channels do not match the model: it was built for {cfg.num_spatial_channels} "
                f"channels x {cfg.num_spatial_bins} bins (descriptors={cfg.descriptors}), got {channels} x {bins}. "
                f"Use a feature extractor with descriptors={cfg.descriptors}."
            )
        if frames % cfg.frames_per_label != 0 or frames == 0:
            raise ValueError(
                f"spatial_features has {frames} frames, not a positive multiple of frames_per_label="
                f"{cfg.frames_per_label}."
            )
        num_frames = frames // cfg.frames_per_label
        if self.backbone is not None:
            if backbone_values is None:
                raise ValueError(
                    f"backbone_type={cfg.backbone_type!r} needs backbone_values (batch, 10 * frames, 128); use the "
                    f"feature extractor with backbone_type={cfg.backbone_type!r}."
                )
            if backbone_values.dim() != 3 or backbone_values.shape[0] != spatial_features.shape[0]:
                raise ValueError(f"backbone_values must be (batch, fbank_frames, mel), got {tuple(backbone_values.shape)}.")
            expected = num_frames * round(cfg.label_resolution / BACKBONE_FRAME_SHIFT)
            if backbone_values.shape[1] != expected:
                raise ValueError(
                    f"backbone_values has {backbone_values.shape[1]} fbank frames but the {num_frames} label frames of "
                    f"spatial_features need {expected} (10 ms frames)."
                )
        if frame_mask is not None and tuple(frame_mask.shape) != (spatial_features.shape[0], num_frames):
            raise ValueError(
                f"frame_mask must be (batch, label_frames) = {(spatial_features.shape[0], num_frames)}, got "
                f"{tuple(frame_mask.shape)}."
            )
        return num_frames

    # --------------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        spatial_features: torch.Tensor,
        backbone_values: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        spatial_feature_names: list[str] | None = None,
        num_label_frames: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> AT2SELDOutput | tuple:
        r"""
        Args:
            spatial_features (`(batch, channels, frames_per_label * frames, bins)`): FOA descriptors.
            backbone_values (`(batch, 10 * frames, 128)`, *optional*): fbank of the W channel (not with
                backbone_type="none").
            frame_mask (`(batch, frames)` bool, *optional*): True on real (unpadded) label frames; a prefix per item.
            labels (`(batch, frames, tracks, 6)`, *optional*): targets, see `labels_at2seld.encode_labels`.
            spatial_feature_names (`list[str]`, *optional*): checked against the model's descriptor channels.
            num_label_frames (`(batch,)`, *optional*): used to build `frame_mask` when it is not given.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        num_frames = self._check_inputs(spatial_features, backbone_values, frame_mask, spatial_feature_names)
        if frame_mask is None and num_label_frames is not None:
            frame_mask = torch.arange(num_frames, device=spatial_features.device)[None] < num_label_frames.to(spatial_features.device)[:, None]
        if frame_mask is not None:
            frame_mask = frame_mask.to(device=spatial_features.device, dtype=torch.bool)

        semantic = None
        extra = None
        if self.backbone is not None:
            fbank = backbone_values.to(spatial_features.dtype)
            if isinstance(self.backbone, BEATsBackbone):
                padding = None
                if frame_mask is not None and not bool(frame_mask.all()):
                    padding = ~frame_mask.repeat_interleave(fbank.shape[1] // num_frames, dim=1)
                features = self.backbone(fbank, num_frames, padding)
            else:
                features = self.backbone(fbank, num_frames)
            semantic = self.semantic_projection(features)
            if self.config.fusion == "early_concat":  # input-level fusion: semantic channels tiled over the CNN input
                fpl, bins = self.config.frames_per_label, spatial_features.shape[-1]
                extra = semantic.transpose(1, 2).repeat_interleave(fpl, dim=2).unsqueeze(-1).expand(-1, -1, -1, bins)
                semantic = None
        spatial = self.spatial_encoder(spatial_features, extra)  # (B, T, F)

        if semantic is not None and self.early_stitch is not None:
            semantic, spatial = self.early_stitch(semantic, spatial)
        spatial = self.spatial_tracks(self.dropout(spatial), frame_mask)  # (B, T, N, F)
        if semantic is not None:
            semantic = self.semantic_tracks(self.dropout(semantic), frame_mask)
            if self.late_stitch is not None:
                semantic, spatial = self.late_stitch(semantic, spatial)
            hidden = self.merge(torch.cat([semantic, spatial], dim=-1))
        else:
            hidden = spatial
        hidden = self._smooth(self.dropout(hidden), frame_mask)  # (B, T, N, H)
        hidden = self.dropout(hidden)
        sed_logits = self.sed_head(hidden)
        doa = torch.tanh(self.doa_head(hidden))
        distance = F.softplus(self.distance_head(hidden)).squeeze(-1) if self.distance_head is not None else None

        losses = {}
        if labels is not None:
            losses = self.loss_function_module(sed_logits, doa, labels.to(sed_logits.device), frame_mask, distance)
        output = AT2SELDOutput(
            loss=losses.get("loss"),
            sed_logits=sed_logits,
            doa=doa,
            distance=distance,
            sed_loss=losses.get("sed_loss"),
            doa_loss=losses.get("doa_loss"),
            distance_loss=losses.get("distance_loss"),
            permutation=losses.get("permutation"),
        )
        return output if return_dict else output.to_tuple()

    def _smooth(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """Bidirectional GRU over time per track: `(B, T, N, F)` -> `(B, T, N, 2 * gru_hidden)`."""
        if self.gru is None:
            return hidden
        batch, frames, tracks, dim = hidden.shape
        flat = hidden.permute(0, 2, 1, 3).reshape(batch * tracks, frames, dim)
        if frame_mask is None or bool(frame_mask.all()):
            out, _ = self.gru(flat)
        else:
            lengths = frame_mask.sum(1)
            if not bool((frame_mask == (torch.arange(frames, device=frame_mask.device)[None] < lengths[:, None])).all()):
                raise ValueError("frame_mask must mark a prefix of each item (real frames first, then padding).")
            lengths = lengths.clamp_min(1).repeat_interleave(tracks).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(flat, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.gru(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=frames)
        return out.view(batch, tracks, frames, -1).permute(0, 2, 1, 3)

    # ---------------------------------------------------------------------------------------------------- report
    def component_modules(self) -> dict[str, list[nn.Module]]:
        """The model's parts, in data-flow order, as named in `report()`."""
        parts = {
            "backbone": [self.backbone],
            "semantic_projection": [self.semantic_projection],
            "spatial_encoder": [self.spatial_encoder],
            "cross_stitch": [self.early_stitch, self.late_stitch],
            "track_layers": [self.spatial_tracks, self.semantic_tracks, self.merge],
            "gru": [self.gru],
            "heads": [self.sed_head, self.doa_head, self.distance_head],
        }
        return {name: [m for m in mods if m is not None] for name, mods in parts.items()}

    @torch.no_grad()
    def report(self, seconds: float = 10.0, print_report: bool = True) -> dict:
        """Parameters per component and multiply-accumulates (MACs = FLOPs / 2, `torch.utils.flop_counter`) per second
        of audio, measured on one `seconds`-long input (batch 1, inference).

        Returns `{"parameters": {component: n}, "trainable_parameters": n, "macs_per_second": {component: macs},
        "total_parameters": n, "total_macs_per_second": macs, "seconds": seconds}`.
        """
        from torch.utils.flop_counter import FlopCounterMode

        cfg = self.config
        frames = max(1, round(seconds / cfg.label_resolution))
        seconds = frames * cfg.label_resolution
        device = next(self.parameters()).device
        spatial = torch.zeros(1, cfg.num_spatial_channels, frames * cfg.frames_per_label, cfg.num_spatial_bins, device=device)
        fbank = None
        if self.backbone is not None:
            fbank_frames = frames * round(cfg.label_resolution / BACKBONE_FRAME_SHIFT)
            fbank = torch.zeros(1, fbank_frames, self.backbone.num_mel_bins, device=device)
        parts = self.component_modules()
        names = {id(m): name for name, mods in parts.items() for m in mods}
        prefixes = {}
        for full, module in self.named_modules():
            if id(module) in names:
                prefixes[full] = names[id(module)]
        was_training = self.training
        self.eval()
        # Count every matmul: eager attention in the AST and no fused transformer-encoder fast path (neither the fused
        # CPU attention kernels nor the fast path are seen by the flop counter).
        ast_config = getattr(getattr(self.backbone, "encoder", None), "config", None)
        attn = ast_config._attn_implementation if ast_config is not None else None
        if ast_config is not None:
            ast_config._attn_implementation = "eager"
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        counter = FlopCounterMode(display=False, custom_mapping=_cpu_attention_flops())
        try:
            with counter:
                self(spatial_features=spatial, backbone_values=fbank)
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
            if ast_config is not None:
                ast_config._attn_implementation = attn
            self.train(was_training)
        root = type(self).__name__
        macs = {name: 0 for name in parts}
        for module_name, ops in counter.get_flop_counts().items():
            rel = module_name[len(root) + 1 :] if module_name.startswith(root + ".") else None
            if rel in prefixes:
                macs[prefixes[rel]] += sum(ops.values()) / 2
        total_flops = sum(counter.get_flop_counts().get("Global", {}).values())
        params = {name: sum(p.numel() for m in mods for p in m.parameters()) for name, mods in parts.items()}
        result = {
            "seconds": seconds,
            "parameters": params,
            "total_parameters": sum(p.numel() for p in self.parameters()),
            "trainable_parameters": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "macs_per_second": {name: m / seconds for name, m in macs.items()},
            "total_macs_per_second": total_flops / 2 / seconds,
        }
        if print_report:
            print(format_report(result, title=f"{root} ({cfg.backbone_type} backbone, fusion={cfg.fusion})"))
        return result


def _cpu_attention_flops() -> dict:
    """FLOP formula for the fused CPU attention kernel, which `torch.utils.flop_counter` does not know."""
    from torch.utils.flop_counter import sdpa_flop_count

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:
        return {}

    def flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    return {op: flops}


def format_report(result: dict, title: str = "AT2SELD") -> str:
    """A plain-text table of `AT2SELDForSoundEventLocalization.report()`."""
    lines = [title, f"{'component':<22}{'parameters':>14}{'MMACs / s audio':>18}"]
    for name, n in result["parameters"].items():
        lines.append(f"{name:<22}{n:>14,}{result['macs_per_second'][name] / 1e6:>18,.1f}")
    lines.append(f"{'total':<22}{result['total_parameters']:>14,}{result['total_macs_per_second'] / 1e6:>18,.1f}")
    lines.append(f"trainable parameters: {result['trainable_parameters']:,}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- construction
def _building_on_meta_device() -> bool:
    """True inside `from_pretrained`, which builds the model on the meta device and then loads the full checkpoint."""
    return torch.empty(0).device.type == "meta"


def build_backbone(config: AT2SELDConfig) -> nn.Module | None:
    """The semantic branch named by `config.backbone_type` (random weights), or None for "none"."""
    if config.backbone_type == "none":
        return None
    if config.backbone_type == "ast":
        return ASTBackbone(ASTConfig.from_dict(dict(config.backbone_config)))
    if config.backbone_type == "beats":
        return BEATsBackbone(BEATsConfig.from_dict(dict(config.backbone_config)))
    raise ValueError(f"backbone_type={config.backbone_type!r} is not supported; use 'ast', 'beats' or 'none'.")


def load_pretrained_backbone(backbone: nn.Module, config: AT2SELDConfig) -> None:
    """Copy pretrained weights from `config.backbone_name_or_path` (Hub id or local folder) into `backbone`."""
    path = config.backbone_name_or_path
    if isinstance(backbone, ASTBackbone):
        kind, pretrained = "AST checkpoint", ASTModel.from_pretrained(path)
    elif isinstance(backbone, BEATsBackbone):
        folder = path
        if not os.path.isdir(folder):  # a Hub id: fetch the converted folder (config.json + model.safetensors)
            from huggingface_hub import snapshot_download

            folder = snapshot_download(path, allow_patterns=["config.json", "*.safetensors"])
        kind, pretrained = "BEATs backbone", load_beats_backbone(folder)
    else:
        raise ValueError(f"Cannot load pretrained weights for backbone_type={config.backbone_type!r}.")
    missing, unexpected = backbone.encoder.load_state_dict(pretrained.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"The {kind} at {path!r} does not fit backbone_config: missing {missing[:5]}, unexpected {unexpected[:5]}."
        )


def report_main(argv: list[str] | None = None) -> dict:
    """Command line `at2seld-report`: parameters per component and MACs per second of audio of a configuration.

    The model is built with random weights (the counts do not depend on them), from a saved model / config folder or
    Hub id (`--config`), or from `AT2SELDConfig()` / `AT2SELDConfig.tiny()` with overrides.
    """
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="at2seld-report", description=report_main.__doc__.splitlines()[0])
    parser.add_argument("--config", help="folder or Hub id holding an AT2SELD config.json (default: AT2SELDConfig())")
    parser.add_argument("--tiny", action="store_true", help="start from AT2SELDConfig.tiny()")
    parser.add_argument("--backbone", choices=["ast", "beats", "none"], help="override backbone_type")
    parser.add_argument("--fusion", help="override fusion (none, early, late, early+late, early_concat)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measured input (default 10 s)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    overrides = {}
    if args.backbone is not None:
        overrides["backbone_type"] = args.backbone
        overrides["backbone_config"] = None
        if args.backbone == "none" and args.fusion is None:
            overrides["fusion"] = "none"
    if args.fusion is not None:
        overrides["fusion"] = args.fusion
    if args.config is not None:
        base = AT2SELDConfig.from_pretrained(args.config).to_dict()
        for key in ("model_type", "transformers_version", "auto_map", "architectures", "_name_or_path"):
            base.pop(key, None)
        base.update(overrides)
        config = AT2SELDConfig(**base)
    elif args.tiny:
        config = AT2SELDConfig.tiny(**overrides)
    else:
        config = AT2SELDConfig(**overrides)
    config.backbone_name_or_path = None  # counts only: no weight download
    model = AT2SELDForSoundEventLocalization(config)
    result = model.report(seconds=args.seconds, print_report=not args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    return result


__all__ = [
    "ASTBackbone",
    "AT2SELDForSoundEventLocalization",
    "AT2SELDOutput",
    "AT2SELDPreTrainedModel",
    "BEATsBackbone",
    "CrossStitch",
    "SpatialEncoder",
    "TrackEncoder",
    "align_tokens_to_frames",
    "build_backbone",
    "compute_class_pos_weights",
    "format_report",
    "interpolate_ast_position_embeddings",
    "report_main",
]


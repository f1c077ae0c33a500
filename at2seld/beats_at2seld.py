"""BEATs audio encoder with the parameter names and layout of the official checkpoints.

BEATs (Chen et al., "BEATs: Audio Pre-Training with Acoustic Tokenizers", 2022) is a ViT-style transformer
over 16x16 patches of a 128-band Kaldi fbank. This module is at2seld's own implementation of its encoder: the
module tree, the state-dict key names and the computation follow the official release
(microsoft/unilm, ``beats/``), so that an official ``BEATs_iter3+*.pt`` checkpoint loads into
`BEATsEncoder` after the alias/predictor handling of `load_official_state_dict`
(``hub_scripts/convert_beats_checkpoint.py`` turns such a checkpoint into ``config.json`` +
``model.safetensors``).

Data flow, for an fbank of ``T`` frames (10 ms hop) and ``F = num_mel_bins = 128`` bands,
``P = input_patch_size = 16``, ``T' = T // P``, ``F' = F // P = 8``, ``N = T' * F'`` tokens::

    fbank (B, T, F) -> (B, 1, T, F) -> patch_embedding Conv2d(1, E, P, stride P) -> (B, E, T', F')
      -> flatten (B, N, E), token n = t * F' + f (time-major) -> layer_norm -> post_extract_proj (B, N, D)
      -> dropout_input -> encoder: x + GELU(weight-normed grouped Conv1d over tokens) (-> layer_norm if post-norm)
      -> L transformer layers with a (gated) bucketed relative-position attention bias
      (-> layer_norm if pre-norm) -> hidden (B, N, D)

Documented differences from the official code (none changes the output of an unpadded batch):

* The relative-position embedding table lives only in layer 0 (``encoder.layers.0.self_attn.
  relative_attention_bias``). The official model shares that one module with every layer, so a state dict taken
  from it repeats the table under ``encoder.layers.{i>0}.self_attn.relative_attention_bias.weight``;
  `load_official_state_dict` checks these aliases are identical to layer 0's and drops them (the official
  forward uses only the bias computed once, in the first layer that runs). Keeping one table avoids tensor
  aliasing, which safetensors and ``PreTrainedModel.save_pretrained`` refuse.
* The positional convolution stores its weight-norm factors as plain parameters ``weight_g`` (1, 1, K) and
  ``weight_v`` (D, D / groups, K), the names of ``torch.nn.utils.weight_norm(dim=2)`` that the official
  checkpoints hold; the newer ``parametrizations.weight.original0/1`` names and a plain fused ``weight`` are
  converted by `load_official_state_dict`.
* ``padding_mask`` is given per fbank frame (True = padding); a token is padding when all ``P`` frames of its time
  patch are. (The official code maps a per-sample mask to tokens by an even split of the flattened token axis,
  which only approximates this at the last, partly padded patch.)
* Attention is computed with ``scaled_dot_product_attention``: softmax(q k^T / sqrt(d) + bias). The official code
  computes the same softmax with a max-subtraction trick (alpha = 32), which cancels in the softmax.
* Layer drop draws from torch's random generator (the official code uses numpy's global one).

Checked once (outside this repository, not part of the tests) against the official code on shared random weights:
``load_state_dict(strict=True)`` of the official ``state_dict()`` into the official model, and the same dict through
`load_official_state_dict` into `BEATsEncoder`, give outputs equal to 6e-6 (absolute, at output scale ~4) for the
BEATs_iter3 config, and to 2e-6 for small pre-norm / ReLU / no-relative-bias / odd-kernel variants.

This file is remote code: it imports only the standard library, torch, transformers and huggingface_hub
(safetensors, a dependency of transformers, inside ``try:``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from huggingface_hub.errors import StrictDataclassError
from torch import nn
from transformers import PreTrainedConfig

logger = logging.getLogger(__name__)

SAFETENSORS_WEIGHTS_NAME = "model.safetensors"

# Activation names the official code accepts, minus "glu" (a gated fc1 with a different parameter layout that no
# released BEATs checkpoint uses; rejected with a clear error instead).
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_accurate", "gelu_fast", "relu", "tanh", "linear")

# Defaults of the official `BEATsConfig` class: a checkpoint `cfg` that omits a key means this value.
OFFICIAL_CFG_DEFAULTS: dict[str, object] = {
    "input_patch_size": -1,
    "embed_dim": 512,
    "conv_bias": False,
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_wise_gradient_decay_ratio": 1.0,
    "layer_norm_first": False,
    "deep_norm": False,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.0,
    "dropout_input": 0.0,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": False,
    "num_buckets": 320,
    "max_distance": 1280,
    "gru_rel_pos": False,
    "finetuned_model": False,
    "predictor_dropout": 0.1,
    "predictor_class": 527,
}


@strict
class BEATsConfig(PreTrainedConfig):
    r"""Configuration of a `BEATsEncoder`; field names and meanings are those of the official BEATs ``cfg``.

    The defaults are the values of the released BEATs_iter3 / iter3+ checkpoints (12 layers, width 768, ~90 M
    parameters), which differ from the official class defaults in `OFFICIAL_CFG_DEFAULTS`.

    input_patch_size (`int`, 16): side P of the square fbank patches (kernel and stride of ``patch_embedding``).
    embed_dim (`int`, 512): patch-embedding width E; ``post_extract_proj`` maps E to ``encoder_embed_dim`` when they differ.
    conv_bias (`bool`, False): bias in ``patch_embedding``.
    encoder_layers (`int`, 12), encoder_embed_dim (`int`, 768), encoder_ffn_embed_dim (`int`, 3072),
        encoder_attention_heads (`int`, 12): transformer depth L, width D, feed-forward width and heads.
    activation_fn (`str`, "gelu"): feed-forward activation, one of `SUPPORTED_ACTIVATIONS`.
    layer_wise_gradient_decay_ratio (`float`, 0.6): gradients are multiplied by this factor at the input of every
        layer, so layer i from the top sees ratio**i (forward unchanged).
    layer_norm_first (`bool`, False): pre-norm layers; False = post-norm. deep_norm (`bool`, True): post-norm
        with residuals scaled by (2 L) ** 0.25 (DeepNet); incompatible with `layer_norm_first`.
    dropout (0.0), attention_dropout (0.0), activation_dropout (0.0), dropout_input (0.0): dropout probabilities.
    encoder_layerdrop (`float`, 0.05): probability of skipping a layer in training.
    conv_pos (`int`, 128), conv_pos_groups (`int`, 16): kernel size and groups of the convolutional positional
        embedding.
    relative_position_embedding (`bool`, True), num_buckets (`int`, 320), max_distance (`int`, 800): bucketed
        relative-position attention bias (see `relative_position_bucket`). gru_rel_pos (`bool`, True): gate that
        bias per query and head.
    finetuned_model (`bool`, False): add the AudioSet ``predictor`` (Linear D -> predictor_class) of the fine-tuned
        checkpoints; predictor_dropout (0.1) and predictor_class (527) configure it.
    num_mel_bins (`int`, 128): fbank bands F expected by `BEATsEncoder.forward` (not an official cfg key; the
        official front end always produces 128).
    """

    model_type = "at2seld-beats"

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_wise_gradient_decay_ratio: float | int = 0.6
    layer_norm_first: bool = False
    deep_norm: bool = True
    dropout: float | int = 0.0
    attention_dropout: float | int = 0.0
    activation_dropout: float | int = 0.0
    encoder_layerdrop: float | int = 0.05
    dropout_input: float | int = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    finetuned_model: bool = False
    predictor_dropout: float | int = 0.1
    predictor_class: int = 527
    num_mel_bins: int = 128

    @property
    def head_dim(self) -> int:
        return self.encoder_embed_dim // self.encoder_attention_heads

    @property
    def num_freq_patches(self) -> int:
        """F' = num_mel_bins // input_patch_size (8 for the official front end)."""
        return self.num_mel_bins // self.input_patch_size

    @classmethod
    def tiny(cls, **overrides) -> BEATsConfig:
        """A small BEATs (2 layers, width 32, 2 heads) with every official feature on, for tests and CPU demos."""
        values = {
            "encoder_layers": 2,
            "encoder_embed_dim": 32,
            "encoder_ffn_embed_dim": 64,
            "encoder_attention_heads": 2,
            "embed_dim": 16,
            "conv_pos": 8,
            "conv_pos_groups": 4,
            "num_buckets": 16,
            "max_distance": 32,
            "encoder_layerdrop": 0.0,
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_official_cfg(cls, cfg: dict, ignore_keys: tuple[str, ...] | list[str] = ()) -> BEATsConfig:
        """Build a config from the ``cfg`` dict of an official BEATs checkpoint.

        Keys the checkpoint omits take the official class defaults (`OFFICIAL_CFG_DEFAULTS`), as in the official
        code. Raises `ValueError` for keys this implementation does not know (unless listed in `ignore_keys`) and,
        through validation, for values it does not support.
        """
        if not isinstance(cfg, dict):
            raise TypeError(f"The checkpoint's 'cfg' must be a dict, got {type(cfg).__name__}.")
        unknown = sorted(k for k in cfg if k not in OFFICIAL_CFG_DEFAULTS and k not in ignore_keys)
        if unknown:
            raise ValueError(
                f"The BEATs cfg has keys this implementation does not know: {unknown}. Known keys: "
                f"{sorted(OFFICIAL_CFG_DEFAULTS)}. If they do not change the encoder's computation, pass them as "
                "`ignore_keys` (converter: --ignore-cfg-key); otherwise the checkpoint is not supported."
            )
        values = dict(OFFICIAL_CFG_DEFAULTS)
        values.update({k: v for k, v in cfg.items() if k not in ignore_keys})
        for key, value in values.items():
            default = OFFICIAL_CFG_DEFAULTS[key]
            # the official cfg stores flags as 0/1 in places (e.g. gru_rel_pos is compared with `== 1`)
            if isinstance(default, bool) and isinstance(value, int) and value in (0, 1):
                values[key] = bool(value)
            elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                values[key] = float(value)
        try:
            return cls(**values)
        except StrictDataclassError as error:
            cause = error.__cause__ if error.__cause__ is not None else error
            raise ValueError(f"This BEATs cfg is not supported: {cause}") from error

    def validate_architecture(self):
        super().validate_architecture()
        positive = {
            k: getattr(self, k)
            for k in ("input_patch_size", "embed_dim", "encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim",
                      "encoder_attention_heads", "conv_pos", "conv_pos_groups", "num_mel_bins", "predictor_class")
        }
        bad = {k: v for k, v in positive.items() if v < 1}
        if bad:
            raise ValueError(f"BEATsConfig fields {bad} must be positive integers.")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError(
                f"encoder_embed_dim={self.encoder_embed_dim} must be divisible by "
                f"encoder_attention_heads={self.encoder_attention_heads}."
            )
        if self.encoder_embed_dim % self.conv_pos_groups:
            raise ValueError(
                f"encoder_embed_dim={self.encoder_embed_dim} must be divisible by conv_pos_groups={self.conv_pos_groups}."
            )
        if self.num_mel_bins < self.input_patch_size:
            raise ValueError(
                f"num_mel_bins={self.num_mel_bins} is smaller than one patch (input_patch_size={self.input_patch_size})."
            )
        if self.activation_fn not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"activation_fn={self.activation_fn!r} is not supported; use one of {SUPPORTED_ACTIVATIONS} "
                "('glu' of the official code is not implemented: no released BEATs checkpoint uses it)."
            )
        if self.deep_norm and self.layer_norm_first:
            raise ValueError("deep_norm=True requires post-norm layers (layer_norm_first=False), as in the official code.")
        if self.relative_position_embedding:
            half = self.num_buckets // 2
            if half // 2 < 1 or self.max_distance <= half // 2:
                raise ValueError(
                    f"Relative positions need num_buckets >= 4 and max_distance > num_buckets // 4 "
                    f"(got num_buckets={self.num_buckets}, max_distance={self.max_distance})."
                )
        probs = {
            k: getattr(self, k)
            for k in ("dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop", "dropout_input",
                      "predictor_dropout")
        }
        bad = {k: v for k, v in probs.items() if not 0.0 <= v < 1.0}
        if bad:
            raise ValueError(f"Dropout probabilities {bad} must lie in [0, 1).")
        if not self.layer_wise_gradient_decay_ratio > 0:
            raise ValueError(
                f"layer_wise_gradient_decay_ratio={self.layer_wise_gradient_decay_ratio} must be > 0 (1 = no decay)."
            )


# --------------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------------
def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional log-spaced bucket index of ``relative_position = key_position - query_position``.

    Half of the ``num_buckets`` buckets is for positive offsets (index offset ``num_buckets // 2``), half for
    zero/negative ones. Within a half of ``h = num_buckets // 2`` buckets, distances ``|r| < h // 2`` get their own
    bucket; larger ones get ``h//2 + floor(log(|r| / (h//2)) / log(max_distance / (h//2)) * (h - h//2))``, capped at
    ``h - 1`` (computed in float32, as in the official code). E.g. num_buckets=320, max_distance=800:
    r=0 -> 0, r=-1 -> 1, r=1 -> 161, r=-100 -> 87, r=-400 -> 135, r=+-10000 -> 159 / 319.

    relative_position: integer tensor of any shape. Returns a long tensor of the same shape in [0, num_buckets).
    """
    half = num_buckets // 2
    buckets = (relative_position > 0).to(torch.long) * half
    distance = relative_position.abs()
    max_exact = half // 2
    is_small = distance < max_exact
    # clamp avoids log(0) (those entries are small and take the exact branch anyway)
    scaled = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    if_large = (max_exact + scaled.to(torch.long)).clamp(max=half - 1)
    return buckets + torch.where(is_small, distance, if_large)


def beats_token_padding_mask(frame_padding_mask: torch.Tensor, patch_size: int, num_freq_patches: int) -> torch.Tensor:
    """Token padding mask from an fbank-frame padding mask.

    frame_padding_mask: (B, T) bool, True = padded frame. A token (t, f) is padding iff all ``patch_size`` frames
    of time patch t are padded; trailing frames that do not fill a patch are dropped, as the patch convolution drops
    them. Returns (B, (T // patch_size) * num_freq_patches) bool, tokens in time-major order (n = t * F' + f).
    """
    batch, frames = frame_padding_mask.shape
    time_patches = frames // patch_size
    per_patch = frame_padding_mask[:, : time_patches * patch_size].reshape(batch, time_patches, patch_size).all(-1)
    return per_patch[:, :, None].expand(batch, time_patches, num_freq_patches).reshape(batch, -1)


def _activation(name: str):
    if name == "gelu":
        return lambda x: F.gelu(x.float()).type_as(x)
    if name in ("gelu_accurate", "gelu_fast"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu
    if name == "tanh":
        return torch.tanh
    if name == "linear":
        return lambda x: x
    raise ValueError(f"activation_fn={name!r} is not supported; use one of {SUPPORTED_ACTIVATIONS}.")


class _GradScale(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by `scale` (layer-wise gradient decay)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


# --------------------------------------------------------------------------------------------------
# Modules (names of attributes = official state-dict keys)
# --------------------------------------------------------------------------------------------------
class _WeightNormConv1d(nn.Module):
    """Grouped Conv1d (D -> D, kernel K, padding K // 2) with weight = weight_g * weight_v / ||weight_v||.

    The norm runs over the output and input-channel axes, separately per kernel tap (``weight_norm(dim=2)``).
    Parameters: weight_g (1, 1, K), weight_v (D, D / groups, K), bias (D). Input/output (B, D, N) -> (B, D, N + 1 - K % 2).
    """

    def __init__(self, channels: int, kernel_size: int, groups: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.groups = groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel_size))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))

    @property
    def weight(self) -> torch.Tensor:
        norm = torch.linalg.vector_norm(self.weight_v, dim=(0, 1), keepdim=True)
        return self.weight_v * (self.weight_g / norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight, self.bias, padding=self.kernel_size // 2, groups=self.groups)


class _SamePad(nn.Module):
    """Drops the last output step of an even-kernel convolution so that N tokens in give N out."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : x.shape[-1] - self.remove]


class BEATsSelfAttention(nn.Module):
    """Multi-head self-attention with an optional (gated) relative-position bias.

    Parameters (official names): q_proj, k_proj, v_proj, out_proj (Linear D -> D with bias);
    relative_attention_bias (Embedding(num_buckets, H), layer 0 only); grep_linear (Linear(D / H, 8)) and
    grep_a (1, H, 1, 1) when ``gru_rel_pos``.
    """

    def __init__(self, config: BEATsConfig, has_relative_attention_bias: bool):
        super().__init__()
        dim, heads = config.encoder_embed_dim, config.encoder_attention_heads
        self.num_heads = heads
        self.head_dim = dim // heads
        self.dropout = float(config.attention_dropout)
        self.num_buckets = config.num_buckets
        self.max_distance = config.max_distance
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(config.num_buckets, heads)
        self.gru_rel_pos = config.gru_rel_pos
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def compute_bias(self, query_length: int, key_length: int) -> torch.Tensor:
        """Relative-position bias (H, query_length, key_length) from this layer's embedding table."""
        device = self.relative_attention_bias.weight.device
        query = torch.arange(query_length, dtype=torch.long, device=device)[:, None]
        key = torch.arange(key_length, dtype=torch.long, device=device)[None, :]
        buckets = relative_position_bucket(key - query, self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, N, D); key_padding_mask (B, N) bool, True = ignore; position_bias (H, N, N) or None -> (B, N, D)."""
        batch, tokens, dim = x.shape
        q = self.q_proj(x).view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, d)
        k = self.k_proj(x).view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)
        mask = None
        if position_bias is not None:
            mask = position_bias.unsqueeze(0)  # (1, H, N, N)
            if self.gru_rel_pos:
                # per-query, per-head gate from the unscaled query: sigmoid of two sums of 4 outputs each
                gates = torch.sigmoid(self.grep_linear(q).view(batch, self.num_heads, tokens, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)  # (B, H, N, 1) each
                mask = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * mask
        if key_padding_mask is not None:
            pad = torch.zeros(batch, 1, 1, tokens, dtype=q.dtype, device=q.device)
            pad = pad.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
            mask = pad if mask is None else mask + pad
        if mask is not None:
            mask = mask.to(q.dtype)
        attn = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(attn.transpose(1, 2).reshape(batch, tokens, dim))


class BEATsLayer(nn.Module):
    """One transformer block: self_attn, self_attn_layer_norm, fc1, fc2, final_layer_norm (official names).

    Post-norm (``layer_norm_first=False``): x = LN1(a x + Attn(x)); x = LN2(a x + FFN(x)) with a = (2 L) ** 0.25 when
    ``deep_norm`` else 1. Pre-norm: x = x + Attn(LN1(x)); x = x + FFN(LN2(x)). Shapes (B, N, D) -> (B, N, D).
    """

    def __init__(self, config: BEATsConfig, has_relative_attention_bias: bool):
        super().__init__()
        dim = config.encoder_embed_dim
        self.self_attn = BEATsSelfAttention(config, has_relative_attention_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.activation = _activation(config.activation_fn)
        self.layer_norm_first = config.layer_norm_first
        self.dropout = nn.Dropout(float(config.dropout))
        self.activation_dropout = nn.Dropout(float(config.activation_dropout))
        self.residual_scale = math.pow(2 * config.encoder_layers, 0.25) if config.deep_norm else 1.0

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.activation_dropout(self.activation(self.fc1(x)))))

    def forward(self, x, key_padding_mask=None, position_bias=None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), key_padding_mask, position_bias))
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(
            x * self.residual_scale + self.dropout(self.self_attn(x, key_padding_mask, position_bias))
        )
        return self.final_layer_norm(x * self.residual_scale + self._ffn(x))


class BEATsTransformer(nn.Module):
    """The official ``encoder`` submodule: pos_conv (Sequential(conv, same-pad, GELU)), layers, layer_norm."""

    def __init__(self, config: BEATsConfig):
        super().__init__()
        dim = config.encoder_embed_dim
        self.pos_conv = nn.Sequential(
            _WeightNormConv1d(dim, config.conv_pos, config.conv_pos_groups), _SamePad(config.conv_pos), nn.GELU()
        )
        self.layers = nn.ModuleList(
            [BEATsLayer(config, config.relative_position_embedding and i == 0) for i in range(config.encoder_layers)]
        )
        self.layer_norm = nn.LayerNorm(dim)


class BEATsEncoder(nn.Module):
    """BEATs encoder: Kaldi fbank (B, T, 128) -> patch tokens (B, (T // 16) * 8, D), time-major.

    Submodules carry the official names (``patch_embedding``, ``layer_norm``, ``post_extract_proj``, ``encoder``,
    ``predictor`` when ``config.finetuned_model``), so ``state_dict()`` keys are the official ones (minus the
    relative-bias aliases, see the module docstring). ``layers`` is the ModuleList of transformer blocks (for
    freezing); the relative-position table used by all layers lives in ``layers[0]``.

    Besides `forward`, the stages are public for models that mix other streams between layers (cross-stitch):
    ``x, mask, grid = embed(fbank, padding_mask)``; ``bias = position_bias(x.shape[1])``;
    ``x = run_layer(i, x, mask, bias)`` for each i; ``x = finalize(x)``.
    """

    def __init__(self, config: BEATsConfig):
        super().__init__()
        self.config = config
        patch = config.input_patch_size
        self.patch_embedding = nn.Conv2d(1, config.embed_dim, kernel_size=patch, stride=patch, bias=config.conv_bias)
        self.layer_norm = nn.LayerNorm(config.embed_dim)
        self.post_extract_proj = (
            nn.Linear(config.embed_dim, config.encoder_embed_dim)
            if config.embed_dim != config.encoder_embed_dim
            else None
        )
        self.dropout_input = nn.Dropout(float(config.dropout_input))
        self.encoder = BEATsTransformer(config)
        if config.finetuned_model:
            self.predictor_dropout = nn.Dropout(float(config.predictor_dropout))
            self.predictor = nn.Linear(config.encoder_embed_dim, config.predictor_class)
        else:
            self.predictor = None
        self.reset_parameters()

    # -- bookkeeping ------------------------------------------------------------------------------
    @property
    def layers(self) -> nn.ModuleList:
        """The transformer blocks (``encoder.layers``), in order."""
        return self.encoder.layers

    @property
    def hidden_size(self) -> int:
        return self.config.encoder_embed_dim

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random initialisation as in BEATs pretraining (BERT-style N(0, 0.02) inside the transformer,
        xavier with DeepNet gains when ``deep_norm``, weight-normed positional conv with std sqrt(4 / (K D)))."""
        cfg = self.config
        for module in self.encoder.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.02)
                module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 0.02)
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, BEATsSelfAttention) and module.gru_rel_pos:
                module.grep_a.fill_(1.0)
        conv = self.encoder.pos_conv[0]
        conv.weight_v.normal_(0.0, math.sqrt(4.0 / (cfg.conv_pos * cfg.encoder_embed_dim)))
        conv.weight_g.copy_(torch.linalg.vector_norm(conv.weight_v, dim=(0, 1), keepdim=True))
        conv.bias.zero_()
        if cfg.deep_norm:
            beta = math.pow(8 * cfg.encoder_layers, -0.25)
            for layer in self.encoder.layers:
                nn.init.xavier_normal_(layer.self_attn.k_proj.weight, gain=1.0)
                nn.init.xavier_normal_(layer.self_attn.q_proj.weight, gain=1.0)
                for weight in (layer.self_attn.v_proj.weight, layer.self_attn.out_proj.weight, layer.fc1.weight,
                               layer.fc2.weight):
                    nn.init.xavier_normal_(weight, gain=beta)
        self.patch_embedding.reset_parameters()
        self.layer_norm.reset_parameters()
        if self.post_extract_proj is not None:
            self.post_extract_proj.reset_parameters()
        if self.predictor is not None:
            self.predictor.reset_parameters()

    def output_grid(self, num_frames: int) -> tuple[int, int]:
        """(time patches T // P, frequency patches F // P) of the token grid for an fbank of `num_frames` frames."""
        return num_frames // self.config.input_patch_size, self.config.num_freq_patches

    # -- stages -----------------------------------------------------------------------------------
    def _check_inputs(self, fbank: torch.Tensor, padding_mask: torch.Tensor | None) -> None:
        cfg = self.config
        if fbank.dim() != 3 or fbank.shape[-1] != cfg.num_mel_bins:
            raise ValueError(
                f"BEATsEncoder expects an fbank of shape (batch, frames, {cfg.num_mel_bins}), got {tuple(fbank.shape)}; "
                "pass `backbone_values` of AT2SELDFeatureExtractor(backbone_type='beats')."
            )
        if fbank.shape[1] < cfg.input_patch_size:
            raise ValueError(
                f"The fbank has {fbank.shape[1]} frames, fewer than one patch ({cfg.input_patch_size} frames = "
                f"{cfg.input_patch_size * 10} ms); pad the audio to at least that length."
            )
        if padding_mask is not None and (padding_mask.dim() != 2 or tuple(padding_mask.shape) != tuple(fbank.shape[:2])):
            raise ValueError(
                f"padding_mask must be (batch, frames) = {tuple(fbank.shape[:2])} with True at padded frames, "
                f"got {tuple(padding_mask.shape)}."
            )

    def patch_features(self, fbank: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """fbank (B, T, F) -> raw patch embeddings (B, T' * F', E) in time-major order, and the grid (T', F')."""
        features = self.patch_embedding(fbank.unsqueeze(1))  # (B, E, T', F')
        grid = (features.shape[2], features.shape[3])
        return features.flatten(2).transpose(1, 2), grid

    def embed(
        self, fbank: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int]]:
        """Everything before the first transformer layer.

        fbank (B, T, F) float; padding_mask (B, T) bool (True = padded frame) or None.
        Returns x (B, N, D) with N = T' * F', the token padding mask (B, N) bool or None, and the grid (T', F').
        """
        self._check_inputs(fbank, padding_mask)
        features, grid = self.patch_features(fbank)
        x = self.layer_norm(features)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        x = self.dropout_input(x)
        token_mask = None
        if padding_mask is not None:
            token_mask = beats_token_padding_mask(padding_mask.bool(), self.config.input_patch_size, grid[1])
            if token_mask.all(-1).any():
                rows = token_mask.all(-1).nonzero().flatten().tolist()
                raise ValueError(
                    f"padding_mask marks every {self.config.input_patch_size}-frame patch of batch item(s) {rows} "
                    "as padding (a patch counts as padding when all its frames are); drop those items."
                )
            if not token_mask.any():
                token_mask = None
            else:
                x = x.masked_fill(token_mask[..., None], 0.0)
        x = x + self.encoder.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.config.layer_norm_first:
            x = self.encoder.layer_norm(x)
        x = F.dropout(x, p=float(self.config.dropout), training=self.training)
        return x, token_mask, grid

    def position_bias(self, num_tokens: int) -> torch.Tensor | None:
        """Relative-position bias (H, N, N) shared by all layers, or None without relative positions."""
        if not self.config.relative_position_embedding:
            return None
        return self.layers[0].self_attn.compute_bias(num_tokens, num_tokens)

    def run_layer(
        self,
        index: int,
        x: torch.Tensor,
        token_padding_mask: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Transformer block `index` on x (B, N, D) -> (B, N, D), with gradient decay and (training) layer drop."""
        if self.config.layer_wise_gradient_decay_ratio != 1.0 and torch.is_grad_enabled():
            x = _GradScale.apply(x, float(self.config.layer_wise_gradient_decay_ratio))
        drop = self.config.encoder_layerdrop
        if self.training and drop > 0 and torch.rand((), device=x.device) < drop:
            return x
        return self.layers[index](x, token_padding_mask, position_bias)

    def finalize(self, x: torch.Tensor) -> torch.Tensor:
        """After the last layer: the encoder's layer_norm for pre-norm models, identity for post-norm."""
        return self.encoder.layer_norm(x) if self.config.layer_norm_first else x

    def forward(
        self, fbank: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Encode a BEATs fbank.

        fbank: (B, T, num_mel_bins) float, the normalised Kaldi fbank of 16 kHz audio
            (``AT2SELDFeatureExtractor(backbone_type="beats")`` -> ``backbone_values``); T >= input_patch_size.
        padding_mask: optional (B, T) bool, True at padded frames.
        Returns hidden (B, T' * F', D) with token n = t * F' + f, and grid (T', F') = (T // 16, 8) by default.
        Tokens of padded patches (see `beats_token_padding_mask`) are excluded as attention keys, but their own
        rows of `hidden` carry no meaning; mask them downstream.
        """
        x, token_mask, grid = self.embed(fbank, padding_mask)
        bias = self.position_bias(x.shape[1])
        for index in range(len(self.layers)):
            x = self.run_layer(index, x, token_mask, bias)
        return self.finalize(x), grid

    def tag_probabilities(self, hidden: torch.Tensor, token_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """AudioSet tag probabilities of a fine-tuned checkpoint (``finetuned_model=True``).

        hidden (B, N, D) from `forward`; token_padding_mask (B, N) bool or None. Returns (B, predictor_class):
        sigmoid of the mean over non-padded tokens of the per-token predictor logits.
        """
        if self.predictor is None:
            raise ValueError("This BEATs encoder has no predictor (config.finetuned_model=False); convert a fine-tuned "
                             "checkpoint with --keep-predictor to get AudioSet tags.")
        logits = self.predictor(self.predictor_dropout(hidden))
        if token_padding_mask is None:
            return torch.sigmoid(logits.mean(1))
        keep = (~token_padding_mask).to(logits.dtype)[..., None]
        return torch.sigmoid((logits * keep).sum(1) / keep.sum(1))

    # -- loading ----------------------------------------------------------------------------------
    @classmethod
    def from_folder(cls, path: str | os.PathLike) -> BEATsEncoder:
        """Rebuild an encoder from a folder written by ``hub_scripts/convert_beats_checkpoint.py``
        (``config.json`` + ``model.safetensors``). Raises with the missing/unexpected key lists on a mismatch."""
        folder = os.fspath(path)
        config_file = os.path.join(folder, "config.json")
        weights_file = os.path.join(folder, SAFETENSORS_WEIGHTS_NAME)
        for needed in (config_file, weights_file):
            if not os.path.isfile(needed):
                raise FileNotFoundError(
                    f"{needed} not found. A BEATs backbone folder holds config.json and {SAFETENSORS_WEIGHTS_NAME}; "
                    "make one from an official BEATs_iter3+*.pt with hub_scripts/convert_beats_checkpoint.py."
                )
        with open(config_file, encoding="utf-8") as handle:
            stored = json.load(handle)
        if stored.get("model_type") != BEATsConfig.model_type:
            raise ValueError(
                f"{config_file} has model_type={stored.get('model_type')!r}, expected {BEATsConfig.model_type!r}."
            )
        config = BEATsConfig.from_json_file(config_file)
        try:
            from safetensors.torch import load_file
        except ImportError as error:  # safetensors ships with transformers; this is a broken install
            raise ImportError("Loading a BEATs backbone needs safetensors. Run `pip install safetensors`.") from error
        encoder = cls(config)
        state_dict = load_file(weights_file)
        missing, unexpected = encoder.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{weights_file} does not match its config.json: missing keys {sorted(missing)}, unexpected keys "
                f"{sorted(unexpected)}. Re-run hub_scripts/convert_beats_checkpoint.py."
            )
        return encoder


def load_beats_backbone(path: str | os.PathLike) -> BEATsEncoder:
    """`BEATsEncoder.from_folder`: an encoder from a converted folder (config.json + model.safetensors)."""
    return BEATsEncoder.from_folder(path)


_REL_BIAS_KEY = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight$")
_POS_CONV = "encoder.pos_conv.0."


def normalize_official_state_dict(
    state_dict: dict[str, torch.Tensor], keep_predictor: bool
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map an official BEATs state dict onto `BEATsEncoder` names. Returns (new dict, dropped keys).

    * ``encoder.pos_conv.0.parametrizations.weight.original0/1`` -> ``weight_g`` / ``weight_v``; a plain
      ``encoder.pos_conv.0.weight`` W -> weight_v = W, weight_g = ||W|| over axes (0, 1) (same effective weight).
    * ``encoder.layers.{i>0}.self_attn.relative_attention_bias.weight`` (aliases of layer 0's table in the official
      model) are dropped after checking they equal layer 0's; `ValueError` if they differ.
    * ``predictor.*`` is dropped unless `keep_predictor`.
    """
    out = dict(state_dict)
    dropped: list[str] = []
    renames = {
        _POS_CONV + "parametrizations.weight.original0": _POS_CONV + "weight_g",
        _POS_CONV + "parametrizations.weight.original1": _POS_CONV + "weight_v",
    }
    for old, new in renames.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    if _POS_CONV + "weight" in out and _POS_CONV + "weight_v" not in out:
        weight = out.pop(_POS_CONV + "weight")
        out[_POS_CONV + "weight_v"] = weight
        out[_POS_CONV + "weight_g"] = torch.linalg.vector_norm(weight, dim=(0, 1), keepdim=True)
    aliases = sorted((int(m.group(1)), key) for key in out if (m := _REL_BIAS_KEY.match(key)))
    if aliases:
        first_key = "encoder.layers.0.self_attn.relative_attention_bias.weight"
        if first_key not in out:
            out[first_key] = out.pop(aliases[0][1])
            aliases = aliases[1:]
        reference = out[first_key]
        for index, key in aliases:
            if index == 0:
                continue
            table = out.pop(key)
            if table.shape != reference.shape or not torch.equal(table, reference):
                raise ValueError(
                    f"{key} differs from encoder.layers.0's relative_attention_bias; the official BEATs shares one table "
                    "across layers, so this state dict is not an official BEATs checkpoint."
                )
            dropped.append(key)
    if not keep_predictor:
        for key in [k for k in out if k.startswith("predictor.")]:
            out.pop(key)
            dropped.append(key)
    return out, dropped


def load_official_state_dict(encoder: BEATsEncoder, state_dict: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Load an official BEATs ``model`` state dict into `encoder`; returns (missing_keys, unexpected_keys).

    Key handling is that of `normalize_official_state_dict` (weight-norm naming, relative-bias aliases; the
    ``predictor.*`` keys are dropped when the encoder has no predictor). Shape mismatches raise `RuntimeError`.
    """
    normalized, dropped = normalize_official_state_dict(state_dict, keep_predictor=encoder.predictor is not None)
    if dropped:
        logger.info("BEATs state dict: dropped %d alias/predictor keys: %s", len(dropped), dropped)
    result = encoder.load_state_dict(normalized, strict=False)
    return sorted(result.missing_keys), sorted(result.unexpected_keys)


__all__ = [
    "OFFICIAL_CFG_DEFAULTS",
    "BEATsConfig",
    "BEATsEncoder",
    "BEATsLayer",
    "BEATsSelfAttention",
    "BEATsTransformer",
    "beats_token_padding_mask",
    "load_beats_backbone",
    "load_official_state_dict",
    "normalize_official_state_dict",
    "relative_position_bucket",
]

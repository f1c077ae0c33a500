"""BEATs encoder and the official-checkpoint converter.

The official key names and shapes below are written out by hand from the official BEATs code
(microsoft/unilm, beats/BEATs.py + backbone.py), so a drifting parameter name fails here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from at2seld.beats_at2seld import (
    BEATsConfig,
    BEATsEncoder,
    beats_token_padding_mask,
    load_beats_backbone,
    load_official_state_dict,
    relative_position_bucket,
)

ROOT = Path(__file__).resolve().parents[1]


def _converter():
    spec = importlib.util.spec_from_file_location("convert_beats_checkpoint", ROOT / "hub_scripts" / "convert_beats_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A tiny cfg in the official format (every official key, BEATs_iter3 switches on: deep norm, gated relative bias).
TINY_CFG = {
    "encoder_layers": 2, "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 2,
    "activation_fn": "gelu", "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "encoder_layerdrop": 0.05, "dropout_input": 0.0, "layer_norm_first": False, "conv_bias": False, "conv_pos": 8,
    "conv_pos_groups": 4, "relative_position_embedding": True, "num_buckets": 16, "max_distance": 32,
    "gru_rel_pos": True, "deep_norm": True, "input_patch_size": 16, "layer_wise_gradient_decay_ratio": 0.6,
    "embed_dim": 16, "finetuned_model": False,
}


def official_shapes(layers: int = 2, predictor_class: int | None = None) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the official BEATs state dict for TINY_CFG (D=32, E=16, H=2, ffn=64, K=8, groups=4)."""
    shapes = {
        "patch_embedding.weight": (16, 1, 16, 16),  # conv_bias=False: no patch_embedding.bias
        "layer_norm.weight": (16,),
        "layer_norm.bias": (16,),
        "post_extract_proj.weight": (32, 16),
        "post_extract_proj.bias": (32,),
        "encoder.pos_conv.0.weight_g": (1, 1, 8),  # weight_norm(dim=2)
        "encoder.pos_conv.0.weight_v": (32, 8, 8),
        "encoder.pos_conv.0.bias": (32,),
        "encoder.layer_norm.weight": (32,),
        "encoder.layer_norm.bias": (32,),
    }
    for i in range(layers):
        p = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            shapes[p + f"self_attn.{proj}.weight"] = (32, 32)
            shapes[p + f"self_attn.{proj}.bias"] = (32,)
        # one table shared by all layers in the official model, hence saved under every layer
        shapes[p + "self_attn.relative_attention_bias.weight"] = (16, 2)
        shapes[p + "self_attn.grep_linear.weight"] = (8, 16)
        shapes[p + "self_attn.grep_linear.bias"] = (8,)
        shapes[p + "self_attn.grep_a"] = (1, 2, 1, 1)
        shapes[p + "self_attn_layer_norm.weight"] = (32,)
        shapes[p + "self_attn_layer_norm.bias"] = (32,)
        shapes[p + "fc1.weight"] = (64, 32)
        shapes[p + "fc1.bias"] = (64,)
        shapes[p + "fc2.weight"] = (32, 64)
        shapes[p + "fc2.bias"] = (32,)
        shapes[p + "final_layer_norm.weight"] = (32,)
        shapes[p + "final_layer_norm.bias"] = (32,)
    if predictor_class is not None:
        shapes["predictor.weight"] = (predictor_class, 32)
        shapes["predictor.bias"] = (predictor_class,)
    return shapes


def official_state_dict(seed: int = 0, predictor_class: int | None = None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    sd = {k: 0.2 * torch.randn(shape, generator=generator) for k, shape in official_shapes(2, predictor_class).items()}
    for key, value in list(sd.items()):
        if key.endswith("norm.weight"):
            sd[key] = 1.0 + 0.1 * value
    sd["encoder.pos_conv.0.weight_g"] = sd["encoder.pos_conv.0.weight_g"].abs() + 1.0
    sd["encoder.layers.1.self_attn.relative_attention_bias.weight"] = sd[
        "encoder.layers.0.self_attn.relative_attention_bias.weight"
    ]
    return sd


def write_checkpoint(tmp_path: Path, cfg: dict, sd: dict, name: str = "BEATs_tiny.pt") -> Path:
    path = tmp_path / name
    torch.save({"cfg": cfg, "model": sd}, path)
    return path


def reference_forward(sd: dict[str, torch.Tensor], fbank: torch.Tensor) -> torch.Tensor:
    """The official computation for TINY_CFG, written in the official layout: (T, B, C) tensors, the alpha=32
    max-subtraction attention, gate from the unscaled query, bias computed in layer 0 and passed on."""
    layers, heads, dim, kernel, groups, alpha = 2, 2, 32, 8, 4, 32
    head_dim = dim // heads
    x = F.conv2d(fbank.unsqueeze(1), sd["patch_embedding.weight"], stride=16)
    x = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)
    x = F.layer_norm(x, (16,), sd["layer_norm.weight"], sd["layer_norm.bias"])
    x = F.linear(x, sd["post_extract_proj.weight"], sd["post_extract_proj.bias"])
    g, v = sd["encoder.pos_conv.0.weight_g"], sd["encoder.pos_conv.0.weight_v"]
    weight = g * v / torch.sqrt((v**2).sum(dim=(0, 1), keepdim=True))
    conv = F.conv1d(x.transpose(1, 2), weight, sd["encoder.pos_conv.0.bias"], padding=kernel // 2, groups=groups)
    x = x + F.gelu(conv[:, :, :-1]).transpose(1, 2)  # even kernel: SamePad drops the last step
    x = F.layer_norm(x, (dim,), sd["encoder.layer_norm.weight"], sd["encoder.layer_norm.bias"])
    x = x.transpose(0, 1)
    residual_scale = (2 * layers) ** 0.25
    pos_bias = None
    for i in range(layers):
        p = f"encoder.layers.{i}."
        tgt, bsz, _ = x.shape
        if pos_bias is None:
            rel = torch.arange(tgt)[None, :] - torch.arange(tgt)[:, None]
            table = sd[p + "self_attn.relative_attention_bias.weight"][relative_position_bucket(rel, 16, 32)]
            pos_bias = table.permute(2, 0, 1).unsqueeze(0).repeat(bsz, 1, 1, 1).view(bsz * heads, tgt, tgt)
        scaling = head_dim**-0.5
        q = F.linear(x, sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.q_proj.bias"]) * scaling / alpha
        k = F.linear(x, sd[p + "self_attn.k_proj.weight"], sd[p + "self_attn.k_proj.bias"])
        val = F.linear(x, sd[p + "self_attn.v_proj.weight"], sd[p + "self_attn.v_proj.bias"])
        q, k, val = (t.contiguous().view(tgt, bsz * heads, head_dim).transpose(0, 1) for t in (q, k, val))
        scores = torch.bmm(q, k.transpose(1, 2))
        scores = (scores - scores.max(dim=-1, keepdim=True)[0]) * alpha
        query = q.view(bsz, heads, tgt, head_dim) * alpha / scaling
        gate_logits = F.linear(query, sd[p + "self_attn.grep_linear.weight"], sd[p + "self_attn.grep_linear.bias"])
        gate_a, gate_b = torch.sigmoid(gate_logits.view(bsz, heads, tgt, 2, 4).sum(-1)).chunk(2, dim=-1)
        gate = gate_a * (gate_b * sd[p + "self_attn.grep_a"] - 1.0) + 2.0
        scores = scores + gate.view(bsz * heads, tgt, 1) * pos_bias
        attn = torch.bmm(F.softmax(scores, dim=-1), val).transpose(0, 1).contiguous().view(tgt, bsz, dim)
        attn = F.linear(attn, sd[p + "self_attn.out_proj.weight"], sd[p + "self_attn.out_proj.bias"])
        x = F.layer_norm(x * residual_scale + attn, (dim,), sd[p + "self_attn_layer_norm.weight"],
                         sd[p + "self_attn_layer_norm.bias"])
        ffn = F.linear(F.gelu(F.linear(x, sd[p + "fc1.weight"], sd[p + "fc1.bias"])), sd[p + "fc2.weight"], sd[p + "fc2.bias"])
        x = F.layer_norm(x * residual_scale + ffn, (dim,), sd[p + "final_layer_norm.weight"],
                         sd[p + "final_layer_norm.bias"])
    return x.transpose(0, 1)


# --------------------------------------------------------------------------------------------------
def test_state_dict_keys_are_the_official_ones():
    encoder = BEATsEncoder(BEATsConfig.from_official_cfg(TINY_CFG))
    expected = official_shapes()
    # the official model repeats layer 0's relative table under every layer; we keep it once
    expected.pop("encoder.layers.1.self_attn.relative_attention_bias.weight")
    got = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    assert got == expected
    assert encoder.layers is encoder.encoder.layers and len(encoder.layers) == 2


def test_official_state_dict_loads_and_matches_the_official_computation():
    sd = official_state_dict()
    encoder = BEATsEncoder(BEATsConfig.from_official_cfg(TINY_CFG)).eval()
    missing, unexpected = load_official_state_dict(encoder, sd)
    assert missing == [] and unexpected == []
    fbank = torch.randn(2, 50, 128, generator=torch.Generator().manual_seed(1))
    hidden, grid = encoder(fbank)
    assert grid == (3, 8) and hidden.shape == (2, 24, 32)
    torch.testing.assert_close(hidden, reference_forward(sd, fbank), rtol=1e-4, atol=1e-4)


def test_convert_then_rebuild_gives_identical_outputs(tmp_path):
    sd = official_state_dict()
    checkpoint = write_checkpoint(tmp_path, TINY_CFG, sd)
    out = _converter().convert(checkpoint, tmp_path / "beats")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]  # weights only as safetensors

    direct = BEATsEncoder(BEATsConfig.from_official_cfg(TINY_CFG)).eval()
    assert load_official_state_dict(direct, sd) == ([], [])
    rebuilt = load_beats_backbone(out).eval()
    assert rebuilt.config.encoder_layerdrop == 0.05 and rebuilt.config.layer_wise_gradient_decay_ratio == 0.6
    fbank = torch.randn(3, 40, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, grid_a = direct(fbank)
        b, grid_b = BEATsEncoder.from_folder(out).eval()(fbank)
        c, _ = rebuilt(fbank)
    assert grid_a == grid_b == (2, 8) and a.shape == (3, 16, 32)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_relative_position_buckets_hand_computed():
    # num_buckets=320, max_distance=800: half = 160 buckets per sign, exact below 80,
    # then 80 + floor(log10(|r| / 80) * 80) since log(800/80) = log(10); capped at 159.
    rel = torch.tensor([0, -1, 1, -79, -80, 80, -100, 100, -400, -800, -10000, 10000])
    expected = torch.tensor([0, 1, 161, 79, 80, 240, 87, 247, 135, 159, 159, 319])
    assert torch.equal(relative_position_bucket(rel, 320, 800), expected)
    # tiny: num_buckets=16, max_distance=32 -> half 8, exact below 4; r=5: 4 + floor(log(5/4)/log(8) * 4) = 4
    assert relative_position_bucket(torch.tensor([3, -4, 5, 31, -1000]), 16, 32).tolist() == [8 + 3, 4, 12, 8 + 7, 7]


def test_tokens_are_time_major():
    encoder = BEATsEncoder(BEATsConfig.tiny())
    fbank = torch.zeros(1, 64, 128)
    fbank[0, 2 * 16 : 3 * 16, 5 * 16 : 6 * 16] = 1.0  # time patch 2, frequency patch 5
    features, grid = encoder.patch_features(fbank)
    assert grid == (4, 8) and features.shape == (1, 32, 16)
    nonzero = features.abs().sum(-1)[0].nonzero().flatten().tolist()
    assert nonzero == [2 * 8 + 5]


def test_padding_mask_equals_running_the_unpadded_clip():
    torch.manual_seed(0)
    encoder = BEATsEncoder(BEATsConfig.tiny()).eval()
    clip = torch.randn(1, 32, 128)
    padded = torch.cat([clip, 100 * torch.randn(1, 40, 128)], dim=1)  # garbage in 2.5 padded patches
    mask = torch.zeros(1, 72, dtype=torch.bool)
    mask[:, 32:] = True
    with torch.no_grad():
        alone, _ = encoder(clip)
        hidden, grid = encoder(padded, padding_mask=mask)
    assert grid == (4, 8)
    torch.testing.assert_close(hidden[:, : 2 * 8], alone, rtol=1e-5, atol=1e-5)
    assert beats_token_padding_mask(mask, 16, 8)[0].tolist() == [False] * 16 + [True] * 16


def test_gradients_flow_and_layer_wise_decay():
    torch.manual_seed(0)
    fbank = torch.randn(2, 32, 128)

    def grads(ratio):
        torch.manual_seed(1)
        encoder = BEATsEncoder(BEATsConfig.tiny(layer_wise_gradient_decay_ratio=ratio)).eval()
        hidden, _ = encoder(fbank)
        hidden.pow(2).mean().backward()
        return {n: p.grad for n, p in encoder.named_parameters()}

    plain = grads(1.0)
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in plain.values())
    decayed = grads(0.6)
    # every path from the patch embedding to the output crosses both layers' gradient scaling: 0.6 ** 2
    torch.testing.assert_close(decayed["patch_embedding.weight"], 0.36 * plain["patch_embedding.weight"])
    # layer 0's weights lie below one scaling (the one at layer 1's input), layer 1's below none
    torch.testing.assert_close(decayed["encoder.layers.0.fc2.weight"], 0.6 * plain["encoder.layers.0.fc2.weight"])
    torch.testing.assert_close(decayed["encoder.layers.1.fc2.weight"], plain["encoder.layers.1.fc2.weight"])


def test_weight_norm_key_variants_load_to_the_same_encoder():
    sd = official_state_dict()
    reference = BEATsEncoder(BEATsConfig.from_official_cfg(TINY_CFG)).eval()
    load_official_state_dict(reference, sd)
    fbank = torch.randn(1, 32, 128)
    expected, _ = reference(fbank)

    parametrized = dict(sd)
    parametrized["encoder.pos_conv.0.parametrizations.weight.original0"] = parametrized.pop("encoder.pos_conv.0.weight_g")
    parametrized["encoder.pos_conv.0.parametrizations.weight.original1"] = parametrized.pop("encoder.pos_conv.0.weight_v")
    fused = dict(sd)
    g, v = fused.pop("encoder.pos_conv.0.weight_g"), fused.pop("encoder.pos_conv.0.weight_v")
    fused["encoder.pos_conv.0.weight"] = g * v / torch.sqrt((v**2).sum(dim=(0, 1), keepdim=True))
    for variant in (parametrized, fused):
        encoder = BEATsEncoder(BEATsConfig.from_official_cfg(TINY_CFG)).eval()
        assert load_official_state_dict(encoder, variant) == ([], [])
        torch.testing.assert_close(encoder(fbank)[0], expected, rtol=1e-5, atol=1e-5)


def test_finetuned_checkpoint_predictor_dropped_or_kept(tmp_path):
    cfg = dict(TINY_CFG, finetuned_model=True, predictor_class=5, predictor_dropout=0.1)
    checkpoint = write_checkpoint(tmp_path, cfg, official_state_dict(predictor_class=5))
    convert = _converter().convert
    dropped = load_beats_backbone(convert(checkpoint, tmp_path / "dropped"))
    assert dropped.predictor is None and not dropped.config.finetuned_model
    kept = load_beats_backbone(convert(checkpoint, tmp_path / "kept", keep_predictor=True)).eval()
    hidden, _ = kept(torch.randn(2, 32, 128))
    probs = kept.tag_probabilities(hidden)
    assert probs.shape == (2, 5) and ((probs > 0) & (probs < 1)).all()
    with pytest.raises(ValueError, match="not a fine-tuned checkpoint"):
        convert(write_checkpoint(tmp_path, TINY_CFG, official_state_dict()), tmp_path / "x", keep_predictor=True)


def test_default_config_is_beats_iter3_with_90m_parameters():
    config = BEATsConfig()
    with torch.device("meta"):
        encoder = BEATsEncoder(config)
    # by hand: patch 512*256, LN 2*512, proj 512*768+768, pos conv 128 + 768*48*128 + 768,
    # per layer 4*(768^2+768) + (64*8+8+12) + 4*768 + (768*3072+3072) + (3072*768+768), relative table 320*12, LN 2*768
    layer = 4 * (768 * 768 + 768) + (64 * 8 + 8 + 12) + 4 * 768 + (768 * 3072 + 3072) + (3072 * 768 + 768)
    expected = 512 * 256 + 1024 + 512 * 768 + 768 + 128 + 768 * 48 * 128 + 768 + 12 * layer + 320 * 12 + 1536
    assert sum(p.numel() for p in encoder.parameters()) == expected == 90_311_792
    assert (config.num_buckets, config.max_distance, config.deep_norm, config.gru_rel_pos) == (320, 800, True, True)


def test_bad_cfg_and_checkpoints_raise_clear_errors(tmp_path):
    convert = _converter().convert
    with pytest.raises(ValueError, match="does not know.*'mystery'"):
        convert(write_checkpoint(tmp_path, dict(TINY_CFG, mystery=1), official_state_dict()), tmp_path / "a")
    with pytest.raises(ValueError, match="'glu'"):
        BEATsConfig.from_official_cfg(dict(TINY_CFG, activation_fn="glu"))
    with pytest.raises(ValueError, match="deep_norm"):
        BEATsConfig.from_official_cfg(dict(TINY_CFG, layer_norm_first=True))
    missing_cfg = {k: v for k, v in TINY_CFG.items() if k != "input_patch_size"}  # official default -1
    with pytest.raises(ValueError, match="input_patch_size"):
        BEATsConfig.from_official_cfg(missing_cfg)
    sd = official_state_dict()
    del sd["encoder.layers.1.fc1.bias"]
    sd["encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['encoder.layers.1.fc1.bias'\].*\['encoder.extra.weight'\]"):
        convert(write_checkpoint(tmp_path, TINY_CFG, sd), tmp_path / "b")
    assert not (tmp_path / "b").exists()
    torch.save({"model": official_state_dict()}, tmp_path / "nocfg.pt")
    with pytest.raises(ValueError, match="expected a dict with 'cfg' and 'model'"):
        convert(tmp_path / "nocfg.pt", tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="convert_beats_checkpoint"):
        load_beats_backbone(tmp_path / "nowhere")

    encoder = BEATsEncoder(BEATsConfig.tiny())
    with pytest.raises(ValueError, match=r"\(batch, frames, 128\)"):
        encoder(torch.randn(2, 32, 64))
    with pytest.raises(ValueError, match="fewer than one patch"):
        encoder(torch.randn(2, 10, 128))
    half_padded = torch.tensor([[False] * 32, [False] * 8 + [True] * 24])  # item 1 keeps patch 0 (8 real frames)
    assert encoder(torch.randn(2, 32, 128), padding_mask=half_padded)[0].isfinite().all()
    with pytest.raises(ValueError, match=r"every 16-frame patch of batch item\(s\) \[1\]"):
        encoder(torch.randn(2, 32, 128), padding_mask=torch.tensor([[False] * 32, [True] * 32]))


def test_command_line(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path, TINY_CFG, official_state_dict())
    _converter().main([str(checkpoint), str(tmp_path / "cli")])
    assert "written to" in capsys.readouterr().out
    assert load_beats_backbone(tmp_path / "cli").config.encoder_layers == 2

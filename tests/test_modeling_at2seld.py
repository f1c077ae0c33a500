"""AT2SELD model and loss: shapes, permutation invariance, loss variants, freezing, persistence, learning."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import ASTConfig, ASTModel, AutoModel

from at2seld import AT2SELDConfig, AT2SELDFeatureExtractor, AT2SELDForSoundEventLocalization
from at2seld.feature_extraction_at2seld import foa_encode
from at2seld.labels_at2seld import doa_to_unit_vector, encode_labels
from at2seld.losses_at2seld import (
    AT2SELDLoss,
    compute_class_pos_weights,
    focal_bce_with_logits,
    pairwise_track_costs,
    track_permutations,
)
from at2seld.modeling_at2seld import align_tokens_to_frames, interpolate_ast_position_embeddings

C = 13  # STARSS23 classes (config default)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is as fast and does not stall when other jobs share the 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def inputs(batch=2, frames=20, seed=0, channels=13, bins=64):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, channels, 5 * frames, bins, generator=g),
        torch.randn(batch, 10 * frames, 128, generator=g),
    )


def random_labels(batch, frames, tracks=3, seed=0, p_active=0.6):
    rng = np.random.default_rng(seed)
    y = np.zeros((batch, frames, tracks, 6), np.float32)
    for b, t, n in itertools.product(range(batch), range(frames), range(tracks)):
        if rng.random() < p_active:
            y[b, t, n, 0] = 1
            y[b, t, n, 1] = rng.integers(C)
            y[b, t, n, 2:5] = doa_to_unit_vector(rng.uniform(-180, 180), rng.uniform(-60, 60))
            y[b, t, n, 5] = rng.uniform(0.5, 4)
    return torch.from_numpy(y)


def model_for(**overrides):
    torch.manual_seed(0)
    return AT2SELDForSoundEventLocalization(AT2SELDConfig.tiny(**overrides))


# ------------------------------------------------------------------------------------------------------- shapes
CASES = [(b, f) for b in ("ast", "beats") for f in ("none", "early", "late", "early+late", "early_concat")]


@pytest.mark.parametrize("backbone,fusion", CASES + [("none", "none")])
def test_output_shapes_for_every_backbone_and_fusion(backbone, fusion):
    model = model_for(backbone_type=backbone, fusion=fusion)
    spatial, fbank = inputs(batch=2, frames=20)
    labels = random_labels(2, 20)
    out = model(spatial, fbank if backbone != "none" else None, labels=labels)
    assert out.sed_logits.shape == (2, 20, 3, C)
    assert out.doa.shape == (2, 20, 3, 3) and out.doa.abs().max() <= 1
    assert out.distance is None and out.distance_loss is None
    assert out.permutation.shape == (2, 20, 3) and out.permutation.dtype == torch.long
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.sed_head.weight.grad is not None and model.spatial_encoder.input_norm.weight.grad is not None
    if backbone != "none" and fusion != "early_concat":
        assert (model.late_stitch is not None) == (fusion in ("late", "early+late"))
        assert (model.early_stitch is not None) == (fusion in ("early", "early+late"))


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_tracks": 1}, {"num_tracks": 4, "predict_distance": True}, {"gru_layers": 0, "track_layers": 0},
        {"spatial_residual": False, "pit": "chunk"}, {"descriptors": ["logmel", "iv"]},
    ],
)
def test_output_shapes_for_other_settings(overrides):
    model = model_for(**overrides)
    n = model.config.num_tracks
    spatial, fbank = inputs(batch=2, frames=12, channels=model.config.num_spatial_channels)
    out = model(spatial, fbank, labels=random_labels(2, 12, tracks=n))
    assert out.sed_logits.shape == (2, 12, n, C) and out.doa.shape == (2, 12, n, 3)
    if model.config.predict_distance:
        assert out.distance.shape == (2, 12, n) and (out.distance >= 0).all() and out.distance_loss >= 0


def test_feature_extractor_output_feeds_the_model():
    fe = AT2SELDFeatureExtractor(backbone_type="ast")
    rng = np.random.default_rng(0)
    clips = [foa_encode(rng.standard_normal(24000).astype(np.float32) * 0.1, 30, 10),
             foa_encode(rng.standard_normal(12000).astype(np.float32) * 0.1, -60, 0)]
    features = fe(clips, sampling_rate=24000)
    model = model_for().eval()
    out = model(**features)
    assert out.sed_logits.shape == (2, 10, 3, C)


# ---------------------------------------------------------------------------------------------- pure functions
def test_align_tokens_to_frames_by_hand():
    # AST time tokens: stride 10, width 16 -> token k is centred on frame 10k + 7.5; label frame j (10 frames) on
    # 10j + 4.5 -> position j - 0.3, clamped at 0.
    tokens = torch.arange(6, dtype=torch.float32).view(1, 6, 1) * 2.0  # value 2k at token k
    out = align_tokens_to_frames(tokens, num_frames=6, frames_per_label=10, token_stride=10, token_width=16)
    expected = [0.0] + [2.0 * (j - 0.3) for j in range(1, 6)]
    np.testing.assert_allclose(out[0, :, 0].numpy(), expected, atol=1e-6)
    # BEATs: stride = width = 16 -> token centre 16k + 7.5; label centre 10j + 4.5 -> position (10j - 3) / 16
    out = align_tokens_to_frames(tokens, num_frames=4, frames_per_label=10, token_stride=16, token_width=16)
    np.testing.assert_allclose(out[0, :, 0].numpy(), [0.0, 2 * 7 / 16, 2 * 17 / 16, 2 * 27 / 16], atol=1e-6)


def test_position_embeddings_are_unchanged_on_the_pretraining_grid_and_interpolated_elsewhere():
    pos = torch.randn(1, 2 + 3 * 4, 5)
    assert interpolate_ast_position_embeddings(pos, (3, 4), (3, 4)) is pos
    small = interpolate_ast_position_embeddings(pos, (3, 4), (3, 2))
    assert small.shape == (1, 2 + 3 * 2, 5) and torch.equal(small[:, :2], pos[:, :2])
    # halving the time axis averages neighbouring pairs (bilinear, align_corners=False)
    grid = pos[:, 2:].reshape(3, 4, 5)
    torch.testing.assert_close(small[0, 2:].reshape(3, 2, 5), (grid[:, 0::2] + grid[:, 1::2]) / 2)


def test_ast_adapter_reproduces_ast_model_on_a_full_length_input():
    model = model_for().eval()
    ast = model.backbone.encoder
    fbank = torch.randn(1, ast.config.max_length, 128)
    with torch.no_grad():
        reference = ast(fbank).last_hidden_state[:, 2:]  # (1, Fp * Tp, D) frequency-major
        fp, tp = ast.embeddings.get_shape(ast.config)
        ours = model.backbone.encode_window(fbank)
    torch.testing.assert_close(ours, reference.reshape(1, fp, tp, -1).mean(1), rtol=1e-5, atol=1e-5)


def test_ast_input_longer_than_max_length_is_windowed():
    ast = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    frequency_stride=16, max_length=200)  # 2 s windows = 20 label frames
    model = model_for(backbone_config=ast).eval()
    fbank = torch.randn(1, 500, 128)  # 5 s: windows of 200, 200, 100 fbank frames
    with torch.no_grad():
        whole = model.backbone(fbank, 50)
        parts = [model.backbone(fbank[:, a:b], (b - a) // 10) for a, b in ((0, 200), (200, 400), (400, 500))]
    assert whole.shape == (1, 50, 32)
    torch.testing.assert_close(whole, torch.cat(parts, 1))


# -------------------------------------------------------------------------------------------------------- loss
def loss_module(**overrides):
    return AT2SELDLoss(AT2SELDConfig.tiny(**overrides))


def perfect_prediction(labels, scale=12.0):
    """Logits +scale on each active track's class and -scale elsewhere; DOA and distance equal to the target."""
    active = labels[..., 0] > 0.5
    onehot = F.one_hot(labels[..., 1].long(), C).float() * active[..., None]
    return (2 * onehot - 1) * scale, labels[..., 2:5].clone(), labels[..., 5].clone()


@pytest.mark.parametrize("pit", ["frame", "chunk"])
def test_pit_loss_is_invariant_to_permuting_target_tracks(pit):
    loss_fn = loss_module(pit=pit, predict_distance=True)
    labels = random_labels(2, 8, seed=1)
    g = torch.Generator().manual_seed(0)
    sed, doa, dist = torch.randn(2, 8, 3, C, generator=g), torch.rand(2, 8, 3, 3, generator=g), torch.rand(2, 8, 3, generator=g)
    reference = loss_fn(sed, doa, labels, distance=dist)["loss"]
    for perm in itertools.permutations(range(3)):
        permuted = labels[:, :, list(perm)]
        torch.testing.assert_close(loss_fn(sed, doa, permuted, distance=dist)["loss"], reference)
    if pit == "frame":  # a different order in every frame
        shuffled = labels.clone()
        for t in range(8):
            shuffled[:, t] = labels[:, t, torch.randperm(3, generator=g)]
        torch.testing.assert_close(loss_fn(sed, doa, shuffled, distance=dist)["loss"], reference)


def test_pit_loss_finds_the_permutation_and_beats_a_fixed_assignment():
    loss_fn = loss_module()
    labels = random_labels(1, 6, seed=2, p_active=1.0)  # three active tracks, distinct classes most of the time
    perm = [2, 0, 1]
    sed, doa, _ = perfect_prediction(labels[:, :, perm])  # predicted track i carries target track perm[i]
    out = loss_fn(sed, doa, labels)
    assert out["permutation"][0].tolist() == [perm] * 6
    assert out["doa_loss"] == 0
    costs = pairwise_track_costs(sed, doa, labels)
    identity = (costs["sed"] + costs["doa"]).diagonal(dim1=-2, dim2=-1).mean(-1).mean()  # fixed track i <-> i
    assert out["loss"] < identity / 100
    assert out["loss"] < 1e-4  # logit 12 -> BCE ~ 6e-6 per class


def test_pit_allows_the_same_class_on_two_tracks():
    rows = [(0, 2, 0, 30, 0), (0, 2, 1, -90, 0)]  # two clapping sources at once
    labels = torch.from_numpy(encode_labels(rows, 1, C, 3))[None]
    sed, doa, _ = perfect_prediction(labels[:, :, [1, 0, 2]])
    out = loss_module()(sed, doa, labels)
    assert out["doa_loss"] == 0 and out["loss"] < 1e-4
    assert out["permutation"][0, 0].tolist() == [1, 0, 2]


def test_focal_loss_with_gamma_zero_is_bce():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(4, 7, C, generator=g) * 3, (torch.rand(4, 7, C, generator=g) > 0.7).float()
    torch.testing.assert_close(
        focal_bce_with_logits(logits, targets, gamma=0.0, alpha=None),
        F.binary_cross_entropy_with_logits(logits, targets, reduction="none"),
    )
    # hand values at logit 0 (p = 0.5): BCE = ln 2, focal(gamma 2) = 0.25 ln 2, alpha 0.25 on a positive
    zero, one = torch.zeros(1), torch.ones(1)
    torch.testing.assert_close(focal_bce_with_logits(zero, one, gamma=2.0), torch.tensor([0.25 * math.log(2)]))
    torch.testing.assert_close(focal_bce_with_logits(zero, one, gamma=2.0, alpha=0.25), torch.tensor([0.0625 * math.log(2)]))
    torch.testing.assert_close(focal_bce_with_logits(zero, one, pos_weight=torch.tensor([3.0])), torch.tensor([3 * math.log(2)]))
    labels = random_labels(2, 5)
    sed, doa = torch.randn(2, 5, 3, C, generator=g), torch.rand(2, 5, 3, 3, generator=g)
    torch.testing.assert_close(
        loss_module(sed_loss="focal", focal_gamma=0.0)(sed, doa, labels)["loss"], loss_module()(sed, doa, labels)["loss"]
    )


def test_active_only_doa_ignores_inactive_tracks():
    labels = torch.zeros(1, 4, 3, 6)
    labels[..., 0, 0], labels[..., 0, 1] = 1, 5
    labels[..., 0, 2:5] = torch.tensor(doa_to_unit_vector(40, 10))
    sed, doa, _ = perfect_prediction(labels)
    doa = doa + 0.1  # some DOA error on the active track
    loss_fn = loss_module(doa_supervision="active")
    reference = loss_fn(sed, doa, labels)
    assert reference["doa_loss"] > 0 and reference["permutation"][0, 0].tolist() == [0, 1, 2]
    garbage_labels, garbage_doa = labels.clone(), doa.clone()
    garbage_labels[..., 1:, 2:5] = torch.tensor([0.3, -0.9, 0.2])  # inactive targets with a "direction"
    garbage_doa[..., 1:, :] = torch.tensor([-0.7, 0.5, 0.9])  # wild predictions on tracks matched to silence
    changed = loss_fn(sed, garbage_doa, garbage_labels)
    torch.testing.assert_close(changed["loss"], reference["loss"])
    torch.testing.assert_close(changed["doa_loss"], reference["doa_loss"])
    # by hand: MSE over x, y, z of a 0.1 offset on one of three tracks -> 0.01 / 3
    torch.testing.assert_close(reference["doa_loss"], torch.tensor(0.01 / 3))
    # ACCDOA-style supervision does penalise non-zero DOAs on silent tracks
    loss_all = loss_module(doa_supervision="all")
    assert loss_all(sed, garbage_doa, labels)["doa_loss"] > loss_all(sed, doa, labels)["doa_loss"]


def test_padded_frames_do_not_count():
    loss_fn = loss_module()
    labels = random_labels(1, 6)
    sed, doa, _ = perfect_prediction(labels)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    sed_bad, doa_bad = sed.clone(), doa.clone()
    sed_bad[:, 4:], doa_bad[:, 4:] = -sed[:, 4:], -doa[:, 4:]
    torch.testing.assert_close(loss_fn(sed_bad, doa_bad, labels, mask)["loss"], loss_fn(sed, doa, labels, mask)["loss"])


def test_cosine_doa_loss_by_hand():
    labels = torch.zeros(1, 1, 1, 6)
    labels[..., 0], labels[..., 2:5] = 1, torch.tensor([1.0, 0, 0])
    doa = torch.tensor([0.5, 0.5, 0.0]).view(1, 1, 1, 3)  # 45 degrees off, any length
    costs = pairwise_track_costs(torch.zeros(1, 1, 1, C), doa, labels, doa_loss="cosine")
    torch.testing.assert_close(costs["doa"].flatten(), torch.tensor([1 - math.cos(math.pi / 4)]))


def test_track_permutations():
    p = track_permutations(3)
    assert p.shape == (6, 3) and p[0].tolist() == [0, 1, 2] and len({tuple(r) for r in p.tolist()}) == 6


def test_class_pos_weights_by_hand():
    # counts 100, 25, 400 -> median 100 -> (100 / n) ** 0.5 = 1, 2, 0.5
    assert compute_class_pos_weights([100, 25, 400]) == pytest.approx([1.0, 2.0, 0.5])
    # seen counts 100 and 1 -> median 50.5; power 1 -> 0.505 and 50.5 (clipped to 5); unseen class -> 5
    assert compute_class_pos_weights([100, 0, 1], max_weight=5.0, power=1.0) == pytest.approx([0.505, 5.0, 5.0])
    labels = np.zeros((4, 3, 6), np.float32)
    labels[:, 0, 0], labels[:, 0, 1] = 1, 0  # class 0 active in 4 frames
    labels[0, 1, 0], labels[0, 1, 1] = 1, 2  # class 2 once
    assert compute_class_pos_weights([labels], num_classes=3, power=1.0, max_weight=100) == pytest.approx(
        [2.5 / 4, 100.0, 2.5]
    )
    with pytest.raises(ValueError, match="num_classes"):
        compute_class_pos_weights(labels)
    config = AT2SELDConfig.tiny(class_pos_weight=[1.0] * 12 + [4.0])
    assert AT2SELDLoss(config).class_pos_weight == [1.0] * 12 + [4.0]


def test_padded_frames_do_not_leak_into_track_layers_or_gru():
    """Track attention masks padded frames and the GRU is packed, so real frames see only real frames."""
    model = model_for(backbone_type="none", track_layers=2).eval()
    g = torch.Generator().manual_seed(4)
    hidden = torch.randn(1, 12, 32, generator=g)
    padded = torch.cat([hidden, 100 * torch.randn(1, 4, 32, generator=g)], dim=1)  # 4 frames of junk padding
    mask = torch.tensor([[True] * 12 + [False] * 4])
    with torch.no_grad():
        tracks = model.spatial_tracks(hidden, None)
        tracks_padded = model.spatial_tracks(padded, mask)
        torch.testing.assert_close(tracks_padded[:, :12], tracks, rtol=1e-5, atol=1e-5)
        smooth = model._smooth(tracks, None)
        smooth_padded = model._smooth(tracks_padded, mask)
    torch.testing.assert_close(smooth_padded[:, :12], smooth, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="prefix"):
        model._smooth(tracks_padded, torch.tensor([[False] + [True] * 15]))


# --------------------------------------------------------------------------------------------------- freezing
@pytest.mark.parametrize("backbone", ["ast", "beats"])
def test_frozen_backbone_gets_no_gradients_but_the_spatial_branch_does(backbone):
    model = model_for(backbone_type=backbone, backbone_trainable_layers=0)
    spatial, fbank = inputs(frames=10)
    model(spatial, fbank, labels=random_labels(2, 10)).loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.spatial_encoder.parameters())
    assert all(p.grad is not None for p in model.semantic_projection.parameters())


@pytest.mark.parametrize("backbone", ["ast", "beats"])
def test_trainable_layers_unfreezes_exactly_the_last_blocks(backbone):
    model = model_for(backbone_type=backbone, backbone_trainable_layers=1)
    spatial, fbank = inputs(frames=10)
    model(spatial, fbank, labels=random_labels(2, 10)).loss.backward()
    first, last = model.backbone.layers[0], model.backbone.layers[-1]
    assert all(p.grad is None for p in first.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in last.parameters() if p.requires_grad)
    assert any(p.requires_grad for p in last.parameters())
    trainable = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert all(".layers.1." in n or "layernorm" in n for n in trainable), trainable
    with pytest.raises(ValueError, match="backbone_trainable_layers=3 but the backbone has only 2 blocks"):
        model_for(backbone_type=backbone, backbone_trainable_layers=3)


def test_pretrained_backbone_is_loaded_from_a_local_folder(tmp_path):
    torch.manual_seed(1)
    ast = ASTModel(ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             frequency_stride=16))
    ast.save_pretrained(tmp_path)
    model = model_for(backbone_config=None, backbone_name_or_path=str(tmp_path))
    for (name, theirs), ours in zip(ast.state_dict().items(), model.backbone.encoder.state_dict().values()):
        assert torch.equal(theirs, ours), name


# -------------------------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("backbone", ["ast", "beats", "none"])
def test_save_load_round_trip_is_exact(tmp_path, backbone):
    model = model_for(backbone_type=backbone, backbone_trainable_layers=1 if backbone != "none" else -1).eval()
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is AT2SELDForSoundEventLocalization
    spatial, fbank = inputs(frames=10, seed=3)
    with torch.no_grad():
        a, b = model(spatial, fbank), loaded(spatial, fbank)
    assert torch.equal(a.sed_logits, b.sed_logits) and torch.equal(a.doa, b.doa)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == [n for n, p in loaded.named_parameters() if not p.requires_grad]


# ------------------------------------------------------------------------------------------------------ errors
def test_bad_inputs_raise_clear_errors():
    model = model_for().eval()
    spatial, fbank = inputs(frames=10)
    with pytest.raises(ValueError, match="built for 13 channels x 64 bins.*got 7 x 64"):
        model(spatial[:, :7], fbank)
    with pytest.raises(ValueError, match="needs backbone_values"):
        model(spatial)
    with pytest.raises(ValueError, match="need 100"):
        model(spatial, fbank[:, :90])
    with pytest.raises(ValueError, match="multiple of frames_per_label=5"):
        model(spatial[:, :, :48], fbank)
    with pytest.raises(ValueError, match="labels must have shape"):
        model(spatial, fbank, labels=torch.zeros(2, 10, 2, 6))
    with pytest.raises(ValueError, match="channels do not match"):
        model(spatial, fbank, spatial_feature_names=["logmel_w"] * 13)


# ----------------------------------------------------------------------------------------------------- report
def test_report_counts_parameters_and_macs():
    model = model_for()
    result = model.report(seconds=2.0, print_report=False)
    assert sum(result["parameters"].values()) == result["total_parameters"]
    assert result["trainable_parameters"] == result["total_parameters"]
    # heads by hand: 10 frames/s x 3 tracks x (2 x gru_hidden = 32 inputs) x (13 classes + 3 DOA) outputs
    assert result["macs_per_second"]["heads"] == 10 * 3 * 32 * (13 + 3)
    assert result["total_macs_per_second"] >= sum(result["macs_per_second"].values()) > 0
    assert result["macs_per_second"]["backbone"] > 0 and result["macs_per_second"]["spatial_encoder"] > 0


def test_report_backbone_macs_match_the_ast_formula():
    # tiny AST, 10 s = 1000 fbank frames (one window): 99 time x 8 frequency patches + cls + distillation = 794 tokens
    tokens, dim, ffn, patches = 794, 32, 64, 792
    per_layer = 4 * tokens * dim * dim + 2 * tokens * dim * ffn + 2 * tokens * tokens * dim  # projections, MLP, QK^T+AV
    patch_embedding = patches * dim * 16 * 16
    result = model_for().report(seconds=10.0, print_report=False)
    assert result["macs_per_second"]["backbone"] == pytest.approx((2 * per_layer + patch_embedding) / 10.0)


def test_report_command_line(capsys):
    from at2seld.modeling_at2seld import report_main

    result = report_main(["--tiny", "--backbone", "none", "--seconds", "1"])
    assert result["parameters"]["backbone"] == 0
    assert "spatial_encoder" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------------ learning
def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = model_for(backbone_type="ast", fusion="late")
    spatial, fbank = inputs(batch=2, frames=10, seed=5)
    labels = random_labels(2, 10, seed=5, p_active=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(300):
        optimizer.zero_grad()
        out = model(spatial, fbank, labels=labels)
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
        if losses[-1] < losses[0] / 6:  # past the required 5x: stop early
            break
    assert min(losses[-5:]) < losses[0] / 5, (losses[0], losses[-1], len(losses))

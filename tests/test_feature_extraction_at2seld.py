"""The FOA front end, checked against physics and independent computations."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import ASTFeatureExtractor, AutoFeatureExtractor
from transformers.audio_utils import mel_filter_bank

import at2seld  # noqa: F401  (registers the Auto classes)
from at2seld import AT2SELDConfig, AT2SELDFeatureExtractor
from at2seld.feature_extraction_at2seld import foa_encode, foa_encoding_gains, fuma_to_acn, resample

SR = 24000


def noise(seconds, seed=0, sr=SR):
    return np.random.default_rng(seed).standard_normal(int(seconds * sr)).astype(np.float32) * 0.1


def unit(az_deg, el_deg):
    az, el = np.deg2rad(az_deg), np.deg2rad(el_deg)
    return np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])


def angle_between(a, b):
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return np.rad2deg(np.arccos(np.clip(a @ b, -1, 1)))


def iv_direction(features, names):
    """Energy-weighted mean intensity vector (x, y, z) of one item's features (C, T, F)."""
    f = features.numpy() if isinstance(features, torch.Tensor) else features
    energy = 10 ** (f[names.index("logmel_w")] / 10)
    return np.array([(energy * f[names.index(f"iv_{c}")]).sum() for c in "xyz"])


@pytest.fixture(scope="module")
def fe():
    return AT2SELDFeatureExtractor(backbone_type="none")


# ------------------------------------------------------------------------------------------------ physics
DIRECTIONS = [(0, 0), (90, 0), (180, 0), (-90, 0), (0, 90), (0, -90), (45, 30), (-135, -45)] + [
    (float(a), float(e))
    for a, e in zip(np.random.default_rng(7).uniform(-180, 180, 8), np.rad2deg(np.arcsin(np.random.default_rng(8).uniform(-1, 1, 8))))
]


@pytest.mark.parametrize("az,el", DIRECTIONS)
def test_plane_wave_intensity_vector_points_at_source(fe, az, el):
    out = fe(foa_encode(noise(1.0), az, el), sampling_rate=SR)
    est = iv_direction(out["spatial_features"][0], out["spatial_feature_names"])
    assert angle_between(est, unit(az, el)) < 2.0
    # per band: Re(conj(W)[X,Y,Z]) = |s|^2 u and the energy is |s|^2 (1 + 1/3), so every band's IV is 3/4 u
    names = out["spatial_feature_names"]
    iv = out["spatial_features"][0, [names.index(f"iv_{c}") for c in "xyz"], 3:-3, 2:].numpy()
    np.testing.assert_allclose(iv, 0.75 * unit(az, el)[:, None, None] * np.ones_like(iv), atol=2e-3)


def test_azimuth_sign_positive_is_left(fe):
    # ACN gains: a source on the left (+90) is all Y, positive
    np.testing.assert_allclose(foa_encoding_gains(90, 0), [1, 1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(foa_encoding_gains(0, 0), [1, 0, 0, 1], atol=1e-12)
    out = fe(foa_encode(noise(0.5), 30, 0), sampling_rate=SR)
    x, y, z = iv_direction(out["spatial_features"][0], out["spatial_feature_names"])
    assert y > 0 and x > 0  # front-left quadrant
    assert abs(math.degrees(math.atan2(y, x)) - 30) < 2
    out = fe(foa_encode(noise(0.5), -30, 0), sampling_rate=SR)
    x, y, _ = iv_direction(out["spatial_features"][0], out["spatial_feature_names"])
    assert y < 0 and abs(math.degrees(math.atan2(y, x)) + 30) < 2


def test_reverberant_direction_within_reflection_bound(fe):
    """Direct sound + 4 early reflections (image directions, 3-25 ms late, -10 dB each) + a diffuse tail (DRR ~ 3.6 dB).

    The energy-weighted IV is the sum of each arriving wave's energy times its direction (cross terms average out
    over many time-frequency bins), so its angular bias is at most asin(E_reflected / E_direct): the worst case is
    every reflection pushing the same way. The test checks that bound (plus 2 degrees of estimation noise).
    """
    rng = np.random.default_rng(3)
    s = noise(2.0, seed=4)
    az, el = 60.0, 20.0
    foa = foa_encode(s, az, el).astype(np.float64)
    refl_energy = 0.0
    for delay_ms, raz, rel in [(3, 120, 20), (7, -60, 10), (12, 60, -50), (25, 240, 30)]:
        d = int(delay_ms * SR / 1000)
        g = 10 ** (-10 / 20)
        foa[:, d:] += foa_encode(g * s[:-d], raz, rel)
        refl_energy += g**2
    # diffuse tail: 200 decaying arrivals from uniformly random directions
    tail = np.zeros_like(foa)
    for _ in range(200):
        d = int(rng.uniform(0.03, 0.3) * SR)
        g = 0.05 * math.exp(-d / SR / 0.08) * rng.standard_normal()
        tail[:, d:] += foa_encode(g * s[:-d], rng.uniform(-180, 180), math.degrees(math.asin(rng.uniform(-1, 1))))
        refl_energy += g**2
    out = fe((foa + tail).astype(np.float32), sampling_rate=SR)
    est = iv_direction(out["spatial_features"][0], out["spatial_feature_names"])
    bound = math.degrees(math.asin(min(1.0, refl_energy))) + 2.0
    err = angle_between(est, unit(az, el))
    assert bound < 45  # the scene is direct-dominated, so the bound is informative
    assert err < bound, (err, bound)


def test_logmel_w_equals_log_mel_of_mono_signal(fe):
    """Independent numpy computation: centred frames, periodic Hann(960) centred in 1024, slaney mel, 10 log10."""
    s = noise(0.7, seed=11)
    out = fe(foa_encode(s, 10, 10), sampling_rate=SR)
    logmel_w = out["spatial_features"][0, 0].numpy()  # (frames, 64)
    n_frames = logmel_w.shape[0]
    padded = np.pad(s.astype(np.float64), (512, 512 + n_frames * 480))
    win = np.zeros(1024)
    win[32:992] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(960) / 960)
    frames = np.stack([padded[t * 480: t * 480 + 1024] * win for t in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = mel_filter_bank(513, 64, 0.0, 12000.0, SR, norm="slaney", mel_scale="slaney")
    expected = 10 * np.log10(np.maximum(power @ mel, 1e-10))
    np.testing.assert_allclose(logmel_w, expected, atol=2e-3)
    assert out["spatial_features"].shape[2] == 5 * math.ceil(0.7 / 0.1)


def test_fuma_input_matches_hand_encoded_acn(fe):
    s = noise(0.5, seed=5)
    az, el = np.deg2rad(-70), np.deg2rad(25)
    fuma = np.stack([s / math.sqrt(2), s * np.cos(az) * np.cos(el), s * np.sin(az) * np.cos(el), s * np.sin(el)])
    acn = np.stack([s, s * np.sin(az) * np.cos(el), s * np.sin(el), s * np.cos(az) * np.cos(el)])
    np.testing.assert_allclose(fuma_to_acn(fuma), acn, atol=1e-6)
    a = fe(fuma, sampling_rate=SR, channel_format="fuma")["spatial_features"]
    b = fe(acn, sampling_rate=SR)["spatial_features"]
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_resampling_keeps_tone_frequency():
    t = np.arange(48000) / 48000
    tone = np.sin(2 * np.pi * 3000 * t).astype(np.float32)
    out = resample(np.stack([tone] * 4), 48000, SR)
    assert out.shape == (4, 24000)
    spectrum = np.abs(np.fft.rfft(out[0] * np.hanning(24000)))
    assert np.argmax(spectrum) * SR / 24000 == pytest.approx(3000, abs=1.0)
    # an 18 kHz tone is above the new Nyquist: it must be filtered out, not aliased to 6 kHz
    alias = resample(np.sin(2 * np.pi * 18000 * t).astype(np.float32)[None], 48000, SR)
    assert np.sqrt(np.mean(alias[0, 1000:-1000] ** 2)) < 1e-3


def test_48khz_input_gives_the_24khz_features(fe):
    s48 = noise(1.0, seed=9, sr=48000)
    foa48 = foa_encode(s48, 40, 0)
    a = fe(foa48, sampling_rate=48000)
    b = fe(resample(foa48, 48000, SR), sampling_rate=SR)
    torch.testing.assert_close(a["spatial_features"], b["spatial_features"])
    assert a["num_label_frames"].item() == 10


# ------------------------------------------------------------------------------------------------ shapes and I/O
def test_layout_and_channel_axis(fe):
    x = foa_encode(noise(0.55), 0, 0)
    a = fe(x, sampling_rate=SR)
    b = fe(x.T, sampling_rate=SR)  # (samples, 4)
    torch.testing.assert_close(a["spatial_features"], b["spatial_features"])
    assert a["spatial_features"].shape == (1, 13, 30, 64)  # ceil(0.55/0.1)=6 label frames x 5
    assert a["spatial_feature_names"] == AT2SELDConfig().spatial_feature_names
    assert a["frame_mask"].shape == (1, 6) and a["frame_mask"].all()


def test_batch_of_different_lengths_is_padded_and_masked(fe):
    long, short = foa_encode(noise(1.0), 0, 0), foa_encode(noise(0.35, seed=2), 90, 0)
    out = fe([long, torch.from_numpy(short)], sampling_rate=SR)
    assert out["spatial_features"].shape == (2, 13, 50, 64)
    assert out["num_label_frames"].tolist() == [10, 4]
    assert out["frame_mask"].sum(1).tolist() == [10, 4]
    alone = fe(short, sampling_rate=SR)["spatial_features"][0]
    torch.testing.assert_close(out["spatial_features"][1, :, :20], alone)
    # padding looks like silence: finite log floor, no intensity
    pad = out["spatial_features"][1, :, 20:]
    assert torch.isfinite(pad).all()
    assert pad[0].max() <= -99.0 and pad[10:13].abs().max() == 0


def test_descriptor_families_and_linspec():
    fe = AT2SELDFeatureExtractor(descriptors=["iv"], backbone_type="none")
    out = fe(foa_encode(noise(0.3), 0, 0), sampling_rate=SR)
    assert out["spatial_feature_names"] == ["iv_x", "iv_y", "iv_z"]
    lin = AT2SELDFeatureExtractor(descriptors=["linspec"], backbone_type="none")
    out = lin(foa_encode(noise(0.3), 180, 0), sampling_rate=SR)
    assert out["spatial_features"].shape == (1, 10, 15, 512)
    names = out["spatial_feature_names"]
    # a source behind: X = -W, so the X-W phase is pi (cos -1) wherever there is energy; Y ~ 0
    cos_x = out["spatial_features"][0, names.index("linphase_cos_x"), 3:12, 5:400]
    assert torch.all(cos_x < -0.999)
    with pytest.raises(ValueError, match="different frequency axes"):
        AT2SELDFeatureExtractor(descriptors=["logmel", "linspec"])
    with pytest.raises(ValueError, match="Unknown descriptor"):
        AT2SELDFeatureExtractor(descriptors=["gcc"])


def test_phase_of_plane_wave(fe):
    out = fe(foa_encode(noise(0.5), 0, 0), sampling_rate=SR)
    names = out["spatial_feature_names"]
    f = out["spatial_features"][0]
    # front source: X = W in phase (cos 1), Y = Z = 0 exactly (phase of 0 is defined as 0 -> cos 1, sin 0)
    assert torch.all(f[names.index("phase_cos_x"), 2:20] > 0.999)
    assert torch.all(f[names.index("phase_sin_x"), 2:20].abs() < 1e-3)


def test_silence_and_very_quiet_input_are_finite(fe):
    for amp in (0.0, 1e-9, 1e-30):
        out = fe(foa_encode(noise(0.5) * amp, 30, 30) if amp else np.zeros((4, 12000), np.float32), sampling_rate=SR)
        assert torch.isfinite(out["spatial_features"]).all(), amp
    ast = AT2SELDFeatureExtractor()(np.zeros((4, 12000), np.float32), sampling_rate=SR)
    assert torch.isfinite(ast["backbone_values"]).all()


def test_chunked_equals_whole_file():
    fe = AT2SELDFeatureExtractor(backbone_type="ast")
    x = foa_encode(noise(3.05, seed=21), 100, -20) + foa_encode(noise(3.05, seed=22), -10, 40)
    whole = fe(x, sampling_rate=SR)
    for chunk in (1, 7, 13):
        parts = list(fe.iter_chunks(x, sampling_rate=SR, chunk_label_frames=chunk))
        assert parts[0][0] == 0 and parts[-1][1] == 31
        spatial = torch.cat([p["spatial_features"] for _, _, p in parts], dim=1)
        backbone = torch.cat([p["backbone_values"] for _, _, p in parts], dim=0)
        torch.testing.assert_close(spatial, whole["spatial_features"][0], atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(backbone, whole["backbone_values"][0], atol=1e-5, rtol=1e-5)


def test_backbone_values_match_ast_feature_extractor_bit_for_bit():
    fe = AT2SELDFeatureExtractor(backbone_type="ast")
    x = foa_encode(noise(2.0, seed=3), 0, 0)
    ours = fe(x, sampling_rate=SR)["backbone_values"][0].numpy()
    assert ours.shape == (200, 128)  # 10 fbank frames per 100 ms label frame
    w16 = resample(x[:1], SR, 16000)[0]
    n_full = 1 + (len(w16) - 400) // 160  # frames fully inside the audio
    ref = ASTFeatureExtractor(max_length=n_full)(w16, sampling_rate=16000, return_tensors="np")["input_values"][0]
    np.testing.assert_array_equal(ours[:n_full], ref)


def test_beats_front_end_scales_and_normalises():
    fe = AT2SELDFeatureExtractor(backbone_type="beats")
    out = fe(np.zeros((4, 4800), np.float32) + 0.0, sampling_rate=SR)["backbone_values"]
    # silence: log(mel_floor) = log(1.19e-7) = -15.94, normalised by the BEATs statistics
    np.testing.assert_allclose(out.numpy(), (math.log(1.192092955078125e-07) - 15.41663) / (2 * 6.55582), rtol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    fe = AT2SELDFeatureExtractor(descriptors=["logmel", "iv"], num_mel_bins=32, backbone_type="beats")
    fe.save_pretrained(tmp_path)
    fe2 = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert isinstance(fe2, AT2SELDFeatureExtractor)
    assert fe2.to_dict() == fe.to_dict()
    x = foa_encode(noise(0.4), 0, 0)
    torch.testing.assert_close(fe(x, sampling_rate=SR)["spatial_features"], fe2(x, sampling_rate=SR)["spatial_features"])


def test_file_input(tmp_path, fe):
    x = foa_encode(noise(0.5), -45, 0)
    path = tmp_path / "fold1_room1_mix001.wav"
    sf.write(path, x.T, SR, subtype="FLOAT")
    a = fe(str(path))["spatial_features"]
    torch.testing.assert_close(a, fe(x, sampling_rate=SR)["spatial_features"])
    with pytest.raises(ValueError, match="is at 24000 Hz"):
        fe(str(path), sampling_rate=48000)


def test_integer_pcm_is_scaled_by_dtype_range(fe):
    x = foa_encode(noise(0.5), 20, 0)
    pcm16 = np.round(x * 32767).astype(np.int16)
    pcm32 = (pcm16.astype(np.int32) << 16)
    f16 = fe(pcm16, sampling_rate=SR)["spatial_features"]
    f32 = fe(pcm32, sampling_rate=SR)["spatial_features"]
    ref = fe(pcm16.astype(np.float32) / 32768, sampling_rate=SR)["spatial_features"]
    torch.testing.assert_close(f16, ref)
    torch.testing.assert_close(f32, ref)


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("shape,match", [((12000,), "mono"), ((12000, 2), "got 2 channels"), ((25, 12000), "got 25 channels")])
def test_wrong_channel_counts_are_rejected(fe, shape, match):
    with pytest.raises(ValueError, match="4 FOA channels|4 channels") as err:
        fe(np.zeros(shape, np.float32), sampling_rate=SR)
    assert match in str(err.value)


def test_hoa_to_foa_keeps_first_four_acn_channels(fe):
    hoa = np.random.default_rng(0).standard_normal((25, 12000)).astype(np.float32) * 0.1
    with pytest.raises(ValueError, match="hoa_to_foa=True"):
        fe(hoa, sampling_rate=SR)
    a = fe(hoa, sampling_rate=SR, hoa_to_foa=True)["spatial_features"]
    torch.testing.assert_close(a, fe(hoa[:4], sampling_rate=SR)["spatial_features"])


def test_missing_sampling_rate(fe):
    with pytest.raises(ValueError, match="sampling_rate.*required"):
        fe(np.zeros((4, 12000), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_rejected(fe, bad):
    x = np.zeros((4, 12000), np.float32)
    x[2, 100] = bad
    with pytest.raises(ValueError, match="1 NaN/Inf"):
        fe(x, sampling_rate=SR)


@pytest.mark.parametrize("n", [0, 10, 959])
def test_empty_or_too_short(fe, n):
    with pytest.raises(ValueError, match="shorter than one analysis window|4 channels"):
        fe(np.zeros((4, n), np.float32), sampling_rate=SR)


def test_bad_paths(fe, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        fe(str(tmp_path / "missing.wav"))
    junk = tmp_path / "notes.wav"
    junk.write_text("this is not audio")
    with pytest.raises(ValueError, match="could not be decoded as audio"):
        fe(str(junk))


def test_bad_arguments(fe):
    x = np.zeros((4, 12000), np.float32)
    with pytest.raises(ValueError, match="channel_format"):
        fe(x, sampling_rate=SR, channel_format="ambix2")
    with pytest.raises(TypeError, match="Audio must be"):
        fe({"array": x}, sampling_rate=SR)
    with pytest.raises(ValueError, match="empty batch"):
        fe([], sampling_rate=SR)
    with pytest.raises(ValueError, match="backbone_type"):
        AT2SELDFeatureExtractor(backbone_type="panns")


def test_kaldi_fbank_povey_matches_transformers_spectrogram_in_any_block_size():
    from transformers.audio_utils import spectrogram, window_function

    from at2seld.feature_extraction_at2seld import kaldi_fbank, kaldi_mel_filters

    w = noise(0.5, seed=13, sr=16000) * 32768
    mel = kaldi_mel_filters()
    ref = spectrogram(w, window_function(400, "povey", periodic=False), frame_length=400, hop_length=160,
                      fft_length=512, power=2.0, center=False, preemphasis=0.97, mel_filters=mel, log_mel="log",
                      mel_floor=1.192092955078125e-07, remove_dc_offset=True).T
    for block in (4096, 7):
        np.testing.assert_array_equal(kaldi_fbank(w, "povey", mel, block_frames=block), ref.astype(np.float32))

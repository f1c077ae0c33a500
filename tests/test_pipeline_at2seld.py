"""The sound-event-localization pipeline and the at2seld-infer CLI.

Truths used: hand-written frame rows -> hand-computed events; a model whose heads are pure biases -> a known
activity / DOA / distance everywhere (sigmoid, tanh and softplus of the biases); a model whose receptive field is a
few frames -> chunked inference equals the whole-file pass; the same continuous signal sampled at 24 and 48 kHz ->
the same outputs; resource accounting for the 10-minute run.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
import torch

import at2seld
from at2seld import AT2SELDConfig, AT2SELDFeatureExtractor, AT2SELDForSoundEventLocalization
from at2seld.decoding_at2seld import read_dcase_csv
from at2seld.feature_extraction_at2seld import foa_encode
from at2seld.inference import format_events, main
from at2seld.pipeline_at2seld import (
    SoundEventLocalizationPipeline,
    events_to_rows,
    plan_windows,
    rows_to_events,
    save_dcase_csv,
    save_for_hub,
)

SR = 24000


# ---------------------------------------------------------------------------------------------------------- helpers
def make_pipe(backbone="none", seed=0, **overrides) -> SoundEventLocalizationPipeline:
    torch.manual_seed(seed)
    cfg = AT2SELDConfig.tiny(backbone_type=backbone, **overrides)
    model = AT2SELDForSoundEventLocalization(cfg).eval()
    fe = AT2SELDFeatureExtractor(backbone_type=backbone, descriptors=cfg.descriptors)
    return SoundEventLocalizationPipeline(model=model, feature_extractor=fe, device="cpu")


def bias_heads(model, sed_bias, doa_bias, distance_bias=None):
    """Zero the head weights so the outputs are functions of the biases only (any input, any frame)."""
    with torch.no_grad():
        model.sed_head.weight.zero_()
        model.sed_head.bias.copy_(torch.as_tensor(sed_bias, dtype=torch.float32))
        model.doa_head.weight.zero_()
        model.doa_head.bias.copy_(torch.as_tensor(doa_bias, dtype=torch.float32))
        if distance_bias is not None:
            model.distance_head.weight.zero_()
            model.distance_head.bias.fill_(distance_bias)


def noise(seconds, sr=SR, seed=0, scale=0.1):
    return (np.random.default_rng(seed).standard_normal((4, round(seconds * sr))) * scale).astype(np.float32)


def raw_outputs(pipe, inputs, **pre):
    """Stitched per-frame outputs of the pipeline (its preprocess -> forward -> stitch), before decoding."""
    return pipe.stitch([pipe.forward(item) for item in pipe.preprocess(inputs, **pre)])


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The 2 shared cores are oversubscribed by parallel jobs; one intra-op thread is ~20x faster here then."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def random_pipe():
    return make_pipe("ast")


# ----------------------------------------------------------------------------------------------- pure functions
def test_plan_windows_hand_cases():
    # 25 frames, windows of 10 overlapping by 2 x 2: starts every 6 frames, kept ranges tile [0, 25)
    assert plan_windows(25, 10, 2) == [(0, 10, 0, 8), (6, 16, 8, 14), (12, 22, 14, 20), (18, 25, 20, 25)]
    assert plan_windows(10, 10, 2) == [(0, 10, 0, 10)]  # the chunk covers the file: one pass
    assert plan_windows(7, 0, 0) == [(0, 7, 0, 7)]
    for n in range(1, 60):
        for chunk, stride in ((5, 1), (8, 3), (9, 0), (12, 2)):
            kept = [(ks, ke) for _, _, ks, ke in plan_windows(n, chunk, stride)]
            assert kept[0][0] == 0 and kept[-1][1] == n
            assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(kept))
    with pytest.raises(ValueError, match="stride"):
        plan_windows(30, 10, 5)


def test_rows_to_events_hand_written():
    names = {0: "speech", 1: "knock", 2: "bell", 3: "music"}
    rows = [
        # speech, source A at az 10 (frames 0-3, small drift), then a gap (frame 4) and again frames 5-6
        (0, 0, 0, 10.0, 0.0), (1, 0, 0, 10.0, 0.0), (2, 0, 0, 10.0, 0.0), (3, 0, 0, 12.0, 4.0),
        (5, 0, 0, 10.0, 0.0), (6, 0, 0, 10.0, 0.0),
        # speech, a second source B at az -90 during frames 1-2 on track 1: a separate event
        (1, 0, 1, -90.0, 10.0), (2, 0, 1, -90.0, 20.0),
        # knock across the +-180 seam: continuous (18 deg apart), circular mean -180
        (0, 1, 2, 171.0, 0.0), (1, 1, 2, -171.0, 0.0),
        # bell jumps 90 degrees between frames 1 and 2: two events
        (0, 2, 0, 0.0, 0.0), (1, 2, 0, 0.0, 0.0), (2, 2, 0, 90.0, 0.0),
        # music swaps track 0 -> 1 at a fixed DOA: one event, reported on its most frequent track (1)
        (0, 3, 0, 45.0, 30.0), (1, 3, 1, 45.0, 30.0), (2, 3, 1, 45.0, 30.0),
    ]
    events = rows_to_events(rows, names, label_resolution=0.1, max_angle_deg=20.0)
    got = {(e["label"], e["start"], e["end"]): e for e in events}
    assert len(events) == 7
    a = got[("speech", 0.0, 0.4)]
    circular = math.degrees(math.atan2(3 * math.sin(math.radians(10)) + math.sin(math.radians(12)),
                                       3 * math.cos(math.radians(10)) + math.cos(math.radians(12))))
    assert a["track"] == 0 and a["azimuth"] == pytest.approx(circular) and a["elevation"] == pytest.approx(1.0)
    assert circular == pytest.approx(10.5, abs=1e-3)
    assert got[("speech", 0.5, 0.7)]["azimuth"] == pytest.approx(10.0)
    b = got[("speech", 0.1, 0.3)]
    assert (b["track"], b["azimuth"], b["elevation"]) == (1, pytest.approx(-90.0), pytest.approx(15.0))
    k = got[("knock", 0.0, 0.2)]
    assert k["azimuth"] == pytest.approx(-180.0) and k["track"] == 2
    assert got[("bell", 0.0, 0.2)]["azimuth"] == pytest.approx(0.0)
    assert got[("bell", 0.2, 0.3)]["azimuth"] == pytest.approx(90.0)
    m = got[("music", 0.0, 0.3)]
    assert m["track"] == 1 and m["elevation"] == pytest.approx(30.0)
    assert all(e["score"] == 1.0 and "distance" not in e for e in events)
    # a wider continuity angle joins the bell's two parts; distances are averaged
    wide = rows_to_events(rows, names, max_angle_deg=90.0)
    assert [(e["start"], e["end"]) for e in wide if e["label"] == "bell"] == [(0.0, 0.3)]
    dist_rows = [(0, 0, 0, 0.0, 0.0, 1.0), (1, 0, 0, 0.0, 0.0, 2.0)]
    assert rows_to_events(dist_rows, names)[0]["distance"] == pytest.approx(1.5)
    assert rows_to_events([], names) == []
    # scores: mean of the activity probability of (frame, track, class) over the event
    scores = np.zeros((2, 1, 4))
    scores[:, 0, 0] = [0.6, 0.8]
    assert rows_to_events(dist_rows, names, scores=scores)[0]["score"] == pytest.approx(0.7)


def test_events_to_rows_and_csv(tmp_path):
    events = [{"label": "knock", "class_id": 1, "start": 0.2, "end": 0.5, "azimuth": 30.0, "elevation": -10.0,
               "score": 0.9, "track": 2}]
    assert events_to_rows(events) == [(t, 1, 2, 30.0, -10.0) for t in (2, 3, 4)]
    save_dcase_csv(events, tmp_path / "e.csv")
    np.testing.assert_allclose(read_dcase_csv(tmp_path / "e.csv"), [[t, 1, 2, 30.0, -10.0] for t in (2, 3, 4)])
    frames = [(0, 3, 1, 12.5, 4.0), (7, 0, 0, -45.0, 0.0)]
    save_dcase_csv({"events": [], "frames": frames}, tmp_path / "f.csv")
    np.testing.assert_allclose(read_dcase_csv(tmp_path / "f.csv"), frames)


# ------------------------------------------------------------------------------------------ known outputs
def test_bias_model_gives_the_known_event_across_windows():
    pipe = make_pipe("none", predict_distance=True)
    sed_bias = torch.full((13,), -10.0)
    sed_bias[2] = 10.0
    d = math.atanh(0.5)  # tanh -> (0.5, 0.5, 0.5): azimuth 45, elevation atan(1 / sqrt(2))
    bias_heads(pipe.model, sed_bias, [d, d, d], distance_bias=1.0)
    audio = noise(2.53)  # 2.53 s -> ceil(60720 / 2400) = 26 label frames
    out = pipe({"array": audio, "sampling_rate": SR}, chunk_length_s=1.0, stride_length_s=0.2, return_frames=True)
    (event,) = out["events"]  # one event over all windows: no seam
    assert event["label"] == pipe.model.config.id2label[2] == "clapping"
    assert (event["start"], event["end"], event["track"]) == (0.0, 2.6, 0)
    assert event["azimuth"] == pytest.approx(45.0, abs=1e-4)
    assert event["elevation"] == pytest.approx(math.degrees(math.atan(1 / math.sqrt(2))), abs=1e-4)
    assert event["score"] == pytest.approx(1 / (1 + math.exp(-10)), abs=1e-6)
    assert event["distance"] == pytest.approx(math.log1p(math.e), abs=1e-5)  # softplus(1)
    # three tracks in the same direction are one source: one row per frame, on track 0
    assert [r[:3] for r in out["frames"]] == [(t, 2, 0) for t in range(26)]
    # the decoding options reach the decoder / event builder and leave a constant output alone
    same = pipe({"array": audio, "sampling_rate": SR}, chunk_length_s=1.0, stride_length_s=0.2, median_filter=3,
                doa_continuity_deg=1.0, merge_angle_deg=1.0)
    assert [(e["start"], e["end"], e["track"]) for e in same] == [(0.0, 2.6, 0)]
    # thresholds override: the calibrated 0.5 replaced by 1.0 for that class removes the event
    assert pipe({"array": audio, "sampling_rate": SR}, thresholds={"clapping": 1.0}) == []


def test_silence_gives_no_events():
    pipe = make_pipe("none")
    bias_heads(pipe.model, torch.full((13,), -10.0), [0.0, 0.0, 0.0])
    silence = np.zeros((2 * SR, 4), dtype=np.float32)
    assert pipe({"array": silence, "sampling_rate": SR}) == []
    assert pipe({"array": silence, "sampling_rate": SR}, return_frames=True) == {"events": [], "frames": []}


# ----------------------------------------------------------------------------------------- chunking / stitching
def test_chunked_equals_whole_file_for_a_local_model():
    """Receptive field of a few frames (spatial CNN only): every window's kept frames equal the whole-file pass."""
    pipe = make_pipe("none", track_layers=0, gru_layers=0)
    audio = noise(7.33, seed=1)
    whole = pipe.model(**pipe.feature_extractor(audio, sampling_rate=SR))
    n = math.ceil(audio.shape[1] / 2400)
    assert whole.sed_logits.shape[1] == n == 74
    chunked = raw_outputs(pipe, {"array": audio, "sampling_rate": SR}, chunk_length_s=2.0, stride_length_s=0.5)
    assert chunked["sed_logits"].shape == whole.sed_logits.shape[1:]
    torch.testing.assert_close(chunked["sed_logits"], whole.sed_logits[0].detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked["doa"], whole.doa[0].detach(), atol=1e-5, rtol=1e-5)


def test_chunk_covering_the_file_equals_one_pass(random_pipe):
    audio = noise(3.0, seed=2)
    inputs = {"array": audio, "sampling_rate": SR}
    whole = random_pipe.model(**random_pipe.feature_extractor(audio, sampling_rate=SR))
    one = raw_outputs(random_pipe, inputs, chunk_length_s=0)
    covered = raw_outputs(random_pipe, inputs, chunk_length_s=5.0)
    torch.testing.assert_close(one["sed_logits"], whole.sed_logits[0].detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(covered["sed_logits"], one["sed_logits"], atol=0, rtol=0)
    # windows shorter than the file: still exactly one output per 100 ms frame of the whole-file grid
    assert raw_outputs(random_pipe, inputs, chunk_length_s=1.0, stride_length_s=0.2)["doa"].shape == (30, 3, 3)


# ----------------------------------------------------------------------------------------------------- inputs
def test_file_dict_raw_tensor_and_batch_inputs_agree(random_pipe, tmp_path):
    audio = noise(2.0, seed=3)
    path = tmp_path / "scene.wav"
    soundfile.write(path, audio.T, SR, subtype="FLOAT")
    params = {"return_frames": True, "thresholds": 0.5, "chunk_length_s": 1.0, "stride_length_s": 0.2}
    from_file = random_pipe(str(path), **params)
    assert len(from_file["frames"]) > 0  # random weights: activities hover around 0.5
    assert random_pipe({"array": audio.T, "sampling_rate": SR}, **params) == from_file  # (samples, 4)
    assert random_pipe({"raw": torch.from_numpy(audio), "sampling_rate": SR}, **params) == from_file  # (4, samples)
    other = {"array": noise(1.5, seed=4), "sampling_rate": SR}
    batch = random_pipe([str(path), other], **params)
    assert isinstance(batch, list) and len(batch) == 2
    assert batch[0] == from_file and batch[1] == random_pipe(other, **params)


def test_48khz_input_is_resampled():
    pipe = make_pipe("ast", seed=5)
    seconds = 2.0

    def scene(sr):  # the same band-limited continuous signal (tones + chirp), a plane wave from az 60, el 20
        t = np.arange(int(seconds * sr)) / sr
        s = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t + 1.0)
        s += 0.2 * np.sin(2 * np.pi * (300 * t + 1500 * t**2))
        return foa_encode(s * np.hanning(t.size), 60.0, 20.0)

    out24 = raw_outputs(pipe, {"array": scene(24000), "sampling_rate": 24000})
    out48 = raw_outputs(pipe, {"array": scene(48000), "sampling_rate": 48000})
    assert out48["sed_logits"].shape == out24["sed_logits"].shape == (20, 3, 13)
    torch.testing.assert_close(out48["sed_logits"], out24["sed_logits"], atol=2e-3, rtol=0)
    torch.testing.assert_close(out48["doa"], out24["doa"], atol=2e-3, rtol=0)


def test_bad_inputs_raise_clear_errors(random_pipe):
    with pytest.raises(ValueError, match="4 FOA channels"):
        random_pipe({"array": np.zeros((3, SR), np.float32), "sampling_rate": SR})
    bad = noise(1.0)
    bad[2, 100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        random_pipe({"array": bad, "sampling_rate": SR})
    with pytest.raises(ValueError, match="sampling_rate"):
        random_pipe({"array": noise(1.0)})
    with pytest.raises(ValueError, match="bare array"):
        random_pipe(noise(1.0))
    with pytest.raises(TypeError, match="Input must be"):
        random_pipe(42)
    with pytest.raises(FileNotFoundError):
        random_pipe("/nonexistent/scene.wav")
    with pytest.raises(ValueError, match="shorter than one"):
        random_pipe({"array": noise(1.0), "sampling_rate": SR}, chunk_length_s=0.04)
    with pytest.raises(ValueError, match="less than half"):
        random_pipe({"array": noise(1.0), "sampling_rate": SR}, chunk_length_s=1.0, stride_length_s=0.5)
    with pytest.raises(ValueError, match="13 per-class"):
        random_pipe({"array": noise(1.0), "sampling_rate": SR}, thresholds=[0.5, 0.5])
    with pytest.raises(ValueError, match="unknown class"):
        random_pipe({"array": noise(1.0), "sampling_rate": SR}, thresholds={"dog": 0.3})
    with pytest.raises(TypeError, match="Unknown argument"):
        random_pipe({"array": noise(1.0), "sampling_rate": SR}, top_k=3)


# ------------------------------------------------------------------------------------------- Hub / remote code
REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class HideAt2seld(importlib.abc.MetaPathFinder):  # the editable install's finder comes after this one
        def find_spec(self, name, path=None, target=None):
            if name == "at2seld" or name.startswith("at2seld."):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
            return None

    sys.meta_path.insert(0, HideAt2seld())
    try:
        import at2seld  # noqa: F401
        sys.exit("at2seld is importable: the test would prove nothing")
    except ModuleNotFoundError:
        pass
    import numpy as np
    import torch
    from transformers import pipeline

    torch.set_num_threads(1)

    pipe = pipeline("sound-event-localization", model=sys.argv[1], trust_remote_code=True, device="cpu")
    assert "at2seld" not in sys.modules, "the package was imported"
    out = pipe({"array": np.load(sys.argv[2]), "sampling_rate": 24000}, chunk_length_s=1.0, stride_length_s=0.2,
               return_frames=True)
    print("RESULT" + json.dumps({"module": type(pipe).__module__, "events": out["events"],
                                 "frames": [list(r) for r in out["frames"]]}))
    """
)


def test_saved_pipeline_runs_via_trust_remote_code_without_the_package(random_pipe, tmp_path):
    model_dir = tmp_path / "model"
    save_for_hub(random_pipe.model, random_pipe.feature_extractor, model_dir)
    files = set(os.listdir(model_dir))
    assert {"pipeline_at2seld.py", "decoding_at2seld.py", "modeling_at2seld.py", "feature_extraction_at2seld.py",
            "configuration_at2seld.py", "config.json", "preprocessor_config.json", "model.safetensors"} <= files
    config = json.loads((model_dir / "config.json").read_text())
    assert config["custom_pipelines"]["sound-event-localization"]["impl"] == (
        "pipeline_at2seld.SoundEventLocalizationPipeline")
    audio = noise(2.5, seed=6)
    np.save(tmp_path / "audio.npy", audio)
    expected = random_pipe({"array": audio, "sampling_rate": SR}, chunk_length_s=1.0, stride_length_s=0.2,
                           return_frames=True)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONNOUSERSITE="1")
    proc = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT, str(model_dir), str(tmp_path / "audio.npy")],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert got["module"].startswith("transformers_modules.")
    assert len(got["frames"]) == len(expected["frames"]) > 0
    np.testing.assert_allclose(np.asarray(got["frames"]), np.asarray(expected["frames"]), atol=1e-6)
    assert [e["label"] for e in got["events"]] == [e["label"] for e in expected["events"]]
    for g, e in zip(got["events"], expected["events"]):
        assert {k: g[k] for k in ("start", "end", "track")} == {k: e[k] for k in ("start", "end", "track")}
        assert g["azimuth"] == pytest.approx(e["azimuth"], abs=1e-6)
        assert g["score"] == pytest.approx(e["score"], abs=1e-9)


# ---------------------------------------------------------------------------------------------- bounded memory
MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np, torch
    import at2seld

    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = at2seld.AT2SELDConfig.tiny(backbone_type="none", descriptors=["logmel", "iv"], spatial_channels=[4, 8],
                                     track_layers=0, gru_layers=0, num_tracks=1)
    model = at2seld.AT2SELDForSoundEventLocalization(cfg).eval()
    fe = at2seld.AT2SELDFeatureExtractor(backbone_type="none", descriptors=cfg.descriptors)
    pipe = at2seld.SoundEventLocalizationPipeline(model=model, feature_extractor=fe, device="cpu")
    minutes = float(sys.argv[1])
    rng = np.random.default_rng(0)
    audio = np.empty((4, int(minutes * 60 * 24000)), dtype=np.float32)  # filled in blocks: no float64 copy
    for channel in audio:
        for start in range(0, channel.size, 24000 * 60):
            block = channel[start:start + 24000 * 60]
            rng.standard_normal(block.shape, dtype=np.float32, out=block)
            block *= 0.1
    pipe({"array": audio[:, : 40 * 24000], "sampling_rate": 24000}, thresholds=1.0)  # warm-up: one full window
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # bytes (Linux reports KiB)
    before = peak()
    fe.load_audio(audio, sampling_rate=24000)  # the extractor's input checks alone (an O(samples) NaN mask)
    checked = peak()
    out = pipe({"array": audio, "sampling_rate": 24000}, thresholds=1.0, chunk_length_s=30, stride_length_s=3)
    after = peak()
    frames = -(-audio.shape[1] // 2400)
    features = fe.frames_per_label * frames * cfg.num_spatial_bins * cfg.num_spatial_channels * 4
    stft = 4 * (fe.n_fft // 2 + 1) * (fe.frames_per_label * frames) * 8
    print("RESULT" + json.dumps({"growth": after - before, "growth_after_checks": after - checked,
                                 "checks": checked - before, "whole_features": features, "whole_stft": stft,
                                 "events": len(out), "audio_bytes": audio.nbytes}))
    """
)


def _memory_run(tmp_path, minutes: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(minutes)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT", 1)[1])


def test_ten_minutes_run_with_bounded_memory(tmp_path):
    res = _memory_run(tmp_path, 10)
    assert res["events"] == 0
    # 10 min: the whole-file STFT of the 4 channels is 4 x 513 x 30000 complex64 = 492 MB and the spatial features
    # 7 x 30000 x 64 float32 = 54 MB; the pipeline holds one 30 s window of features at a time.
    assert res["whole_features"] == 7 * 30000 * 64 * 4 and res["whole_stft"] == 4 * 513 * 30000 * 8
    # peak RSS grows by one window's working buffers at most (measured 0-15 MB; ru_maxrss is coarse): never the
    # whole-file STFT, and not even half of the whole file's spatial features
    assert res["growth"] < res["whole_stft"] / 20, res
    assert res["growth"] < res["whole_features"] / 2, res


# ------------------------------------------------------------------------------------------------------------- CLI
def test_cli_prints_table_writes_csv_plot_and_json(tmp_path, capsys):
    pipe = make_pipe("none", predict_distance=False)
    sed_bias = torch.full((13,), -10.0)
    sed_bias[12] = 10.0
    bias_heads(pipe.model, sed_bias, [0.0, -math.atanh(0.5), 0.0])  # y < 0: azimuth -90, elevation 0
    model_dir = tmp_path / "model"
    save_for_hub(pipe.model, pipe.feature_extractor, model_dir)
    wav = tmp_path / "scene.wav"
    soundfile.write(wav, noise(1.5).T, SR, subtype="FLOAT")
    csv, png, js = tmp_path / "out.csv", tmp_path / "out.png", tmp_path / "out.json"
    assert main([str(wav), "--model", str(model_dir), "--csv", str(csv), "--plot", str(png), "--json", str(js),
                 "--chunk_length_s", "1.0", "--stride_length_s", "0.2"]) == 0
    printed = capsys.readouterr().out
    assert "knock" in printed and "-90.0" in printed and "label" in printed
    np.testing.assert_allclose(read_dcase_csv(csv), [[t, 12, 0, -90.0, 0.0] for t in range(15)], atol=1e-9)
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    events = json.loads(js.read_text())["events"]
    assert [(e["label"], e["start"], e["end"]) for e in events] == [("knock", 0.0, 1.5)]
    assert "no events" in format_events([])
    assert main([str(tmp_path / "missing.wav"), "--model", str(model_dir)]) == 2


def test_registered_task_loads_a_plain_save_pretrained_folder(tmp_path):
    """With at2seld imported, the registered task works on a folder saved without the pipeline's remote code."""
    from transformers import pipeline

    pipe = make_pipe("none")
    pipe.model.save_pretrained(tmp_path)
    pipe.feature_extractor.save_pretrained(tmp_path)
    loaded = pipeline("sound-event-localization", model=str(tmp_path), device="cpu")
    assert isinstance(loaded, SoundEventLocalizationPipeline)
    inputs = {"array": noise(1.0), "sampling_rate": SR}
    assert loaded(inputs, return_frames=True) == pipe(inputs, return_frames=True)
    assert at2seld.SoundEventLocalizationPipeline is SoundEventLocalizationPipeline


def test_save_for_hub_uploads_the_whole_folder_once(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create", repo_id, kwargs["exist_ok"]))

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls.append(("upload", repo_id, sorted(os.listdir(folder_path))))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    pipe = make_pipe("none")
    save_for_hub(pipe.model, pipe.feature_extractor, tmp_path, repo_id="org/name", token="t")
    assert [c[0] for c in calls] == ["init", "create", "upload"]
    assert calls[1] == ("create", "org/name", True)
    assert {"pipeline_at2seld.py", "config.json", "model.safetensors", "preprocessor_config.json"} <= set(calls[2][2])

"""Training glue: resume after a kill, SELD compute_metrics, freezing schedule, class weights, model card, push."""

import copy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerCallback
from transformers.trainer_utils import EvalPrediction

from at2seld import AT2SELDConfig
from at2seld.data import synthesize
from at2seld.modeling_at2seld import AT2SELDForSoundEventLocalization
from at2seld.training import (
    BackboneSchedule,
    DataArguments,
    EvalSet,
    ModelArguments,
    SELDArguments,
    SELDTrainingArguments,
    build_config,
    class_pos_weights_from_rows,
    make_compute_metrics,
    model_card,
    parse_args,
    push_folder_to_hub,
    run,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synthesize(out, n_train=4, n_val=1, n_test=1, duration_s=3.0, seed=1)
    return out


def train_argv(data_dir, out_dir, max_steps, save_steps=2):
    return [
        "--tiny", "--backbone_type", "none", "--fusion", "none", "--dataset", "synthetic", "--data_dir", str(data_dir),
        "--output_dir", str(out_dir), "--max_steps", str(max_steps), "--save_strategy", "steps",
        "--save_steps", str(save_steps), "--eval_strategy", "no", "--load_best_model_at_end", "false",
        "--per_device_train_batch_size", "2", "--chunk_length_s", "2.0", "--report_to", "none",
        "--logging_steps", "1", "--calibrate", "false", "--save_total_limit", "10", "--dataloader_num_workers", "0",
    ]


def test_resume_after_kill_continues_from_saved_step_and_optimizer_state(synth_dir, tmp_path):
    out = tmp_path / "run"
    # a slow run (many steps) that we kill as soon as its second checkpoint is on disk
    argv = train_argv(synth_dir, out, max_steps=400, save_steps=2)
    proc = subprocess.Popen([sys.executable, "-m", "at2seld.training", *argv], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if (out / "checkpoint-4" / "trainer_state.json").exists():
                break
            if proc.poll() is not None:
                pytest.fail(f"training exited early with code {proc.returncode}")
            time.sleep(0.5)
        else:
            pytest.fail("no checkpoint within 240 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    checkpoints = sorted((int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")
                          if (p / "trainer_state.json").exists() and (p / "optimizer.pt").exists()))
    last = checkpoints[-1]
    saved_opt = torch.load(out / f"checkpoint-{last}" / "optimizer.pt", weights_only=False)

    seen = {}

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
            seen["step"] = state.global_step
            seen["opt"] = copy.deepcopy(optimizer.state_dict())  # tensors are updated in place later

    model_args, data_args, seld_args, training_args = parse_args(train_argv(synth_dir, out, max_steps=last + 2))
    results = run(model_args, data_args, seld_args, training_args, extra_callbacks=[Probe()])
    assert seen["step"] == last  # resumed, not restarted
    for pid, state in saved_opt["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(seen["opt"]["state"][pid][key], value)
    assert results["train"]["epoch"] > 0
    assert (out / "model.safetensors").exists() and (out / "README.md").exists()


def _perfect_logits(refs, n_frames, num_tracks=3, num_classes=10):
    sed = np.full((n_frames, num_tracks, num_classes), -20.0, np.float32)
    doa = np.zeros((n_frames, num_tracks, 3), np.float32)
    used = {}
    for frame, cls, _src, az, el in refs:
        k = used.get(frame, 0)
        used[frame] = k + 1
        sed[frame, k, cls] = 20.0
        a, e = np.deg2rad(az), np.deg2rad(el)
        doa[frame, k] = [np.cos(a) * np.cos(e), np.sin(a) * np.cos(e), np.sin(e)]
    return sed, doa


def test_compute_metrics_scores_perfect_and_silent_predictions():
    refs = {"a": [(f, 2, 0, 30.0, 10.0) for f in range(5, 25)] + [(f, 7, 1, -120.0, 0.0) for f in range(10, 30)],
            "b": [(f, 2, 0, 90.0, -30.0) for f in range(0, 12)]}
    frames = {"a": 40, "b": 20}
    es = EvalSet(examples=None, file_ids=["a", "b"], references=refs, num_frames=frames)
    sed = np.full((2, 40, 3, 10), -100.0, np.float32)  # padded batch: 'b' is 20 frames long, the rest is padding
    doa = np.zeros((2, 40, 3, 3), np.float32)
    for i, fid in enumerate(["a", "b"]):
        s, d = _perfect_logits(refs[fid], frames[fid])
        sed[i, : frames[fid]], doa[i, : frames[fid]] = s, d
    sed[1, 25:, 0, 4] = 20.0  # garbage in the padding of 'b' must be ignored
    compute = make_compute_metrics(es, 10, SELDArguments(average="micro"), lambda: 0.5)
    perfect = compute(EvalPrediction(predictions=(sed, doa), label_ids=None))
    assert perfect["er20"] == pytest.approx(0.0) and perfect["f20"] == pytest.approx(1.0)
    assert perfect["le_cd"] == pytest.approx(0.0, abs=1e-3) and perfect["lr_cd"] == pytest.approx(1.0)
    assert perfect["seld"] == pytest.approx(0.0, abs=1e-5)
    # macro (DCASE 2022+): the 8 classes absent from both sides count as F = 0, LE = 180, LR = 0 (official rule),
    # so F = 2/10, LE = 8 * 180 / 10 = 144, LR = 2/10 and SELD = (0 + 0.8 + 0.8 + 0.8) / 4 = 0.6
    macro = make_compute_metrics(es, 10, SELDArguments(average="macro"), lambda: 0.5)(
        EvalPrediction(predictions=(sed, doa), label_ids=None))
    assert macro["f20"] == pytest.approx(0.2) and macro["le_cd"] == pytest.approx(144.0, abs=1e-3)
    assert macro["lr_cd"] == pytest.approx(0.2) and macro["seld"] == pytest.approx(0.6, abs=1e-5)
    silent = make_compute_metrics(es, 10, SELDArguments(average="macro"), lambda: 0.5)(
        EvalPrediction(predictions=(np.full_like(sed, -20.0), doa), label_ids=None))
    # nothing detected: ER = 1 (all deletions), F = 0, LE = 180 (macro: no TP), LR = 0 -> SELD = 1
    assert silent["er20"] == pytest.approx(1.0) and silent["f20"] == 0.0
    assert silent["seld"] == pytest.approx(1.0)


def test_backbone_schedule_freezes_then_unfreezes():
    model = AT2SELDForSoundEventLocalization(AT2SELDConfig.tiny(backbone_trainable_layers=0))
    schedule = BackboneSchedule(trainable_layers=0, unfreeze_after_epochs=2)
    schedule.apply(model, epoch=0.0)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.spatial_encoder.parameters())
    schedule.apply(model, epoch=1.5)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    schedule.apply(model, epoch=2.0)
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_class_weights_from_training_rows():
    # class 0: 100 active frames, class 1: 25, class 2: 400 -> median 100; weights (100/n)^0.5
    rows = [[(f, 0, 0, 0.0, 0.0) for f in range(100)] + [(f, 1, 0, 0.0, 0.0) for f in range(25)],
            [(f, 2, 0, 0.0, 0.0) for f in range(400)]]
    w = class_pos_weights_from_rows(rows, 4)
    assert w[:3] == pytest.approx([1.0, 2.0, 0.5])
    assert w[3] == pytest.approx(10.0)  # never seen: the maximum weight


def test_build_config_applies_overrides_and_class_names():
    cfg = build_config(ModelArguments(tiny=True, fusion="early+late", num_tracks=2, backbone_type="ast"),
                       ["a", "b", "c"], 3)
    assert cfg.fusion == "early+late" and cfg.num_tracks == 2 and cfg.backbone_type == "ast"
    assert cfg.id2label == {0: "a", 1: "b", 2: "c"} and cfg.num_labels == 3
    with pytest.raises(Exception, match="fusion"):
        build_config(ModelArguments(tiny=True, fusion="sideways"), ["a"], 1)


def test_model_card_and_push_boundary(tmp_path):
    cfg = AT2SELDConfig.tiny(id2label={0: "a", 1: "b"}, class_thresholds=[0.3, 0.6])
    results = {"AT2SELD": {"ER": 0.5, "F": 0.6, "LE": 20.0, "LR": 0.7, "SELD": 0.36}}
    card = model_card(cfg, DataArguments(data_dir="/d"), SELDTrainingArguments(output_dir=str(tmp_path), report_to="none"),
                      results, {"total_parameters": 1234, "total_macs_per_second": 5e9})
    assert "| AT2SELD | 0.500 | 0.600 | 20.0 | 0.700 | 0.360 |" in card
    assert "[0.3, 0.6]" in card and "1,234" in card and "5.00 G" in card

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload", kw))
            return type("Info", (), {"commit_url": "https://hub/commit/1"})()

    (tmp_path / "model.safetensors").write_bytes(b"x")
    url = push_folder_to_hub(tmp_path, "org/at2seld-test", api=FakeApi())
    assert url == "https://hub/commit/1"
    assert calls[0][:2] == ("create", "org/at2seld-test") and calls[0][2]["exist_ok"]
    assert calls[1][1]["folder_path"] == str(tmp_path) and calls[1][1]["repo_id"] == "org/at2seld-test"
    assert "checkpoint-*" in calls[1][1]["ignore_patterns"]


def test_training_from_cached_features_runs_end_to_end(synth_dir, tmp_path):
    argv = train_argv(synth_dir, tmp_path / "cached", max_steps=2) + ["--cache_features", "true", "--calibrate", "true"]
    model_args, data_args, seld_args, training_args = parse_args(argv)
    results = run(model_args, data_args, seld_args, training_args)
    assert results["train"]["epoch"] > 0
    assert len(results["calibration"]["thresholds"]) == 10
    assert set(results["test"]) >= {"AT2SELD, thresholds 0.5", "AT2SELD, calibrated thresholds", "all silent"}
    assert any((tmp_path / "cached" / "predictions" / "test").glob("*.csv"))


def test_parquet_splits_match_the_folder_splits(synth_dir, tmp_path):
    from at2seld.data import convert_to_parquet
    from at2seld.training import load_splits

    convert_to_parquet("synthetic", synth_dir, tmp_path / "pq")
    train_f, val_f, test_f, names_f = load_splits(DataArguments(dataset="synthetic", data_dir=str(synth_dir)))
    train_p, val_p, test_p, names_p = load_splits(DataArguments(dataset="synthetic", parquet_dataset=str(tmp_path / "pq")))
    assert names_f == names_p and len(train_p) == len(train_f) == 4
    for folder, parquet in ((val_f, val_p), (test_f, test_p)):
        assert sorted(folder.file_ids) == sorted(parquet.file_ids)
        assert folder.num_frames == parquet.num_frames
        for fid in folder.file_ids:
            assert [tuple(r) for r in folder.references[fid]] == [tuple(r) for r in parquet.references[fid]]


def test_two_process_distributed_training_on_cpu(synth_dir, tmp_path):
    """`torchrun --nproc_per_node 2` (gloo on CPU) with a frozen AST branch (parameters without gradients under
    DistributedDataParallel): both ranks train, rank 0 alone calibrates, scores and saves."""
    out = tmp_path / "ddp"
    argv = train_argv(synth_dir, out, max_steps=2)
    argv[argv.index("--backbone_type") + 1] = "ast"
    argv[argv.index("--fusion") + 1] = "late"
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2",
           str(REPO / "hub_scripts" / "train.py"), *argv, "--use_cpu", "--backbone_trainable_layers", "0"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "model.safetensors").exists() and (out / "metrics.json").exists()
    assert done.stdout.count("| all silent |") == 1  # the results table is printed by rank 0 only


def test_last_complete_checkpoint_skips_a_checkpoint_cut_off_while_saving(tmp_path):
    from at2seld.training import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "nothing") is None
    for step, complete in ((2, True), (10, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x")
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-final").mkdir()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # numeric, not lexical order


def test_class_balancing_scales_configured_weights_and_seed_alone_sets_initial_weights(synth_dir, tmp_path):
    import json

    from safetensors.torch import load_file

    from at2seld.data import read_metadata, scan_dcase, select_split

    config_json = tmp_path / "arch.json"
    config_json.write_text(json.dumps({**AT2SELDConfig.tiny(backbone_type="none", fusion="none").to_dict(),
                                       "class_pos_weight": [5.0] * 10, "id2label": None, "label2id": None}))
    weights = []
    for i in range(2):
        torch.manual_seed(1000 + i)  # whatever ran before must not change the run's initial weights
        torch.randn(i + 1)
        argv = train_argv(synth_dir, tmp_path / f"run{i}", max_steps=1)
        argv = [a for a in argv if a != "--tiny"] + ["--config_json", str(config_json), "--class_balancing", "true",
                                                     "--learning_rate", "0", "--seed", "7"]
        argv.remove("--backbone_type"), argv.remove("none")  # keep the JSON's backbone
        run(*parse_args(argv))
        weights.append(load_file(str(tmp_path / f"run{i}" / "model.safetensors")))
        saved = json.loads((tmp_path / f"run{i}" / "config.json").read_text())
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)
    train = select_split(scan_dcase("synthetic", synth_dir), "train")
    rows = [read_metadata(r.metadata_path, "synthetic") for r in train]
    expected = [5.0 * w for w in class_pos_weights_from_rows(rows, 10)]
    assert saved["class_pos_weight"] == pytest.approx(expected)

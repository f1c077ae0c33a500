"""The informed multi-stage search: search-space validation, a tiny three-stage run with its report, resuming, two
workers on one SQLite file, pruning rules, and reproducing a trial from its recorded command."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState, create_trial

from at2seld import AT2SELDConfig
from at2seld.data import CLASS_NAMES, synthesize
from at2seld.nas import DEFAULT_SPACE_FILES, NASSettings, SearchSpaceError, load_search_space, run_search
from at2seld.nas.cli import base_config_from
from at2seld.nas.cli import main as nas_main
from at2seld.nas.search import IntermediateScores, _median_rule_prunes, chosen_trial, open_storage

REPO = Path(__file__).resolve().parents[2]
LABELS = {"id2label": dict(enumerate(CLASS_NAMES["synthetic"]))}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("nas_synth")
    synthesize(out, n_train=3, n_val=1, n_test=1, duration_s=3.0, seed=4)
    return out


def train_args(data_dir):
    return ["--dataset", "synthetic", "--data_dir", str(data_dir), "--max_steps", "4", "--eval_steps", "2",
            "--per_device_train_batch_size", "2", "--chunk_length_s", "2.0", "--dataloader_num_workers", "0",
            "--logging_steps", "2"]


def settings_for(tmp_path, data_dir, **kw):
    base = AT2SELDConfig.tiny(**LABELS).to_dict()
    values = {"storage": f"sqlite:///{tmp_path / 'nas.db'}", "study_name": "t", "output_dir": str(tmp_path / "trials"),
                  "train_args": train_args(data_dir), "base_config": base, "n_trials": 2}
    values.update(kw)
    return NASSettings(**values)


# ------------------------------------------------------------------------------------------- search-space files
def write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_spaces_are_valid_for_the_default_and_the_tiny_model():
    for base in (AT2SELDConfig().to_dict(), AT2SELDConfig.tiny().to_dict()):
        spaces = [load_search_space(p, base) for p in DEFAULT_SPACE_FILES]
        assert [s.stage for s in spaces] == [1, 2, 3]
    assert spaces[0].parameters[0].labels == ["logmel", "logmel+iv", "logmel+phase", "logmel+phase+iv", "linspec"]
    assert spaces[2].parameters[0].labels == ["none", "early", "late", "early+late", "early_concat"]
    assert spaces[0].overrides({"descriptors": "logmel+iv"}) == {"descriptors": ["logmel", "iv"]}


@pytest.mark.parametrize("text, key", [
    ("stage: 1\nname: x\nparamters: {}\n", "paramters"),  # typo in a top-level key
    ("stage: 1\nname: x\nparameters:\n  fusion: {type: categorical, choices: [late, sideways]}\n",
     "parameters.fusion.choices.sideways"),  # a value the config rejects
    (("stage: 1\nname: x\nparameters:\n  enc:\n    type: categorical\n    choices:\n"
     "      deep: {spatial_channels: [8, 16, 32], spatial_time_pool: [5, 1], spatial_freq_pool: [2, 2, 2]}\n"),
     "parameters.enc.choices.deep"),  # pools and channels of different lengths
    ("stage: 1\nname: x\nparameters:\n  enc:\n    type: categorical\n    choices:\n      a: {spatial_chanels: [8]}\n",
     "spatial_chanels"),  # unknown config field inside a choice
    ("stage: 1\nname: x\nparameters:\n  gru_hidden: {type: int, low: 64, high: 16}\n", "parameters.gru_hidden"),
    ("stage: 1\nname: x\nparameters:\n  gru_hidden: {type: int, low: 0, high: 16}\n", "parameters.gru_hidden.low"),
    ("stage: 1\nname: x\nparameters:\n  gru_hidden: {type: int, low: 8, high: 16, stride: 2}\n", "stride"),
    ("stage: 1\nname: x\nparameters:\n  width: {type: int, low: 8, high: 16}\n", "parameters.width"),
    ("stage: 1\nname: x\nfixed: {num_tracks: 7}\nparameters:\n  fusion: {type: categorical, choices: [late]}\n",
     "fixed"),
    ("stage: 0\nname: x\nparameters:\n  fusion: {type: categorical, choices: [late]}\n", "stage"),
])
def test_bad_space_file_names_file_and_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(SearchSpaceError) as err:
        load_search_space(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_numeric_ranges_are_sampled_within_bounds(tmp_path):
    path = write(tmp_path, "stage: 2\nname: gru\nparameters:\n  gru_hidden: {type: int, low: 16, high: 64, step: 16}\n")
    space = load_search_space(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        seen.add(space.overrides({"gru_hidden": space.parameters[0].suggest(trial)})["gru_hidden"])
        study.tell(trial, 0.0)
    assert seen <= {16, 32, 48, 64} and len(seen) > 1
    assert not space.is_finite


# ---------------------------------------------------------------------------------------------- pruning rules
def test_median_rule_on_recorded_intermediate_values():
    study = optuna.create_study(directions=["minimize", "minimize"])
    for values in ([[2, 0.9], [4, 0.8]], [[2, 0.7], [4, 0.6]], [[2, 0.5], [4, 0.4]]):
        study.add_trial(create_trial(values=[values[-1][1], 1.0], user_attrs={"intermediate_seld": values}))
    assert _median_rule_prunes(study, 2, 0.75, startup_trials=2)  # median at step 2 is 0.7
    assert not _median_rule_prunes(study, 2, 0.65, startup_trials=2)
    assert not _median_rule_prunes(study, 3, 5.0, startup_trials=2)  # nobody evaluated at step 3
    assert not _median_rule_prunes(study, 2, 0.75, startup_trials=4)  # too few finished trials yet


@pytest.mark.parametrize("multi", [False, True])
def test_intermediate_scores_prune_a_trial_worse_than_the_median(multi):
    directions = ["minimize", "minimize"] if multi else ["minimize"]
    study = optuna.create_study(directions=directions, pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for v in (0.4, 0.6):
        kw = {"values": [v, 1.0]} if multi else {"value": v, "intermediate_values": {10: v}}
        study.add_trial(create_trial(**kw, user_attrs={"intermediate_seld": [[10, v]]}))

    class State:
        global_step = 10
        max_steps = 20

    good = IntermediateScores(study.ask(), multi, True, 2)
    good.on_evaluate(None, State(), None, metrics={"eval_seld": 0.45})  # below the median 0.5: continues
    bad = IntermediateScores(study.ask(), multi, True, 2)
    with pytest.raises(optuna.TrialPruned):
        bad.on_evaluate(None, State(), None, metrics={"eval_seld": 0.9})
    off = IntermediateScores(study.ask(), multi, False, 2)
    off.on_evaluate(None, State(), None, metrics={"eval_seld": 0.9})  # pruning switched off
    assert off.history == [(10, 0.9)]

    class LastStep(State):
        max_steps = 10

    last = IntermediateScores(study.ask(), multi, True, 2)
    last.on_evaluate(None, LastStep(), None, metrics={"eval_seld": 0.9})  # the finished run completes the trial


# ------------------------------------------------------------------------------------------------- end to end
def test_three_stage_search_is_informed_and_reported(tmp_path, synth_dir):
    torch.set_num_threads(1)
    settings = settings_for(tmp_path, synth_dir)
    studies = run_search(settings)
    assert [s.user_attrs["stage"] for s in studies] == [1, 2, 3]
    for study in studies:
        done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        assert len(done) == 2
        for t in study.get_trials(states=(TrialState.COMPLETE,)):
            assert 0.0 <= t.values[0] <= 2.0 and t.values[1] > 0  # SELD in its range, MACs/s positive
            AT2SELDConfig(**t.user_attrs["config"])  # the full config is recorded and loads
            assert "--seed" in t.user_attrs["train_argv"]
    # informed: stage k's trials start from stage k-1's chosen configuration
    win1 = chosen_trial(studies[0]).user_attrs["config"]
    for t in studies[1].trials:
        assert t.user_attrs["config"]["descriptors"] == win1["descriptors"]
        assert t.user_attrs["config"]["fusion"] == win1["fusion"]  # not searched before stage 3
    win2 = chosen_trial(studies[1]).user_attrs["config"]
    for t in studies[2].trials:
        for key in ("descriptors", "spatial_channels", "track_layers", "gru_layers"):
            assert t.user_attrs["config"][key] == win2[key]
    assert studies[1].user_attrs["base_config"] == win1
    # the chosen multi-objective trial is on the Pareto front and has its best SELD
    pareto = studies[2].best_trials
    win3 = chosen_trial(studies[2])
    assert win3.number in {t.number for t in pareto}
    assert win3.values[0] == min(t.values[0] for t in pareto)

    report_dir = tmp_path / "report"
    nas_main(["report", "--storage", settings.storage, "--study_name", "t", "--output_dir", str(report_dir)])
    text = (report_dir / "REPORT.md").read_text()
    for stage, name in ((1, "descriptors"), (2, "capacity"), (3, "fusion")):
        assert f"## Stage {stage}: {name}" in text
        assert (report_dir / f"stage{stage}_pareto.png").stat().st_size > 1000
    assert "Effect of `descriptors`" in text and "Effect of `fusion`" in text
    assert f"| #{win3.number} (chosen) |" in text and f"{win3.values[0]:.3f}" in text
    winner = json.loads((report_dir / "winner_config.json").read_text())
    assert winner["fusion"] == win3.user_attrs["config"]["fusion"]
    assert winner["spatial_channels"] == win2["spatial_channels"]
    AT2SELDConfig(**winner, **LABELS)  # ready for at2seld-train --config_json


def test_resume_continues_the_study_and_refuses_other_settings(tmp_path, synth_dir):
    torch.set_num_threads(1)
    first = run_search(settings_for(tmp_path, synth_dir, n_trials=1), stages=[1])[0]
    (t0,) = first.get_trials()
    again = run_search(settings_for(tmp_path, synth_dir, n_trials=2), stages=[1])[0]
    trials = again.get_trials()
    assert len(trials) == 2
    assert (trials[0].number, trials[0].params, trials[0].values, trials[0].datetime_start) == (
        t0.number, t0.params, t0.values, t0.datetime_start)  # kept, not re-run
    assert trials[1].params != t0.params  # the grid continues with an unvisited point
    other = settings_for(tmp_path, synth_dir, n_trials=3, seed=5)
    with pytest.raises(ValueError, match="different experiment"):
        run_search(other, stages=[1])
    with pytest.raises(RuntimeError, match="Stage 1 .* has not been run|no complete trial"):
        run_search(settings_for(tmp_path, synth_dir, study_name="fresh"), stages=[2])


def test_a_trial_is_reproduced_by_its_recorded_command(tmp_path, synth_dir):
    torch.set_num_threads(1)
    study = run_search(settings_for(tmp_path, synth_dir, n_trials=1, pruning=False), stages=[1])[0]
    trial = study.get_trials()[0]
    argv = list(trial.user_attrs["train_argv"])
    argv[argv.index("--output_dir") + 1] = str(tmp_path / "replay")
    seen = []

    from transformers import TrainerCallback

    class Record(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            seen.append([state.global_step, metrics["eval_seld"]])

    from at2seld.training import parse_args, run

    run(*parse_args(argv), extra_callbacks=[Record()])
    recorded = trial.user_attrs["intermediate_seld"]
    assert [s for s, _ in seen] == [s for s, _ in recorded]
    assert [v for _, v in seen] == pytest.approx([v for _, v in recorded], abs=1e-9)
    assert min(v for _, v in seen) == pytest.approx(trial.values[0])


def test_two_workers_share_one_sqlite_study(tmp_path, synth_dir):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    argv = [sys.executable, "-m", "at2seld.nas.cli", "run", "--storage", storage, "--study_name", "w",
            "--output_dir", str(tmp_path / "trials"), "--base_config", "tiny", "--stages", "1", "--n_trials", "4",
            "--threads", "1", "--", *train_args(synth_dir)]
    argv[argv.index("--max_steps") + 1] = "10"  # trials long enough that the second worker joins before the end
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    errors = [p.communicate(timeout=400)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors[0][-3000:] + errors[1][-3000:]
    study = optuna.load_study(study_name="w.stage1-descriptors", storage=open_storage(storage, None))
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    states = [(t.number, t.state.name, t.params, t.user_attrs.get("worker")) for t in study.get_trials()]
    assert 4 <= len(done) <= 5, states  # both may start the last trial at once
    assert len(study.get_trials()) == len(done), states  # nothing left running or failed
    assert len({t.user_attrs["worker"] for t in done}) == 2, states


def test_cli_errors_are_clear(tmp_path):
    with pytest.raises(SystemExit, match="after `--`"):
        nas_main(["run", "--storage", str(tmp_path / "x.db")])
    with pytest.raises(ValueError, match="manages itself"):
        NASSettings(storage="x", study_name="x", output_dir="x", train_args=["--output_dir", "y"], base_config={})
    with pytest.raises(ValueError, match="Unknown --dataset"):
        base_config_from("tiny", "starss24")
    with pytest.raises(ValueError, match="No stage studies"):
        nas_main(["report", "--storage", f"sqlite:///{tmp_path / 'empty.db'}", "--study_name", "none",
                  "--output_dir", str(tmp_path / "r")])


def test_workers_started_together_create_one_new_storage(tmp_path):
    # plain optuna.storages.RDBStorage loses this race (IntegrityError on the schema version row) in some processes
    code = "import sys; from at2seld.nas.search import open_storage; open_storage(sys.argv[1])"
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(e[-1500:] for e in errors)

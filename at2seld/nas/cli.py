"""`at2seld-nas`: run (or join, or resume) the informed multi-stage search, and write its report.

    at2seld-nas run --storage sqlite:///nas.db --study_name demo --n_trials 5 6 5 -- \\
        --dataset synthetic --data_dir data/synth --max_steps 300 --eval_steps 100 --cache_features true
    at2seld-nas report --storage sqlite:///nas.db --study_name demo --output_dir nas_report

Everything after `--` is passed to every trial's `at2seld-train` run (data and training budget).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .space import DEFAULT_SPACE_FILES


def base_config_from(spec: str, dataset: str, overrides: dict | None = None) -> dict:
    """`tiny`, `default` or a JSON file of AT2SELDConfig fields (e.g. a previous winner), labelled for `dataset`."""
    from ..configuration_at2seld import AT2SELDConfig
    from ..data import CLASS_NAMES
    from .search import full_config

    if dataset not in CLASS_NAMES:
        raise ValueError(f"Unknown --dataset {dataset!r} in the training arguments; expected one of {sorted(CLASS_NAMES)}.")
    labels = {"id2label": dict(enumerate(CLASS_NAMES[dataset]))}
    if spec == "tiny":
        fields = AT2SELDConfig.tiny(**{**(overrides or {}), **labels}).to_dict()
    elif spec == "default":
        fields = AT2SELDConfig(**{**(overrides or {}), **labels}).to_dict()
    else:
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"--base_config must be 'tiny', 'default' or a JSON file of AT2SELDConfig fields; {spec!r} "
                             "is none of them.")
        fields = {**json.loads(path.read_text()), **(overrides or {})}
    return full_config(fields, labels)  # validated now, not in the first trial


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="at2seld-nas", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run stages of the search (several workers may share one storage)")
    run.add_argument("--storage", default="sqlite:///nas.db",
                     help="Optuna storage URL or SQLite file (default sqlite:///nas.db); PostgreSQL/MySQL for clusters")
    run.add_argument("--study_name", default="at2seld", help="prefix of the per-stage study names")
    run.add_argument("--output_dir", default="outputs/nas", help="trial runs (metrics, configs; checkpoints removed)")
    run.add_argument("--stages", type=int, nargs="+", default=None, help="stage numbers to run now (default: all)")
    run.add_argument("--n_trials", type=int, nargs="+", default=[8], help="trials per stage: one value or one per stage")
    run.add_argument("--objective", choices=["multi", "single"], default="multi",
                     help="multi: validation SELD and cost (Pareto front); single: validation SELD")
    run.add_argument("--cost", choices=["macs", "params"], default="macs", help="second objective (multi)")
    run.add_argument("--seed", type=int, default=0, help="sampler seed and training seed of every trial")
    run.add_argument("--no_pruning", action="store_true", help="never stop trials early")
    run.add_argument("--prune_startup_trials", type=int, default=2, help="complete trials before pruning starts")
    run.add_argument("--sampler", choices=["auto", "grid", "tpe", "random"], default="auto",
                     help="auto: grid for categorical spaces, TPE otherwise")
    run.add_argument("--spaces", nargs="+", default=None,
                     help=f"search-space files, one per stage in order (default: {[p.name for p in DEFAULT_SPACE_FILES]})")
    run.add_argument("--base_config", default="default",
                     help="first stage's base: 'tiny', 'default' or a JSON file of AT2SELDConfig fields")
    run.add_argument("--base_overrides", default=None,
                     help="AT2SELDConfig fields on top of the base: a JSON object or a JSON file")
    run.add_argument("--heartbeat_interval", type=int, default=60, help="seconds between a running trial's heartbeats")
    run.add_argument("--grace_period", type=int, default=300,
                     help="seconds without heartbeat after which a trial counts as dead and is re-queued once")
    run.add_argument("--wait_timeout", type=float, default=24 * 3600.0,
                     help="seconds to wait for other workers to finish the previous stage")
    run.add_argument("--keep_checkpoints", action="store_true", help="keep each trial's checkpoints")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (one worker per core: 1)")
    run.add_argument("--report_dir", default=None, help="write the report there when the search is done")
    rep = sub.add_parser("report", help="Markdown + PNG report and winning config from a storage")
    rep.add_argument("--storage", required=True)
    rep.add_argument("--study_name", default="at2seld")
    rep.add_argument("--output_dir", default="nas_report")
    return parser


def main(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, train_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "report":
        from .report import write_report

        path = write_report(args.storage, args.study_name, args.output_dir)
        print(f"report: {path}")
        return path
    if not train_args:
        raise SystemExit("at2seld-nas run: give the trials' at2seld-train arguments after `--` (at least the data: "
                         "--dataset ... --data_dir ... or --parquet_dataset ...).")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from .search import NASSettings, _flag_value, run_search

    overrides = None
    if args.base_overrides:
        text = args.base_overrides
        overrides = json.loads(Path(text).read_text() if not text.lstrip().startswith("{") else text)
    dataset = _flag_value(train_args, "--dataset") or "synthetic"
    spaces = args.spaces or [str(p) for p in DEFAULT_SPACE_FILES]
    n_trials = args.n_trials[0] if len(args.n_trials) == 1 else list(args.n_trials)
    settings = NASSettings(
        storage=args.storage, study_name=args.study_name, output_dir=args.output_dir, train_args=train_args,
        base_config=base_config_from(args.base_config, dataset, overrides), space_files=spaces, n_trials=n_trials,
        objective=args.objective, cost=args.cost, seed=args.seed, pruning=not args.no_pruning,
        prune_startup_trials=args.prune_startup_trials, sampler=args.sampler, wait_timeout_s=args.wait_timeout,
        heartbeat_interval_s=args.heartbeat_interval, grace_period_s=args.grace_period,
        keep_checkpoints=args.keep_checkpoints,
    )
    studies = run_search(settings, args.stages)
    if args.report_dir:
        from .report import write_report

        print(f"report: {write_report(args.storage, args.study_name, args.report_dir)}")
    return studies


if __name__ == "__main__":
    main()

"""`at2seld-study`: the diagnostic study (training variants, calibration, oracle activity, transfer matrix).

    at2seld-study run --output_dir study --tiny --config_json arch.json \\
        --data synth_a=synthetic:data/a --data synth_b=synthetic:data/b --max_steps 300
    at2seld-study report --output_dir study
    at2seld-study aggregate study_seed0 study_seed1 study_seed2 --output_dir study_seeds
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..data import DATASET_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="at2seld-study",
        description="Diagnostic study of AT2SELD: train the base on every data set and each training variant on the "
                    "first (primary) one, then score training variants, threshold calibration, oracle activity and a "
                    "transfer matrix on the test splits; writes study.json, REPORT.md and plots/.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See docs/study.md for what each diagnostic means and how to run the study on a GPU machine.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="Train (or re-use) the runs, score the diagnostics, write study.json and REPORT.md.",
                         description="Train (or re-use finished) runs into OUTPUT_DIR/runs/<data>/<variant>/, then "
                                     "score the diagnostics and write OUTPUT_DIR/study.json, REPORT.md and plots/. "
                                     "Re-running the same command resumes: runs with a metrics.json are re-used.")
    run.add_argument("--output_dir", required=True, help="Study folder (runs/, study.json, REPORT.md, plots/).")
    run.add_argument("--data", action="append", required=True, metavar="NAME=DATASET:DIR",
                     help=f"A data set: short NAME (folder and table label), DATASET format "
                          f"({' | '.join(DATASET_NAMES)}) and its DCASE-layout folder. Repeat for more; the first is "
                          f"the primary one (variants are trained on it).")
    run.add_argument("--spec", default=None,
                     help="Study spec YAML (base overrides and variants); default: at2seld/study/default_study.yaml.")
    run.add_argument("--variants", default=None,
                     help="Comma-separated subset of the spec's variants to run (default: all).")
    run.add_argument("--config_json", default=None, help="JSON of AT2SELDConfig fields: the base architecture.")
    run.add_argument("--tiny", action="store_true", help="Start from AT2SELDConfig.tiny() (then --config_json on top).")
    run.add_argument("--max_steps", type=int, default=300, help="Training steps of every run (default 300).")
    run.add_argument("--batch_size", type=int, default=8, help="Training chunks per step (default 8).")
    run.add_argument("--learning_rate", type=float, default=3e-3, help="Peak learning rate, cosine decay (3e-3).")
    run.add_argument("--eval_steps", type=int, default=None,
                     help="Validate (and checkpoint) every N steps; the best checkpoint by validation SELD is kept "
                          "(default max_steps // 4).")
    run.add_argument("--warmup_steps", type=int, default=None, help="Linear warm-up steps (default max_steps // 10).")
    run.add_argument("--seed", type=int, default=0, help="Seed of every run (default 0).")
    run.add_argument("--cache_features", action="store_true",
                     help="Compute training features once per recording (small data sets, CPU).")
    run.add_argument("--train_repeats", type=int, default=1, help="Random chunks per training recording per epoch.")
    run.add_argument("--chunk_length_s", type=float, default=5.0, help="Training chunk length in seconds (5.0).")
    run.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) (CPU).")
    run.add_argument("--keep_checkpoints", action="store_true",
                     help="Keep the Trainer's checkpoint-N folders of finished runs (default: deleted; the final "
                          "model stays in each run folder).")
    run.add_argument("--no_report", action="store_true", help="Do not write REPORT.md at the end.")

    rep = sub.add_parser("report", help="(Re)write REPORT.md and plots/ from OUTPUT_DIR/study.json.",
                         description="Render OUTPUT_DIR/REPORT.md and OUTPUT_DIR/plots/*.png from OUTPUT_DIR/study.json.")
    rep.add_argument("--output_dir", required=True, help="Folder of a finished `at2seld-study run`.")

    agg = sub.add_parser("aggregate", help="Mean ± sd and paired differences over repeats of a study with other seeds.",
                         description="Read the study.json of studies that differ only in --seed and write "
                                     "OUTPUT_DIR/AGGREGATE.md and aggregate.json (see at2seld/study/aggregate.py).")
    agg.add_argument("studies", nargs="+", help="Folders of finished `at2seld-study run`s (one per seed).")
    agg.add_argument("--output_dir", required=True, help="Where AGGREGATE.md and aggregate.json go.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .report import write_report

    if args.command == "aggregate":
        from .aggregate import write_aggregate

        try:
            path = write_aggregate(args.studies, args.output_dir)
        except (ValueError, FileNotFoundError) as err:
            parser.error(str(err))
        print(f"[study] aggregate: {path}")
        return 0
    if args.command == "report":
        try:
            path = write_report(args.output_dir)
        except FileNotFoundError as err:
            parser.error(str(err))
        print(f"[study] report: {path}")
        return 0

    from .runner import StudyTraining, check_data, check_sources, parse_data_arg, run_study
    from .spec import load_spec

    try:  # everything that can be checked before training: reported as a usage error
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}.")
            import torch

            torch.set_num_threads(args.threads)
        sources = check_sources([parse_data_arg(d) for d in args.data])
        spec = load_spec(args.spec)
        if args.variants is not None:
            spec = spec.select([v.strip() for v in args.variants.split(",") if v.strip()])
        training = StudyTraining(
            max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
            eval_steps=args.eval_steps, seed=args.seed, cache_features=args.cache_features,
            train_repeats=args.train_repeats, chunk_length_s=args.chunk_length_s, warmup_steps=args.warmup_steps)
        if args.config_json is not None:
            from pathlib import Path

            if not Path(args.config_json).is_file():
                raise FileNotFoundError(f"--config_json {args.config_json} does not exist.")
        check_data(sources)  # reads the split lists of every data set: last, the slowest check
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    run_study(args.output_dir, sources, spec, config_json=args.config_json, tiny=args.tiny, training=training,
              command=["at2seld-study", *argv], write_report=not args.no_report,
              keep_checkpoints=args.keep_checkpoints)
    if not args.no_report:
        print(f"[study] report: {args.output_dir}/REPORT.md")
    print(f"[study] raw numbers: {args.output_dir}/study.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

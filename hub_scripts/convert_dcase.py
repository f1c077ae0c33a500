"""Convert a DCASE FOA folder to Hub-ready Parquet shards (audio as FLAC bytes) with a dataset card.

    python hub_scripts/convert_dcase.py DATA_DIR OUT_DIR --dataset starss23 [--push-to-hub org/name] [--private]

The result loads with `load_dataset("parquet", data_files={"train": "OUT_DIR/data/train-*.parquet"})`, or, once
pushed, `load_dataset("org/name", streaming=True)`. The library calls are `at2seld.data.convert_to_parquet` and
`at2seld.data.push_to_hub`.
"""

from __future__ import annotations

import argparse
import sys

from at2seld.data import DATASET_NAMES, convert_to_parquet, push_to_hub


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data_dir", help="folder with foa_dev/ + metadata_dev/ (and optionally foa_eval/)")
    p.add_argument("out_dir", help="output folder (data/*.parquet + README.md)")
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    p.add_argument("--max-shard-mb", type=int, default=500, help="approximate shard size in MB of FLAC audio")
    p.add_argument("--non-strict", action="store_true", help="skip malformed metadata rows with a warning")
    p.add_argument("--push-to-hub", metavar="ORG/NAME", help="upload the result to this Hub dataset repository")
    p.add_argument("--private", action="store_true", help="create the Hub repository as private")
    return p


def main(argv: list[str] | None = None, api=None) -> dict:
    args = build_parser().parse_args(argv)
    written = convert_to_parquet(args.dataset, args.data_dir, args.out_dir, args.max_shard_mb * 1_000_000,
                                 strict=not args.non_strict)
    for split, paths in written.items():
        print(f"{split}: {len(paths)} shard(s)")
    if args.push_to_hub:
        print(push_to_hub(args.out_dir, args.push_to_hub, private=args.private, api=api))
    return written


if __name__ == "__main__":
    main(sys.argv[1:])

"""`at2seld-synthesize`: command-line front end of `at2seld.data.synthesize`."""

from __future__ import annotations

import argparse

from ..classes import SYNTH_CLASSES
from .room import ROOM_PRESETS
from .scene import PROFILES, synthesize


def _drr(text: str):
    if text.lower() == "none":
        return None
    parts = [float(x) for x in text.split(",")]
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"--drr-db takes 'X', 'LOW,HIGH' or 'none', got {text!r}.")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _snr(text: str):
    return None if text.lower() == "none" else float(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="at2seld-synthesize",
        description="Write a synthetic FOA SELD data set in the STARSS23 layout (foa_dev/ + metadata_dev/).",
    )
    p.add_argument("out_dir")
    p.add_argument("--n-train", type=int, default=32)
    p.add_argument("--n-val", type=int, default=8)
    p.add_argument("--n-test", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=30.0, help="seconds per scene")
    p.add_argument("--profile", default="default", choices=sorted(PROFILES))
    p.add_argument("--classes", help=f"comma-separated subset of {','.join(SYNTH_CLASSES)}")
    p.add_argument("--rooms", help=f"comma-separated room ids from {sorted(ROOM_PRESETS)}")
    p.add_argument("--snr-db", type=_snr, default=20.0, help="dB, or 'none' for no ambient noise")
    p.add_argument("--drr-db", type=_drr, default=(4.0, 14.0), help="'X', 'LOW,HIGH', or 'none' for a dry scene")
    p.add_argument("--max-polyphony", type=int, default=3)
    p.add_argument("--clips-dir", help="optional folder of user mono clips, one sub-folder per class name")
    p.add_argument("--overwrite", action="store_true")
    return p


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    report = synthesize(
        args.out_dir, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, seed=args.seed,
        duration_s=args.duration, classes=args.classes.split(",") if args.classes else None,
        rooms=[int(r) for r in args.rooms.split(",")] if args.rooms else None, snr_db=args.snr_db,
        drr_db=args.drr_db, profile=args.profile, max_polyphony=args.max_polyphony, clips_dir=args.clips_dir,
        overwrite=args.overwrite,
    )
    n = sum(len(v) for v in report.files.values())
    print(f"Wrote {n} scenes ({report.audio_seconds:.0f} s of audio) to {report.out_dir} in "
          f"{report.elapsed_seconds:.1f} s ({report.realtime_factor:.0f}x real time).")
    return report


__all__ = ["build_parser", "main"]

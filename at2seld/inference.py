"""`at2seld-infer`: run a trained AT2SELD model on an FOA recording; print the events, write the DCASE CSV and a plot.

    at2seld-infer scene.wav --model runs/demo/model --csv scene.csv --plot scene.png
    at2seld-infer scene.wav --model org/name --chunk_length_s 30 --stride_length_s 3

The plot follows the DCASE visualiser: class activity over time (one row per class) and the azimuth / elevation of
every active frame, coloured by class.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .pipeline_at2seld import TASK, SoundEventLocalizationPipeline, save_dcase_csv

__all__ = ["format_events", "load_pipeline", "main", "plot_result"]


def load_pipeline(model: str | os.PathLike, device: str | int | None = None, **kwargs) -> SoundEventLocalizationPipeline:
    """`pipeline("sound-event-localization", model=...)` with this package's pipeline class (a local folder or a Hub
    repo written by `save_for_hub` or by `save_pretrained`; no remote code is executed: the installed at2seld is
    used)."""
    from transformers import pipeline

    import at2seld  # noqa: F401  (registers the Auto classes and the task)

    if device is None:
        device = "cpu"
    return pipeline(TASK, model=os.fspath(model), pipeline_class=SoundEventLocalizationPipeline, device=device, **kwargs)


def format_events(events: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of events (seconds, degrees)."""
    has_distance = any("distance" in ev for ev in events)
    header = f"{'label':<20}{'start':>8}{'end':>8}{'azimuth':>9}{'elevation':>10}{'score':>7}{'track':>6}"
    header += f"{'dist':>7}" if has_distance else ""
    lines = [header, "-" * len(header)]
    for ev in events:
        line = (f"{ev['label']:<20}{ev['start']:>8.1f}{ev['end']:>8.1f}{ev['azimuth']:>9.1f}{ev['elevation']:>10.1f}"
                f"{ev['score']:>7.2f}{ev['track']:>6d}")
        if has_distance:
            line += f"{ev.get('distance', float('nan')):>7.2f}"
        lines.append(line)
    if not events:
        lines.append("(no events above the detection thresholds)")
    return "\n".join(lines)


def plot_result(result: dict[str, Any], id2label: dict[int, str], path: str | os.PathLike,
                label_resolution: float = 0.1, duration: float | None = None, title: str | None = None) -> None:
    """Save a DCASE-visualiser-style figure of one `return_frames=True` pipeline result.

    Top: activity of each class over time (a bar per event). Middle / bottom: azimuth / elevation (degrees) of every
    active frame, one colour per class.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {int(k): v for k, v in id2label.items()}
    classes = sorted(names)
    cmap = plt.get_cmap("tab20")
    colour = {c: cmap(i % 20) for i, c in enumerate(classes)}
    frames = result.get("frames", [])
    events = result["events"]
    if duration is None:
        ends = [ev["end"] for ev in events] + [(r[0] + 1) * label_resolution for r in frames]
        duration = max(ends) if ends else 1.0

    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True, gridspec_kw={"height_ratios": [2, 1, 1]})
    ax_act, ax_az, ax_el = axes
    for ev in events:
        c = int(ev["class_id"])
        ax_act.broken_barh([(ev["start"], ev["end"] - ev["start"])], (c - 0.4, 0.8), color=colour[c])
    ax_act.set_yticks(classes)
    ax_act.set_yticklabels([names[c] for c in classes], fontsize=7)
    ax_act.set_ylim(-0.6, len(classes) - 0.4)
    ax_act.set_ylabel("class activity")
    for c in classes:
        pts = [r for r in frames if int(r[1]) == c]
        if not pts:
            continue
        t = [(r[0] + 0.5) * label_resolution for r in pts]
        ax_az.scatter(t, [r[3] for r in pts], s=4, color=colour[c], label=names[c])
        ax_el.scatter(t, [r[4] for r in pts], s=4, color=colour[c])
    ax_az.set_ylim(-180, 180)
    ax_az.set_yticks([-180, -90, 0, 90, 180])
    ax_az.set_ylabel("azimuth (deg)")
    ax_el.set_ylim(-90, 90)
    ax_el.set_yticks([-90, -45, 0, 45, 90])
    ax_el.set_ylabel("elevation (deg)")
    ax_el.set_xlabel("time (s)")
    ax_el.set_xlim(0, duration)
    for ax in axes:
        ax.grid(alpha=0.3)
    if ax_az.get_legend_handles_labels()[0]:
        ax_az.legend(fontsize=6, ncol=4, loc="upper right", markerscale=3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="at2seld-infer",
        description="Sound event localization and detection on a First-Order Ambisonics recording (ACN/SN3D, any "
                    "sampling rate).",
    )
    parser.add_argument("file", help="4-channel FOA audio file (WAV/FLAC)")
    parser.add_argument("--model", required=True, help="model folder or Hub repo id (written by save_for_hub)")
    parser.add_argument("--csv", help="write the frame-wise DCASE CSV (frame,class,track,azimuth,elevation) here")
    parser.add_argument("--plot", help="write a PNG of class activity and azimuth/elevation tracks here")
    parser.add_argument("--json", help="write the events (and frames) as JSON here")
    parser.add_argument("--chunk_length_s", type=float, default=30.0, help="window length in seconds; 0 = one pass")
    parser.add_argument("--stride_length_s", type=float, default=None,
                        help="context discarded on each side of a window (default chunk_length_s / 10)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="one activity threshold for every class (default: the model's calibrated thresholds)")
    parser.add_argument("--median_filter", type=int, default=0, help="odd running-median window in frames (0 = off)")
    parser.add_argument("--doa_continuity_deg", type=float, default=20.0,
                        help="largest DOA change between consecutive frames of one event")
    parser.add_argument("--channel_format", choices=("acn", "fuma"), default="acn")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not os.path.exists(args.file):
        print(f"at2seld-infer: audio file not found: {args.file}", file=sys.stderr)
        return 2
    pipe = load_pipeline(args.model, device=args.device)
    call: dict[str, Any] = {
        "chunk_length_s": args.chunk_length_s,
        "median_filter": args.median_filter,
        "doa_continuity_deg": args.doa_continuity_deg,
        "channel_format": args.channel_format,
        "return_frames": True,
    }
    if args.stride_length_s is not None:
        call["stride_length_s"] = args.stride_length_s
    if args.threshold is not None:
        call["thresholds"] = args.threshold
    result = pipe(args.file, **call)
    print(format_events(result["events"]))
    resolution = float(pipe.feature_extractor.label_resolution)
    if args.csv:
        save_dcase_csv(result, args.csv)
        print(f"DCASE CSV: {args.csv}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"events": result["events"], "frames": [list(r) for r in result["frames"]]}, fh, indent=1)
        print(f"JSON: {args.json}")
    if args.plot:
        import soundfile

        info = soundfile.info(args.file)
        plot_result(result, pipe.model.config.id2label, args.plot, resolution, duration=info.duration,
                    title=os.path.basename(args.file))
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""`SoundEventLocalizationPipeline`: FOA recordings in, localized sound events out (task "sound-event-localization").

    pipe = pipeline("sound-event-localization", model="org/name", trust_remote_code=True)
    pipe("scene.wav")                      # -> [{"label", "start", "end", "azimuth", "elevation", "score", "track"}, ...]
    pipe({"array": foa, "sampling_rate": 48000}, return_frames=True)   # -> {"events": [...], "frames": [DCASE rows]}

Long recordings are cut into overlapping windows of `chunk_length_s` seconds that overlap by `2 * stride_length_s`;
each window keeps only its central frames (all frames up to the file edges for the first / last window), so the
stitched frames lie exactly on the whole-file 100 ms grid and no frame is predicted twice. Features are computed per
block with `AT2SELDFeatureExtractor.iter_chunks` (exactly the whole-file features, see its docstring) and only the
blocks of the current window are held, so memory does not grow with the length of the recording beyond the waveform.

Events are built from the decoded DCASE frame rows (`decoding_at2seld.decode`) by `rows_to_events`, see its docstring
for the merging rule.

This file travels to a Hub repository as remote code (`Pipeline.save_pretrained` copies it with its flat siblings):
its absolute imports are limited to the standard library, numpy, torch and transformers.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from transformers.pipelines.base import ChunkPipeline

from .decoding_at2seld import decode, polar_to_cartesian, write_dcase_csv

TASK = "sound-event-localization"

__all__ = [
    "TASK",
    "SoundEventLocalizationPipeline",
    "events_to_rows",
    "plan_windows",
    "register_pipeline",
    "rows_to_events",
    "save_dcase_csv",
    "save_for_hub",
]


# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------
def plan_windows(num_frames: int, chunk_frames: int, stride_frames: int) -> list[tuple[int, int, int, int]]:
    """Overlapping analysis windows over `num_frames` label frames.

    Windows of `chunk_frames` frames start every `chunk_frames - 2 * stride_frames` frames; each keeps its central
    frames `[start + stride, stop - stride)`, except that the first keeps from frame 0 and the last keeps up to the
    end. The kept ranges tile `[0, num_frames)` exactly. `chunk_frames <= 0` or `num_frames <= chunk_frames` gives
    one window over everything.

    Returns:
        list of `(start, stop, keep_start, keep_stop)` in absolute label frames.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
    if chunk_frames <= 0 or num_frames <= chunk_frames:
        return [(0, num_frames, 0, num_frames)]
    step = chunk_frames - 2 * stride_frames
    if step < 1 or stride_frames < 0:
        raise ValueError(f"Need 0 <= 2 * stride_frames < chunk_frames, got chunk {chunk_frames}, stride {stride_frames}.")
    windows, start = [], 0
    while True:
        stop = min(start + chunk_frames, num_frames)
        last = stop == num_frames
        windows.append((start, stop, 0 if start == 0 else start + stride_frames, stop if last else stop - stride_frames))
        if last:
            return windows
        start += step


def rows_to_events(
    rows: Sequence[Sequence[float]] | np.ndarray,
    id2label: dict[int, str] | Sequence[str],
    label_resolution: float = 0.1,
    max_angle_deg: float = 20.0,
    scores: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Merge DCASE frame rows into events (segments).

    Rule: frames are visited in time order. A row of class c at frame t *continues* an event of class c whose last
    frame is t - 1 when the angle between the row's DOA and the event's DOA at t - 1 is at most `max_angle_deg`
    (pairs are matched greedily by increasing angle, one row per event). Every other row starts a new event; an event
    not continued at frame t ends at t - 1. The track index plays no part in the linking (tracks may swap between
    frames under permutation-invariant training); the event reports its most frequent track (ties: lowest index).

    Each event: `label`, `class_id`, `start` = first frame * resolution, `end` = (last frame + 1) * resolution
    (seconds), `azimuth` = circular mean of the frames' azimuths in [-180, 180), `elevation` = mean elevation
    (degrees), `score` = mean of `scores[frame, track, class]` over its frames (1.0 when `scores` is None), `track`,
    and `distance` (mean) when the rows carry a 6th field.

    Args:
        rows: `(rows, 5)` or `(rows, 6)`: `(frame, class, track, azimuth, elevation[, distance])`.
        id2label: class names by index.
        scores: optional `(frames, tracks, classes)` activity probabilities.
    Returns:
        events sorted by start time, then class, then azimuth.
    """
    arr = np.asarray(rows, dtype=np.float64)
    if arr.size == 0:
        return []
    if arr.ndim != 2 or arr.shape[1] not in (5, 6):
        raise ValueError(f"rows must be (frame, class, track, azimuth, elevation[, distance]), got shape {arr.shape}.")
    has_distance = arr.shape[1] == 6
    arr = arr[np.lexsort((arr[:, 2], arr[:, 1], arr[:, 0]))]
    units = polar_to_cartesian(arr[:, 3], arr[:, 4])
    frame_of = arr[:, 0].astype(np.int64)
    class_of = arr[:, 1].astype(np.int64)
    cos_limit = math.cos(math.radians(max_angle_deg)) - 1e-12  # angle <= max  <=>  cos(angle) >= cos(max)
    bounds = np.flatnonzero(np.r_[True, frame_of[1:] != frame_of[:-1], True])
    finished: list[list[int]] = []  # each event: indices into arr, in time order
    open_events: list[list[int]] = []
    for i, j in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        t = int(frame_of[i])
        still_open = [ev for ev in open_events if frame_of[ev[-1]] == t - 1]
        finished.extend(ev for ev in open_events if frame_of[ev[-1]] != t - 1)
        used_e, used_r = set(), set()
        next_open = []
        if still_open:
            last = np.array([ev[-1] for ev in still_open])
            cos = units[last] @ units[i:j].T  # (open events, rows of frame t)
            valid = (class_of[last][:, None] == class_of[i:j][None, :]) & (cos >= cos_limit)
            e_idx, r_idx = np.nonzero(valid)
            for k in np.argsort(-cos[e_idx, r_idx], kind="stable").tolist():  # increasing angle
                e, r = int(e_idx[k]), i + int(r_idx[k])
                if e in used_e or r in used_r:
                    continue
                used_e.add(e)
                used_r.add(r)
                still_open[e].append(r)
                next_open.append(still_open[e])
        finished.extend(ev for e, ev in enumerate(still_open) if e not in used_e)
        next_open.extend([r] for r in range(i, j) if r not in used_r)
        open_events = next_open
    finished.extend(open_events)

    names = id2label if not isinstance(id2label, dict) else {int(k): v for k, v in id2label.items()}
    events = []
    for ev in finished:
        sel = arr[ev]
        cls = int(sel[0, 1])
        az = np.deg2rad(sel[:, 3])
        mean_az = math.degrees(math.atan2(float(np.mean(np.sin(az))), float(np.mean(np.cos(az)))))
        mean_az = (mean_az + 180.0) % 360.0 - 180.0
        tracks = Counter(int(n) for n in sel[:, 2])
        top = max(tracks.values())
        track = min(n for n, k in tracks.items() if k == top)
        if scores is not None:
            score = float(np.mean(scores[sel[:, 0].astype(np.int64), sel[:, 2].astype(np.int64), cls]))
        else:
            score = 1.0
        event = {
            "label": names[cls],
            "class_id": cls,
            "start": round(int(sel[0, 0]) * label_resolution, 6),
            "end": round((int(sel[-1, 0]) + 1) * label_resolution, 6),
            "azimuth": mean_az,
            "elevation": float(np.mean(sel[:, 4])),
            "score": score,
            "track": track,
        }
        if has_distance:
            event["distance"] = float(np.mean(sel[:, 5]))
        events.append(event)
    events.sort(key=lambda ev: (ev["start"], ev["class_id"], ev["azimuth"]))
    return events


def events_to_rows(events: Sequence[dict[str, Any]], label_resolution: float = 0.1) -> list[tuple]:
    """Rasterise events back into DCASE rows: one row per 100 ms frame of each event, with the event's (mean) DOA.

    Frame-accurate DOAs are lost; prefer the `frames` of a `return_frames=True` result when you have them.
    """
    rows = []
    for ev in events:
        first = round(ev["start"] / label_resolution)
        last = round(ev["end"] / label_resolution)
        for t in range(first, last):
            row = (t, int(ev["class_id"]), int(ev["track"]), float(ev["azimuth"]), float(ev["elevation"]))
            if "distance" in ev:
                row = row + (float(ev["distance"]),)
            rows.append(row)
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return rows


def save_dcase_csv(result: list | dict, path: str | os.PathLike, label_resolution: float = 0.1) -> None:
    """Write one pipeline result to a DCASE output-format CSV (`frame,class,track,azimuth,elevation[,distance]`).

    `result` is what the pipeline returned for one recording: the frame rows are written as they are when it has
    `frames` (`return_frames=True`), otherwise the events are rasterised with `events_to_rows`.
    """
    if isinstance(result, dict):
        rows = result["frames"] if "frames" in result else events_to_rows(result["events"], label_resolution)
    elif isinstance(result, list):
        rows = events_to_rows(result, label_resolution)
    else:
        raise TypeError(f"Expected one pipeline result (a list of events or a dict), got {type(result).__name__}.")
    write_dcase_csv(rows, path)


# ----------------------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------------------
class SoundEventLocalizationPipeline(ChunkPipeline):
    r"""Sound event localization and detection on First-Order Ambisonics recordings.

    Inputs (one, or a list for a batch -> a list of results):
        - a path to an audio file (4-channel FOA, ACN/SN3D; any sampling rate, resampled),
        - a dict `{"array": (samples, 4) or (4, samples), "sampling_rate": sr}` (`"raw"` is accepted for `"array"`),
          numpy array or torch tensor.

    Call parameters:
        chunk_length_s (`float`, 30.0): window length; 0 or None processes the file in one pass.
        stride_length_s (`float`, chunk_length_s / 10): context discarded on each side of a window (< chunk / 2).
        channel_format (`str`, "acn"): "fuma" converts FuMa input; hoa_to_foa (`bool`): keep the first 4 ACN
            channels of higher-order input.
        thresholds (float, list of per-class floats, or dict label -> float): activity thresholds; default
            `config.class_thresholds` (calibrated) or 0.5.
        merge_angle_deg (`float`, 15.0): same-class tracks in one frame closer than this merge (see `decode`).
        median_filter (`int`, 0): odd running-median window (frames) on the activities before thresholding.
        doa_continuity_deg (`float`, 20.0): largest DOA change between consecutive frames within one event.
        return_frames (`bool`, False): also return the frame-wise DCASE rows.

    Returns per recording: a list of events `{"label", "class_id", "start", "end", "azimuth", "elevation", "score",
    "track"[, "distance"]}` (seconds, degrees), or with `return_frames=True` a dict `{"events": [...], "frames":
    [(frame, class, track, azimuth, elevation[, distance]), ...]}`.
    """

    _load_feature_extractor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_processor = False

    def _sanitize_parameters(
        self,
        chunk_length_s=None,
        stride_length_s=None,
        channel_format=None,
        hoa_to_foa=None,
        thresholds=None,
        merge_angle_deg=None,
        median_filter=None,
        doa_continuity_deg=None,
        return_frames=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"Unknown argument(s) {sorted(kwargs)} for the sound-event-localization pipeline; see "
                "SoundEventLocalizationPipeline's docstring for the accepted ones."
            )
        pre, post = {}, {}
        if chunk_length_s is not None:
            if chunk_length_s < 0:
                raise ValueError(f"chunk_length_s must be >= 0 (0 = one pass), got {chunk_length_s}.")
            pre["chunk_length_s"] = float(chunk_length_s)
        if stride_length_s is not None:
            if stride_length_s < 0:
                raise ValueError(f"stride_length_s must be >= 0, got {stride_length_s}.")
            pre["stride_length_s"] = float(stride_length_s)
        if channel_format is not None:
            pre["channel_format"] = channel_format
        if hoa_to_foa is not None:
            pre["hoa_to_foa"] = bool(hoa_to_foa)
        if thresholds is not None:
            post["thresholds"] = self._resolve_thresholds(thresholds)
        for name, value in (("merge_angle_deg", merge_angle_deg), ("median_filter", median_filter),
                            ("doa_continuity_deg", doa_continuity_deg), ("return_frames", return_frames)):
            if value is not None:
                post[name] = value
        return pre, {}, post

    def _resolve_thresholds(self, thresholds) -> list[float]:
        config = self.model.config
        classes = config.num_labels
        if isinstance(thresholds, dict):
            out = list(self._default_thresholds())
            for label, value in thresholds.items():
                if label not in config.label2id:
                    raise ValueError(f"thresholds names unknown class {label!r}; the model's classes are "
                                     f"{list(config.label2id)}.")
                out[int(config.label2id[label])] = float(value)
        else:
            arr = np.asarray(thresholds, dtype=np.float64)
            if arr.ndim == 0:
                out = [float(arr)] * classes
            elif arr.shape == (classes,):
                out = [float(v) for v in arr]
            else:
                raise ValueError(
                    f"thresholds must be a float, {classes} per-class values, or a dict label -> float; got shape "
                    f"{arr.shape}."
                )
        if any(not 0.0 <= t <= 1.0 for t in out):
            raise ValueError(f"thresholds are activity probabilities in [0, 1], got {out}.")
        return out

    def _default_thresholds(self) -> list[float]:
        config = self.model.config
        if getattr(config, "class_thresholds", None) is not None:
            return [float(t) for t in config.class_thresholds]
        return [0.5] * config.num_labels

    # -------------------------------------------------------------------------------------------------- input
    def _parse_input(self, inputs) -> tuple[Any, int | None]:
        if isinstance(inputs, (str, os.PathLike)):
            return os.fspath(inputs), None
        if isinstance(inputs, dict):
            if "array" in inputs and "raw" in inputs:
                raise ValueError("Pass the audio under either 'array' or 'raw', not both.")
            key = "array" if "array" in inputs else "raw" if "raw" in inputs else None
            if key is None:
                raise ValueError(
                    f"An input dict needs the keys 'array' (or 'raw') and 'sampling_rate'; got keys {sorted(inputs)}."
                )
            if inputs.get("sampling_rate") is None:
                raise ValueError(
                    "An input dict needs 'sampling_rate' (Hz), e.g. {'array': foa, 'sampling_rate': 24000}; the audio "
                    "is resampled to the model's rate when it differs."
                )
            return inputs[key], int(inputs["sampling_rate"])
        if isinstance(inputs, (np.ndarray, torch.Tensor)):  # a valid type, but without its sampling rate
            raise ValueError(  # noqa: TRY004
                "A bare array has no sampling rate: pass {'array': audio, 'sampling_rate': sr} (audio of shape "
                "(samples, 4) or (4, samples))."
            )
        raise TypeError(
            "Input must be a file path, a dict {'array': (samples, 4) or (4, samples), 'sampling_rate': sr}, or a list "
            f"of them; got {type(inputs).__name__}."
        )

    def preprocess(self, inputs, chunk_length_s: float = 30.0, stride_length_s: float | None = None,
                   channel_format: str = "acn", hoa_to_foa: bool = False) -> Iterator[dict[str, Any]]:
        """Yield one model input per window: features of label frames `[window_start, window_stop)` and the kept
        range `[keep_start, keep_stop)` (absolute frames); `is_last` marks the recording's last window."""
        audio, sampling_rate = self._parse_input(inputs)
        fe = self.feature_extractor
        resolution = float(fe.label_resolution)
        chunk = round((chunk_length_s or 0.0) / resolution)
        if stride_length_s is None:
            stride_length_s = (chunk_length_s or 0.0) / 10.0
        stride = round(stride_length_s / resolution)
        if chunk_length_s and chunk < 1:
            raise ValueError(
                f"chunk_length_s={chunk_length_s} is shorter than one {resolution} s label frame; use at least "
                f"{resolution} s, or 0 for one pass over the whole recording."
            )
        if chunk > 0 and chunk - 2 * stride < 1:
            raise ValueError(
                f"stride_length_s={stride_length_s} must be less than half of chunk_length_s={chunk_length_s} (the "
                "stride is discarded on both sides of each window)."
            )
        step = chunk - 2 * stride
        fpl, bpl = fe.frames_per_label, fe.backbone_frames_per_label
        blocks = fe.iter_chunks(audio, sampling_rate=sampling_rate, channel_format=channel_format,
                                hoa_to_foa=hoa_to_foa)
        buffer: list[tuple[int, int, dict]] = []  # consecutive feature blocks (start, stop, features)
        exhausted = False
        start = 0
        while True:
            target = start + chunk if chunk > 0 else math.inf
            while not exhausted and (not buffer or buffer[-1][1] <= target):
                try:
                    buffer.append(next(blocks))
                except StopIteration:
                    exhausted = True
            end = buffer[-1][1]
            last = exhausted and end <= target
            stop = min(end, target) if chunk > 0 else end
            keep_start = 0 if start == 0 else start + stride
            keep_stop = stop if last else stop - stride
            spatial, backbone = [], []
            for b_start, b_stop, feats in buffer:
                lo, hi = max(start, b_start), min(stop, b_stop)
                if lo >= hi:
                    continue
                spatial.append(feats["spatial_features"][:, (lo - b_start) * fpl:(hi - b_start) * fpl])
                if "backbone_values" in feats:
                    backbone.append(feats["backbone_values"][(lo - b_start) * bpl:(hi - b_start) * bpl])
            item = {
                "spatial_features": torch.cat(spatial, dim=1).unsqueeze(0),
                "window_start": start,
                "keep_start": keep_start,
                "keep_stop": keep_stop,
                "is_last": last,
            }
            if backbone:
                item["backbone_values"] = torch.cat(backbone, dim=0).unsqueeze(0)
            yield item
            if last:
                return
            start += step
            buffer = [b for b in buffer if b[1] > start]  # drop blocks that no later window needs

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        inputs = {"spatial_features": model_inputs["spatial_features"].to(self.dtype or torch.float32)}
        if "backbone_values" in model_inputs:
            inputs["backbone_values"] = model_inputs["backbone_values"].to(inputs["spatial_features"].dtype)
        out = self.model(**inputs, return_dict=True)
        lo = model_inputs["keep_start"] - model_inputs["window_start"]
        hi = model_inputs["keep_stop"] - model_inputs["window_start"]
        result = {
            "sed_logits": out.sed_logits[0, lo:hi].float(),
            "doa": out.doa[0, lo:hi].float(),
            "keep_start": model_inputs["keep_start"],
            "keep_stop": model_inputs["keep_stop"],
            "is_last": model_inputs["is_last"],
        }
        if getattr(out, "distance", None) is not None:
            result["distance"] = out.distance[0, lo:hi].float()
        return result

    # -------------------------------------------------------------------------------------------------- output
    @staticmethod
    def stitch(model_outputs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Concatenate the kept frames of the windows of one recording -> `sed_logits` `(frames, tracks, classes)`,
        `doa` `(frames, tracks, 3)` (and `distance` `(frames, tracks)`), checking that they tile the frame grid."""
        outputs = sorted(model_outputs, key=lambda o: int(o["keep_start"]))
        expected = 0
        for o in outputs:
            if int(o["keep_start"]) != expected:
                raise RuntimeError(f"Window outputs do not tile the frame grid: a window starts at frame "
                                   f"{int(o['keep_start'])}, expected {expected}.")
            expected = int(o["keep_stop"])
        stitched = {key: torch.cat([o[key] for o in outputs], dim=0) for key in ("sed_logits", "doa")}
        if "distance" in outputs[0]:
            stitched["distance"] = torch.cat([o["distance"] for o in outputs], dim=0)
        return stitched

    def postprocess(self, model_outputs, thresholds=None, merge_angle_deg: float = 15.0, median_filter: int = 0,
                    doa_continuity_deg: float = 20.0, return_frames: bool = False):
        stitched = self.stitch(model_outputs)
        thresholds = self._default_thresholds() if thresholds is None else thresholds
        rows = decode(stitched["sed_logits"], stitched["doa"], thresholds, merge_angle_deg=merge_angle_deg,
                      median_filter=int(median_filter), distance=stitched.get("distance"))
        probs = torch.sigmoid(stitched["sed_logits"].double()).numpy()
        events = rows_to_events(rows, self.model.config.id2label, float(self.feature_extractor.label_resolution),
                                doa_continuity_deg, scores=probs)
        if return_frames:
            return {"events": events, "frames": rows}
        return events

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        if batch_size not in (None, 1):
            raise ValueError(
                f"batch_size={batch_size} is not supported: recordings are processed one window at a time (pass a "
                "list of inputs to process several recordings)."
            )
        return super().get_iterator(inputs, num_workers, 1, preprocess_params, forward_params, postprocess_params)


# ----------------------------------------------------------------------------------------------------------------
# Registration and saving
# ----------------------------------------------------------------------------------------------------------------
def register_pipeline() -> None:
    """Register `SoundEventLocalizationPipeline` for the task "sound-event-localization" with `AutoModel` models."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=SoundEventLocalizationPipeline, pt_model=AutoModel,
                                        type="audio")


def save_for_hub(model, feature_extractor, out_dir: str | os.PathLike, repo_id: str | None = None,
                 private: bool | None = None, token: str | bool | None = None,
                 commit_message: str = "Upload AT2SELD model, feature extractor and pipeline") -> str:
    """Save model + feature extractor + the pipeline's remote code into `out_dir`, ready for
    `pipeline("sound-event-localization", model=out_dir_or_repo, trust_remote_code=True)` without at2seld installed.

    Writes `config.json` (with `auto_map` and `custom_pipelines`), the weights, `preprocessor_config.json` (with
    `auto_map`) and the flat `*_at2seld.py` remote-code files (the pipeline's, the model's and the extractor's, with
    their sibling imports). With `repo_id`, the whole folder (including a README.md model card already there) is then
    uploaded to that Hub model repo (created if needed). Returns `out_dir`.
    """
    if not hasattr(SoundEventLocalizationPipeline, "_registered_impl"):
        register_pipeline()
    type(model.config).register_for_auto_class()
    type(model).register_for_auto_class("AutoModel")
    type(feature_extractor).register_for_auto_class()
    pipe = SoundEventLocalizationPipeline(model=model, feature_extractor=feature_extractor, device=model.device,
                                          task=TASK)
    pipe.save_pretrained(out_dir)
    if repo_id is not None:
        # one upload of the folder: `save_pretrained(push_to_hub=True)` of the model alone would leave out the
        # pipeline file, which is written before the model's own files
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=os.fspath(out_dir), commit_message=commit_message)
    return os.fspath(out_dir)

"""Convert an official BEATs checkpoint (``BEATs_iter3+*.pt``) into an at2seld BEATs backbone folder.

The official file is a ``torch.save`` dict with ``cfg`` (a plain dict of the official BEATsConfig fields) and
``model`` (the state dict). The output folder holds only

    config.json        BEATsConfig (model_type "at2seld-beats")
    model.safetensors  the encoder weights

and is read back with ``at2seld.beats_at2seld.load_beats_backbone(folder)``.

Fine-tuned checkpoints (``cfg["finetuned_model"] = True``) carry an AudioSet ``predictor`` (Linear D -> 527).
SELD fine-tuning does not use it, so it is dropped by default (the written config then says
``finetuned_model=false``); ``--keep-predictor`` keeps it for tagging with ``BEATsEncoder.tag_probabilities``.

    python hub_scripts/convert_beats_checkpoint.py BEATs_iter3_plus_AS2M.pt backbones/beats_iter3p
"""

from __future__ import annotations

import argparse
import logging
import pickle
from pathlib import Path

import torch
from safetensors.torch import save_file

from at2seld.beats_at2seld import (
    SAFETENSORS_WEIGHTS_NAME,
    BEATsConfig,
    BEATsEncoder,
    normalize_official_state_dict,
)

logger = logging.getLogger(__name__)


def read_official_checkpoint(checkpoint_path: str | Path, trust_pickle: bool = False) -> tuple[dict, dict]:
    """Read ``(cfg, model_state_dict)`` from an official BEATs ``.pt`` file.

    Loads with ``weights_only=True`` (no arbitrary code runs); `trust_pickle=True` falls back to a full unpickle,
    only for files from a source you trust.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"BEATs checkpoint {path} not found.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds objects other than tensors and plain Python values, so it cannot be read with "
            "weights_only=True. If you trust its source, re-run with --trust-pickle."
        ) from error
    if not isinstance(checkpoint, dict) or "cfg" not in checkpoint or "model" not in checkpoint:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{path} is not an official BEATs checkpoint: expected a dict with 'cfg' and 'model', found {found}."
        )
    cfg, state_dict = checkpoint["cfg"], checkpoint["model"]
    if not isinstance(cfg, dict):
        raise TypeError(f"{path}: 'cfg' must be a dict of BEATs settings, got {type(cfg).__name__}.")
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise TypeError(f"{path}: 'model' must be a state dict (name -> tensor).")
    return cfg, dict(state_dict)


def convert(
    checkpoint_path: str | Path,
    out_dir: str | Path,
    keep_predictor: bool = False,
    ignore_cfg_keys: tuple[str, ...] | list[str] = (),
    trust_pickle: bool = False,
) -> Path:
    """Convert an official BEATs checkpoint into ``out_dir/config.json`` + ``out_dir/model.safetensors``.

    Raises `ValueError` for an unknown or unsupported cfg, and for a state dict that does not match it exactly
    (listing the missing and unexpected keys). Returns `out_dir`.
    """
    cfg, state_dict = read_official_checkpoint(checkpoint_path, trust_pickle=trust_pickle)
    config = BEATsConfig.from_official_cfg(cfg, ignore_keys=tuple(ignore_cfg_keys))
    has_predictor = any(key.startswith("predictor.") for key in state_dict)
    if config.finetuned_model and not keep_predictor:
        config.finetuned_model = False
        logger.info("Dropping the AudioSet predictor of the fine-tuned checkpoint (use keep_predictor=True to keep it).")
    elif keep_predictor and not (config.finetuned_model and has_predictor):
        raise ValueError(
            f"keep_predictor=True, but {checkpoint_path} is not a fine-tuned checkpoint with a predictor "
            f"(cfg finetuned_model={config.finetuned_model}, predictor keys present: {has_predictor})."
        )

    encoder = BEATsEncoder(config)
    normalized, dropped = normalize_official_state_dict(state_dict, keep_predictor=keep_predictor)
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(normalized))
    unexpected = sorted(set(normalized) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"The weights in {checkpoint_path} do not match its cfg: missing keys {missing}, unexpected keys "
            f"{unexpected}. Nothing was written."
        )
    mismatched = [
        f"{k}: checkpoint {tuple(normalized[k].shape)} vs expected {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(normalized[k].shape) != tuple(v.shape)
    ]
    if mismatched:
        raise ValueError(f"Shape mismatches between the weights and the cfg of {checkpoint_path}: {mismatched}.")
    encoder.load_state_dict(normalized, strict=True)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in encoder.state_dict().items()}
    save_file(tensors, out / SAFETENSORS_WEIGHTS_NAME, metadata={"format": "pt", "source": Path(checkpoint_path).name})
    logger.info("Wrote %s (%d tensors; dropped %s).", out, len(tensors), dropped)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="official BEATs .pt file (dict with 'cfg' and 'model')")
    parser.add_argument("out_dir", help="folder to write config.json and model.safetensors into")
    parser.add_argument("--keep-predictor", action="store_true",
                        help="keep the AudioSet predictor of a fine-tuned checkpoint")
    parser.add_argument("--ignore-cfg-key", action="append", default=[], metavar="KEY",
                        help="cfg key to ignore (only for keys that do not change the encoder); repeatable")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow a full unpickle when weights_only loading fails (trusted files only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = convert(args.checkpoint, args.out_dir, keep_predictor=args.keep_predictor,
                  ignore_cfg_keys=args.ignore_cfg_key, trust_pickle=args.trust_pickle)
    print(f"BEATs backbone written to {out}")


if __name__ == "__main__":
    main()

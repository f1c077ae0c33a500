"""Permutation-invariant SELD loss of AT2SELD (track-wise SED + Cartesian DOA [+ distance]).

Label layout (see `labels_at2seld.encode_labels`): `labels` `(batch, frames, tracks, 6)` float with
`[..., 0]` activity (1/0), `[..., 1]` class index (0 when inactive), `[..., 2:5]` unit DOA (x, y, z) (zeros when
inactive) and `[..., 5]` distance in metres (0 when unknown or inactive).

This file travels to a Hub repository as remote code: it imports only the standard library, numpy and torch, and its
siblings flat.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .configuration_at2seld import AT2SELDConfig

LABEL_FIELDS = 6  # activity, class, x, y, z, distance


def track_permutations(num_tracks: int, device: torch.device | None = None) -> torch.Tensor:
    """All orderings of `num_tracks` tracks: `(num_tracks!, num_tracks)` long, the identity first."""
    return torch.tensor(list(itertools.permutations(range(num_tracks))), dtype=torch.long, device=device)


def focal_bce_with_logits(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma: float = 0.0,
    alpha: float | None = None,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Element-wise focal binary cross-entropy on logits (no reduction).

    `loss = w * (1 - p_t) ** gamma * BCE`, with `p_t` the probability given to the target, `w = alpha` on
    positives and `1 - alpha` on negatives (1 when `alpha` is None), times `pos_weight` (per class, broadcast over
    the last axis) on positives. `gamma=0, alpha=None` is exactly `binary_cross_entropy_with_logits`.

    Args:
        logits, targets: same shape `(..., classes)`; targets in [0, 1].
        pos_weight: `(classes,)` or None.
    """
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = bce
    if gamma != 0.0:
        p_t = torch.exp(-bce)  # probability of the target (exact for hard targets)
        loss = loss * (1.0 - p_t).clamp_min(0.0) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1.0 - alpha) * (1.0 - targets))
    if pos_weight is not None:
        loss = loss * (1.0 + (pos_weight - 1.0) * targets)
    return loss


def pairwise_track_costs(
    sed_logits: torch.Tensor,
    doa: torch.Tensor,
    labels: torch.Tensor,
    distance: torch.Tensor | None = None,
    *,
    sed_loss: str = "bce",
    focal_gamma: float = 2.0,
    focal_alpha: float | None = None,
    pos_weight: torch.Tensor | None = None,
    doa_loss: str = "mse",
    doa_supervision: str = "active",
) -> dict[str, torch.Tensor]:
    """Cost of matching every predicted track `i` with every target track `j`.

    Args:
        sed_logits: `(B, T, N, C)` per-track class logits.
        doa: `(B, T, N, 3)` predicted Cartesian DOA.
        labels: `(B, T, N, 6)` targets in the layout of `labels_at2seld.encode_labels`.
        distance: `(B, T, N)` predicted distance in metres, or None.

    Returns:
        dict with `sed`, `doa` and (when `distance` is given) `distance`, each `(B, T, N_pred, N_target)`:
        - sed: class-averaged (focal) BCE between track i's logits and the one-hot class of target j (all zeros when
          j is inactive);
        - doa: "mse": mean squared error over x, y, z; "cosine": 1 - cosine similarity. With
          `doa_supervision="active"` it is zero where target j is inactive; with "all", inactive targets are the zero
          vector (ACCDOA-style; with "cosine" the squared norm of the prediction is penalised there);
        - distance: relative absolute error |d_i - d_j| / d_j where target j is active with a known distance, else 0.
    """
    num_classes = sed_logits.shape[-1]
    active = labels[..., 0] > 0.5  # (B, T, N)
    cls = labels[..., 1].round().long().clamp(0, num_classes - 1)
    onehot = F.one_hot(cls, num_classes).to(sed_logits.dtype) * active.unsqueeze(-1)  # (B, T, N, C)
    gamma = focal_gamma if sed_loss == "focal" else 0.0
    alpha = focal_alpha if sed_loss == "focal" else None
    sed = focal_bce_with_logits(
        sed_logits.unsqueeze(3).expand(-1, -1, -1, onehot.shape[2], -1),
        onehot.unsqueeze(2).expand(-1, -1, sed_logits.shape[2], -1, -1),
        gamma=gamma,
        alpha=alpha,
        pos_weight=pos_weight,
    ).mean(-1)

    act = active.unsqueeze(2).to(doa.dtype)  # (B, T, 1, N_target)
    target_doa = labels[..., 2:5].unsqueeze(2) * act.unsqueeze(-1)  # (B, T, 1, N, 3)
    pred_doa = doa.unsqueeze(3)  # (B, T, N, 1, 3)
    if doa_loss == "mse":
        doa_cost = ((pred_doa - target_doa) ** 2).mean(-1)
        if doa_supervision == "active":
            doa_cost = doa_cost * act
    elif doa_loss == "cosine":
        cos = F.cosine_similarity(pred_doa, target_doa, dim=-1, eps=1e-8)
        doa_cost = (1.0 - cos) * act
        if doa_supervision == "all":
            doa_cost = doa_cost + (pred_doa**2).sum(-1) * (1.0 - act)
    else:
        raise ValueError(f"doa_loss={doa_loss!r}; use 'mse' or 'cosine'.")

    out = {"sed": sed, "doa": doa_cost}
    if distance is not None:
        target_dist = labels[..., 5].unsqueeze(2)  # (B, T, 1, N)
        known = act * (target_dist > 0).to(doa.dtype)
        rel = (distance.unsqueeze(3) - target_dist).abs() / target_dist.clamp_min(1e-3)
        out["distance"] = rel * known
    return out


def permutation_invariant_min(
    cost: torch.Tensor, frame_mask: torch.Tensor | None = None, mode: str = "frame"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the track permutation of least cost.

    Args:
        cost: `(B, T, N, N)` pairwise costs (predicted track i, target track j).
        frame_mask: `(B, T)` bool, True on frames that count (only used by `mode="chunk"`).
        mode: "frame": one permutation per frame; "chunk": one per item, minimising the masked sum over frames.

    Returns:
        `best` `(B, T)` index into `track_permutations(N)` and `perms` `(N!, N)`: predicted track i is matched with
        target track `perms[best][..., i]`.
    """
    batch, frames, n, _ = cost.shape
    perms = track_permutations(n, cost.device)
    with torch.no_grad():
        per_perm = cost.detach()[:, :, torch.arange(n, device=cost.device), perms].sum(-1)  # (B, T, P)
        if mode == "frame":
            best = per_perm.argmin(-1)
        elif mode == "chunk":
            mask = torch.ones(batch, frames, dtype=cost.dtype, device=cost.device) if frame_mask is None else frame_mask.to(cost.dtype)
            best = (per_perm * mask.unsqueeze(-1)).sum(1).argmin(-1, keepdim=True).expand(batch, frames)
        else:
            raise ValueError(f"pit={mode!r}; use 'frame' or 'chunk'.")
    return best, perms


class AT2SELDLoss(nn.Module):
    """Permutation-invariant track-wise SELD loss, configured by an `AT2SELDConfig`.

    For every frame the pairwise costs `sed + doa_weight * doa + distance_weight * distance` (see
    `pairwise_track_costs`) are summed along each of the N! track permutations; the least-cost permutation (per frame,
    or per chunk with `pit="chunk"`) is used, so a class may occupy several tracks at once. Each term is averaged over
    tracks and over the frames where `frame_mask` is True.
    """

    def __init__(self, config: AT2SELDConfig):
        super().__init__()
        self.sed_loss = config.sed_loss
        self.focal_gamma = config.focal_gamma
        self.focal_alpha = config.focal_alpha
        self.doa_loss = config.doa_loss
        self.doa_supervision = config.doa_supervision
        self.doa_weight = config.doa_weight
        self.distance_weight = config.distance_weight
        self.pit = config.pit
        self.num_tracks = config.num_tracks
        self.num_classes = config.num_labels
        # kept as a list (not a buffer): from_pretrained builds modules on the meta device and only restores saved
        # tensors, and the config is the source of truth
        self.class_pos_weight = None if config.class_pos_weight is None else list(config.class_pos_weight)

    def forward(
        self,
        sed_logits: torch.Tensor,
        doa: torch.Tensor,
        labels: torch.Tensor,
        frame_mask: torch.Tensor | None = None,
        distance: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Args: `sed_logits` (B, T, N, C), `doa` (B, T, N, 3), `labels` (B, T, N, 6), `frame_mask` (B, T) bool,
        `distance` (B, T, N) or None.

        Returns dict: `loss`, `sed_loss`, `doa_loss`, `distance_loss` (scalars; `distance_loss` None without a
        distance head) and `permutation` `(B, T, N)` long (target track matched to each predicted track).
        """
        batch, frames, n, c = sed_logits.shape
        if labels.shape != (batch, frames, n, LABEL_FIELDS):
            raise ValueError(
                f"labels must have shape (batch, frames, tracks, {LABEL_FIELDS}) = {(batch, frames, n, LABEL_FIELDS)} "
                f"to match the model outputs, got {tuple(labels.shape)}; build them with "
                "labels_at2seld.encode_labels(rows, num_frames, num_classes, num_tracks)."
            )
        labels = labels.to(sed_logits.dtype)
        cls = labels[..., 1]
        if bool(((labels[..., 0] > 0.5) & ((cls < 0) | (cls > c - 1))).any()):
            raise ValueError(f"labels hold class indices outside [0, {c - 1}] on active tracks.")
        if frame_mask is None:
            frame_mask = torch.ones(batch, frames, dtype=torch.bool, device=sed_logits.device)
        pos_weight = None
        if self.class_pos_weight is not None:
            pos_weight = torch.tensor(self.class_pos_weight, dtype=sed_logits.dtype, device=sed_logits.device)
        costs = pairwise_track_costs(
            sed_logits, doa, labels, distance,
            sed_loss=self.sed_loss, focal_gamma=self.focal_gamma, focal_alpha=self.focal_alpha,
            pos_weight=pos_weight, doa_loss=self.doa_loss, doa_supervision=self.doa_supervision,
        )
        total = costs["sed"] + self.doa_weight * costs["doa"]
        if "distance" in costs:
            total = total + self.distance_weight * costs["distance"]
        best, perms = permutation_invariant_min(total, frame_mask, self.pit)
        permutation = perms[best]  # (B, T, N)
        mask = frame_mask.to(sed_logits.dtype)
        denom = mask.sum().clamp_min(1.0)

        def reduce(cost: torch.Tensor) -> torch.Tensor:
            matched = cost.gather(-1, permutation.unsqueeze(-1)).squeeze(-1).mean(-1)  # (B, T)
            return (matched * mask).sum() / denom

        out = {"sed_loss": reduce(costs["sed"]), "doa_loss": reduce(costs["doa"]), "distance_loss": None}
        loss = out["sed_loss"] + self.doa_weight * out["doa_loss"]
        if "distance" in costs:
            out["distance_loss"] = reduce(costs["distance"])
            loss = loss + self.distance_weight * out["distance_loss"]
        out["loss"] = loss
        out["permutation"] = permutation
        return out


def compute_class_pos_weights(
    labels_or_counts: np.ndarray | torch.Tensor | Sequence[float] | Iterable[np.ndarray],
    num_classes: int | None = None,
    power: float = 0.5,
    max_weight: float = 10.0,
) -> list[float]:
    """Per-class positive weights for class balancing (inverse frequency of active track-frames).

    `w_c = clip((median_k n_k / n_c) ** power, 1 / max_weight, max_weight)`, where `n_c` counts the active
    track-frames of class `c`; classes never seen get `max_weight`. `power=1` is plain inverse frequency, 0.5 (default)
    its square root. The result goes into `AT2SELDConfig(class_pos_weight=...)`.

    Args:
        labels_or_counts: either a 1-D sequence of per-class counts `(num_classes,)`, or label arrays in the layout of
            `labels_at2seld.encode_labels` — one array `(..., tracks, 6)` or an iterable of them (a whole training set).
        num_classes: required with label arrays.
    """
    if power < 0 or max_weight < 1:
        raise ValueError(f"Need power >= 0 and max_weight >= 1, got power={power}, max_weight={max_weight}.")
    if isinstance(labels_or_counts, torch.Tensor):
        labels_or_counts = labels_or_counts.detach().cpu().numpy()
    arrays: list[np.ndarray]
    if isinstance(labels_or_counts, np.ndarray) and labels_or_counts.ndim >= 2:
        arrays = [labels_or_counts]
    elif isinstance(labels_or_counts, np.ndarray) or (
        isinstance(labels_or_counts, (list, tuple)) and all(np.isscalar(v) for v in labels_or_counts)
    ):
        counts = np.asarray(labels_or_counts, dtype=np.float64)
        arrays = []
    else:
        arrays = [np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a) for a in labels_or_counts]
    if arrays:
        if num_classes is None:
            raise ValueError("num_classes is required when passing label arrays.")
        counts = np.zeros(num_classes, dtype=np.float64)
        for a in arrays:
            if a.shape[-1] != LABEL_FIELDS:
                raise ValueError(f"Label arrays must end in {LABEL_FIELDS} fields (activity, class, x, y, z, distance), got shape {a.shape}.")
            active = a[..., 0] > 0.5
            cls = a[..., 1][active].round().astype(np.int64)
            if cls.size and (cls.min() < 0 or cls.max() >= num_classes):
                raise ValueError(f"Label class indices must be in [0, {num_classes - 1}], got {cls.min()}..{cls.max()}.")
            counts += np.bincount(cls, minlength=num_classes)
    elif num_classes is not None and len(counts) != num_classes:
        raise ValueError(f"Got {len(counts)} class counts for num_classes={num_classes}.")
    if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any():
        raise ValueError(f"Class counts must be a non-empty 1-D array of non-negative numbers, got {counts!r}.")
    seen = counts > 0
    if not seen.any():
        raise ValueError("No active events in the labels: cannot balance classes.")
    ref = float(np.median(counts[seen]))
    weights = np.full(len(counts), float(max_weight))
    weights[seen] = np.clip((ref / counts[seen]) ** power, 1.0 / max_weight, max_weight)
    return [float(w) for w in weights]


__all__ = [
    "AT2SELDLoss",
    "compute_class_pos_weights",
    "focal_bce_with_logits",
    "pairwise_track_costs",
    "permutation_invariant_min",
    "track_permutations",
]

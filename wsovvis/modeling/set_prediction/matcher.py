"""Hungarian matchers built from weighted cost terms.

A :class:`CostTerm` maps one image's (or one frame's / one clip's) predictions and targets to an
(N_queries, N_targets) cost matrix. :class:`HungarianMatcher` sums weighted terms and solves the
assignment with scipy. :class:`TemporallyConsistentMatcher` matches every track once, at the frame
where it first appears, and reuses the pairing on every frame of the clip (VidEoMT / CAVIS / DVIS).

Prediction dicts hold one image's slice of the batched model outputs (``pred_logits`` (Q, C),
``pred_masks`` (Q, [T,] h, w), ``pred_boxes`` ...); target dicts hold ``labels`` (G,),
``masks`` (G, [T,] H, W), optionally ``ids`` and boxes. When the matcher samples points it adds
``point_logits`` (Q, P') and ``point_labels`` (G, P') computed at points shared by all masks.
"""

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from .costs import (
    class_focal_cost,
    class_neg_prob_cost,
    pairwise_dice,
    pairwise_sigmoid_ce,
    pairwise_sigmoid_focal,
)
from .point_sampling import sample_shared_points

__all__ = [
    "CostTerm",
    "HungarianMatcher",
    "TemporallyConsistentMatcher",
    "neg_prob_class_cost_term",
    "focal_class_cost_term",
    "mask_ce_cost_term",
    "mask_dice_cost_term",
    "mask_focal_cost_term",
    "build_mask_matcher",
    "slice_outputs",
    "select_targets",
]

Indices = List[Tuple[torch.Tensor, torch.Tensor]]
CostFn = Callable[[Dict[str, torch.Tensor], Dict[str, torch.Tensor]], torch.Tensor]


@dataclass
class CostTerm:
    """One weighted term of a matching cost.

    Attributes:
        name: label used in ``repr`` and error messages.
        weight: multiplier of the term; terms with weight 0 are skipped.
        fn: ``fn(pred, tgt) -> (N, M)`` cost matrix (see module docstring for the dicts).
    """

    name: str
    weight: float
    fn: CostFn


def neg_prob_class_cost_term(weight: float) -> CostTerm:
    """``-softmax(pred_logits)[:, labels]`` (softmax with a no-object column)."""
    return CostTerm(
        "class", weight, lambda p, t: class_neg_prob_cost(p["pred_logits"], t["labels"])
    )


def focal_class_cost_term(weight: float, alpha: float = 0.25, gamma: float = 2.0) -> CostTerm:
    """Deformable-DETR focal class cost on sigmoid ``pred_logits``."""
    return CostTerm(
        "class_focal",
        weight,
        lambda p, t: class_focal_cost(p["pred_logits"], t["labels"], alpha, gamma),
    )


def mask_ce_cost_term(weight: float) -> CostTerm:
    """Mean BCE between mask logits and target masks at the shared points."""
    return CostTerm(
        "mask_ce", weight, lambda p, t: pairwise_sigmoid_ce(p["point_logits"], t["point_labels"])
    )


def mask_dice_cost_term(weight: float) -> CostTerm:
    """Soft Dice between mask probabilities and target masks at the shared points."""
    return CostTerm(
        "mask_dice", weight, lambda p, t: pairwise_dice(p["point_logits"], t["point_labels"])
    )


def mask_focal_cost_term(weight: float, alpha: float = 0.25, gamma: float = 2.0) -> CostTerm:
    """Mean sigmoid focal loss between mask logits and target masks at the shared points."""
    return CostTerm(
        "mask_focal",
        weight,
        lambda p, t: pairwise_sigmoid_focal(p["point_logits"], t["point_labels"], alpha, gamma),
    )


def slice_outputs(outputs: Dict[str, object], index: int) -> Dict[str, torch.Tensor]:
    """The ``index``-th item of every batched tensor in ``outputs`` (non-tensors are dropped)."""
    return {k: v[index] for k, v in outputs.items() if isinstance(v, torch.Tensor)}


def select_targets(tgt: Dict[str, object], cols) -> Dict[str, object]:
    """Restrict every per-target tensor of ``tgt`` (leading dim G = #labels) to ``cols``."""
    num = len(tgt["labels"])
    return {
        k: (v[cols] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == num else v)
        for k, v in tgt.items()
    }


class HungarianMatcher(nn.Module):
    """Optimal one-to-one assignment between queries and targets under a sum of cost terms.

    Args:
        cost_terms: weighted terms; the cost matrix is ``sum(w * fn(pred, tgt))``.
        num_points: if > 0 and both ``pred_masks`` and ``masks`` exist, predictions and targets
            are sampled at ``num_points`` uniformly random points shared by all masks of the image
            (Mask2Former); if 0, masks are compared densely (predictions bilinearly resized to the
            target size).
    """

    def __init__(self, cost_terms: Sequence[CostTerm], num_points: int = 0):
        super().__init__()
        self.cost_terms = [t for t in cost_terms if t.weight != 0]
        if not self.cost_terms:
            raise ValueError("HungarianMatcher needs at least one cost term with non-zero weight")
        self.num_points = num_points

    def _add_mask_points(self, pred: Dict, tgt: Dict) -> None:
        if "pred_masks" not in pred or "masks" not in tgt:
            return
        out_masks = pred["pred_masks"].float()
        tgt_masks = tgt["masks"].float()
        if self.num_points > 0:
            coords = torch.rand(1, self.num_points, 2, device=out_masks.device)
            pred["point_logits"] = sample_shared_points(out_masks, coords)
            tgt["point_labels"] = sample_shared_points(tgt_masks, coords)
        else:
            if out_masks.shape[-2:] != tgt_masks.shape[-2:]:
                lead = out_masks.shape[:-2]
                out_masks = F.interpolate(
                    out_masks.reshape(1, -1, *out_masks.shape[-2:]),
                    size=tgt_masks.shape[-2:],
                    mode="bilinear",
                    align_corners=False,
                ).reshape(*lead, *tgt_masks.shape[-2:])
            pred["point_logits"] = out_masks.flatten(1)
            tgt["point_labels"] = tgt_masks.flatten(1)

    @torch.no_grad()
    def cost_matrix(self, pred: Dict[str, torch.Tensor], tgt: Dict[str, object]) -> torch.Tensor:
        """Weighted cost matrix (N_queries, N_targets) for one image, float32 on CPU.

        Args:
            pred: one image's predictions (see module docstring).
            tgt: one image's targets.
        """
        pred, tgt = dict(pred), dict(tgt)
        with torch.autocast(device_type=_device_type(pred), enabled=False):
            self._add_mask_points(pred, tgt)
            cost = None
            for term in self.cost_terms:
                c = term.weight * term.fn(pred, tgt).float()
                cost = c if cost is None else cost + c
        return torch.nan_to_num(cost, nan=1e8, posinf=1e8, neginf=-1e8).cpu()

    @torch.no_grad()
    def match_one(self, pred: Dict[str, torch.Tensor], tgt: Dict[str, object]):
        """Assignment for one image: ``(query_idx, target_idx)`` int64 tensors sorted by query."""
        if len(tgt["labels"]) == 0:
            return _empty_indices()
        rows, cols = linear_sum_assignment(self.cost_matrix(pred, tgt).numpy())
        return _as_indices(rows, cols)

    @torch.no_grad()
    def forward(self, outputs: Dict[str, object], targets: List[Dict[str, object]]) -> Indices:
        """Match every image of a batch.

        Args:
            outputs: batched predictions, each tensor with leading dim B (``aux_outputs`` and
                other non-tensor entries are ignored).
            targets: B target dicts.

        Returns:
            B tuples ``(query_idx, target_idx)`` of equal length ``min(Q, G_b)``.
        """
        return [self.match_one(slice_outputs(outputs, b), t) for b, t in enumerate(targets)]

    def extra_repr(self) -> str:
        terms = ", ".join(f"{t.name}={t.weight:g}" for t in self.cost_terms)
        return f"terms=[{terms}], num_points={self.num_points}"


class TemporallyConsistentMatcher(nn.Module):
    """Match each GT track once, at its first visible frame, and reuse the pairs on every frame.

    Predictions and targets are per frame, clip-major (``(b t)``): image ``b * T + t`` is frame t
    of clip b. Every frame's targets hold the same G slots (slot j = the same track) with
    ``ids[j] == -1`` where the track is absent. Frames are visited in order; at each frame the
    tracks that first appear there are matched (with ``frame_matcher``'s cost on that frame) to
    queries not assigned earlier in the clip. Tracks never visible are left unmatched. If a frame
    brings more new tracks than there are free queries, only the cheapest ``#free`` are matched
    (the reference implementation would double-assign blocked queries instead).

    Args:
        frame_matcher: provides :meth:`HungarianMatcher.cost_matrix` for one frame.
        num_frames: default clip length T (can be overridden per call).
    """

    def __init__(self, frame_matcher: HungarianMatcher, num_frames: Optional[int] = None):
        super().__init__()
        self.frame_matcher = frame_matcher
        self.num_frames = num_frames

    @staticmethod
    def _valid(tgt: Dict[str, object]) -> torch.Tensor:
        ids = tgt["ids"]
        if ids.dim() == 1:
            return (ids != -1).cpu()
        return (ids != -1).flatten(1).any(dim=1).cpu()

    @torch.no_grad()
    def match_clip(self, preds: List[Dict], tgts: List[Dict]):
        """Pairs ``(query_idx, target_idx)`` of one clip given its per-frame dicts (length T)."""
        num_slots = len(tgts[0]["labels"])
        first = torch.full((num_slots,), -1, dtype=torch.long)
        for t, tgt in enumerate(tgts):
            valid = self._valid(tgt)
            first[(first < 0) & valid] = t
        num_queries = None
        used_rows: List[int] = []
        rows_all: List[int] = []
        cols_all: List[int] = []
        for t in sorted(set(first[first >= 0].tolist())):
            new = torch.nonzero(first == t).flatten()
            cost = self.frame_matcher.cost_matrix(preds[t], select_targets(tgts[t], new))
            num_queries = cost.shape[0]
            free = torch.ones(num_queries, dtype=torch.bool)
            free[used_rows] = False
            free_idx = torch.nonzero(free).flatten()
            rows, cols = linear_sum_assignment(cost[free_idx].numpy())
            rows = free_idx[rows].tolist()
            used_rows += rows
            rows_all += rows
            cols_all += new[cols].tolist()
        return _as_indices(
            np.asarray(rows_all, dtype=np.int64), np.asarray(cols_all, dtype=np.int64)
        )

    @torch.no_grad()
    def forward(
        self,
        outputs: Dict[str, object],
        targets: List[Dict[str, object]],
        num_frames: Optional[int] = None,
    ) -> Indices:
        """Match per-frame predictions of whole clips.

        Args:
            outputs: per-frame batched predictions with leading dim B*T (clip-major).
            targets: B*T per-frame target dicts with ``labels``, ``masks`` and ``ids``.
            num_frames: clip length T; defaults to the constructor value.

        Returns:
            B*T index pairs; the T entries of one clip are identical.
        """
        num_frames = num_frames or self.num_frames
        if not num_frames or len(targets) % num_frames:
            raise ValueError(
                f"{len(targets)} frame targets are not a whole number of {num_frames}-frame clips"
            )
        indices: Indices = []
        for b in range(len(targets) // num_frames):
            frames = range(b * num_frames, (b + 1) * num_frames)
            preds = [slice_outputs(outputs, i) for i in frames]
            pair = self.match_clip(preds, [targets[i] for i in frames])
            indices += [pair] * num_frames
        return indices

    def extra_repr(self) -> str:
        return f"num_frames={self.num_frames}"


def build_mask_matcher(
    class_weight: float, mask_weight: float, dice_weight: float, num_points: int
) -> HungarianMatcher:
    """Mask2Former matcher: ``class_w * -p(class) + mask_w * BCE + dice_w * Dice`` on points."""
    return HungarianMatcher(
        [
            neg_prob_class_cost_term(class_weight),
            mask_ce_cost_term(mask_weight),
            mask_dice_cost_term(dice_weight),
        ],
        num_points=num_points,
    )


def _device_type(pred: Dict[str, torch.Tensor]) -> str:
    for v in pred.values():
        if isinstance(v, torch.Tensor):
            return v.device.type
    return "cpu"


def _empty_indices():
    return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)


def _as_indices(rows, cols):
    rows = torch.as_tensor(np.asarray(rows), dtype=torch.int64)
    cols = torch.as_tensor(np.asarray(cols), dtype=torch.int64)
    order = torch.argsort(rows)
    return rows[order], cols[order]

"""Extensible set-prediction criterion (DETR / Mask2Former family).

:class:`SetCriterion` matches predictions to targets, computes the registered losses on the
final output and on every auxiliary output (re-matched per auxiliary layer by default), and
weights them with ``weight_dict``. New losses are added with :meth:`SetCriterion.register_loss`
or by subclassing; a loss function has the signature
``fn(outputs, targets, indices, num_masks) -> Dict[str, Tensor]``.

Layout: ``outputs`` tensors have a leading "image" dim N (an image, or one frame of a clip when
matching per frame); ``targets`` is a list of N dicts with ``labels`` (G,) and ``masks``
(G, [T,] H, W). Predicted masks are (N, Q, [T,] h, w); a frame dim T is flattened into the
instance dim for the mask losses (one Dice per instance and frame, Mask2Former-VIS convention).
"""

import logging
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .losses import dice_loss, reduce_num_instances, sigmoid_ce_loss
from .point_sampling import (
    calculate_uncertainty,
    get_uncertain_point_coords_with_randomness,
    point_sample,
)

__all__ = ["SetCriterion", "src_permutation_idx", "aux_weight_dict"]

logger = logging.getLogger(__name__)

LossFn = Callable[[Dict, List[Dict], list, float], Dict[str, torch.Tensor]]


def src_permutation_idx(indices):
    """``(image_idx, query_idx)`` tensors that gather matched predictions from (N, Q, ...)."""
    batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    src_idx = torch.cat([src for src, _ in indices])
    return batch_idx, src_idx


def aux_weight_dict(weight_dict: Dict[str, float], num_aux: int) -> Dict[str, float]:
    """``weight_dict`` extended with suffixed copies ``<key>_<i>`` for ``i < num_aux``."""
    out = dict(weight_dict)
    for i in range(num_aux):
        out.update({f"{k}_{i}": v for k, v in weight_dict.items()})
    return out


class SetCriterion(nn.Module):
    """Hungarian-matched classification and mask losses with auxiliary deep supervision.

    Args:
        num_classes: number of foreground classes K; ``pred_logits`` has K + 1 columns, the last
            being "no object".
        matcher: callable ``matcher(outputs, targets, **match_kwargs) -> indices``.
        weight_dict: loss name -> weight; losses without an entry are dropped by :meth:`weight`.
        eos_coef: cross-entropy weight of the no-object class.
        losses: names of the losses to compute ("labels", "masks", or registered ones).
        num_points: points per mask for the point-sampled mask losses; 0 -> dense losses
            (predictions bilinearly upsampled to the target size).
        oversample_ratio: PointRend candidate oversampling.
        importance_sample_ratio: fraction of points picked by uncertainty.
        rematch_aux: re-run the matcher on each auxiliary output (Mask2Former); if False the final
            output's matching is reused.
    """

    def __init__(
        self,
        num_classes: int,
        matcher: Callable,
        weight_dict: Dict[str, float],
        eos_coef: float,
        losses: Sequence[str] = ("labels", "masks"),
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        rematch_aux: bool = True,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = dict(weight_dict)
        self.eos_coef = eos_coef
        self.losses = list(losses)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.rematch_aux = rematch_aux
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight)
        self._loss_map: Dict[str, LossFn] = {"labels": self.loss_labels, "masks": self.loss_masks}

    def check_targets(self, targets: List[Dict]) -> None:
        """Raise a clear error if a target label is outside ``[0, num_classes)``.

        Called before matching: an out-of-range label would otherwise fail deep inside a cost
        function. The usual cause is training a class-agnostic model (NUM_CLASSES 1) on a
        multi-category JSON.
        """
        labels = [t["labels"] for t in targets if len(t["labels"])]
        if not labels:
            return
        labels = torch.cat([lab.reshape(-1) for lab in labels])
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(
                f"target labels must be in [0, {self.num_classes}) but the batch has "
                f"{sorted(set(labels.tolist()))}: the training dataset has more categories than "
                f"the model's NUM_CLASSES ({self.num_classes}); train on a class-agnostic JSON "
                "(tools/make_class_agnostic_ytvis_json.py) or raise NUM_CLASSES"
            )

    def register_loss(self, name: str, fn: LossFn) -> None:
        """Make ``fn`` available under ``name`` (add ``name`` to ``self.losses`` to compute it)."""
        self._loss_map[name] = fn

    # ----------------------------------------------------------------------------------- losses
    def loss_labels(self, outputs, targets, indices, num_masks):
        """Softmax cross-entropy over K + 1 classes, unmatched queries -> no-object."""
        logits = outputs["pred_logits"].float()
        self.check_targets(targets)
        idx = src_permutation_idx(indices)
        matched = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)]).long()
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.long, device=logits.device
        )
        target_classes[idx] = matched.to(logits.device)
        loss = F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight.to(logits))
        return {"loss_ce": loss}

    def matched_masks(self, outputs, targets, indices):
        """Matched prediction logits (M', 1, h, w), target masks (M', 1, H, W); frames flattened."""
        idx = src_permutation_idx(indices)
        src = outputs["pred_masks"][idx]
        tgt = torch.cat([t["masks"][j] for t, (_, j) in zip(targets, indices)]).to(src)
        src = src.reshape(-1, 1, *src.shape[-2:])
        tgt = tgt.reshape(-1, 1, *tgt.shape[-2:])
        return src, tgt

    def mask_point_logits_and_labels(self, src: torch.Tensor, tgt: torch.Tensor):
        """Sample matched masks for the mask losses: (M', P) logits and (M', P) labels.

        With ``num_points > 0`` the points are chosen by PointRend uncertainty sampling on the
        predictions; otherwise predictions are upsampled to the target size and compared densely.
        """
        if self.num_points > 0:
            with torch.no_grad():
                coords = get_uncertain_point_coords_with_randomness(
                    src.float(),
                    calculate_uncertainty,
                    self.num_points,
                    self.oversample_ratio,
                    self.importance_sample_ratio,
                )
                labels = point_sample(tgt, coords.to(tgt), align_corners=False).squeeze(1)
            logits = point_sample(src, coords.to(src), align_corners=False).squeeze(1)
            return logits, labels
        if src.shape[-2:] != tgt.shape[-2:]:
            src = F.interpolate(src, size=tgt.shape[-2:], mode="bilinear", align_corners=False)
        return src.flatten(1), tgt.flatten(1)

    def loss_masks(self, outputs, targets, indices, num_masks):
        """Sigmoid BCE + Dice between matched masks (point-sampled or dense)."""
        src, tgt = self.matched_masks(outputs, targets, indices)
        if src.shape[0] == 0:
            zero = outputs["pred_masks"].sum() * 0.0
            return {"loss_mask": zero, "loss_dice": zero}
        logits, labels = self.mask_point_logits_and_labels(src, tgt)
        return {
            "loss_mask": sigmoid_ce_loss(logits.float(), labels.float(), num_masks),
            "loss_dice": dice_loss(logits.float(), labels.float(), num_masks),
        }

    # ---------------------------------------------------------------------------------- driving
    def get_loss(self, name, outputs, targets, indices, num_masks) -> Dict[str, torch.Tensor]:
        """Compute the registered loss ``name``."""
        if name not in self._loss_map:
            raise KeyError(f"unknown loss {name!r}; registered: {sorted(self._loss_map)}")
        return self._loss_map[name](outputs, targets, indices, num_masks)

    def num_instances(self, targets: List[Dict], device) -> float:
        """Normaliser: number of target instances averaged over ranks (>= 1)."""
        return reduce_num_instances(sum(len(t["labels"]) for t in targets), device)

    def forward(
        self,
        outputs: Dict[str, object],
        targets: List[Dict],
        match_kwargs: Optional[Dict] = None,
    ) -> Dict[str, torch.Tensor]:
        """Unweighted losses for the final output and every entry of ``outputs["aux_outputs"]``.

        A layer dict (final or auxiliary) that carries ``indices`` (e.g. matched inside the model
        to predict masks for the matched queries only) is not matched again.

        Args:
            outputs: final predictions plus an optional ``aux_outputs`` list of dicts.
            targets: one target dict per image.
            match_kwargs: extra keyword arguments for the matcher (e.g. ``num_frames``).

        Returns:
            ``{"loss_ce": ..., "loss_mask": ..., "loss_dice": ..., "loss_ce_0": ...}``; aux losses
            carry the suffix ``_<i>`` of their position in ``aux_outputs``.
        """
        self.check_targets(targets)
        match_kwargs = match_kwargs or {}
        layers = [{k: v for k, v in outputs.items() if k != "aux_outputs"}]
        layers += list(outputs.get("aux_outputs", None) or [])
        device = next(v for v in layers[0].values() if isinstance(v, torch.Tensor)).device
        num_masks = self.num_instances(targets, device)
        losses = {}
        final_indices = None
        for i, layer in enumerate(layers):
            indices = layer.get("indices")
            if indices is None:
                if i == 0 or self.rematch_aux:
                    indices = self.matcher(layer, targets, **match_kwargs)
                else:
                    indices = final_indices
            if i == 0:
                final_indices = indices
            suffix = "" if i == 0 else f"_{i - 1}"
            for name in self.losses:
                for k, v in self.get_loss(name, layer, targets, indices, num_masks).items():
                    losses[k + suffix] = v
        return losses

    def weight(self, losses: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Multiply by ``weight_dict`` and drop losses without a weight (detectron2 convention)."""
        return {k: v * self.weight_dict[k] for k, v in losses.items() if k in self.weight_dict}

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, losses={self.losses}, eos_coef={self.eos_coef}, "
            f"num_points={self.num_points}, oversample_ratio={self.oversample_ratio}, "
            f"importance_sample_ratio={self.importance_sample_ratio}, "
            f"rematch_aux={self.rematch_aux}"
        )

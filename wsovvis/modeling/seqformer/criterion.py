"""SeqFormer matcher and losses, built on the shared set-prediction toolkit.

Matching (per decoder layer): ``SET_COST_CLASS`` x focal class cost + ``SET_COST_BOX`` x
``cdist(p=2)`` over the concatenated per-frame boxes + ``SET_COST_GIOU`` x (-GIoU averaged over
frames); no mask cost. Losses: focal class loss (x num_queries), per-frame L1 and GIoU box losses
(averaged over frames), mask focal + dice over all frames of an instance. Frames where an
instance is absent keep a zero box and an empty mask and take part in matching and losses, as published.

Output dicts (one per decoder layer): ``pred_logits`` ``[B, Q, K]``, ``pred_boxes`` ``[B, Q, T, 4]``
(cxcywh, normalised to the unpadded image), ``indices`` (the layer's matching) and ``pred_masks``
``[M, T, h, w]`` logits of the matched queries only, concatenated in batch order.
Targets: ``labels`` ``[G]``, ``boxes`` ``[G, T, 4]``, ``masks`` ``[G, T, h, w]`` (at the mask
stride).
"""
from typing import Dict

import torch
import torch.nn.functional as F

from ..set_prediction import (
    CostTerm,
    HungarianMatcher,
    SetCriterion,
    dice_loss,
    focal_class_cost_term,
    sigmoid_focal_loss,
    src_permutation_idx,
)
from ..set_prediction.box_ops import box_l1_loss, giou_loss, video_box_l2_cost, video_giou_cost

__all__ = ["build_seqformer_matcher", "SeqFormerCriterion"]


def build_seqformer_matcher(cost_class: float, cost_box: float, cost_giou: float,
                            focal_alpha: float = 0.25) -> HungarianMatcher:
    """Hungarian matcher with SeqFormer's published cost terms."""
    return HungarianMatcher([
        focal_class_cost_term(cost_class, alpha=focal_alpha, gamma=2.0),
        CostTerm("box_l2", cost_box, lambda p, t: video_box_l2_cost(p["pred_boxes"], t["boxes"])),
        CostTerm("giou", cost_giou, lambda p, t: video_giou_cost(p["pred_boxes"], t["boxes"])),
    ])


class SeqFormerCriterion(SetCriterion):
    """SetCriterion with sigmoid focal classification, video box losses and matched-only masks.

    Args:
        num_classes: K (sigmoid classifier, no no-object column).
        matcher: see :func:`build_seqformer_matcher`.
        weight_dict: loss weights (with ``_i`` copies for the auxiliary layers).
        focal_alpha: alpha of the focal class and mask losses.
    """

    def __init__(self, num_classes: int, matcher: HungarianMatcher, weight_dict: Dict[str, float],
                 focal_alpha: float = 0.25):
        super().__init__(num_classes, matcher, weight_dict, eos_coef=1.0,
                         losses=("labels", "boxes", "masks"), num_points=0)
        self.focal_alpha = focal_alpha
        self.register_loss("labels", self.loss_focal_labels)
        self.register_loss("boxes", self.loss_boxes)
        self.register_loss("masks", self.loss_matched_masks)

    def loss_focal_labels(self, outputs, targets, indices, num_inst):
        """Sigmoid focal loss on one-hot targets, scaled by the number of queries."""
        logits = outputs["pred_logits"].float()
        b, q, k = logits.shape
        onehot = torch.zeros_like(logits)
        bi, qi = src_permutation_idx(indices)
        self.check_targets(targets)
        labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)]).long()
        onehot[bi.to(logits.device), qi.to(logits.device), labels.to(logits.device)] = 1.0
        # rows = (video, class), columns = queries -> mean over queries as Deformable DETR
        loss = sigmoid_focal_loss(logits.transpose(1, 2).flatten(0, 1),
                                  onehot.transpose(1, 2).flatten(0, 1), num_inst,
                                  alpha=self.focal_alpha, gamma=2.0)
        return {"loss_ce": loss * q}

    def loss_boxes(self, outputs, targets, indices, num_inst):
        """L1 and GIoU between matched per-frame boxes, averaged over frames."""
        idx = src_permutation_idx(indices)
        src = outputs["pred_boxes"][idx].float()
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)]).to(src)
        return {"loss_bbox": box_l1_loss(src, tgt, num_inst),
                "loss_giou": giou_loss(src, tgt, num_inst)}

    def loss_matched_masks(self, outputs, targets, indices, num_inst):
        """Mask focal + dice over all frames of each matched instance.

        Predictions are resized to the target resolution when the two differ. A layer without
        ``pred_masks`` gets no mask loss."""
        if "pred_masks" not in outputs:
            return {}
        src = outputs["pred_masks"]
        tgt = torch.cat([t["masks"][j] for t, (_, j) in zip(targets, indices)]).to(src)
        if src.shape[0] == 0:
            zero = src.sum() * 0.0
            return {"loss_mask": zero, "loss_dice": zero}
        if src.shape[-2:] != tgt.shape[-2:]:
            src = F.interpolate(src, size=tgt.shape[-2:], mode="bilinear", align_corners=False)
        src, tgt = src.flatten(1).float(), tgt.flatten(1).float()
        return {"loss_mask": sigmoid_focal_loss(src, tgt, num_inst, alpha=self.focal_alpha),
                "loss_dice": dice_loss(src, tgt, num_inst)}

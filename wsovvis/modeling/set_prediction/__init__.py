"""Shared set-prediction toolkit: point sampling, losses, pairwise costs, box ops, Hungarian
matchers, an extensible :class:`SetCriterion` and video post-processing.

Used by both meta-architectures (``WSVidEoMT``, ``WSSeqFormer``). Pure PyTorch + scipy.

Extending for a new model (e.g. SeqFormer)::

    matcher = HungarianMatcher([focal_class_cost_term(2.0), CostTerm("bbox", 5.0, my_l1_fn), ...])
    criterion = SetCriterion(K, matcher, weight_dict, eos_coef=0.1, losses=["boxes", "masks"])
    criterion.register_loss("boxes", my_box_loss)   # fn(outputs, targets, indices, num_masks)
"""

from .box_ops import (
    box_cxcywh_to_xyxy,
    box_l1_loss,
    box_xyxy_to_cxcywh,
    elementwise_generalized_box_iou,
    generalized_box_iou,
    giou_loss,
    video_box_l2_cost,
    video_giou_cost,
)
from .costs import (
    class_focal_cost,
    class_neg_prob_cost,
    pairwise_dice,
    pairwise_sigmoid_ce,
    pairwise_sigmoid_focal,
)
from .criterion import SetCriterion, aux_weight_dict, src_permutation_idx
from .losses import dice_loss, reduce_num_instances, sigmoid_ce_loss, sigmoid_focal_loss
from .matcher import (
    CostTerm,
    HungarianMatcher,
    TemporallyConsistentMatcher,
    build_mask_matcher,
    focal_class_cost_term,
    mask_ce_cost_term,
    mask_dice_cost_term,
    mask_focal_cost_term,
    neg_prob_class_cost_term,
    select_targets,
    slice_outputs,
)
from .point_sampling import (
    calculate_uncertainty,
    get_uncertain_point_coords_with_randomness,
    point_sample,
    sample_shared_points,
)
from .postprocess import (
    make_video_output,
    masks_to_rle_tracks,
    resize_mask_logits,
    topk_query_class_pairs,
)

__all__ = [
    "CostTerm",
    "HungarianMatcher",
    "SetCriterion",
    "TemporallyConsistentMatcher",
    "aux_weight_dict",
    "box_cxcywh_to_xyxy",
    "box_l1_loss",
    "box_xyxy_to_cxcywh",
    "build_mask_matcher",
    "calculate_uncertainty",
    "class_focal_cost",
    "class_neg_prob_cost",
    "dice_loss",
    "elementwise_generalized_box_iou",
    "focal_class_cost_term",
    "generalized_box_iou",
    "get_uncertain_point_coords_with_randomness",
    "giou_loss",
    "make_video_output",
    "mask_ce_cost_term",
    "mask_dice_cost_term",
    "mask_focal_cost_term",
    "masks_to_rle_tracks",
    "neg_prob_class_cost_term",
    "pairwise_dice",
    "pairwise_sigmoid_ce",
    "pairwise_sigmoid_focal",
    "point_sample",
    "reduce_num_instances",
    "resize_mask_logits",
    "sample_shared_points",
    "select_targets",
    "sigmoid_ce_loss",
    "sigmoid_focal_loss",
    "slice_outputs",
    "src_permutation_idx",
    "topk_query_class_pairs",
    "video_box_l2_cost",
    "video_giou_cost",
]

"""SeqFormer components: deformable video transformer, CondInst mask head, matcher/criterion,
targets and post-processing. The meta-architecture is :mod:`wsovvis.modeling.seqformer.meta_arch`."""
from .criterion import SeqFormerCriterion, build_seqformer_matcher
from .inference import select_predictions
from .mask_head import DynamicMaskHead, MaskFeatureFPN, aligned_bilinear, compute_locations
from .targets import pad_frames, prepare_video_targets
from .transformer import MLP, SeqFormerTransformer, inverse_sigmoid

__all__ = [
    "SeqFormerCriterion",
    "build_seqformer_matcher",
    "select_predictions",
    "DynamicMaskHead",
    "MaskFeatureFPN",
    "aligned_bilinear",
    "compute_locations",
    "pad_frames",
    "prepare_video_targets",
    "MLP",
    "SeqFormerTransformer",
    "inverse_sigmoid",
]

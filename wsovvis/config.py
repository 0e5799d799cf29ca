"""wsovvis configuration: one entry point, :func:`add_wsovvis_config`, with a comment on every key.

Usage (the detectron2 way)::

    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file("configs/videomt_vits_lvvis_pseudo.yaml")

Keys are grouped by the part of wsovvis that reads them; each group lives in one private function
so the file reads top to bottom like the package layout.
"""
from detectron2.config import CfgNode as CN

__all__ = ["add_wsovvis_config"]


def _add_input_config(cfg):
    """Video clip sampling and test-time sizes (read by ``wsovvis.data``)."""
    cfg.INPUT.SAMPLING_FRAME_NUM = 5  # frames per training clip
    cfg.INPUT.SAMPLING_FRAME_RANGE = 2  # clip frames are drawn within +-RANGE of a random anchor frame
    cfg.INPUT.SAMPLING_FRAME_SHUFFLE = False  # shuffle the sampled clip frames instead of sorting them
    cfg.INPUT.SAMPLING_INTERVAL = 1  # minimum gap between sampled frames (1 = consecutive allowed)
    cfg.INPUT.SAMPLING_CONSECUTIVE = True  # take RANGE-window consecutive frames (VidEoMT) vs random picks (SeqFormer)
    cfg.INPUT.RANDOM_FLIP = "flip_by_clip"  # "flip_by_clip" (one flip for the clip) or "none"
    cfg.INPUT.TEST_SIZE_DIVISIBILITY = 32  # test images are padded to a multiple of this


def _add_dataset_config(cfg):
    """Dataset roots and loader behaviour (read by ``wsovvis.data``)."""
    cfg.DATASETS.ROOT = ""  # root of builtin splits; "" = $WSOVVIS_DATASETS or ./datasets
    cfg.DATALOADER.FILTER_EMPTY_VIDEOS = True  # drop training videos without any annotated instance
    cfg.DATALOADER.MIN_CLIP_INSTANCES = 0  # resample a clip with fewer present instances (0 = never)


def _add_evaluation_config(cfg):
    """YTVIS / LV-VIS evaluation (read by ``wsovvis.evaluation``)."""
    cfg.TEST.CLASS_AGNOSTIC = False  # score with the official useCats=0 pooling (class-agnostic AP)
    cfg.TEST.MAX_DETS_PER_VIDEO = 10  # predictions kept per video by the meta-architectures


def _add_solver_config(cfg):
    """Optimiser extras (read by ``wsovvis.engine``)."""
    cfg.SOLVER.OPTIMIZER = "ADAMW"  # "ADAMW" or "SGD"
    cfg.SOLVER.BACKBONE_MULTIPLIER = 0.1  # lr multiplier for parameters whose name contains "backbone"
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.0  # weight decay of nn.Embedding weights (Mask2Former key)
    cfg.SOLVER.LLRD = 1.0  # ViT layer-wise lr decay: block i gets LLRD**(L-1-i) (1.0 = off)
    cfg.SOLVER.VIT_PREFIX = "backbone.encoder.backbone."  # ViT param-name prefix (LLRD, ViT warmup)
    cfg.SOLVER.POLY_POWER = 0.9  # poly decay exponent ("WarmupPolyLR", "TwoStageWarmupPolyLR")
    cfg.SOLVER.WARMUP_STEPS = [500, 1000]  # 2-stage warmup: non-ViT over [0]; ViT 0 for [0] then [1]


def _add_videomt_config(cfg):
    """VidEoMT meta-architecture (read by ``wsovvis.modeling.meta_arch.videomt``)."""
    cfg.MODEL.VIDEOMT = CN()


def _add_seqformer_config(cfg):
    """SeqFormer meta-architecture, key names as in VNext (read by ``wsovvis.modeling.meta_arch.seqformer``)."""
    cfg.MODEL.SeqFormer = CN()


def _add_dinov2_config(cfg):
    """Frozen DINOv2 pseudo-FPN backbone (read by ``wsovvis.modeling.backbone.dinov2_fpn``)."""
    cfg.MODEL.DINOV2 = CN()


def add_wsovvis_config(cfg):
    """Add every wsovvis key to a detectron2 config, in place.

    Safe to call more than once on the same config (keys are simply reset to their defaults only
    if they do not exist yet).

    Args:
        cfg: a detectron2 ``CfgNode`` from ``detectron2.config.get_cfg()``.
    """
    if getattr(cfg, "_WSOVVIS_CONFIG_ADDED", False) or "VIDEOMT" in cfg.MODEL:
        return
    for add in (
        _add_input_config,
        _add_dataset_config,
        _add_evaluation_config,
        _add_solver_config,
        _add_videomt_config,
        _add_seqformer_config,
        _add_dinov2_config,
    ):
        add(cfg)

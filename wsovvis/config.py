"""wsovvis configuration: one entry point, :func:`add_wsovvis_config`, with a comment on every key.

Usage (the detectron2 way)::

    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file("configs/videomt_vits_lvvis_pseudo.yaml")

Keys are grouped by the part of wsovvis that reads them; each group lives in one private function
so the file reads top to bottom like the package layout.
"""
import os

from detectron2.config import CfgNode as CN

__all__ = ["add_wsovvis_config"]


def _add_input_config(cfg):
    """Video clip sampling and test-time sizes (read by ``wsovvis.data``)."""
    cfg.INPUT.SAMPLING_FRAME_NUM = 5  # frames per training clip
    cfg.INPUT.SAMPLING_FRAME_RANGE = 2  # random picks: frames within +-RANGE of a random anchor
    cfg.INPUT.SAMPLING_FRAME_SHUFFLE = False  # clip frames in random order (else sorted)
    cfg.INPUT.SAMPLING_INTERVAL = 1  # min gap between clip frames (window stride if consecutive)
    cfg.INPUT.SAMPLING_CONSECUTIVE = True  # consecutive window (VidEoMT) / random picks (SeqFormer)
    cfg.INPUT.RANDOM_FLIP = "flip_by_clip"  # 1 flip per clip: flip_by_clip|horizontal|vertical|none


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _add_dataset_config(cfg):
    """Dataset roots and loader behaviour (read by ``wsovvis.data``)."""
    cfg.DATASETS.ROOT = ""  # root of builtin splits; "" = $WSOVVIS_DATASETS or ./datasets
    cfg.DATALOADER.FILTER_EMPTY_VIDEOS = True  # drop training videos without any annotated instance
    cfg.DATALOADER.MIN_CLIP_INSTANCES = 0  # resample (<=10x) clips with fewer tracks (0 = never)
    # loader workers: detectron2's default 4, but at most the CPUs this process may run on
    # (os.sched_getaffinity, else os.cpu_count()); a YAML / override value is kept as given
    cfg.DATALOADER.NUM_WORKERS = min(cfg.DATALOADER.NUM_WORKERS, _usable_cpus())


def _add_evaluation_config(cfg):
    """YTVIS / LV-VIS evaluation (read by ``wsovvis.evaluation``)."""
    cfg.TEST.CLASS_AGNOSTIC = False  # score with the official useCats=0 pooling (class-agnostic AP)
    cfg.TEST.MAX_DETS_PER_VIDEO = 10  # SeqFormer top-k per video (VidEoMT: MODEL.VIDEOMT.TEST_TOPK)


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
    """VidEoMT meta-architecture (read by ``wsovvis.modeling.videomt.meta_arch``)."""
    cfg.MODEL.VIDEOMT = CN()
    _C = cfg.MODEL.VIDEOMT
    _C.MODEL_NAME = "vit_small_patch14_reg4_dinov2"  # timm ViT id (DINOv2, or DINOv3 *_dinov3_qkvb), or "custom"/"custom_dinov3" (EMBED_DIM/DEPTH/...)
    _C.IMG_SIZE = 640  # reference pos_embed grid = IMG_SIZE/PATCH_SIZE (inputs may be any size)
    _C.PATCH_SIZE = 16  # ViT patch size (DINOv2's 14 is resampled to 16, as upstream)
    _C.SEGMENTER_BLOCKS = [9, 10, 11]  # ViT blocks that also process the queries (L: [20..23])
    _C.NUM_QUERIES = 200  # object queries (= track slots; query index is the track id)
    _C.NUM_CLASSES = 40  # foreground classes K (class head has K+1 outputs)
    _C.EMBED_DIM = 0  # "custom" ViT only: width
    _C.DEPTH = 0  # "custom" ViT only: number of blocks
    _C.NUM_HEADS = 0  # "custom" ViT only: attention heads
    _C.NUM_REG_TOKENS = 4  # "custom" ViT only: register tokens (DINOv2-reg4 layout)
    _C.DROP_PATH_RATE = 0.0  # stochastic depth of the ViT (0 upstream)
    _C.VIT_WEIGHTS = ""  # optional DINOv2/DINOv3 (official, HF or timm) ViT weights loaded at build time
    _C.ROPE_RESCALE = 2.0  # DINOv3 only: RoPE coordinate rescale augmentation in training (HF DINOv3 pos_embed_rescale; 0 = off)
    _C.ALLOW_RANDOM_INIT = False  # training may start with a random ViT (no VIT_WEIGHTS, not in MODEL.WEIGHTS)
    _C.NORM_QUERIES = False  # LayerNorm queries before propagation/aux heads (upstream VPS/VSS)
    _C.CLASS_WEIGHT = 2.0  # cross-entropy loss / matching cost weight
    _C.MASK_WEIGHT = 5.0  # mask BCE loss / matching cost weight
    _C.DICE_WEIGHT = 5.0  # mask Dice loss / matching cost weight
    _C.NO_OBJECT_WEIGHT = 0.1  # CE weight of the no-object class
    _C.DEEP_SUPERVISION = True  # losses on the predictions made before each segmenter block
    _C.AUX_LOSS_MODE = "parity"  # "parity": drop the pre-last-block aux loss like upstream; "all"
    _C.TRAIN_NUM_POINTS = 12544  # points per mask for the matching cost and mask losses
    _C.OVERSAMPLE_RATIO = 3.0  # PointRend candidate oversampling for the mask losses
    _C.IMPORTANCE_SAMPLE_RATIO = 0.75  # fraction of loss points chosen by uncertainty
    _C.SIZE_DIVISIBILITY = 32  # inputs are zero-padded (bottom/right) to a multiple of this
    _C.TEST_TOPK = 10  # tracks kept per video: flattened top-k over queries x classes
    _C.WINDOW_SIZE = 1  # frames per network call at test time (1 = strictly online)
    _C.TEST_CODE_MEMORY_MB = 64.0  # RAM per video for the per-frame mask codes kept until the top-k is known; beyond it they spill to an unlinked temp file in $TMPDIR (same output)


def _add_seqformer_config(cfg):
    """SeqFormer meta-architecture, key names as in VNext (read by ``wsovvis.modeling.seqformer.meta_arch``)."""
    cfg.MODEL.SeqFormer = CN()
    sf = cfg.MODEL.SeqFormer
    sf.NUM_CLASSES = 80  # classes of the sigmoid (focal) classifier; no no-object class
    # losses (VNext names and defaults)
    sf.MASK_WEIGHT = 2.0  # mask sigmoid focal loss weight
    sf.DICE_WEIGHT = 5.0  # mask dice loss weight
    sf.GIOU_WEIGHT = 2.0  # per-frame GIoU box loss weight
    sf.L1_WEIGHT = 5.0  # per-frame L1 box loss weight
    sf.CLASS_WEIGHT = 2.0  # focal class loss weight
    sf.DEEP_SUPERVISION = True  # losses on every decoder layer, re-matched per layer
    sf.MASK_STRIDE = 4  # output stride of predicted masks (stride-8 features upsampled x2)
    sf.MATCH_STRIDE = 4  # kept for VNext YAML compatibility (matching uses no mask cost)
    sf.FOCAL_ALPHA = 0.25  # alpha of the focal class / mask losses and class cost
    sf.SET_COST_CLASS = 2  # matcher weight of the focal class cost (int as in VNext)
    sf.SET_COST_BOX = 5  # matcher weight of cdist(p=2) over concatenated per-frame boxes (int)
    sf.SET_COST_GIOU = 2  # matcher weight of -GIoU averaged over frames (int as in VNext)
    # transformer
    sf.NHEADS = 8  # attention heads (encoder, decoder, deformable attention)
    sf.DROPOUT = 0.1  # dropout in the transformer layers
    sf.DIM_FEEDFORWARD = 1024  # FFN hidden size
    sf.ENC_LAYERS = 6  # deformable encoder layers (per frame)
    sf.DEC_LAYERS = 6  # decoder layers (query decomposition + temporal aggregation)
    sf.HIDDEN_DIM = 256  # transformer width
    sf.NUM_OBJECT_QUERIES = 300  # instance queries
    sf.DEC_N_POINTS = 4  # sampling points per head and level in the decoder
    sf.ENC_N_POINTS = 4  # sampling points per head and level in the encoder
    sf.NUM_FEATURE_LEVELS = 4  # res3..res5 + one stride-64 level
    # inference
    sf.MERGE_ON_CPU = True  # kept for VNext YAML compatibility (wsovvis clip matching streams)
    sf.MULTI_CLS_ON = True  # each class above APPLY_CLS_THRES of a kept query is a prediction
    sf.APPLY_CLS_THRES = 0.05  # class threshold of MULTI_CLS_ON
    # "vnext": top TEST.MAX_DETS_PER_VIDEO queries by best class, then (MULTI_CLS_ON) all their
    # classes > APPLY_CLS_THRES (can exceed MAX_DETS); "topk_pairs": top MAX_DETS (query, class) pairs
    sf.TEST_SELECTION = "vnext"
    sf.TEST_MASK_RESIZE = "nearest"  # final resize: "nearest" + sigmoid>0.5 (VNext), "bilinear" + >0
    sf.CLIP_MATCHING = False  # clip-by-clip inference linked by sIoU (VNext), memory flat in length
    sf.CLIP_LENGTH = 5  # frames per clip with CLIP_MATCHING
    sf.CLIP_STRIDE = 1  # first-frame step between clips with CLIP_MATCHING (overlap = LENGTH-STRIDE)
    sf.INFER_FRAME_CHUNK = 16  # frames per backbone/encoder/mask chunk at inference (0 = all)
    # keys of VNext's INPUT / root config so its YAMLs merge (read by nothing in wsovvis)
    for key, value in (("PRETRAIN_TYPE", "v1"), ("AUGMENTATIONS", []), ("COCO_PRETRAIN", False),
                       ("PRETRAIN_SAME_CROP", False)):
        if key not in cfg.INPUT:
            cfg.INPUT[key] = value  # VNext data option, unused by wsovvis
    if "FIND_UNUSED_PARAMETERS" not in cfg:
        cfg.FIND_UNUSED_PARAMETERS = True  # VNext DDP flag, unused by wsovvis


def _add_dinov2_config(cfg):
    """Frozen DINOv2 pseudo-FPN backbone (read by ``wsovvis.modeling.backbone.dinov2_fpn``)."""
    cfg.MODEL.DINOV2 = CN()
    dv = cfg.MODEL.DINOV2
    dv.MODEL_NAME = "dinov2_vitb14"  # dinov2_vit{s,b,l,g}14 or dinov2_vit{s,b,l,g}14_reg
    dv.WEIGHTS = ""  # official DINOv2 .pth (converted on load) or timm checkpoint; "" = random
    dv.ALLOW_RANDOM_INIT = False  # training may use a random ViT (WEIGHTS "" and not in MODEL.WEIGHTS)
    dv.OUT_CHANNELS = 256  # channels of every pyramid level
    dv.OUT_FEATURES = ["res2", "res3", "res4", "res5"]  # pyramid levels at strides 4/8/16/32
    dv.FREEZE = True  # frozen ViT: no grads, always eval, excluded from the optimizer
    dv.REPO_PATH = ""  # local facebookresearch/dinov2 clone: build the official module, not timm
    dv.EMBED_DIM = 0  # override the variant's ViT width (0 = variant default; tiny test models)
    dv.DEPTH = 0  # override the variant's ViT depth (0 = variant default)
    dv.NUM_HEADS = 0  # override the variant's ViT heads (0 = variant default)
    # position-embedding resampling of the timm trunk: "official" = as DINOv2's own module (plain:
    # bicubic by scale (n+0.1)/37, no antialias; _reg: to size, antialias), "timm" = timm's resample
    dv.POS_EMBED_INTERP = "official"


def _add_swin_config(cfg):
    """Swin backbone ``D2SwinTransformer``, VNext's keys (read by ``wsovvis.modeling.backbone.swin``)."""
    cfg.MODEL.SWIN = CN()
    sw = cfg.MODEL.SWIN
    sw.PRETRAIN_IMG_SIZE = 224  # image size of the pretrained model (timm's img_size; 384 for Swin-L)
    sw.PATCH_SIZE = 4  # patch size of the stem (stride of res2)
    sw.EMBED_DIM = 96  # channels of stage 1 (T/S 96, B 128, L 192); doubled each stage
    sw.DEPTHS = [2, 2, 6, 2]  # blocks per stage (T [2,2,6,2], B/L [2,2,18,2])
    sw.NUM_HEADS = [3, 6, 12, 24]  # attention heads per stage (L [6,12,24,48])
    sw.WINDOW_SIZE = 7  # attention window (12 for the 384 models)
    sw.MLP_RATIO = 4.0  # FFN width / channels
    sw.QKV_BIAS = True  # bias of the qkv projection
    sw.QK_SCALE = None  # VNext key; must stay null (head_dim**-0.5, the only value timm supports)
    sw.DROP_RATE = 0.0  # dropout after the patch embedding and in projections
    sw.ATTN_DROP_RATE = 0.0  # attention dropout
    sw.DROP_PATH_RATE = 0.3  # stochastic depth (linearly increasing over blocks)
    sw.APE = False  # VNext key; absolute position embedding is not supported (must stay False)
    sw.PATCH_NORM = True  # VNext key; LayerNorm after the patch embedding (must stay True)
    sw.OUT_FEATURES = ["res2", "res3", "res4", "res5"]  # outputs at strides 4/8/16/32
    sw.USE_CHECKPOINT = False  # activation checkpointing of every block while training
    sw.WEIGHTS = ""  # wsovvis: Swin-only checkpoint (VNext/Mask2Former .pth/.pkl) loaded at build
    sw.ALLOW_RANDOM_INIT = False  # training may start with a random Swin (WEIGHTS "" and not in MODEL.WEIGHTS)


def _add_open_vocab_config(cfg):
    """Open-vocabulary naming of class-agnostic tubes with a frozen CLIP (read by ``wsovvis.open_vocab``)."""
    cfg.MODEL.OPEN_VOCAB = CN()
    ov = cfg.MODEL.OPEN_VOCAB
    ov.ENABLED = False  # evaluation names the model's class-agnostic tubes, scores AP/APb/APn
    ov.CLIP_MODEL = "convnext_large_d_320"  # open_clip architecture (ConvNeXt/timm or ViT tower)
    ov.CLIP_WEIGHTS = "laion2b_s29b_b131k_ft_soup"  # open_clip pretrained tag or local file ("": random)
    ov.VOCABULARY = ""  # "" = the evaluated dataset's GT categories; or a names file / YTVIS JSON
    ov.TEMPLATES = []  # prompt templates with one "{}"; [] = the 14 ViLD templates
    ov.INPUT_SIZE = 0  # short side of the frames fed to CLIP (0 = the model's image_size)
    ov.AMP = True  # autocast (fp16) for CLIP on CUDA
    ov.SCORE_EXPONENT = 0.5  # a of p_class**a * s_object**(1-a) (0.5 = geometric mean)
    ov.TOPK = 5  # labels emitted per tube
    ov.MAX_DETS = 100  # named detections kept per video (the LV-VIS maxDets)
    ov.AGGREGATION = "embedding"  # over frames: "embedding" (mean, then classify) or "probability"
    ov.FRAMES_PER_BATCH = 4  # frames per CLIP forward pass
    ov.CACHE_DIR = ""  # text-bank cache folder ("" = <OUTPUT_DIR>/open_vocab_cache)


def add_wsovvis_config(cfg):
    """Add every wsovvis key to a detectron2 config, in place.

    Calling it again on a config that already has the wsovvis keys does nothing, so values a user
    has set are never reset to defaults.

    Args:
        cfg: a detectron2 ``CfgNode`` from ``detectron2.config.get_cfg()``.
    """
    if "VIDEOMT" in cfg.MODEL:  # the keys are already there
        return
    # checkpoint files that may be unpickled in full (can run code): only files you trust
    cfg.MODEL.TRUSTED_CHECKPOINTS = []
    # training may start with a random ResNet (only MODEL.WEIGHTS, e.g. an ImageNet .pkl, fills it)
    cfg.MODEL.RESNETS.ALLOW_RANDOM_INIT = False
    for add in (
        _add_input_config,
        _add_dataset_config,
        _add_evaluation_config,
        _add_solver_config,
        _add_videomt_config,
        _add_seqformer_config,
        _add_dinov2_config,
        _add_swin_config,
        _add_open_vocab_config,
    ):
        add(cfg)

"""SeqFormer (Wu et al., ECCV 2022) as a detectron2 meta-architecture: ``WSSeqFormer``.

Registered as ``WSSeqFormer`` and, when no other module has claimed the name, also as
``SeqFormer`` so VNext YAMLs (``META_ARCHITECTURE: "SeqFormer"``, ``MODEL.SeqFormer.*``) work.
Any detectron2 backbone whose output names sort in stride order and that has a stride-8 map can be
used (``build_resnet_backbone`` as in VNext, or ``DINOv2PseudoFPN``); maps below stride 8 (res2) are
ignored, as VNext drops the first of res2..res5.

Inputs are padded to a multiple of ``lcm(32, backbone.size_divisibility)``, so the stride-8 map is
exactly 1/8 of the padded input, the predicted masks (x2 upsampled) exactly 1/4, and the GT masks
(padded and subsampled ``[2::4, 2::4]``) agree with them; predictions are nevertheless resized to
the target resolution in the loss if the two ever differ.

Inference runs the backbone, encoder and mask features in chunks of ``INFER_FRAME_CHUNK`` frames
(frames are independent there), decodes the whole video at once, and predicts masks only for the
``TEST.MAX_DETS_PER_VIDEO`` kept queries, chunk by chunk, straight into per-frame RLE. With
``CLIP_MATCHING`` the video is decoded clip by clip (``CLIP_LENGTH`` / ``CLIP_STRIDE``), each
frame is encoded once, and clips are linked by VNext's sIoU matching in a streaming
:class:`~wsovvis.modeling.seqformer.clip_matching.ClipTracker` (memory flat in video length).
Post-processing follows VNext by default (``TEST_SELECTION: "vnext"``, ``TEST_MASK_RESIZE:
"nearest"``).
"""
import copy
import math
from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from torch import nn

from wsovvis.modeling.backbone.masked_backbone import MaskedBackbone
from wsovvis.modeling.layers import PositionEmbeddingSine
from wsovvis.modeling.set_prediction import (
    aux_weight_dict,
    make_video_output,
    masks_to_rle_tracks,
)
from wsovvis.modeling.set_prediction.postprocess import MASK_RESIZE_MODES, mask_logits_to_masks

from .clip_matching import ClipTracker, clip_windows
from .criterion import SeqFormerCriterion, build_seqformer_matcher
from .inference import SELECTION_MODES, select_predictions
from .mask_head import DynamicMaskHead, MaskFeatureFPN
from .targets import pad_frames, prepare_video_targets
from .transformer import SeqFormerTransformer

__all__ = ["WSSeqFormer"]


@META_ARCH_REGISTRY.register()
class WSSeqFormer(nn.Module):
    """SeqFormer: per-frame deformable encoder, instance queries decomposed into per-frame box
    queries, temporal aggregation, box refinement, CondInst dynamic mask head."""

    @configurable
    def __init__(self, *, backbone: nn.Module, transformer: SeqFormerTransformer, criterion,
                 num_classes: int, num_queries: int, num_feature_levels: int,
                 pixel_mean, pixel_std, deep_supervision: bool = True, mask_stride: int = 4,
                 max_dets_per_video: int = 10, multi_cls_on: bool = True,
                 apply_cls_thres: float = 0.05, infer_frame_chunk: int = 0,
                 test_selection: str = "vnext", test_mask_resize: str = "nearest",
                 clip_matching: bool = False, clip_length: int = 5, clip_stride: int = 1):
        """
        Args:
            backbone: a detectron2 backbone (wrapped in :class:`MaskedBackbone` here).
            transformer: :class:`SeqFormerTransformer`.
            criterion: :class:`SeqFormerCriterion`.
            num_classes: K. num_queries: instance queries. num_feature_levels: L (backbone levels
                after the first + stride-2 extra levels).
            pixel_mean / pixel_std: per-channel normalisation.
            deep_supervision: losses on every decoder layer.
            mask_stride: stride of predicted / target masks (4).
            max_dets_per_video: predictions per video at inference.
            multi_cls_on / apply_cls_thres: see :func:`select_predictions`.
            infer_frame_chunk: frames per backbone/encoder chunk at inference (0 = all).
            test_selection: ``"vnext"`` or ``"topk_pairs"`` (see :func:`select_predictions`).
            test_mask_resize: ``"nearest"`` (VNext) or ``"bilinear"`` (see
                :func:`~wsovvis.modeling.set_prediction.postprocess.mask_logits_to_masks`).
            clip_matching / clip_length / clip_stride: clip-by-clip inference (VNext keys).
        """
        super().__init__()
        if not isinstance(backbone, MaskedBackbone):
            backbone = MaskedBackbone(backbone)
        self.backbone = backbone
        # maps below stride 8 are not used (VNext drops the first of res2..res5)
        self.level_ids = [i for i, st in enumerate(self.backbone.strides) if st >= 8]
        used = [self.backbone.strides[i] for i in self.level_ids]
        if not used or used[0] != 8 or num_feature_levels < 3:
            raise ValueError(
                f"SeqFormer needs a stride-8 backbone map and >= 3 feature levels (mask features "
                f"at strides 8/16/32); got {self.backbone.names} with strides "
                f"{self.backbone.strides} and NUM_FEATURE_LEVELS {num_feature_levels}")
        self.transformer = transformer
        self.criterion = criterion
        self.num_classes, self.num_queries = num_classes, num_queries
        self.num_feature_levels = num_feature_levels
        d = transformer.d_model
        in_channels = [self.backbone.num_channels[i] for i in self.level_ids]
        if num_feature_levels < len(in_channels):
            raise ValueError(f"NUM_FEATURE_LEVELS {num_feature_levels} < {len(in_channels)} "
                             "backbone levels at stride >= 8")
        projs = [nn.Sequential(nn.Conv2d(c, d, 1), nn.GroupNorm(32, d)) for c in in_channels]
        c = in_channels[-1]
        for _ in range(num_feature_levels - len(in_channels)):
            projs.append(nn.Sequential(nn.Conv2d(c, d, 3, stride=2, padding=1),
                                       nn.GroupNorm(32, d)))
            c = d
        self.input_proj = nn.ModuleList(projs)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)
        self.position = PositionEmbeddingSine(d // 2, normalize=True)
        self.query_embed = nn.Embedding(num_queries, 2 * d)
        class_embed = nn.Linear(d, num_classes)
        nn.init.constant_(class_embed.bias, -math.log((1 - 0.01) / 0.01))
        num_dec = len(transformer.decoder.layers)
        self.class_embed = nn.ModuleList(copy.deepcopy(class_embed) for _ in range(num_dec))
        self.mask_features = MaskFeatureFPN(d)
        self.mask_head = DynamicMaskHead(d, self.mask_features.out_channels, feat_stride=8,
                                         out_stride=mask_stride)
        self.deep_supervision = deep_supervision
        self.mask_stride = mask_stride
        self.max_dets_per_video = max_dets_per_video
        self.multi_cls_on, self.apply_cls_thres = multi_cls_on, apply_cls_thres
        self.infer_frame_chunk = infer_frame_chunk
        if test_selection not in SELECTION_MODES:
            raise ValueError(f"MODEL.SeqFormer.TEST_SELECTION {test_selection!r} not in "
                             f"{SELECTION_MODES}")
        if test_mask_resize not in MASK_RESIZE_MODES:
            raise ValueError(f"MODEL.SeqFormer.TEST_MASK_RESIZE {test_mask_resize!r} not in "
                             f"{MASK_RESIZE_MODES}")
        if clip_matching and (clip_length < 1 or clip_stride < 1):
            raise ValueError(f"MODEL.SeqFormer.CLIP_LENGTH ({clip_length}) and CLIP_STRIDE "
                             f"({clip_stride}) must be >= 1 with CLIP_MATCHING")
        self.test_selection, self.test_mask_resize = test_selection, test_mask_resize
        self.clip_matching, self.clip_length = clip_matching, clip_length
        self.clip_stride = clip_stride
        self.size_divisibility = math.lcm(32, self.backbone.size_divisibility)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        sf = cfg.MODEL.SeqFormer
        backbone = build_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
        transformer = SeqFormerTransformer(
            d_model=sf.HIDDEN_DIM, nhead=sf.NHEADS, num_encoder_layers=sf.ENC_LAYERS,
            num_decoder_layers=sf.DEC_LAYERS, dim_feedforward=sf.DIM_FEEDFORWARD,
            dropout=sf.DROPOUT, num_feature_levels=sf.NUM_FEATURE_LEVELS,
            dec_n_points=sf.DEC_N_POINTS, enc_n_points=sf.ENC_N_POINTS)
        weight_dict = {"loss_ce": sf.CLASS_WEIGHT, "loss_bbox": sf.L1_WEIGHT,
                       "loss_giou": sf.GIOU_WEIGHT, "loss_mask": sf.MASK_WEIGHT,
                       "loss_dice": sf.DICE_WEIGHT}
        if sf.DEEP_SUPERVISION:
            weight_dict = aux_weight_dict(weight_dict, sf.DEC_LAYERS - 1)
        matcher = build_seqformer_matcher(sf.SET_COST_CLASS, sf.SET_COST_BOX, sf.SET_COST_GIOU,
                                          sf.FOCAL_ALPHA)
        criterion = SeqFormerCriterion(sf.NUM_CLASSES, matcher, weight_dict, sf.FOCAL_ALPHA)
        return {
            "backbone": backbone, "transformer": transformer, "criterion": criterion,
            "num_classes": sf.NUM_CLASSES, "num_queries": sf.NUM_OBJECT_QUERIES,
            "num_feature_levels": sf.NUM_FEATURE_LEVELS,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN, "pixel_std": cfg.MODEL.PIXEL_STD,
            "deep_supervision": sf.DEEP_SUPERVISION, "mask_stride": sf.MASK_STRIDE,
            "max_dets_per_video": cfg.TEST.MAX_DETS_PER_VIDEO, "multi_cls_on": sf.MULTI_CLS_ON,
            "apply_cls_thres": sf.APPLY_CLS_THRES, "infer_frame_chunk": sf.INFER_FRAME_CHUNK,
            "test_selection": sf.TEST_SELECTION, "test_mask_resize": sf.TEST_MASK_RESIZE,
            "clip_matching": sf.CLIP_MATCHING, "clip_length": sf.CLIP_LENGTH,
            "clip_stride": sf.CLIP_STRIDE,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    # ------------------------------------------------------------------------------- optimizer
    def lr_multipliers(self, backbone_multiplier: float) -> Dict[str, float]:
        """LR multiplier of every trainable parameter (frozen ones are absent).

        Pretrained backbone weights get ``backbone_multiplier`` (``SOLVER.BACKBONE_MULTIPLIER``);
        newly initialised parts (transformer, heads, and the DINOv2 pyramid ``backbone.body.neck``)
        get 1.0. For backbones without ``pretrained_parameter_names`` (ResNet) every backbone
        parameter counts as pretrained, as in VNext.
        """
        body = self.backbone.body
        if hasattr(body, "pretrained_parameter_names"):
            pretrained = {f"backbone.body.{n}" for n in body.pretrained_parameter_names()}
        else:
            pretrained = {f"backbone.body.{n}" for n, _ in body.named_parameters()}
        return {n: (backbone_multiplier if n in pretrained else 1.0)
                for n, p in self.named_parameters() if p.requires_grad}

    # -------------------------------------------------------------------------------- features
    def encode_frames(self, images: torch.Tensor, padding_mask: torch.Tensor):
        """Backbone + input projections + per-frame encoder + mask features for N frames.

        Returns:
            ``(memory [N, S, C], spatial_shapes [L, 2], valid_ratios [N, L, 2],
            mask_flat [N, S], mask_feats [N, C/32, H/8, W/8])``
        """
        all_feats = self.backbone(images, padding_mask)
        feats = [all_feats[i] for i in self.level_ids]
        srcs, masks = [], []
        for lvl, (x, m) in enumerate(feats):
            srcs.append(self.input_proj[lvl](x))
            masks.append(m)
        for lvl in range(len(feats), self.num_feature_levels):
            src = self.input_proj[lvl](feats[-1][0] if lvl == len(feats) else srcs[-1])
            srcs.append(src)
            masks.append(nn.functional.interpolate(padding_mask[None].float(),
                                                   size=src.shape[-2:])[0].bool())
        pos = [self.position(m).to(s.dtype) for s, m in zip(srcs, masks)]
        memory, shapes, valid_ratios, mask_flat = self.transformer.encode(srcs, masks, pos)
        mask_feats = self.mask_features(self._memory_maps(memory, shapes)[:3])
        return memory, shapes, valid_ratios, mask_flat, mask_feats

    @staticmethod
    def _memory_maps(memory: torch.Tensor, shapes: torch.Tensor) -> List[torch.Tensor]:
        n, _, c = memory.shape
        sizes = [int(h) * int(w) for h, w in shapes.tolist()]
        return [m.transpose(1, 2).reshape(n, c, int(h), int(w))
                for m, (h, w) in zip(memory.split(sizes, 1), shapes.tolist())]

    def _layer_outputs(self, dec: Dict[str, List[torch.Tensor]], lvl: int) -> Dict[str, object]:
        return {"pred_logits": self.class_embed[lvl](dec["hs"][lvl]),
                "pred_boxes": dec["boxes"][lvl].permute(0, 2, 1, 3)}  # [B, Q, T, 4]

    def _masks_for(self, dec, lvl, b, queries, mask_feats, image_size):
        """Mask logits ``[n, T, h, w]`` of ``queries`` of video ``b`` at decoder layer ``lvl``."""
        q = dec["hs"][lvl][b, queries]
        centres = dec["references"][lvl][b, :, queries, :2].transpose(0, 1)
        return self.mask_head(q, mask_feats, centres, image_size)

    # -------------------------------------------------------------------------------- training
    def forward(self, batched_inputs: List[Dict]):
        """Training: dict of weighted losses. Eval: one output dict per video (CONTRACTS.md)."""
        if not self.training:
            return [self.inference_video(v) for v in batched_inputs]
        num_frames = {len(v["image"]) for v in batched_inputs}
        if len(num_frames) != 1:
            raise ValueError(f"all clips of a batch need the same length, got {num_frames}")
        t = num_frames.pop()
        frames = [f.to(self.device) for v in batched_inputs for f in v["image"]]
        images, pad_mask, _ = pad_frames(frames, self.pixel_mean, self.pixel_std,
                                         self.size_divisibility)
        targets = [prepare_video_targets(v["instances"], images.shape[-2:], self.mask_stride,
                                         self.device) for v in batched_inputs]
        self.criterion.check_targets(targets)
        memory, shapes, ratios, mask_flat, mask_feats = self.encode_frames(images, pad_mask)
        dec = self.transformer.decode(memory, shapes, ratios, mask_flat, self.query_embed.weight,
                                      len(batched_inputs))
        num_layers = len(dec["hs"])
        layers = range(num_layers) if self.deep_supervision else [num_layers - 1]
        outputs = []
        for lvl in layers:
            out = self._layer_outputs(dec, lvl)
            indices = self.criterion.matcher(out, targets)
            masks = [self._masks_for(dec, lvl, b, src.to(self.device),
                                     mask_feats[b * t:(b + 1) * t], targets[b]["image_size"])
                     for b, (src, _) in enumerate(indices)]
            out["pred_masks"] = torch.cat(masks, 0)
            out["indices"] = indices
            outputs.append(out)
        final = dict(outputs[-1])
        final["aux_outputs"] = outputs[:-1]
        losses = self.criterion(final, targets)
        return self.criterion.weight(losses)

    # ------------------------------------------------------------------------------- inference
    def _encode_video_frames(self, frames, indices):
        """Encode ``frames[i]`` for ``i in indices`` in chunks of ``INFER_FRAME_CHUNK``; returns
        one ``(memory, shapes, ratios, mask_flat, mask_feats)`` tuple per chunk."""
        chunk = self.infer_frame_chunk if self.infer_frame_chunk > 0 else len(indices)
        return [self.encode_frames(*pad_frames([frames[i].to(self.device)
                                                for i in indices[s:s + chunk]],
                                               self.pixel_mean, self.pixel_std,
                                               self.size_divisibility)[:2])
                for s in range(0, len(indices), chunk)]

    def _decode(self, enc):
        """Decode encoded frames (a list of per-frame-chunk tuples) as one clip."""
        shapes = enc[0][1]
        memory = torch.cat([e[0] for e in enc])
        ratios = torch.cat([e[2] for e in enc])
        mask_flat = torch.cat([e[3] for e in enc])
        dec = self.transformer.decode(memory, shapes, ratios, mask_flat, self.query_embed.weight, 1)
        last = len(dec["hs"]) - 1
        probs = self.class_embed[last](dec["hs"][last])[0].float().sigmoid()
        return dec, last, probs

    def _sizes(self, video: Dict):
        h, w = video["image"][0].shape[-2:]
        d = self.size_divisibility
        padded = (math.ceil(h / d) * d, math.ceil(w / d) * d)
        out = (int(video.get("height", h)), int(video.get("width", w)))
        return (h, w), padded, out

    def _to_masks(self, mlog, sizes):
        (h, w), padded, out = sizes
        return mask_logits_to_masks(mlog, padded, (h, w), out, self.test_mask_resize)

    @torch.no_grad()
    def inference_video(self, video: Dict) -> Dict:
        """Whole-video (or, with ``CLIP_MATCHING``, clip-by-clip) inference -> video-level
        predictions with per-frame RLE masks at the original size."""
        if self.clip_matching:
            return self.inference_clips(video)
        frames = video["image"]
        num = len(frames)
        sizes = self._sizes(video)
        (h, w), _, (out_h, out_w) = sizes
        enc = self._encode_video_frames(frames, list(range(num)))
        mask_feats = torch.cat([e[4] for e in enc])
        dec, last, probs = self._decode(enc)
        del enc
        scores, labels, queries = select_predictions(probs, self.max_dets_per_video,
                                                     self.multi_cls_on, self.apply_cls_thres,
                                                     self.test_selection)
        tracks = [[] for _ in range(len(queries))]
        image_size = torch.tensor([w, h], dtype=torch.float32, device=self.device)
        if len(queries):
            # a query kept with several classes has its masks computed and encoded once
            uniq, inverse = torch.unique(queries, return_inverse=True)
            q = dec["hs"][last][0, uniq]
            centres = dec["references"][last][0, :, uniq, :2].transpose(0, 1)
            chunk = self.infer_frame_chunk if self.infer_frame_chunk > 0 else num
            per_query = [[] for _ in range(len(uniq))]
            for s in range(0, num, chunk):
                e = min(s + chunk, num)
                mlog = self.mask_head(q, mask_feats[s:e], centres[:, s:e], image_size)
                for i, rles in enumerate(masks_to_rle_tracks(self._to_masks(mlog, sizes))):
                    per_query[i].extend(rles)
            tracks = [per_query[int(i)] for i in inverse]
        return make_video_output(video.get("video_id", -1), out_h, out_w, scores.tolist(),
                                 labels.tolist(), tracks)

    @torch.no_grad()
    def inference_clips(self, video: Dict) -> Dict:
        """VNext clip-matching inference with memory flat in the video length.

        Each window of ``CLIP_LENGTH`` frames (step ``CLIP_STRIDE``) is decoded on its own; the
        ``TEST.MAX_DETS_PER_VIDEO`` queries with the best class probability are linked to earlier
        tracks by sIoU on the overlapping frames (:class:`ClipTracker`). Encoder outputs are
        cached only for frames a later clip still needs, and finished frames are encoded to RLE
        at once. When one clip covers the video the result equals :meth:`inference_video`.
        """
        frames = video["image"]
        num = len(frames)
        sizes = self._sizes(video)
        (h, w), _, (out_h, out_w) = sizes
        image_size = torch.tensor([w, h], dtype=torch.float32, device=self.device)
        windows = clip_windows(num, self.clip_length, self.clip_stride)
        empty = masks_to_rle_tracks(torch.zeros(1, 1, out_h, out_w, dtype=torch.bool))[0][0]

        def encode(logits):
            return [r[0] for r in masks_to_rle_tracks(self._to_masks(logits, sizes))]

        tracker = ClipTracker(num, self.num_classes, encode, empty, history=self.clip_length)
        cache: Dict[int, tuple] = {}  # frame -> its encoder outputs (a 1-frame chunk tuple)
        for k, (start, end) in enumerate(windows):
            for f in [f for f in cache if f < start]:
                del cache[f]
            todo = [f for f in range(start, end) if f not in cache]
            if todo:
                for e in self._encode_video_frames(frames, todo):
                    n = e[0].shape[0]
                    for j in range(n):
                        cache[todo.pop(0)] = (e[0][j:j + 1], e[1], e[2][j:j + 1],
                                              e[3][j:j + 1], e[4][j:j + 1])
            enc = [cache[f] for f in range(start, end)]
            dec, last, probs = self._decode(enc)
            k_top = min(self.max_dets_per_video, probs.shape[0])
            queries = probs.max(1)[0].topk(k_top)[1]  # VNext inference_clip: top-10 queries
            q = dec["hs"][last][0, queries]
            centres = dec["references"][last][0, :, queries, :2].transpose(0, 1)
            mask_feats = torch.cat([e[4] for e in enc])
            chunk = self.infer_frame_chunk if self.infer_frame_chunk > 0 else end - start
            mlog = torch.cat([self.mask_head(q, mask_feats[s:s + chunk], centres[:, s:s + chunk],
                                             image_size)
                              for s in range(0, end - start, chunk)], 1)
            tracker.add_clip(range(start, end), probs[queries].cpu(), mlog.float().cpu())
            tracker.finalize(windows[k + 1][0] if k + 1 < len(windows) else num)
        track_probs, tracks = tracker.result()
        # VNext keeps every track (its clip_matching_postprocess has no top-k); topk_pairs keeps
        # the top TEST.MAX_DETS_PER_VIDEO (track, class) pairs
        k = len(tracks) if self.test_selection == "vnext" else self.max_dets_per_video
        scores, labels, idx = select_predictions(track_probs, k, self.multi_cls_on,
                                                 self.apply_cls_thres, self.test_selection)
        return make_video_output(video.get("video_id", -1), out_h, out_w, scores.tolist(),
                                 labels.tolist(), [tracks[int(i)] for i in idx])


if "SeqFormer" not in META_ARCH_REGISTRY:
    # VNext YAMLs say META_ARCHITECTURE: "SeqFormer"; only claim the name if it is free.
    META_ARCH_REGISTRY._do_register("SeqFormer", WSSeqFormer)

"""``WSVidEoMT``: VidEoMT (encoder-only online VIS) as a detectron2 meta-architecture.

Training (clips of T frames): per-frame predictions, temporally consistent Hungarian matching
(each track matched at its first visible frame, pairs reused on all frames), CE / BCE / Dice
losses (2 / 5 / 5, no-object 0.1) on 12 544 importance-sampled points, auxiliary losses on the
predictions made before the segmenter blocks, gradients through the query propagation.

Differences from the official code (tue-mps/videomt), all deliberate:

* frame outputs are stacked clip-major, fixing upstream's time-major/batch-major mix-up that
  only gave correct losses with one clip per GPU;
* ``AUX_LOSS_MODE="parity"`` (default) reproduces upstream's effective supervision, where the
  prediction made before the last segmenter block is computed but its loss has no weight; here
  it is simply not computed. ``"all"`` supervises every block;
* inference streams frames (``WINDOW_SIZE`` per call) and keeps only per-query logit sums and an
  exact compact low-resolution code of each frame's non-empty masks; only the top-k masks are
  resized and RLE-encoded, after the last frame (same output as resizing every mask).

Inference: class logits averaged over frames per query, softmax without no-object, flattened
top-k over queries x classes, masks = logits > 0 after bilinear resizes (padded input -> crop ->
original size). Output format: ``docs/CONTRACTS.md``.
"""

import logging
from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import ImageList
from torch import nn

from wsovvis.modeling.backbone.dinov2_weights import load_dinov2_weights
from wsovvis.modeling.set_prediction import (
    SetCriterion,
    TemporallyConsistentMatcher,
    aux_weight_dict,
    build_mask_matcher,
)

from .dinov3 import load_dinov3_weights
from .inference import VideoStream
from .network import VidEoMTNetwork
from .vit import ViTEncoder, build_vit, is_dinov3

__all__ = ["WSVidEoMT"]

logger = logging.getLogger(__name__)

AUX_LOSS_MODES = ("parity", "all")


@META_ARCH_REGISTRY.register()
class WSVidEoMT(nn.Module):
    """VidEoMT meta-architecture (network at ``self.backbone``, loss at ``self.criterion``).

    Args:
        backbone: the :class:`VidEoMTNetwork` (named ``backbone`` as in the official checkpoints).
        criterion: a :class:`SetCriterion` with a :class:`TemporallyConsistentMatcher`.
        num_aux: auxiliary predictions supervised during training (before segmenter blocks
            ``0 .. num_aux - 1``).
        pixel_mean: per-channel mean in the order of ``input_format``.
        pixel_std: per-channel std in the order of ``input_format``.
        input_format: "RGB" or "BGR" (channel order of the input images; the ViT gets RGB).
        size_divisibility: inputs are zero-padded bottom/right to a multiple of this.
        test_topk: tracks kept per video.
        window_size: frames per network call at test time.
        test_code_memory_mb: RAM (MiB) for a video's per-frame mask codes at test time before
            they move to a temporary file (the output does not depend on it).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: VidEoMTNetwork,
        criterion: SetCriterion,
        num_aux: int,
        pixel_mean,
        pixel_std,
        input_format: str = "RGB",
        size_divisibility: int = 32,
        test_topk: int = 10,
        window_size: int = 1,
        test_code_memory_mb: float = 64.0,
    ):
        super().__init__()
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR for VidEoMT, got {input_format}")
        self.backbone = backbone
        self.criterion = criterion
        self.num_aux = num_aux
        self.input_format = input_format
        self.size_divisibility = size_divisibility
        self.test_topk = test_topk
        self.window_size = max(1, window_size)
        self.test_code_memory_bytes = int(test_code_memory_mb * 2**20)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        c = cfg.MODEL.VIDEOMT
        if c.AUX_LOSS_MODE not in AUX_LOSS_MODES:
            raise ValueError(f"MODEL.VIDEOMT.AUX_LOSS_MODE must be one of {AUX_LOSS_MODES}")
        vit = build_vit(
            c.MODEL_NAME,
            c.IMG_SIZE,
            c.PATCH_SIZE,
            embed_dim=c.EMBED_DIM,
            depth=c.DEPTH,
            num_heads=c.NUM_HEADS,
            num_reg_tokens=c.NUM_REG_TOKENS,
            drop_path_rate=c.DROP_PATH_RATE,
            rope_rescale=c.ROPE_RESCALE,
        )
        if c.VIT_WEIGHTS and is_dinov3(c.MODEL_NAME):
            load_dinov3_weights(vit, c.VIT_WEIGHTS)
        elif c.VIT_WEIGHTS:
            load_dinov2_weights(vit, c.VIT_WEIGHTS, c.MODEL_NAME, "MODEL.VIDEOMT.VIT_WEIGHTS")
        network = VidEoMTNetwork(
            ViTEncoder(vit), c.SEGMENTER_BLOCKS, c.NUM_QUERIES, c.NUM_CLASSES, c.NORM_QUERIES
        )
        num_aux = 0
        if c.DEEP_SUPERVISION:
            num_blocks = len(c.SEGMENTER_BLOCKS)
            num_aux = num_blocks - 1 if c.AUX_LOSS_MODE == "parity" else num_blocks
        weights = {
            "loss_ce": c.CLASS_WEIGHT,
            "loss_mask": c.MASK_WEIGHT,
            "loss_dice": c.DICE_WEIGHT,
        }
        matcher = TemporallyConsistentMatcher(
            build_mask_matcher(c.CLASS_WEIGHT, c.MASK_WEIGHT, c.DICE_WEIGHT, c.TRAIN_NUM_POINTS),
            num_frames=cfg.INPUT.SAMPLING_FRAME_NUM,
        )
        criterion = SetCriterion(
            c.NUM_CLASSES,
            matcher,
            aux_weight_dict(weights, num_aux),
            eos_coef=c.NO_OBJECT_WEIGHT,
            losses=("labels", "masks"),
            num_points=c.TRAIN_NUM_POINTS,
            oversample_ratio=c.OVERSAMPLE_RATIO,
            importance_sample_ratio=c.IMPORTANCE_SAMPLE_RATIO,
        )
        return {
            "backbone": network,
            "criterion": criterion,
            "num_aux": num_aux,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "input_format": cfg.INPUT.FORMAT,
            "size_divisibility": c.SIZE_DIVISIBILITY,
            "test_topk": c.TEST_TOPK,
            "window_size": c.WINDOW_SIZE,
            "test_code_memory_mb": c.TEST_CODE_MEMORY_MB,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, frames: List[torch.Tensor]) -> ImageList:
        """Normalise uint8 frames, convert to RGB, pad to ``size_divisibility``.

        Args:
            frames: (3, H, W) uint8 tensors in ``input_format``.

        Returns:
            One ImageList (bottom/right zero padding; ``image_sizes`` before padding).
        """
        images = [(f.to(self.device).float() - self.pixel_mean) / self.pixel_std for f in frames]
        if self.input_format == "BGR":
            images = [x.flip(0) for x in images]
        return ImageList.from_tensors(images, self.size_divisibility)

    def forward(self, batched_inputs: List[Dict]):
        """Training: dict of weighted losses. Eval: one output dict per video (CONTRACTS.md).

        Args:
            batched_inputs: mapper outputs (one per clip/video), each with ``image`` (list or
                lazy sequence of (3, H, W) uint8 tensors) and, for training, ``instances`` (one
                ``Instances`` per frame with ``gt_ids``, ``gt_classes``, ``gt_masks``).

        Returns:
            Training: ``{loss name: weighted loss}``. Eval: a list of per-video dicts.
        """
        if not self.training:
            return [self.inference_video(v) for v in batched_inputs]
        num_frames = len(batched_inputs[0]["image"])
        if any(len(v["image"]) != num_frames for v in batched_inputs):
            raise ValueError("all training clips of a batch must have the same number of frames")
        frames = [f for v in batched_inputs for f in v["image"]]
        images = self.preprocess_image(frames)
        outputs = self.backbone(images.tensor, num_frames=num_frames, num_aux=self.num_aux)
        targets = self.prepare_targets(batched_inputs, images)
        losses = self.criterion(
            self.per_frame(outputs), targets, match_kwargs={"num_frames": num_frames}
        )
        return self.criterion.weight(losses)

    @staticmethod
    def per_frame(outputs: Dict) -> Dict:
        """(B, T, ...) network outputs -> per-frame (B * T, ...) layout, clip-major.

        Args:
            outputs: the network's output dict (with ``aux_outputs``).

        Returns:
            ``{"pred_logits", "pred_masks", "aux_outputs"}`` with the first two axes merged.
        """

        def flat(d):
            return {k: d[k].flatten(0, 1) for k in ("pred_logits", "pred_masks")}

        out = flat(outputs)
        out["aux_outputs"] = [flat(a) for a in outputs["aux_outputs"]]
        return out

    def prepare_targets(self, batched_inputs: List[Dict], images: ImageList) -> List[Dict]:
        """Per-frame targets, clip-major: ``labels`` (G,), ``ids`` (G,), ``masks`` (G, Hp, Wp).

        G = tracks visible on at least one frame of the clip; a track absent from a frame has id
        -1 and an empty mask there (it is still supervised with its class on that frame, as
        upstream).

        Args:
            batched_inputs: training mapper outputs (``instances`` per frame).
            images: the padded network input (its size is the target mask size).

        Returns:
            One target dict per frame, frame t of clip b at ``b * T + t``.
        """
        h_pad, w_pad = images.tensor.shape[-2:]
        targets = []
        for video in batched_inputs:
            insts = [i.to(self.device) for i in video["instances"]]
            ids = torch.stack([i.gt_ids for i in insts])  # (T, G)
            valid = (ids != -1).any(0)
            labels = insts[0].gt_classes[valid].long()
            for t, inst in enumerate(insts):
                m = inst.gt_masks.tensor[valid]
                masks = torch.zeros(
                    (m.shape[0], h_pad, w_pad), dtype=torch.float, device=self.device
                )
                masks[:, : m.shape[1], : m.shape[2]] = m
                targets.append({"labels": labels, "ids": ids[t][valid], "masks": masks})
        return targets

    def new_stream(self, height: int, width: int, video_id: int = -1) -> VideoStream:
        """Start streaming inference over one video.

        Args:
            height: original video height (output masks).
            width: original video width.
            video_id: dataset video id for the output dict.

        Returns:
            A fresh :class:`VideoStream` (no query memory from earlier videos).
        """
        return VideoStream(self, height, width, video_id)

    @torch.no_grad()
    def stream_video(self, video: Dict) -> VideoStream:
        """Stream one video through the network, ``window_size`` frames per call.

        Args:
            video: test mapper output (``image`` sequence, ``height``, ``width``,
                ``video_id``); without ``height``/``width`` the outputs are at the input size.

        Returns:
            The :class:`VideoStream` after its last frame, not finalized yet (its accumulated
            tracks can still be inspected, e.g. by the memory benchmark).
        """
        frames = video["image"]
        if "height" in video and "width" in video:
            height, width = video["height"], video["width"]
        else:  # no original size given: outputs at the input size
            height, width = frames[0].shape[-2:] if len(frames) else (0, 0)
        stream = self.new_stream(height, width, video.get("video_id", -1))
        for start in range(0, len(frames), self.window_size):
            stream.step(
                [frames[i] for i in range(start, min(len(frames), start + self.window_size))]
            )
        return stream

    @torch.no_grad()
    def inference_video(self, video: Dict) -> Dict:
        """Online inference over one video (:meth:`stream_video`, then the final tracks).

        Args:
            video: see :meth:`stream_video`.

        Returns:
            The per-video output dict of ``docs/CONTRACTS.md``.
        """
        return self.stream_video(video).finalize()

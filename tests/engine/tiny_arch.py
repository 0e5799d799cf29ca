"""A tiny, fully deterministic video segmenter used by the engine tests (imported via ``imports``).

It is a real (if minimal) model: a 2-layer conv net predicting a per-pixel foreground logit,
trained with BCE against the union of the clip's GT masks (mean over the batch, so DDP gradient
averaging equals a single process with the same global batch). At test time it returns one track
per video (the foreground) in the model-output contract of ``docs/CONTRACTS.md``.
"""
import torch
import torch.nn.functional as F
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

from wsovvis.utils.rle import encode_mask


@META_ARCH_REGISTRY.register()
class TinyVideoSegmenter(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 1, 3, padding=1)
        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN).view(3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(3, 1, 1), False)

    @property
    def device(self):
        return self.pixel_mean.device

    def _logits(self, image: torch.Tensor) -> torch.Tensor:
        x = (image.to(self.device).float() - self.pixel_mean) / self.pixel_std
        return self.head(self.backbone(x[None]))[0, 0]

    def forward(self, batched_inputs):
        if not self.training:
            return [self._inference(v) for v in batched_inputs]
        losses = []
        for video in batched_inputs:
            for image, inst in zip(video["image"], video["instances"]):
                logits = self._logits(image)
                masks = inst.gt_masks.tensor
                target = masks.any(0).float() if len(masks) else torch.zeros_like(logits)
                losses.append(F.binary_cross_entropy_with_logits(logits, target.to(logits)))
        return {"loss_fg": torch.stack(losses).mean()}

    @torch.no_grad()
    def _inference(self, video):
        h, w = video["height"], video["width"]
        rles = []
        for image in video["image"]:
            logits = self._logits(image)
            mask = F.interpolate(logits[None, None], size=(h, w), mode="bilinear")[0, 0] > 0
            rles.append(encode_mask(mask.cpu().numpy()) if mask.any() else None)
        return {
            "video_id": video["video_id"], "height": h, "width": w,
            "pred_scores": [0.9], "pred_labels": [0], "pred_segmentations": [rles],
        }


def ddp_worker(config, out_dir):
    """Train with :class:`wsovvis.engine.Trainer` on this rank and save this rank's weights."""
    import os

    from detectron2.utils import comm

    from wsovvis.engine.setup import build_cfg, normalize_config, setup_process
    from wsovvis.engine.trainer import Trainer

    cfg = build_cfg(normalize_config(config), check=False)
    setup_process(cfg)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    torch.save(model.state_dict(), os.path.join(out_dir, f"rank{comm.get_rank()}.pt"))

"""Name class-agnostic video tubes with a frozen CLIP: mask pooling + temporal aggregation.

Per frame the frame is encoded once; every tube present on it is mask-pooled on the frame's dense
map (mask resized to the feature grid by area averaging, i.e. each cell weighted by the fraction
of it the mask covers), passed through the CLIP image head and L2-normalised. Over the frames where
the tube is present, embeddings are averaged with the mask area as weight (``aggregation =
"embedding"``), or per-frame class probabilities are (``"probability"``). Class probabilities:
softmax of cosine x CLIP's ``exp(logit_scale)`` (clamped at 100), max over a category's names.
Final score ``p_class ** a * s_object ** (1 - a)``; each tube is emitted with its top-k labels,
at most ``max_dets`` detections per video.

Streaming: only per-tube running sums are kept (O(tubes x D)), never a video's dense maps, so
memory is flat in the video length.
"""
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable

from wsovvis.utils.rle import CorruptRLEError, decode_segmentation

from .clip_model import DenseClip, load_clip
from .text_bank import VILD_TEMPLATES, build_text_bank, class_logits
from .vocabulary import Vocabulary, load_vocabulary

__all__ = ["TubeClassifier"]


def _decode(seg, height: int, width: int, tube: int, frame: int) -> np.ndarray:
    """A checked decode (:func:`decode_segmentation`): a corrupt RLE names the tube and frame."""
    try:
        return decode_segmentation(seg, height, width)
    except CorruptRLEError as e:
        raise CorruptRLEError(f"tube {tube}, frame {frame}: {e}") from None


class TubeClassifier:
    """Open-vocabulary classifier of class-agnostic tubes.

    Args:
        clip: the frozen :class:`DenseClip`.
        vocabulary: the categories (class index = position).
        text_embeddings: (M, D) normalised name embeddings; ``owner`` (M,) their category index.
        score_exponent: ``a`` of ``p_class ** a * s_object ** (1 - a)``.
        topk: labels emitted per tube.
        max_dets: detections kept per video (by final score).
        frames_per_batch: frames encoded per CLIP call.
        aggregation: "embedding" (area-weighted mean of frame embeddings, then classify) or
            "probability" (area-weighted mean of per-frame class probabilities).
    """

    @configurable
    def __init__(self, *, clip: DenseClip, vocabulary: Vocabulary, text_embeddings: torch.Tensor,
                 owner: torch.Tensor, score_exponent: float = 0.5, topk: int = 5,
                 max_dets: int = 100, frames_per_batch: int = 4, aggregation: str = "embedding"):
        if aggregation not in ("embedding", "probability"):
            raise ValueError(f"aggregation must be 'embedding' or 'probability', not {aggregation!r}")
        if not 0.0 <= score_exponent <= 1.0:
            raise ValueError(f"score exponent must lie in [0, 1], got {score_exponent}")
        self.clip = clip
        self.vocabulary = vocabulary
        self.text = text_embeddings.to(clip.device)
        self.owner = owner.to(clip.device)
        self.score_exponent = float(score_exponent)
        self.topk = max(1, min(int(topk), len(vocabulary)))
        self.max_dets = int(max_dets)
        self.frames_per_batch = max(1, int(frames_per_batch))
        self.aggregation = aggregation

    @classmethod
    def from_config(cls, cfg, vocabulary: Optional[Vocabulary] = None, device=None):
        """Build from ``cfg.MODEL.OPEN_VOCAB``; ``vocabulary`` overrides its ``VOCABULARY``."""
        ov = cfg.MODEL.OPEN_VOCAB
        if vocabulary is None:
            if not ov.VOCABULARY:
                raise ValueError("MODEL.OPEN_VOCAB.VOCABULARY is empty and no vocabulary was given")
            vocabulary = load_vocabulary(ov.VOCABULARY)
        device = torch.device(device or cfg.MODEL.DEVICE)
        model, tokenizer = load_clip(ov.CLIP_MODEL, ov.CLIP_WEIGHTS, device=device)
        clip = DenseClip(model, input_size=ov.INPUT_SIZE, amp=ov.AMP).to(device)
        templates = tuple(ov.TEMPLATES) or VILD_TEMPLATES
        text, owner = build_text_bank(clip, tokenizer, vocabulary, model_name=ov.CLIP_MODEL,
                                      weights=ov.CLIP_WEIGHTS, templates=templates,
                                      cache_dir=ov.CACHE_DIR)
        return {"clip": clip, "vocabulary": vocabulary, "text_embeddings": text, "owner": owner,
                "score_exponent": ov.SCORE_EXPONENT, "topk": ov.TOPK, "max_dets": ov.MAX_DETS,
                "frames_per_batch": ov.FRAMES_PER_BATCH, "aggregation": ov.AGGREGATION}

    # ------------------------------------------------------------------------------------------
    def _probs(self, emb: torch.Tensor) -> torch.Tensor:
        logits = class_logits(F.normalize(emb, dim=-1), self.text, self.owner, len(self.vocabulary),
                              self.clip.logit_scale)
        return logits.softmax(dim=-1)

    @torch.no_grad()
    def classify_tubes(self, read_frame: Callable[[int], np.ndarray], tubes: Sequence[Sequence],
                       height: int, width: int) -> torch.Tensor:
        """Class probabilities of every tube of one video, streaming over its frames.

        Args:
            read_frame: ``t -> (H, W, 3)`` uint8 RGB frame (only called for frames with a tube).
            tubes: per tube, one compressed RLE (or None) per frame.
            height: frame height of the masks.
            width: frame width of the masks.

        Returns:
            (num_tubes, K) probabilities; rows of tubes never present are NaN.
        """
        n, k = len(tubes), len(self.vocabulary)
        length = max((len(t) for t in tubes), default=0)
        dim = self.text.shape[1] if self.aggregation == "embedding" else k
        sums = torch.zeros(n, dim, dtype=torch.float64)
        weights = torch.zeros(n, dtype=torch.float64)
        present = [[i for i, t in enumerate(tubes) if f < len(t) and t[f] is not None] for f in range(length)]
        frames = [f for f in range(length) if present[f]]
        for start in range(0, len(frames), self.frames_per_batch):
            batch = frames[start:start + self.frames_per_batch]
            imgs = torch.stack([torch.from_numpy(np.array(read_frame(f))).permute(2, 0, 1)
                                for f in batch])
            feats = self.clip.dense(imgs)  # (B, C, h, w)
            pooled, owners, areas = [], [], []
            for b, f in enumerate(batch):
                masks = np.stack([_decode(tubes[i][f], height, width, i, f) for i in present[f]])
                m = torch.from_numpy(masks).to(feats.device, torch.float32)
                w = F.adaptive_avg_pool2d(m[:, None], feats.shape[-2:]).flatten(1)  # (n_f, h*w)
                keep = w.sum(1) > 0
                if not keep.any():
                    continue
                w = w[keep]
                fmap = feats[b].flatten(1)  # (C, h*w)
                pooled.append((w @ fmap.T) / w.sum(1, keepdim=True))
                owners += [i for i, kp in zip(present[f], keep.tolist()) if kp]
                areas.append(m.flatten(1).sum(1)[keep])
            if not pooled:
                continue
            emb = F.normalize(self.clip.head(torch.cat(pooled)), dim=-1)
            vals = emb if self.aggregation == "embedding" else self._probs(emb)
            area = torch.cat(areas).double().cpu()
            idx = torch.tensor(owners, dtype=torch.long)
            sums.index_add_(0, idx, vals.double().cpu() * area[:, None])
            weights.index_add_(0, idx, area)
            del feats
        out = torch.full((n, k), float("nan"))
        ok = weights > 0
        if ok.any():
            mean = (sums[ok] / weights[ok, None]).float().to(self.text.device)
            probs = self._probs(mean) if self.aggregation == "embedding" else mean
            out[ok] = probs.cpu()
        return out

    def name_tubes(self, read_frame: Callable[[int], np.ndarray], tubes: Sequence[Sequence],
                   scores: Sequence[float], height: int, width: int) -> List[tuple]:
        """Top-k named detections of one video.

        Args:
            read_frame: see :meth:`classify_tubes`.
            tubes: per tube, one RLE (or None) per frame.
            scores: objectness score of every tube (in [0, 1]).
            height: mask height.
            width: mask width.

        Returns:
            Up to ``max_dets`` ``(tube_index, category_id, score)``, best first.
        """
        probs = self.classify_tubes(read_frame, tubes, height, width)
        a = self.score_exponent
        dets = []
        ids = self.vocabulary.ids
        for i, row in enumerate(probs):
            if torch.isnan(row).any():
                continue
            obj = min(max(float(scores[i]), 0.0), 1.0)
            top = torch.topk(row, self.topk)
            for p, c in zip(top.values.tolist(), top.indices.tolist()):
                dets.append((i, ids[c], (p ** a) * (obj ** (1.0 - a))))
        dets.sort(key=lambda d: -d[2])
        return dets[: self.max_dets]

"""Clip-by-clip SeqFormer inference with bounded memory (``MODEL.SeqFormer.CLIP_MATCHING``).

The clip windows, the per-clip top-k queries, the sIoU Hungarian matching of a clip's instances
to the tracks of the clips it overlaps (threshold 0.01), the averaging of mask logits over the
clips covering a frame and of class probabilities over the clips a track appears in are those of
VNext (``seqformer.py`` + ``models/clip_output.py``, taken from IFC). What differs is the storage:
VNext keeps ``T x 120 x T x h x w`` float buffers (O(T^2) in the video length T); here only the
clips that can still overlap a later clip (at most ``CLIP_LENGTH`` of them) are kept at mask
resolution, and a frame that no later clip covers is finalised at once into per-track RLEs, so
memory stays flat in T (plus the RLEs themselves). VNext raises once more than 120 tracks exist;
here the number of tracks is unbounded.
"""
from collections import deque
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from ..set_prediction.matcher import CostTerm, HungarianMatcher

__all__ = ["clip_windows", "ClipTracker", "stacked_siou"]


def clip_windows(num_frames: int, length: int, stride: int) -> List[Tuple[int, int]]:
    """VNext's clip windows ``[start, end)``: starts ``0, stride, ...``; the first window reaching
    the last frame is shifted to end exactly there and is the last one.

    Args:
        num_frames: frames of the video (T >= 1).
        length: ``CLIP_LENGTH`` (>= 1).
        stride: ``CLIP_STRIDE`` (>= 1).
    """
    if num_frames < 1 or length < 1 or stride < 1:
        raise ValueError(f"clip windows need num_frames, CLIP_LENGTH, CLIP_STRIDE >= 1, got "
                         f"{num_frames}, {length}, {stride}")
    windows = []
    for start in range(0, num_frames, stride):
        end = start + length
        if end >= num_frames:
            windows.append((max(0, num_frames - length), num_frames))
            break
        windows.append((start, end))
    return windows


def stacked_siou(new_probs: torch.Tensor, saved: Sequence[Tuple[torch.Tensor, torch.Tensor]]
                 ) -> torch.Tensor:
    """VNext's clip sIoU between new instances and saved tracks, averaged over saved clips.

    Args:
        new_probs: ``[N_i, F, h, w]`` mask probabilities of the new clip on the F shared frames.
        saved: per saved clip, ``(probs [N_s, F, h, w], valid [N_s, F] bool)``: the masks each
            track had in that clip on the shared frames, and whether it had one.

    Returns:
        ``[N_s, N_i]``: per clip, sum of intersections over sum of unions across the valid shared
        frames; averaged over the clips in which the track has a valid shared frame.
    """
    a = new_probs.flatten(2)  # N_i, F, P
    total, clips = None, None
    for probs, valid in saved:
        b = probs.flatten(2) * valid[..., None]  # N_s, F, P (zero where invalid)
        v = valid.float()
        inter = torch.einsum("sfp,ifp->si", b, a)
        union = b.sum((1, 2))[:, None] + v @ a.sum(2).T - inter
        siou = inter / (union + 1e-6)
        has = (v.sum(1) > 0).float()[:, None]
        total = siou if total is None else total + siou
        clips = has if clips is None else clips + has
    return total / (clips + 1e-6)


class ClipTracker:
    """Streaming VNext clip matching for one video.

    Feed clips in order with :meth:`add_clip`, then call :meth:`finalize` with the first frame of
    the next clip (or T after the last): frames before it are averaged over the clips that covered
    them, turned into RLEs by ``encode`` and their mask logits dropped. :meth:`result` returns the
    per-track class probabilities and RLE lists.

    Args:
        num_frames: T.
        num_classes: K.
        encode: ``encode(logits [n, 1, h, w]) -> n RLE dicts`` (resize to the original size,
            binarise, encode).
        empty_rle: RLE of an empty frame at the original size (frames a track is absent from;
            VNext's average over zero clips is NaN, i.e. an empty mask).
        match_threshold: minimum sIoU to continue a track (VNext: 0.01).
        history: saved clips a new clip is compared with (VNext: the clip length).
    """

    def __init__(self, num_frames: int, num_classes: int,
                 encode: Callable[[torch.Tensor], List[Dict]], empty_rle: Dict,
                 match_threshold: float = 0.01, history: int = 5):
        self.num_frames, self.num_classes = num_frames, num_classes
        self.encode, self.empty_rle = encode, empty_rle
        self.match_threshold = match_threshold
        self.saved = deque(maxlen=max(history, 1))  # (frame_idx, track ids, mask probs)
        self.cls_sum: List[torch.Tensor] = []
        self.cls_count: List[int] = []
        self.open: Dict[int, Dict[int, List]] = {}  # frame -> track -> [logit sum, count]
        self.rles: List[Dict[int, Dict]] = []  # track -> frame -> RLE
        self.done = 0  # frames < done are finalised
        self.matcher = HungarianMatcher([CostTerm("neg_siou", 1.0, lambda p, t: -p["siou"])])

    @property
    def num_tracks(self) -> int:
        return len(self.cls_sum)

    def _match(self, frame_idx: Sequence[int], probs: torch.Tensor) -> Dict[int, int]:
        """New-instance index -> existing track id, by sIoU on the shared frames (VNext)."""
        new_frames = {f: i for i, f in enumerate(frame_idx)}
        seen = {f for c in self.saved for f in c[0]}
        shared = [f for f in frame_idx if f in seen]
        tracks = sorted({t for c in self.saved for t in c[1]})
        if not shared or not tracks or len(probs) == 0:
            return {}
        row = {t: r for r, t in enumerate(tracks)}
        new = probs[:, [new_frames[f] for f in shared]]
        saved = []
        for frames, ids, p in self.saved:
            pos = {f: i for i, f in enumerate(frames)}
            full = new.new_zeros(len(tracks), len(shared), *new.shape[-2:])
            valid = torch.zeros(len(tracks), len(shared), dtype=torch.bool)
            cols = [j for j, f in enumerate(shared) if f in pos]
            if cols and ids:
                src = torch.tensor([pos[shared[j]] for j in cols])
                r = torch.tensor([row[t] for t in ids])[:, None]
                c = torch.tensor(cols)[None]
                full[r, c] = p[:, src]
                valid[r, c] = True
            saved.append((full, valid.to(new.device)))
        siou = stacked_siou(new, saved)  # N_s, N_i
        above = siou > self.match_threshold
        siou = siou * above.float()
        labels = torch.arange(len(probs))
        rows, cols = self.matcher.match_one({"siou": siou}, {"labels": labels})
        return {int(c): tracks[int(r)] for r, c in zip(rows, cols) if above[r, c]}

    def add_clip(self, frame_idx: Sequence[int], cls_probs: torch.Tensor,
                 mask_logits: torch.Tensor) -> List[int]:
        """Match one clip's instances to the tracks and accumulate them.

        Args:
            frame_idx: the clip's frames (consecutive, starting at or after the last finalised).
            cls_probs: ``[n, K]`` class probabilities of the clip's kept queries.
            mask_logits: ``[n, L, h, w]`` their mask logits at mask resolution (same h, w for
                every clip of the video).

        Returns:
            the track id of each instance.
        """
        frame_idx = list(frame_idx)
        if frame_idx[0] < self.done:
            raise ValueError(f"clip starting at frame {frame_idx[0]} overlaps frames already "
                             f"finalised (< {self.done})")
        probs = mask_logits.sigmoid()
        matched = self._match(frame_idx, probs)
        ids = []
        for i in range(len(cls_probs)):
            t = matched.get(i)
            if t is None:
                t = self.num_tracks
                self.cls_sum.append(torch.zeros_like(cls_probs[i]))
                self.cls_count.append(0)
                self.rles.append({})
            self.cls_sum[t] = self.cls_sum[t] + cls_probs[i]
            self.cls_count[t] += 1
            ids.append(t)
            for j, f in enumerate(frame_idx):
                acc = self.open.setdefault(f, {}).setdefault(t, [0.0, 0])
                acc[0] = acc[0] + mask_logits[i, j]
                acc[1] += 1
        self.saved.append((frame_idx, ids, probs))
        return ids

    def finalize(self, upto: int) -> None:
        """Average, encode and drop the mask logits of every open frame before ``upto``."""
        for f in sorted(f for f in self.open if f < upto):
            per_track = self.open.pop(f)
            tracks = sorted(per_track)
            logits = torch.stack([per_track[t][0] / per_track[t][1] for t in tracks])
            for t, rle in zip(tracks, self.encode(logits[:, None])):
                self.rles[t][f] = rle
        self.done = max(self.done, upto)

    def result(self) -> Tuple[torch.Tensor, List[List[Dict]]]:
        """``(class probs [N, K] averaged over each track's clips, N lists of T RLEs)``; call
        after ``finalize(T)``."""
        if self.open:
            raise RuntimeError(f"frames {sorted(self.open)} not finalised")
        if not self.cls_sum:
            return torch.zeros(0, self.num_classes), []
        probs = torch.stack([s / c for s, c in zip(self.cls_sum, self.cls_count)])
        tracks = [[r.get(f, self.empty_rle) for f in range(self.num_frames)] for r in self.rles]
        return probs, tracks

"""Online (streaming) VIS inference for VidEoMT: per frame only low-resolution work.

Query index = track id, so a video needs only the per-query class-logit sums and, per frame,
enough of each query's mask logits to reproduce its final mask. The top-k tracks are known only
after the last frame, and any query may still enter them (a frame's class logits are bounded only
by the class-head and final-LayerNorm weight norms, far above typical values, and a stream's
length is unknown), so each frame keeps a compact, EXACT low-resolution code of every query with
a positive logit (:class:`CompactMaskLogits`); after the last frame only the top-k queries are
decoded, resized to the original size (bilinear to the padded input, crop, bilinear to the
original, ``> 0``) and RLE-encoded. The output is bit-identical to resizing and thresholding
every query on every frame.

Why the code is exact: both resizes are bilinear (``align_corners=False``) with non-negative
weights summing to 1, and an output pixel reads at most 3 x 3 consecutive low-resolution logits
(the padded input is exactly ``stride x`` the logits, so two neighbouring intermediate pixels
read rows/columns at most one apart). A low-resolution pixel whose every 3 x 3 window is
uniformly "positive" (``TINY < v < BIG``) or uniformly "non-positive" (finite ``v <= 0``) can
only enter sums whose sign its class already fixes, so it is stored as its sign; every other
pixel (near a sign change, or NaN/inf/denormal-small) is stored as its exact float32 value and
the same interpolation then sees the same numbers.

Memory: the codes of a video are appended to a :class:`FrameCodeStore`, which keeps them in RAM up
to ``max_memory_bytes`` (``MODEL.VIDEOMT.TEST_CODE_MEMORY_MB``) and then moves them to an unlinked
temporary file (``$TMPDIR``), so the peak RAM of a video does not grow with its length beyond the
output (the top-k tubes); :meth:`OnlineVISAccumulator.finalize` reads back only the top-k queries'
codes. A candidate set that is provably sufficient early does not exist for a stream of unknown
length (any query's mean logit can still overtake), so the codes are kept, but not in RAM.
"""

import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import msgspec
import numpy as np
import pycocotools.mask as mask_util
import torch

from wsovvis.modeling.set_prediction import (
    make_video_output,
    resize_mask_logits,
    topk_query_class_pairs,
)

__all__ = ["CompactMaskLogits", "FrameCodeStore", "OnlineVISAccumulator", "VideoStream"]

# positive values in (TINY, BIG) keep any convex combination of <= 16 of them positive in float32
TINY = 1e-30
BIG = 1e30


def _rle(binary: torch.Tensor) -> List[bytes]:
    """RLE counts of (N, h, w) bool masks."""
    arr = binary.permute(1, 2, 0).cpu().numpy().astype(np.uint8, order="F")
    return [r["counts"] for r in mask_util.encode(arr)]


def _unrle(counts: bytes, h: int, w: int) -> np.ndarray:
    return mask_util.decode({"size": [h, w], "counts": counts}).astype(bool)


def _near(b: torch.Tensor) -> torch.Tensor:
    """Pixels with a ``b`` pixel within Chebyshev distance 1 ((N, h, w) bool, separable OR)."""
    r = b.clone()
    r[:, 1:] |= b[:, :-1]
    r[:, :-1] |= b[:, 1:]
    c = r.clone()
    c[:, :, 1:] |= r[:, :, :-1]
    c[:, :, :-1] |= r[:, :, 1:]
    return c


def _needed(pos: torch.Tensor, special: Optional[torch.Tensor]) -> torch.Tensor:
    """Pixels whose exact value may matter: inside a 3x3 window that is mixed or has a special."""
    mixed = _near(pos) & _near(~pos)
    if special is not None:
        mixed |= _near(special)
    return _near(mixed)


class CompactMaskLogits:
    """Exact compact code of one frame's low-resolution mask logits for some queries.

    Stores, per query, the float32 values of the pixels that may decide a resized pixel's sign
    (see the module docstring) and, unless that is every pixel, the RLE of ``logits > 0``; the
    RLE of the stored-pixel set is kept only for a query with special values (otherwise it is
    recomputed from the sign map).

    Args:
        logits: (N, h, w) mask logits of the stored queries.
        queries: the N query indices.
    """

    def __init__(self, logits: torch.Tensor, queries: Sequence[int]):
        x = logits.float()
        self.device = x.device
        self.shape = tuple(x.shape[-2:])
        self.queries = {int(q): i for i, q in enumerate(queries)}
        n = x.shape[0]
        self.signs: List[Optional[bytes]] = [None] * n  # None: every value stored
        self.needed: List[Optional[bytes]] = [None] * n  # None: derived from the signs
        self.values: List[np.ndarray] = [np.empty(0, np.float32)] * n
        if n == 0:
            return
        pos = x > 0
        special = None
        lo, hi = torch.aminmax(x)
        if not (float(hi) < BIG and float(lo) > -BIG and not bool((pos & (x <= TINY)).any())):
            special = ~(((x > TINY) & (x < BIG)) | ((x <= 0) & (x > -float("inf"))))
        needed = _needed(pos, special)
        dense = needed.flatten(1).all(1).tolist()
        rows = [i for i in range(n) if dense[i]]
        if rows:
            for i, v in zip(rows, x[rows].flatten(1).cpu().numpy()):
                self.values[i] = v
        sparse = [i for i in range(n) if not dense[i]]
        if sparse:
            sub = needed[sparse]
            flat = x[sparse][sub].cpu().numpy()
            splits = np.cumsum(sub.flatten(1).sum(1).cpu().numpy())[:-1]
            for i, v, rle in zip(sparse, np.split(flat, splits), _rle(pos[sparse])):
                self.values[i], self.signs[i] = v, rle
                if special is not None and bool(special[i].any()):
                    self.needed[i] = _rle(needed[i : i + 1])[0]

    @classmethod
    def from_parts(cls, shape, device, parts: Dict[int, Tuple]) -> "CompactMaskLogits":
        """A code holding only some queries, from :meth:`to_record` parts.

        Args:
            shape: (h, w) of the low-resolution logits.
            device: where :meth:`decode` puts the logits.
            parts: ``{query: (signs RLE or None, needed RLE or None, float32 values bytes)}``.
        """
        code = cls(torch.empty(0, *shape), [])
        code.device = torch.device(device)
        code.queries = {int(q): i for i, q in enumerate(parts)}
        code.signs = [p[0] for p in parts.values()]
        code.needed = [p[1] for p in parts.values()]
        code.values = [np.frombuffer(p[2], dtype=np.float32).copy() for p in parts.values()]
        return code

    def to_record(self) -> Tuple[list, list]:
        """``(header, segments)``: header ``[h, w, queries, lengths]`` (three lengths per query:
        signs, needed, values; -1 for None) and the per-query byte segments (the values as
        views of the float32 arrays, not copies), ready for ``b"".join``."""
        lengths, segments = [], []
        for i in range(len(self.queries)):
            values = memoryview(np.ascontiguousarray(self.values[i], np.float32)).cast("B")
            for part in (self.signs[i], self.needed[i], values):
                lengths.append(-1 if part is None else len(part))
                segments.append(b"" if part is None else part)
        return [self.shape[0], self.shape[1], list(self.queries), lengths], segments

    def nbytes(self) -> int:
        """Bytes held by the code (RLE strings and values)."""
        rle = sum(len(c) for c in self.signs + self.needed if c)
        return rle + sum(v.nbytes for v in self.values)

    def decode(self, query: int) -> Optional[torch.Tensor]:
        """The (h, w) float32 logits (on the original device) that resize exactly like the
        stored ones, or None if the query was not stored (all logits <= 0)."""
        i = self.queries.get(int(query))
        if i is None:
            return None
        h, w = self.shape
        values = torch.from_numpy(self.values[i])
        if self.signs[i] is None:
            return values.reshape(h, w).to(self.device)
        pos = torch.from_numpy(_unrle(self.signs[i], h, w))
        if self.needed[i] is None:
            needed = _needed(pos[None], None)[0]
        else:
            needed = torch.from_numpy(_unrle(self.needed[i], h, w))
        x = torch.where(pos, 1.0, -1.0)
        x[needed] = values
        return x.to(self.device)


class FrameCodeStore:
    """Append-only store of one video's per-frame :class:`CompactMaskLogits`, RAM-bounded.

    Records stay in memory until they would exceed ``max_memory_bytes``; then all of them move to
    an unlinked temporary file (``tempfile.TemporaryFile``, in ``$TMPDIR``) and later ones are
    appended there. Reading back fetches only the requested queries' bytes.

    Args:
        max_memory_bytes: RAM for records before spilling (0: every record goes to the file).
    """

    def __init__(self, max_memory_bytes: int):
        self.max_memory_bytes = int(max_memory_bytes)
        self._records: Optional[List[bytes]] = []  # in RAM until spilled, then None
        self._file = None
        # per frame: (file offset, header bytes, sizes)
        self._index: List[Tuple[int, int, list]] = []
        self.nbytes = 0

    @property
    def spilled(self) -> bool:
        """Whether the records are in the temporary file."""
        return self._file is not None

    def __len__(self) -> int:
        return len(self._index)

    def append(self, code: CompactMaskLogits, sizes: list) -> None:
        """Append one frame's code with its ``[image_size, padded_size]``."""
        header, segments = code.to_record()
        head = msgspec.msgpack.encode(header)
        record = b"".join([head, *segments])
        if self._file is None and self.nbytes + len(record) > self.max_memory_bytes:
            self._file = tempfile.TemporaryFile(prefix="wsovvis-videomt-codes-")
            for r in self._records:
                self._file.write(r)
            self._records = None
        if self._file is None:
            self._records.append(record)
        else:
            self._file.seek(self.nbytes)
            self._file.write(record)
        self._index.append((self.nbytes, len(head), sizes))
        self.nbytes += len(record)

    def _read(self, frame: int, start: int, n: int) -> bytes:
        if self._file is None:
            return self._records[frame][start : start + n]
        self._file.seek(self._index[frame][0] + start)
        return self._file.read(n)

    def read(self, frame: int, queries: Sequence[int], device) -> Tuple[CompactMaskLogits, list]:
        """Frame ``frame``'s code restricted to ``queries`` (absent ones stay absent), its sizes."""
        _, head_len, sizes = self._index[frame]
        h, w, stored, lengths = msgspec.msgpack.decode(self._read(frame, 0, head_len))
        ends = np.cumsum([max(0, n) for n in lengths]) + head_len
        position = {q: i for i, q in enumerate(stored)}
        parts = {}
        for q in queries:
            i = position.get(int(q))
            if i is None:
                continue
            start = int(ends[3 * i - 1]) if i else head_len
            blob = self._read(frame, start, int(ends[3 * i + 2]) - start)
            n1, n2, _ = lengths[3 * i : 3 * i + 3]
            a, b = max(0, n1), max(0, n1) + max(0, n2)
            signs = blob[:a] if n1 >= 0 else None
            parts[int(q)] = (signs, blob[a:b] if n2 >= 0 else None, blob[b:])
        return CompactMaskLogits.from_parts((h, w), device, parts), sizes

    def close(self) -> None:
        """Free the records (the temporary file is deleted)."""
        if self._file is not None:
            self._file.close()
        self._file, self._records, self._index, self.nbytes = None, [], [], 0


class OnlineVISAccumulator:
    """Accumulates one video's per-frame predictions compactly and produces the VIS output.

    Args:
        num_queries: Q.
        output_size: (height, width) of the original video.
        mask_chunk_pixels: upper bound on ``queries * H * W`` resized at once in
            :meth:`finalize` (peak memory and speed knob; the result does not depend on it).
            Default: ``2**22`` for CPU tensors, ``2**24`` on accelerators.
        max_memory_bytes: RAM for the per-frame codes; beyond it they go to a temporary file
            (:class:`FrameCodeStore`; the result does not depend on it).
    """

    CPU_CHUNK_PIXELS = 1 << 22
    DEVICE_CHUNK_PIXELS = 1 << 24

    def __init__(
        self,
        num_queries: int,
        output_size: Tuple[int, int],
        mask_chunk_pixels: Optional[int] = None,
        max_memory_bytes: int = 64 << 20,
    ):
        self.num_queries = num_queries
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.mask_chunk_pixels = mask_chunk_pixels
        self.logit_sum: Optional[torch.Tensor] = None
        self.num_frames = 0
        self.device = torch.device("cpu")
        # per frame: compact logits of the queries with a positive logit, image and padded size
        self.codes = FrameCodeStore(max_memory_bytes)

    def add_frames(
        self,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        image_size: Sequence[int],
        padded_size: Sequence[int],
    ) -> None:
        """Add T frames of one video.

        Args:
            class_logits: (T, Q, K + 1).
            mask_logits: (T, Q, h, w) at the network's output stride.
            image_size: (H_img, W_img) of the resized frames before padding.
            padded_size: (H_pad, W_pad) of the network input.
        """
        s = class_logits.detach().double().sum(0).cpu()
        self.logit_sum = s if self.logit_sum is None else self.logit_sum + s
        self.num_frames += class_logits.shape[0]
        self.device = mask_logits.device
        sizes = [[int(v) for v in image_size], [int(v) for v in padded_size]]
        for masks in mask_logits.detach():
            # bilinear resizes are convex combinations: all-non-positive logits stay <= 0
            queries = torch.nonzero(masks.flatten(1).amax(1) > 0).flatten()
            self.codes.append(CompactMaskLogits(masks[queries], queries.tolist()), sizes)

    def stored_bytes(self) -> int:
        """Bytes of the per-frame compact codes (what grows with the video length; in RAM up to
        ``max_memory_bytes``, then in a temporary file)."""
        return self.codes.nbytes

    def masks_per_chunk(self, device: torch.device) -> int:
        """Masks resized at once for tensors on ``device`` (see ``mask_chunk_pixels``).

        Args:
            device: where the mask logits live.

        Returns:
            At least 1.
        """
        pixels = self.mask_chunk_pixels
        if pixels is None:
            cpu = torch.device(device).type == "cpu"
            pixels = self.CPU_CHUNK_PIXELS if cpu else self.DEVICE_CHUNK_PIXELS
        return max(1, pixels // max(1, self.output_size[0] * self.output_size[1]))

    def _encode_frame(self, frame: int, queries: Sequence[int]) -> Dict[int, bytes]:
        code, (image_size, padded_size) = self.codes.read(frame, queries, self.device)
        logits = {q: code.decode(q) for q in queries}
        stored = [q for q, x in logits.items() if x is not None]
        out: Dict[int, bytes] = {}
        chunk = self.masks_per_chunk(code.device)
        for i in range(0, len(stored), chunk):
            idx = stored[i : i + chunk]
            x = torch.stack([logits[q] for q in idx])[:, None]
            resized = resize_mask_logits(x, padded_size, image_size, self.output_size)
            binary = resized[:, 0] > 0
            for q, rle, m in zip(idx, _rle(binary), binary.flatten(1).any(1).tolist()):
                if m:
                    out[q] = rle
        return out

    def finalize(self, topk: int, video_id: int) -> Dict[str, object]:
        """The per-video output dict (``docs/CONTRACTS.md``) from the accumulated frames.

        Args:
            topk: number of (query, class) pairs kept.
            video_id: dataset video id.

        Returns:
            The output dict; tracks get an empty-mask RLE on frames where their query is empty
            (as the official output, whose masks cover every frame).
        """
        h, w = self.output_size
        if self.num_frames == 0:
            return make_video_output(video_id, h, w, [], [], [])
        probs = torch.softmax(self.logit_sum / self.num_frames, dim=-1)[:, :-1].float()
        scores, labels, queries = topk_query_class_pairs(probs, topk)
        queries = queries.tolist()
        unique = sorted(set(queries))
        empty = mask_util.encode(np.zeros((h, w, 1), dtype=np.uint8, order="F"))[0]["counts"]
        tracks: Dict[int, List[Dict[str, object]]] = {q: [] for q in unique}
        for frame in range(len(self.codes)):
            rles = self._encode_frame(frame, unique)
            for q in unique:
                tracks[q].append({"size": [h, w], "counts": rles.get(q, empty).decode("ascii")})
        segs = [[dict(rle) for rle in tracks[q]] for q in queries]  # a query may repeat
        return make_video_output(video_id, h, w, scores.tolist(), labels.tolist(), segs)


class VideoStream:
    """Frame-by-frame (or window-by-window) inference over one video with a ``WSVidEoMT`` model.

    The propagated queries are carried across :meth:`step` calls, so feeding frames one at a time
    or all at once gives the same result.

    Args:
        model: a ``WSVidEoMT`` in eval mode.
        height: original video height (output masks).
        width: original video width.
        video_id: dataset video id for the output dict.
    """

    def __init__(self, model, height: int, width: int, video_id: int = -1):
        self.model = model
        self.video_id = video_id
        self.memory: Optional[torch.Tensor] = None
        self.acc = OnlineVISAccumulator(
            model.backbone.num_queries,
            (height, width),
            max_memory_bytes=model.test_code_memory_bytes,
        )

    @torch.no_grad()
    def step(self, frames: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Process the next frames of the video.

        Args:
            frames: uint8 (3, H, W) tensors in the model's input format, all of the same size.

        Returns:
            The raw network outputs for these frames (``pred_logits`` (1, T, Q, K + 1),
            ``pred_masks`` (1, T, Q, h, w)).
        """
        images = self.model.preprocess_image(list(frames))
        out = self.model.backbone(images.tensor, num_frames=len(frames), memory=self.memory)
        self.memory = out["memory"]
        self.acc.add_frames(
            out["pred_logits"][0],
            out["pred_masks"][0],
            images.image_sizes[0],
            images.tensor.shape[-2:],
        )
        return out

    def finalize(self) -> Dict[str, object]:
        """Top-k tracks of the whole video (see :class:`OnlineVISAccumulator`).

        Returns:
            The per-video output dict of ``docs/CONTRACTS.md``.
        """
        return self.acc.finalize(self.model.test_topk, self.video_id)

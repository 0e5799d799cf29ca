"""Streaming tube classification: mask pooling, area-weighted aggregation, scores, top-k."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_util

from wsovvis.open_vocab import TubeClassifier, load_vocabulary

H, W, T = 64, 96, 5


def _rle(m):
    r = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": list(r["size"]), "counts": r["counts"].decode("ascii")}


def _video(seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    left = np.zeros((H, W), bool)
    left[:, :40] = True
    right = np.zeros((H, W), bool)
    right[10:60, 50:] = True
    tubes = [[_rle(left) for _ in range(T)],
             [_rle(right) if t in (1, 3) else None for t in range(T)],  # present on 2 frames
             [None] * T]  # never present: no detection
    return frames, tubes


def _classifier(clip, text, k, **kw):
    vocab = load_vocabulary([f"class{i}" for i in range(k)])
    return TubeClassifier(clip=clip, vocabulary=vocab, text_embeddings=text,
                          owner=torch.arange(k), **kw)


def _reference_embeddings(clip, frames, tubes):
    """Keep-all (non-streaming) reference: every frame's dense map, then per-tube weighted mean."""
    feats = clip.dense(torch.from_numpy(frames).permute(0, 3, 1, 2))
    out = []
    for tube in tubes:
        acc, wsum = 0, 0
        for t, seg in enumerate(tube):
            if seg is None:
                continue
            m = torch.from_numpy(mask_util.decode({"size": seg["size"], "counts": seg["counts"].encode()}))
            w = F.adaptive_avg_pool2d(m[None, None].float(), feats.shape[-2:]).flatten()
            pooled = (feats[t].flatten(1) @ w) / w.sum()
            emb = F.normalize(clip.head(pooled[None]), dim=-1)[0]
            acc, wsum = acc + emb * m.sum(), wsum + m.sum()
        out.append(F.normalize(acc / wsum, dim=-1) if wsum else None)
    return out


def test_streaming_equals_keep_all_reference_and_names_correctly(tiny_dense_clip):
    clip, _ = tiny_dense_clip
    frames, tubes = _video()
    ref = _reference_embeddings(clip, frames, tubes)
    # a text bank whose class 0 is tube 0's embedding and class 1 tube 1's: naming must pick them
    text = torch.stack([ref[0], ref[1], F.normalize(torch.randn(64), dim=0)])
    for fpb in (1, 2, 5):
        clf = _classifier(clip, text, 3, frames_per_batch=fpb)
        read = []
        probs = clf.classify_tubes(lambda t: read.append(t) or frames[t], tubes, H, W)
        assert sorted(set(read)) == list(range(T)) and len(read) == T  # each frame read once
        logits = torch.stack(ref[:2]) @ text.T * clip.logit_scale
        torch.testing.assert_close(probs[:2], logits.softmax(-1), rtol=1e-4, atol=1e-5)
        assert torch.isnan(probs[2]).all()
        assert probs[:2].argmax(1).tolist() == [0, 1]


def test_probability_aggregation_and_score_formula(tiny_dense_clip):
    clip, _ = tiny_dense_clip
    frames, tubes = _video()
    text = F.normalize(torch.randn(4, 64, generator=torch.Generator().manual_seed(1)), dim=-1)
    clf = _classifier(clip, text, 4, topk=2, score_exponent=0.25, aggregation="probability")
    probs = clf.classify_tubes(lambda t: frames[t], tubes, H, W)
    torch.testing.assert_close(probs[:2].sum(1), torch.ones(2))
    dets = clf.name_tubes(lambda t: frames[t], tubes, [0.9, 0.4, 1.0], H, W)
    assert len(dets) == 4 and {d[0] for d in dets} == {0, 1}  # top-2 of the two present tubes
    assert [d[2] for d in dets] == sorted((d[2] for d in dets), reverse=True)
    for tube, cat, score in dets:
        p = float(probs[tube, cat - 1])
        obj = [0.9, 0.4][tube]
        assert score == pytest.approx(p ** 0.25 * obj ** 0.75, rel=1e-5)
    clf.max_dets = 3
    assert len(clf.name_tubes(lambda t: frames[t], tubes, [0.9, 0.4, 1.0], H, W)) == 3


def test_frames_without_tubes_are_never_read(tiny_dense_clip):
    clip, _ = tiny_dense_clip
    frames, tubes = _video()
    clf = _classifier(clip, F.normalize(torch.randn(2, 64), dim=-1), 2)
    read = []
    clf.classify_tubes(lambda t: read.append(t) or frames[t], [tubes[1], tubes[2]], H, W)
    assert read == [1, 3]


def test_bad_options(tiny_dense_clip):
    clip, _ = tiny_dense_clip
    with pytest.raises(ValueError, match="aggregation"):
        _classifier(clip, torch.zeros(2, 64), 2, aggregation="median")
    with pytest.raises(ValueError, match="score exponent"):
        _classifier(clip, torch.zeros(2, 64), 2, score_exponent=1.5)

"""Exactness of the low-resolution compact mask code of the streaming VidEoMT accumulator.

The reference is the straightforward per-frame algorithm (every query with a positive logit is
resized to the original size and RLE-encoded on every frame, the top-k picked at the end); the
compact accumulator must give the same tracks, scores and masks bit for bit.
"""

import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from videomt_testutils import eval_video, tiny_model

from wsovvis.modeling.set_prediction import resize_mask_logits, topk_query_class_pairs
from wsovvis.modeling.videomt.inference import CompactMaskLogits, OnlineVISAccumulator


def _reference(frames, topk, output_size):
    """frames: list of (class_logits (Q, K+1), mask_logits (Q, h, w), image_size, padded_size)."""
    h, w = output_size
    empty = mask_util.encode(np.zeros((h, w, 1), dtype=np.uint8, order="F"))[0]["counts"]
    per_frame = []
    for _, masks, image_size, padded_size in frames:
        cand = torch.nonzero(masks.flatten(1).amax(1) > 0).flatten().tolist()
        enc = {}
        if cand:
            x = resize_mask_logits(masks[cand][:, None].float(), padded_size, image_size, (h, w))
            binary = (x[:, 0] > 0).numpy().astype(np.uint8)
            for q, rle, m in zip(
                cand, mask_util.encode(np.asfortranarray(binary.transpose(1, 2, 0))), binary
            ):
                if m.any():
                    enc[q] = rle["counts"]
        per_frame.append(enc)
    logit_sum = sum(f[0].double() for f in frames)
    probs = torch.softmax(logit_sum / len(frames), -1)[:, :-1].float()
    scores, labels, queries = topk_query_class_pairs(probs, topk)
    segs = [[f.get(q, empty).decode("ascii") for f in per_frame] for q in queries.tolist()]
    return scores.tolist(), labels.tolist(), segs


def _compact(frames, topk, output_size, max_memory_bytes=64 << 20):
    acc = OnlineVISAccumulator(
        frames[0][0].shape[0], output_size, max_memory_bytes=max_memory_bytes
    )
    for logits, masks, image_size, padded_size in frames:
        acc.add_frames(logits[None], masks[None], image_size, padded_size)
    out = acc.finalize(topk, 0)
    segs = [[r["counts"] for r in track] for track in out["pred_segmentations"]]
    return out["pred_scores"], out["pred_labels"], segs, acc


@pytest.mark.parametrize("memory_mb", [64.0, 0.0])
def test_long_video_matches_per_frame_reference(memory_mb):
    """70 tiny frames through the real network: same top-k, scores and masks as the reference,
    with the codes in RAM or all in the temporary file."""
    model = tiny_model(0, TEST_TOPK=8, TEST_CODE_MEMORY_MB=memory_mb).eval()
    video = eval_video(5, num_frames=70)
    stream = model.new_stream(video["height"], video["width"])
    frames = []
    for t in range(70):
        out = stream.step(video["image"][t : t + 1])
        images = model.preprocess_image(video["image"][t : t + 1])
        frames.append(
            (
                out["pred_logits"][0, 0],
                out["pred_masks"][0, 0],
                tuple(images.image_sizes[0]),
                tuple(images.tensor.shape[-2:]),
            )
        )
    assert stream.acc.codes.spilled == (memory_mb == 0)
    got = stream.finalize()
    ref_scores, ref_labels, ref_segs = _reference(frames, 8, (video["height"], video["width"]))
    assert got["pred_scores"] == ref_scores and got["pred_labels"] == ref_labels
    assert [[r["counts"] for r in t] for t in got["pred_segmentations"]] == ref_segs
    # only low-resolution codes are kept: at most the dense low-res logits plus small overhead
    dense = sum(f[1].numel() * 4 for f in frames)
    assert 0 < stream.acc.stored_bytes() < 1.1 * dense


@pytest.mark.parametrize(
    "low,image,output",
    [
        ((8, 12), (30, 45), (61, 83)),  # upsampling to the original
        ((8, 12), (29, 48), (17, 20)),  # original smaller than the network input
        ((6, 6), (24, 24), (24, 24)),  # no second resize scale
        ((1, 5), (4, 17), (9, 40)),  # one row of logits
    ],
)
def test_adversarial_logits_are_exact(low, image, output):
    """Sign changes everywhere, values near 0, denormals, +-inf, NaN, huge values."""
    g = torch.Generator().manual_seed(sum(low) + sum(output))
    num_q, num_frames = 12, 6
    padded = (4 * low[0], 4 * low[1])
    specials = torch.tensor(
        [
            1e-38,
            1e-45,
            -1e-45,
            0.0,
            -0.0,
            float("inf"),
            -float("inf"),
            float("nan"),
            3e38,
            -3e38,
            1e-30,
            1e30,
        ]
    )
    frames = []
    for t in range(num_frames):
        x = torch.randn(num_q, *low, generator=g) * torch.rand(num_q, 1, 1, generator=g) * 4
        x[0] = -1.0  # never stored
        x[1] = torch.randn(*low, generator=g).abs() + 0.1  # all positive
        x[2] = torch.randn(*low, generator=g) * 1e-6  # tiny values around 0
        pick = torch.rand(num_q, *low, generator=g) < 0.08
        choice = torch.randint(0, len(specials), (int(pick.sum()),), generator=g)
        x[pick] = specials[choice]
        logits = torch.randn(num_q, 4, generator=g) * 3
        frames.append((logits, x, image, padded))
    ref = _reference(frames, 20, output)
    got = _compact(frames, 20, output)
    assert not got[3].codes.spilled
    assert got[0] == ref[0] and got[1] == ref[1]
    assert got[2] == ref[2]
    # spilling to the temporary file after about half of the frames changes nothing
    half = got[3].stored_bytes() // 2
    spilled = _compact(frames, 20, output, max_memory_bytes=half)
    assert spilled[3].codes.spilled and spilled[:3] == got[:3]


def test_code_store_reads_back_requested_queries_only(tmp_path, monkeypatch):
    """Records round-trip through RAM and the temporary file (in $TMPDIR, unlinked)."""
    from wsovvis.modeling.videomt.inference import FrameCodeStore

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    g = torch.Generator().manual_seed(3)
    codes = []
    for t in range(5):
        x = torch.randn(4, 6, 7, generator=g)
        x[1] = x[1].abs() + 1  # all positive: only values, no sign RLE
        x[2, :, :3] = -5.0  # a sign change: RLE + near-boundary values
        codes.append((x, CompactMaskLogits(x, [3, 5, 8, 9])))
    store = FrameCodeStore(max_memory_bytes=2 * codes[0][1].nbytes() + 300)  # + 2 headers
    for t, (_, code) in enumerate(codes):
        store.append(code, [[t, t], [t + 1, t + 1]])
        assert store.spilled == (t >= 2)
    assert os.listdir(tmp_path) == []  # the file is unlinked
    for t, (x, code) in enumerate(codes):
        back, sizes = store.read(t, [9, 5, 4], "cpu")
        assert sizes == [[t, t], [t + 1, t + 1]]
        assert back.decode(4) is None and back.decode(3) is None  # 3 not requested
        assert torch.equal(back.decode(9), code.decode(9))
        assert torch.equal(back.decode(5), code.decode(5))
    store.close()
    assert len(store) == 0 and store.nbytes == 0


def test_decode_reproduces_needed_values_and_skips_empty_queries():
    x = torch.tensor([[[-1.0, -2.0, 0.5, 3.0], [-1.0, -2.0, 4.0, 3.0]]])
    code = CompactMaskLogits(x, [7])
    assert code.decode(3) is None
    y = code.decode(7)
    assert torch.equal(y > 0, x[0] > 0)
    assert torch.equal(y[:, 1:], x[0, :, 1:])  # within reach of the sign change: exact

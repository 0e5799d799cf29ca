"""WSVidEoMT online inference: output contract, streaming equivalence, exact compact masks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from videomt_testutils import eval_video, tiny_model

from wsovvis.utils.rle import decode_segmentation


def _eval_model(**kw):
    return tiny_model(0, **kw).eval()


def _reference(model, video):
    """Upstream-style offline post-processing over dense logits of all frames."""
    images = model.preprocess_image(video["image"])
    with torch.no_grad():
        out = model.backbone(images.tensor, num_frames=len(video["image"]))
    logits, masks = out["pred_logits"][0], out["pred_masks"][0]  # (T, Q, K+1), (T, Q, h, w)
    scores = logits.mean(0).softmax(-1)[:, :-1]
    k = scores.shape[1]
    top, idx = scores.flatten().topk(model.test_topk)
    m = masks[:, idx // k].transpose(0, 1)  # (k, T, h, w)
    m = F.interpolate(m, size=images.tensor.shape[-2:], mode="bilinear", align_corners=False)
    h, w = images.image_sizes[0]
    m = F.interpolate(
        m[..., :h, :w], size=(video["height"], video["width"]), mode="bilinear", align_corners=False
    )
    return top, idx % k, m > 0


def test_output_contract_and_exact_masks():
    model = _eval_model()
    video = eval_video(0, num_frames=4)
    out = model([video])[0]
    assert set(out) == {
        "video_id",
        "height",
        "width",
        "pred_scores",
        "pred_labels",
        "pred_segmentations",
    }
    assert (out["video_id"], out["height"], out["width"]) == (0, 60, 84)
    assert len(out["pred_scores"]) == len(out["pred_labels"]) == len(out["pred_segmentations"]) == 5
    assert out["pred_scores"] == sorted(out["pred_scores"], reverse=True)
    assert all(0 <= label < 3 for label in out["pred_labels"])
    top, labels, masks = _reference(model, video)
    np.testing.assert_allclose(out["pred_scores"], top.numpy(), rtol=1e-5)
    assert out["pred_labels"] == labels.tolist()
    for i, track in enumerate(out["pred_segmentations"]):
        assert len(track) == 4
        for t, rle in enumerate(track):
            assert isinstance(rle["counts"], str) and rle["size"] == [60, 84]
            np.testing.assert_array_equal(decode_segmentation(rle, 60, 84), masks[i, t].numpy())


def test_window_sizes_and_stream_api_agree():
    video = eval_video(1, num_frames=5)
    outs = [_eval_model(WINDOW_SIZE=w)([video])[0] for w in (1, 2, 5)]
    model = _eval_model()
    stream = model.new_stream(60, 84, video_id=1)
    for t in range(5):
        stream.step(video["image"][t : t + 1])
    outs.append(stream.finalize())
    for o in outs[1:]:
        assert o["pred_labels"] == outs[0]["pred_labels"]
        np.testing.assert_allclose(o["pred_scores"], outs[0]["pred_scores"], rtol=1e-5)
        agree = [
            (decode_segmentation(a, 60, 84) == decode_segmentation(b, 60, 84)).mean()
            for ta, tb in zip(o["pred_segmentations"], outs[0]["pred_segmentations"])
            for a, b in zip(ta, tb)
        ]
        assert min(agree) > 0.999


def test_bgr_input_format_is_converted_to_rgb():
    video = eval_video(2, num_frames=2)
    rgb = _eval_model()([video])[0]
    model = tiny_model(0)
    model.input_format = "BGR"
    model.pixel_mean.copy_(model.pixel_mean.flip(0))
    model.pixel_std.copy_(model.pixel_std.flip(0))
    bgr_video = {**video, "image": [f.flip(0) for f in video["image"]]}
    bgr = model.eval()([bgr_video])[0]
    assert bgr["pred_labels"] == rgb["pred_labels"]
    np.testing.assert_allclose(bgr["pred_scores"], rgb["pred_scores"], rtol=1e-5)


def test_lazy_frame_sequence_and_empty_video():
    class Lazy:
        def __init__(self, frames):
            self.frames, self.reads = frames, 0

        def __len__(self):
            return len(self.frames)

        def __getitem__(self, i):
            self.reads += 1
            return self.frames[i]

    video = eval_video(3, num_frames=3)
    lazy = Lazy(video["image"])
    out = _eval_model()([{**video, "image": lazy}])[0]
    assert lazy.reads == 3 and len(out["pred_segmentations"][0]) == 3
    empty = _eval_model()([{"video_id": 9, "height": 5, "width": 6, "image": []}])[0]
    assert empty["pred_scores"] == [] and empty["pred_segmentations"] == []


@pytest.mark.parametrize("topk", [1, 100])
def test_topk_is_clipped(topk):
    out = _eval_model(TEST_TOPK=topk)([eval_video(4, num_frames=2)])[0]
    assert len(out["pred_scores"]) == min(topk, 6 * 3)


def test_second_video_does_not_inherit_query_memory():
    model = _eval_model()
    first, second = eval_video(3, num_frames=3), eval_video(4, num_frames=3)
    second["video_id"] = 7
    alone = model([second])[0]
    batched = model([first, second])[1]
    model([first])  # a previous call must not leave state behind either
    after = model([second])[0]
    for out in (batched, after):
        assert out["pred_labels"] == alone["pred_labels"]
        assert out["pred_scores"] == alone["pred_scores"]
        assert out["pred_segmentations"] == alone["pred_segmentations"]
    # the memory does matter: a stream seeded with the first video's queries differs
    stream = model.new_stream(60, 84, video_id=0)
    stream.step(first["image"])
    leaked = model.new_stream(60, 84, video_id=7)
    leaked.memory = stream.memory
    for t in range(3):
        leaked.step(second["image"][t : t + 1])
    assert leaked.finalize()["pred_scores"] != alone["pred_scores"]

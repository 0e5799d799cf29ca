"""Clip-matching inference: VNext windows, sIoU, streaming tracker, whole-video equivalence."""
import numpy as np
import pytest
import torch

from detectron2.config import get_cfg
from detectron2.modeling import build_model

from wsovvis.config import add_wsovvis_config
from wsovvis.modeling.seqformer.clip_matching import ClipTracker, clip_windows, stacked_siou
from wsovvis.utils.rle import decode_segmentation, encode_masks


def _vnext_windows(video_length, clip_length, clip_stride):
    """The loop of VNext ``SeqFormer.forward`` (inference with CLIP_MATCHING)."""
    out = []
    for start_idx in range(0, video_length, clip_stride):
        end_idx = start_idx + clip_length
        if end_idx >= video_length:
            out.append((max(0, video_length - clip_length), video_length))
            break
        out.append((start_idx, end_idx))
    return out


@pytest.mark.parametrize("t,length,stride", [(1, 5, 1), (5, 5, 1), (7, 5, 1), (7, 5, 3),
                                              (20, 5, 5), (3, 5, 2), (11, 4, 2)])
def test_clip_windows_follow_vnext(t, length, stride):
    assert clip_windows(t, length, stride) == _vnext_windows(t, length, stride)


def test_clip_windows_reject_bad_values():
    with pytest.raises(ValueError, match="CLIP_LENGTH"):
        clip_windows(5, 0, 1)


def _vnext_get_siou(input_masks, saved_masks, saved_valid):
    """VNext ``clip_output.Videos.get_siou`` (dense [C, N_s, T] buffers)."""
    input_masks = input_masks.flatten(-2)[None, None]
    saved_masks = saved_masks.flatten(-2).unsqueeze(2)
    saved_valid = saved_valid[:, :, None, :, None]
    numerator = (saved_masks * input_masks * saved_valid).sum(dim=(-1, -2))
    denominator = ((saved_masks + input_masks - saved_masks * input_masks) * saved_valid
                   ).sum(dim=(-1, -2))
    siou = numerator / (denominator + 1e-6)
    num_valid_clip = (saved_valid.flatten(2).sum(dim=2) > 0).sum(dim=0)
    return siou.sum(dim=0) / (num_valid_clip[..., None] + 1e-6)


def test_stacked_siou_matches_vnext_formula():
    g = torch.Generator().manual_seed(0)
    new = torch.rand(4, 3, 6, 5, generator=g)
    saved = torch.rand(2, 5, 3, 6, 5, generator=g)
    valid = torch.rand(2, 5, 3, generator=g) > 0.4
    valid[:, 4] = False  # a track with no valid shared frame
    got = stacked_siou(new, [(saved[c], valid[c]) for c in range(2)])
    torch.testing.assert_close(got, _vnext_get_siou(new, saved, valid), rtol=1e-5, atol=1e-6)
    assert (got[4] == 0).all()


def _box(h, w, y0, x0, size=4, val=6.0):
    m = torch.full((h, w), -val)
    m[y0:y0 + size, x0:x0 + size] = val
    return m


def _tracker(t, h=12, w=12):
    def encode(logits):
        return encode_masks((logits[:, 0] > 0).numpy().astype(np.uint8))
    empty = encode_masks(np.zeros((1, h, w), np.uint8))[0]
    return ClipTracker(t, 2, encode, empty, history=3)


def test_tracker_links_permuted_instances_and_averages():
    """Object A (top-left, moving right) and B (bottom-right); clip 2 lists them in the other
    order; clip 3 adds C where nothing was before. Tracks, class averages and masks are checked
    against hand-written expectations."""
    h = w = 12
    t = 5
    a = [_box(h, w, 1, 1 + f) for f in range(t)]
    b = [_box(h, w, 7, 7) for _ in range(t)]
    c = [_box(h, w, 0, 8, size=3) for _ in range(t)]
    tr = _tracker(t, h, w)
    ids1 = tr.add_clip([0, 1, 2], torch.tensor([[0.9, 0.1], [0.2, 0.6]]),
                       torch.stack([torch.stack(a[0:3]), torch.stack(b[0:3])]))
    tr.finalize(1)
    ids2 = tr.add_clip([1, 2, 3], torch.tensor([[0.4, 0.8], [0.7, 0.1]]),
                       torch.stack([torch.stack(b[1:4]), torch.stack(a[1:4]) * 0.5]))
    tr.finalize(2)
    ids3 = tr.add_clip([2, 3, 4], torch.tensor([[0.5, 0.3], [0.1, 0.9]]),
                       torch.stack([torch.stack(a[2:5]), torch.stack(c[2:5])]))
    tr.finalize(5)
    assert ids1 == [0, 1] and ids2 == [1, 0] and ids3 == [0, 2]
    probs, tracks = tr.result()
    torch.testing.assert_close(probs, torch.tensor([[(0.9 + 0.7 + 0.5) / 3, (0.1 + 0.1 + 0.3) / 3],
                                                    [(0.2 + 0.4) / 2, (0.6 + 0.8) / 2],
                                                    [0.1, 0.9]]))
    assert len(tracks) == 3 and all(len(x) == t for x in tracks)
    for f in range(t):
        np.testing.assert_array_equal(decode_segmentation(tracks[0][f], h, w),
                                      (a[f] > 0).numpy())
    for f in range(4):
        np.testing.assert_array_equal(decode_segmentation(tracks[1][f], h, w), (b[f] > 0).numpy())
    assert not decode_segmentation(tracks[1][4], h, w).any()  # B absent from the last clip
    assert not decode_segmentation(tracks[2][1], h, w).any()
    np.testing.assert_array_equal(decode_segmentation(tracks[2][3], h, w), (c[3] > 0).numpy())


def test_tracker_average_of_logits_decides_the_mask():
    """A frame covered by two clips gets the mean of their logits (VNext), not the last one."""
    h = w = 4
    tr = _tracker(3, h, w)
    one = torch.full((1, 2, h, w), 1.0)
    tr.add_clip([0, 1], torch.tensor([[0.5, 0.5]]), one)
    tr.finalize(1)
    two = one.clone()
    two[0, 0, 0, 0] = -3.0  # mean with clip 1 at frame 1, pixel (0, 0): (1 - 3) / 2 < 0
    two[0, 0, 1, 1] = -0.5  # mean 0.25 > 0
    tr.add_clip([1, 2], torch.tensor([[0.5, 0.5]]), two)
    tr.finalize(3)
    _, tracks = tr.result()
    m = decode_segmentation(tracks[0][1], h, w)
    assert not m[0, 0] and m[1, 1] and m.sum() == h * w - 1


def test_tracker_refuses_clips_before_finalised_frames():
    tr = _tracker(4)
    tr.add_clip([0, 1], torch.tensor([[0.5, 0.5]]), torch.zeros(1, 2, 12, 12))
    tr.finalize(2)
    with pytest.raises(ValueError, match="finalised"):
        tr.add_clip([1, 2], torch.tensor([[0.5, 0.5]]), torch.zeros(1, 2, 12, 12))


def _model(**sf):
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file("configs/seqformer/tiny_test.yaml")
    cfg.MODEL.DEVICE = "cpu"
    for k, v in sf.items():
        cfg.MODEL.SeqFormer[k] = v
    torch.manual_seed(0)
    return build_model(cfg).eval()


def _video(t, h=70, w=100):
    g = torch.Generator().manual_seed(1)
    frames = [torch.randint(0, 255, (3, h, w), generator=g).to(torch.uint8) for _ in range(t)]
    return {"image": frames, "height": 105, "width": 150, "video_id": 7}


def test_single_clip_equals_whole_video_inference():
    whole = _model()
    clips = _model(CLIP_MATCHING=True, CLIP_LENGTH=8, CLIP_STRIDE=1)
    clips.load_state_dict(whole.state_dict())
    for t in (3, 8):  # one clip covers the video (T <= CLIP_LENGTH)
        video = _video(t)
        a, b = whole([video])[0], clips([video])[0]
        assert a == b and len(a["pred_scores"]) > 0


def test_clip_matching_on_a_longer_video_gives_full_tracks():
    model = _model(CLIP_MATCHING=True, CLIP_LENGTH=3, CLIP_STRIDE=2)
    out = model([_video(9)])[0]
    assert out["video_id"] == 7 and (out["height"], out["width"]) == (105, 150)
    assert len(out["pred_scores"]) == len(out["pred_segmentations"]) > 0
    for seg in out["pred_segmentations"]:
        assert len(seg) == 9 and all(list(r["size"]) == [105, 150] for r in seg)


def test_tracker_state_stays_bounded_over_a_long_video():
    """Only frames a later clip still covers are kept as logits; saved clips are capped."""
    t, length = 60, 3
    tr = _tracker(t)
    tr.saved = type(tr.saved)(maxlen=length)
    windows = clip_windows(t, length, 1)
    for k, (s, e) in enumerate(windows):
        logits = torch.stack([torch.stack([_box(12, 12, 2, 2)] * (e - s))])
        tr.add_clip(range(s, e), torch.tensor([[0.6, 0.1]]), logits)
        tr.finalize(windows[k + 1][0] if k + 1 < len(windows) else t)
        assert len(tr.open) <= length - 1 and len(tr.saved) <= length
    probs, tracks = tr.result()
    assert len(tracks) == 1 and len(tracks[0]) == t  # one object, one track over 58 clips

"""The demo's tiny CLIP: crops with masks, mask-pooled training = the naming path, bad masks."""
import json

import pytest
import torch
import torch.nn.functional as F


@pytest.fixture(scope="module")
def train_split(tiny_synthetic_dataset):
    return tiny_synthetic_dataset["splits"]["train"]


def test_crops_carry_the_object_mask(train_split):
    from wsovvis.open_vocab.tiny_clip import collect_crops

    x, m, y, vocab = collect_crops(train_split["gt_json"], train_split["img_root"], crop=48,
                                   scale=1.5, per_track=2, seed=0)
    assert x.shape[1:] == (3, 48, 48) and x.dtype == torch.uint8
    assert m.shape == (len(x), 48, 48) and len(y) == len(x)
    assert int(y.max()) < len(vocab)
    # each crop holds its object near the middle: the mask is non-empty and covers the centre
    assert bool((m.flatten(1).sum(1) > 0).all())
    assert float(m[:, 18:30, 18:30].float().mean()) > 0.3


def test_mask_pooled_training_embedding_is_the_naming_embedding(train_split, tiny_dense_clip):
    """Training reads exactly the embedding TubeClassifier computes (dense map, mask pool, head)."""
    from wsovvis.open_vocab.tiny_clip import collect_crops, mask_pooled_embedding

    clip, _ = tiny_dense_clip
    x, m, _, _ = collect_crops(train_split["gt_json"], train_split["img_root"], crop=64,
                               per_track=1, seed=1)
    x, m = x[:4], m[:4].float()
    with torch.no_grad():
        train_emb = mask_pooled_embedding(clip.model, (x.float() - clip.mean) / clip.std, m)
    feats = clip.dense(x)  # input_size 64: the crop is fed as is
    w = F.adaptive_avg_pool2d(m[:, None], feats.shape[-2:]).flatten(1)
    pooled = (w[:, None] * feats.flatten(2)).sum(-1) / w.sum(1, keepdim=True)  # as TubeClassifier
    name_emb = clip.head(pooled)
    assert torch.allclose(train_emb, name_emb, atol=1e-4)


def test_corrupt_mask_names_file_video_annotation_frame(train_split, tmp_path):
    from wsovvis.open_vocab.tiny_clip import collect_crops

    gt = json.load(open(train_split["gt_json"]))
    ann = gt["annotations"][0]
    t = next(t for t, s in enumerate(ann["segmentations"]) if s is not None)
    ann["segmentations"][t] = {"size": ann["segmentations"][t]["size"], "counts": "05"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(gt))
    with pytest.raises(ValueError) as e:
        collect_crops(str(bad), train_split["img_root"], per_track=100)
    msg = str(e.value)
    assert str(bad) in msg and f"video {ann['video_id']}" in msg and f"frame {t}" in msg
    assert f"annotation {ann['id']}" in msg and "run lengths sum to" in msg


def test_training_runs_and_saves_an_open_clip_file(train_split, tmp_path):
    from wsovvis.open_vocab import load_clip
    from wsovvis.open_vocab.tiny_clip import TINY_CLIP_MODEL, train_tiny_clip

    out = tmp_path / "clip.pt"
    stats = train_tiny_clip(train_split["gt_json"], train_split["img_root"], str(out), steps=2,
                            batch_size=4, crop=64, per_track=1)
    assert stats["steps"] == 2 and stats["num_objects"] > 0
    load_clip(TINY_CLIP_MODEL, str(out))  # the user's loading path
    with pytest.raises(ValueError, match="pooling"):
        train_tiny_clip(train_split["gt_json"], train_split["img_root"], str(out), steps=1,
                        pooling="cls")

"""A shortened tiny-CLIP training names held-out GT tubes far better than the untrained CLIP.

The demo's recipe (mask-pooled crops at the naming scale) on a small synthetic split,
both CLIPs loaded back through open_clip's ``pretrained=file`` path and named through
:class:`TubeClassifier` on the *val* split's GT tubes (never seen in training).
"""
import os

import pytest
import torch

STEPS = int(os.environ.get("WSOVVIS_TINY_CLIP_TEST_STEPS", "100"))


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    from wsovvis.data.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic") / "demo_small"
    return generate_synthetic_dataset(str(root), preset="demo", seed=3, num_videos=48,
                                      num_frames=4)["splits"]


def _tube_accuracy(weights, split):
    """Top-1 accuracy of the CLIP in ``weights`` on the split's GT tubes (named at 2x)."""
    from wsovvis.data.video_utils import read_video_frame
    from wsovvis.open_vocab import (DenseClip, TubeClassifier, build_text_bank, load_clip,
                                    vocabulary_from_categories)
    from wsovvis.open_vocab.tiny_clip import TINY_CLIP_MODEL
    from wsovvis.utils.io import read_json

    gt = read_json(split["gt_json"])
    vocab = vocabulary_from_categories(gt["categories"], split["gt_json"])
    model, tokenizer = load_clip(TINY_CLIP_MODEL, weights)
    clip = DenseClip(model, input_size=2 * min(gt["videos"][0]["height"], gt["videos"][0]["width"]))
    text, owner = build_text_bank(clip, tokenizer, vocab, model_name=TINY_CLIP_MODEL,
                                  weights=weights)
    clf = TubeClassifier(clip=clip, vocabulary=vocab, text_embeddings=text, owner=owner)
    index = {c.id: i for i, c in enumerate(vocab.categories)}
    right = total = 0
    for video in gt["videos"]:
        anns = [a for a in gt["annotations"] if a["video_id"] == video["id"]]
        if not anns:
            continue
        files = [os.path.join(split["img_root"], f) for f in video["file_names"]]
        probs = clf.classify_tubes(
            lambda t: read_video_frame(files[t], video["height"], video["width"], "RGB"),
            [a["segmentations"] for a in anns], video["height"], video["width"])
        for a, p in zip(anns, probs):
            right += int(int(p.argmax()) == index[a["category_id"]])
            total += 1
    return right / total


def test_trained_tiny_clip_names_val_tubes_far_above_chance(small_split, tmp_path):
    import open_clip

    from wsovvis.open_vocab import register_model_configs
    from wsovvis.open_vocab.tiny_clip import TINY_CLIP_MODEL, train_tiny_clip

    train, val = small_split["train"], small_split["val"]
    trained = str(tmp_path / "trained.pt")
    stats = train_tiny_clip(train["gt_json"], train["img_root"], trained, steps=STEPS, scale=2.0,
                            crop=96, lr=3e-3, per_track=4, seed=0)
    assert stats["steps"] == STEPS
    register_model_configs()
    torch.manual_seed(0)
    untrained = str(tmp_path / "untrained.pt")
    torch.save(open_clip.create_model(TINY_CLIP_MODEL, pretrained=None).state_dict(), untrained)
    acc_trained, acc_untrained = _tube_accuracy(trained, val), _tube_accuracy(untrained, val)
    # 5 categories, chance 0.2 (the untrained CLIP measured 0.10); the full demo recipe (600
    # steps, 192 videos) names 91.6 AP of the demo's val GT tubes
    # measured: 0.71 vs 0.10 after 100 steps, 0.74 after 240
    assert acc_trained >= acc_untrained + 0.3 and acc_trained > 0.5, (acc_trained, acc_untrained)

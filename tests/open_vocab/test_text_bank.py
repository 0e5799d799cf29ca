"""Prompt-ensemble text bank: shapes, synonyms (max), on-disk cache keyed by its inputs."""
import os

import pytest
import torch

from wsovvis.open_vocab import VILD_TEMPLATES, build_text_bank, load_vocabulary
from wsovvis.open_vocab.text_bank import class_logits


def test_fourteen_vild_templates():
    assert len(VILD_TEMPLATES) == 14 and all(t.count("{}") == 1 for t in VILD_TEMPLATES)


def test_bank_is_normalised_and_cached(tiny_dense_clip, tmp_path, tiny_clip_file):
    clip, tok = tiny_dense_clip
    vocab = load_vocabulary(["bat_(animal)", "cat"])
    kw = dict(model_name="wsovvis_tiny_convnext", weights=tiny_clip_file, cache_dir=str(tmp_path))
    emb, owner = build_text_bank(clip, tok, vocab, **kw)
    assert emb.shape == (3, 64) and owner.tolist() == [0, 0, 1]  # "bat (animal)", "bat", "cat"
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].startswith("text_bank_")
    mtime = os.path.getmtime(tmp_path / files[0])
    emb2, _ = build_text_bank(clip, tok, vocab, **kw)  # reused, not rewritten
    assert torch.equal(emb, emb2) and os.path.getmtime(tmp_path / files[0]) == mtime
    build_text_bank(clip, tok, vocab, templates=("a {}.",), **kw)  # other templates: other key
    build_text_bank(clip, tok, load_vocabulary(["cat", "dog"]), **kw)  # other names: other key
    assert len(os.listdir(tmp_path)) == 3
    # the mean over templates: one template gives that template's normalised embedding
    one, _ = build_text_bank(clip, tok, vocab, templates=("a {}.",), **kw)
    ref = torch.nn.functional.normalize(clip.encode_text(tok(["a cat."])), dim=-1)
    torch.testing.assert_close(one[2:], ref)


def test_bad_template(tiny_dense_clip):
    clip, tok = tiny_dense_clip
    with pytest.raises(ValueError, match="exactly one"):
        build_text_bank(clip, tok, load_vocabulary(["cat"]), model_name="m", weights="",
                        templates=("no slot",))


def test_class_logits_max_over_synonyms():
    text = torch.eye(3)
    owner = torch.tensor([0, 0, 1])
    emb = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    logits = class_logits(emb, text, owner, 2, logit_scale=10.0)
    assert logits.tolist() == [[10.0, 0.0], [0.0, 10.0]]

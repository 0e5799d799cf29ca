"""Text embeddings of a vocabulary: a prompt-template ensemble, cached on disk.

Per category: every prompt name (normalised name, bare name, synonyms) is put in every template;
the normalised text embeddings are averaged over templates, the per-name means are
re-normalised, and the category takes, per class score, the max over its names (kept as a
``(num_names_total, D)`` bank plus an owner index). The bank is cached as a ``.pt`` file keyed by a
hash of (model, weights, templates, prompt names), written atomically, so runs and ranks reuse it.
"""
import hashlib
import json
import logging
import os
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from wsovvis.utils.io import atomic_write

from .vocabulary import Vocabulary

__all__ = ["VILD_TEMPLATES", "build_text_bank", "text_bank_key"]

logger = logging.getLogger(__name__)

# The 14 prompt templates of ViLD (Gu et al., 2022), used by ViLD, OV2Seg, FC-CLIP-style naming.
VILD_TEMPLATES: Tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)


def text_bank_key(model_name: str, weights: str, templates: Sequence[str],
                  prompt_lists: Sequence[Sequence[str]]) -> str:
    """Cache key: sha256 of (model, weights identity, templates, prompt names).

    A weights *file* is identified by its absolute path, size and modification time, so a
    retrained file at the same path never reuses a stale bank.
    """
    ident = weights
    if weights and os.path.isfile(weights):
        st = os.stat(weights)
        ident = f"{os.path.abspath(weights)}:{st.st_size}:{st.st_mtime_ns}"
    blob = json.dumps([model_name, ident, list(templates), [list(p) for p in prompt_lists]])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@torch.no_grad()
def _encode(clip, tokenizer, prompt_lists, templates, batch_size: int = 256) -> torch.Tensor:
    texts = [t.format(name) for names in prompt_lists for name in names for t in templates]
    embs = []
    for i in range(0, len(texts), batch_size):
        embs.append(F.normalize(clip.encode_text(tokenizer(texts[i:i + batch_size])), dim=-1).cpu())
    emb = torch.cat(embs).view(-1, len(templates), embs[0].shape[-1])
    return F.normalize(emb.mean(dim=1), dim=-1)  # (num names, D)


def build_text_bank(
    clip,
    tokenizer,
    vocabulary: Vocabulary,
    *,
    model_name: str,
    weights: str,
    templates: Sequence[str] = VILD_TEMPLATES,
    cache_dir: Optional[str] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Text bank of a vocabulary, from the cache when present.

    Args:
        clip: a :class:`~wsovvis.open_vocab.clip_model.DenseClip`.
        tokenizer: the open_clip tokenizer of the model.
        vocabulary: the categories.
        model_name: open_clip architecture (part of the cache key).
        weights: tag or file of the weights (part of the cache key).
        templates: prompt templates with one ``{}``.
        cache_dir: folder of cached banks (None or "": no cache).

    Returns:
        ``(embeddings, owner)``: (N, D) normalised float32 name embeddings and (N,) long index of
        the category each belongs to (categories in vocabulary order).
    """
    templates = tuple(templates)
    if not templates or any(t.count("{}") != 1 for t in templates):
        raise ValueError("every prompt template needs exactly one '{}'")
    prompt_lists = vocabulary.prompt_lists()
    owner = torch.tensor([i for i, names in enumerate(prompt_lists) for _ in names], dtype=torch.long)
    path = None
    if cache_dir:
        key = text_bank_key(model_name, weights, templates, prompt_lists)
        path = os.path.join(cache_dir, f"text_bank_{key}.pt")
        if os.path.isfile(path):
            try:
                emb = torch.load(path, map_location="cpu", weights_only=True)
                if emb.shape[0] == owner.numel():
                    return emb, owner
            except Exception as e:  # unreadable (truncated by a crash elsewhere): rebuild
                logger.warning(f"text bank cache {path} unreadable ({e}); rebuilding it")
    emb = _encode(clip, tokenizer, prompt_lists, templates)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        atomic_write(path, lambda f: torch.save(emb, f), mode="wb")
    return emb, owner


def class_logits(embeddings: torch.Tensor, text: torch.Tensor, owner: torch.Tensor,
                 num_classes: int, logit_scale: float) -> torch.Tensor:
    """Scaled cosine logits per category: max over each category's names.

    Args:
        embeddings: (N, D) normalised image embeddings.
        text: (M, D) normalised name embeddings; ``owner`` (M,) their category.
        num_classes: number of categories.
        logit_scale: CLIP's ``exp(logit_scale)`` (clamped at 100).

    Returns:
        (N, num_classes) logits.
    """
    sims = embeddings @ text.to(embeddings).T  # (N, M)
    out = sims.new_full((sims.shape[0], num_classes), -float("inf"))
    out = out.scatter_reduce(1, owner.to(sims.device).expand_as(sims), sims, reduce="amax")
    return out * logit_scale



"""Open-vocabulary naming of class-agnostic video tubes with a frozen open_clip CLIP.

Vocabulary -> text bank (template ensemble, cached) -> per-frame dense CLIP features ->
mask pooling -> streaming temporal aggregation -> top-k labels per tube; diagnostics
(class-agnostic / open-vocab / oracle-label AP). ``build_open_vocab_evaluator`` (detectron2) is
imported lazily.
"""
from .clip_model import DenseClip, load_clip, register_model_configs
from .diagnostics import diagnostics, format_diagnostics, oracle_labels
from .naming import TubeSet, check_frames, load_tubes, name_tubes_in_results, videos_from_document
from .text_bank import VILD_TEMPLATES, build_text_bank
from .tube_classifier import TubeClassifier
from .vocabulary import Category, Vocabulary, load_vocabulary, prompt_names, vocabulary_from_categories

__all__ = [
    "Category", "DenseClip", "TubeClassifier", "TubeSet", "VILD_TEMPLATES", "Vocabulary",
    "build_open_vocab_evaluator", "build_text_bank", "check_frames", "diagnostics",
    "format_diagnostics", "load_clip", "load_tubes", "load_vocabulary", "name_tubes_in_results",
    "oracle_labels", "prompt_names", "register_model_configs", "videos_from_document",
    "vocabulary_from_categories",
]


def __getattr__(name):
    if name in ("build_open_vocab_evaluator", "OpenVocabEvaluator"):
        from . import evaluator

        return getattr(evaluator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""YouTube-VIS / LV-VIS evaluation: fast scorer equal to the official one + detectron2 evaluator.

``YTVISEvaluator`` is imported lazily so the scorer works without detectron2.
"""

from .ytvis_eval import STAT_NAMES, YTVISEvalResult, evaluate_ytvis, format_summary

__all__ = ["STAT_NAMES", "YTVISEvalResult", "evaluate_ytvis", "format_summary", "YTVISEvaluator"]


def __getattr__(name):
    if name == "YTVISEvaluator":
        from .evaluator import YTVISEvaluator

        return YTVISEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

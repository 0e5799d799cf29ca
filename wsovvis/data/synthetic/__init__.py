"""Synthetic moving-shapes VIS dataset with VideoCutLER-style pseudo masks (for tests and demos)."""
from .generate import PALETTE, PRESETS, SyntheticSpec, generate_synthetic_dataset
from .pseudo_noise import MAX_PSEUDO_INSTANCES, PseudoNoiseConfig
from .render import CATEGORIES

__all__ = [
    "CATEGORIES",
    "MAX_PSEUDO_INSTANCES",
    "PALETTE",
    "PRESETS",
    "PseudoNoiseConfig",
    "SyntheticSpec",
    "generate_synthetic_dataset",
]

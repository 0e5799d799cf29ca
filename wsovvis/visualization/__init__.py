"""Visualisation of YTVIS ground truth and predictions (animated GIF + PNG contact sheet)."""

from .ytvis import (
    render_frames,
    save_contact_sheet,
    save_gif,
    track_color,
    tracks_from_gt,
    tracks_from_results,
    visualize_ytvis,
)

__all__ = [
    "render_frames",
    "save_contact_sheet",
    "save_gif",
    "track_color",
    "tracks_from_gt",
    "tracks_from_results",
    "visualize_ytvis",
]

"""Pseudo tubes: VideoCutLER mask PNGs -> YTVIS JSON, id-PNG rendering, class-agnostic GT.

See ``tools/convert_videocutler_png_to_json.py``, ``tools/make_class_agnostic_ytvis_json.py`` and
``third_party/README.md``.
"""
from .class_agnostic import make_class_agnostic
from .png_io import list_frames, list_masks, mask_name_for_frame, read_frame_size, read_id_mask
from .render import id_palette, render_ytvis_to_id_pngs, save_id_png
from .skips import ERROR_REASONS, SKIP_REASONS, VideoSkipped
from .tubes import TubeBuilder, tubes_to_results
from .videocutler import (
    ConversionError,
    ConversionResult,
    ConvertOptions,
    convert_videocutler_pngs,
    read_skip_list,
    write_outputs,
)

__all__ = [
    "ConversionError",
    "ConversionResult",
    "ConvertOptions",
    "ERROR_REASONS",
    "SKIP_REASONS",
    "TubeBuilder",
    "VideoSkipped",
    "convert_videocutler_pngs",
    "id_palette",
    "list_frames",
    "list_masks",
    "make_class_agnostic",
    "mask_name_for_frame",
    "read_frame_size",
    "read_id_mask",
    "read_skip_list",
    "render_ytvis_to_id_pngs",
    "save_id_png",
    "tubes_to_results",
    "write_outputs",
]

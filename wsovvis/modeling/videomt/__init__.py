"""VidEoMT network pieces: ViT trunk, query-propagating segmenter, streaming inference,
official-checkpoint loading. The detectron2 meta-architecture is
:class:`wsovvis.modeling.videomt.meta_arch.WSVidEoMT`."""

from .checkpoint import (
    convert_videomt_checkpoint,
    infer_img_size,
    load_videomt_checkpoint,
    read_checkpoint,
)
from .dinov3 import OfficialDinov3VidEoMTFormat, dinov3_official_to_wsovvis
from .hf_checkpoint import HFVidEoMTFormat, convert_checkpoint_to_hf, export_hf_checkpoint
from .inference import OnlineVISAccumulator, VideoStream
from .network import VidEoMTNetwork
from .scale_block import ScaleBlock
from .vit import ViTEncoder, build_vit

__all__ = [
    "VidEoMTNetwork",
    "ViTEncoder",
    "ScaleBlock",
    "build_vit",
    "OnlineVISAccumulator",
    "OfficialDinov3VidEoMTFormat",
    "HFVidEoMTFormat",
    "convert_checkpoint_to_hf",
    "export_hf_checkpoint",
    "dinov3_official_to_wsovvis",
    "VideoStream",
    "convert_videomt_checkpoint",
    "infer_img_size",
    "load_videomt_checkpoint",
    "read_checkpoint",
]

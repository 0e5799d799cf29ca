#!/usr/bin/env python
"""Check an official VidEoMT checkpoint (tue-mps/videomt ``.pth``) against a wsovvis config and
write a copy loadable through ``MODEL.WEIGHTS``.

Example::

    python tools/convert_videomt_checkpoint.py \\
        --config-file configs/videomt/VidEoMT-ViT-S-LVVIS-pseudo.yaml \\
        --input yt_2019_vit_small_52.8.pth --output videomt_vits_init.pth

``--to hf`` writes a Hugging Face checkpoint folder instead (``config.json`` +
``model.safetensors`` for transformers' ``VideomtForUniversalSegmentation``; DINOv2 only).
"""

import argparse
import logging
import sys

from detectron2.config import get_cfg

from wsovvis.config import add_wsovvis_config
from wsovvis.modeling.videomt.checkpoint import convert_videomt_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="wsovvis WSVidEoMT config")
    parser.add_argument("--input", required=True, help="official .pth ({'model': sd} or raw sd)")
    parser.add_argument("--output", required=True, help="output .pth (--to hf: a folder)")
    parser.add_argument("--to", choices=["wsovvis", "hf"], default="wsovvis",
                        help="output format: wsovvis .pth (default) or Hugging Face folder")
    parser.add_argument(
        "--trust-checkpoint", action="append", default=[], metavar="FILE",
        help="unpickle FILE in full even if it holds objects outside the checkpoint allow-list "
             "(can run code: only for files you trust); repeatable")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    try:
        if args.to == "hf":
            from wsovvis.modeling.videomt.hf_checkpoint import convert_checkpoint_to_hf

            info = convert_checkpoint_to_hf(cfg, args.input, args.output, args.trust_checkpoint)
            print(f"wrote {args.output}: IMG_SIZE={info['img_size']}, "
                  f"NUM_CLASSES={info['num_classes']} (Hugging Face VidEoMT)")
            return info
        info = convert_videomt_checkpoint(cfg, args.input, args.output, args.trust_checkpoint)
    except (OSError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    print(
        f"wrote {args.output}: IMG_SIZE={info['img_size']}, "
        f"re-initialised={info['reinitialized'] or 'none'}"
    )
    return info


if __name__ == "__main__":
    main()

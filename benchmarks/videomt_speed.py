#!/usr/bin/env python
"""Streaming inference speed and peak memory of WSVidEoMT ViT-S at 448 (random weights).

Reports the network alone (frame by frame, propagated queries) and the whole online pipeline
(normalise/pad + network + per-frame mask resizing and RLE encoding), as frames/s, plus peak RSS.
Upstream's FPS protocol (H100, torch.compile, fp16, backbone only) is not what this measures.

    python benchmarks/videomt_speed.py [--frames 4] [--size 448 800] [--device cpu] [--threads 2]
"""

import argparse
import os
import resource
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=2, default=[448, 800], help="resized frame H W")
    parser.add_argument("--config", default="configs/videomt/VidEoMT-ViT-S-LVVIS-pseudo.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    import wsovvis.modeling  # noqa: F401
    from wsovvis.config import add_wsovvis_config

    torch.set_num_threads(args.threads)
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, args.config))
    cfg.MODEL.VIDEOMT.VIT_WEIGHTS = ""
    cfg.MODEL.DEVICE = args.device
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    h, w = args.size
    frames = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for _ in range(args.frames)]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    with torch.no_grad():  # warm-up
        model.backbone(model.preprocess_image(frames[:1]).tensor, num_frames=1)
        sync()
        t0 = time.perf_counter()
        memory = None
        for f in frames:
            out = model.backbone(model.preprocess_image([f]).tensor, num_frames=1, memory=memory)
            memory = out["memory"]
        sync()
        net = time.perf_counter() - t0
    t0 = time.perf_counter()
    model([{"video_id": 0, "height": 720, "width": 1280, "image": frames}])
    sync()
    full = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{cfg.MODEL.VIDEOMT.MODEL_NAME} input {h}x{w} (padded to /32), {args.frames} frames, "
        f"{cfg.MODEL.VIDEOMT.NUM_QUERIES} queries, device {args.device}, {args.threads} threads"
    )
    print(f"network only : {args.frames / net:6.2f} frames/s")
    print(f"full pipeline: {args.frames / full:6.2f} frames/s (masks -> 720x1280 RLE, all queries)")
    print(f"peak RSS     : {peak:7.1f} MB")
    if args.device.startswith("cuda"):
        print(f"peak CUDA    : {torch.cuda.max_memory_allocated() / 2**20:7.1f} MB")


if __name__ == "__main__":
    main()

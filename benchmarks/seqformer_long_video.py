#!/usr/bin/env python
"""Peak memory of SeqFormer inference vs video length: clip matching vs whole-video decoding.

Tiny random SeqFormer (``configs/seqformer/tiny_test.yaml``), CPU, one thread. Each
(mode, length) runs in a fresh subprocess; the number reported is the growth of the peak RSS over
the process after building the model and inferring one warm-up video of ``CLIP_LENGTH`` frames,
i.e. what one video adds. Frames are generated lazily on access (like the test mapper's sequence),
so the input itself does not grow with the length. Modes:

* ``clip``: ``MODEL.SeqFormer.CLIP_MATCHING`` (VNext windows of ``--clip-length`` frames, step
  ``--clip-stride``; streaming tracker, finished frames stored as RLE only);
* ``whole``: whole-video decoding (VNext's default path; encoder memory of every frame is
  kept for the decoder, so memory grows with the length).

    python benchmarks/seqformer_long_video.py [--frames 50 200 500] [--size 240 320] [--modes clip whole]
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _memory import LazyFrames, peak_rss_mb  # noqa: E402


def child(args) -> dict:
    """Run one (mode, length) and return its measurements."""
    sys.path.insert(0, REPO)
    import torch
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    import wsovvis.modeling  # noqa: F401
    from wsovvis.config import add_wsovvis_config

    torch.set_num_threads(1)
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs/seqformer/tiny_test.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    sf = cfg.MODEL.SeqFormer
    sf.CLIP_MATCHING = args.mode == "clip"
    sf.CLIP_LENGTH, sf.CLIP_STRIDE = args.clip_length, args.clip_stride
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    h, w = args.size

    def video(n):
        return {"image": LazyFrames(n, h, w), "height": h, "width": w, "video_id": 1}

    model([video(args.clip_length)])  # warm-up
    base = peak_rss_mb()
    t0 = time.perf_counter()
    out = model([video(args.length)])[0]
    secs = time.perf_counter() - t0
    return {"mode": args.mode, "frames": args.length, "peak_rss_growth_mb": round(peak_rss_mb() - base, 1),
            "seconds": round(secs, 1), "tracks": len(out["pred_scores"]),
            "output_mb": round(len(json.dumps(out)) / 2 ** 20, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, nargs="+", default=[50, 200, 500])
    p.add_argument("--size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    p.add_argument("--modes", nargs="+", default=["clip", "whole"], choices=["clip", "whole"])
    p.add_argument("--clip-length", type=int, default=5)
    p.add_argument("--clip-stride", type=int, default=1)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="clip", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.frames) < 1 or min(args.size) < 64 or args.clip_length < 1 or args.clip_stride < 1:
        print("error: --frames and --clip-* must be >= 1 and --size >= 64", file=sys.stderr)
        return 2
    if args.child:
        print(json.dumps(child(args)))
        return 0
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rows = []
    for mode in args.modes:
        for n in args.frames:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "--mode", mode,
                   "--length", str(n), "--size", *map(str, args.size),
                   "--clip-length", str(args.clip_length), "--clip-stride", str(args.clip_stride)]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if res.returncode != 0:
                tail = (res.stderr.strip().splitlines() or ["?"])[-1]
                print(f"error: {mode} at {n} frames failed: {tail}", file=sys.stderr)
                return 2
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

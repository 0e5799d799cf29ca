#!/usr/bin/env python
"""Peak memory of VidEoMT online inference vs video length (random weights, CPU, 1 thread).

Each (path, length) runs in a fresh subprocess; the number reported is the growth of the peak
RSS above the process after building the model and running one warm-up frame, i.e. what the
inference of one video adds. Paths:

* ``wsovvis``: ``WSVidEoMT.stream_video`` + ``finalize`` with lazily generated frames (as the test
  mapper). The compact per-frame mask codes of :class:`OnlineVISAccumulator` ("stored MB") are
  in RAM up to ``MODEL.VIDEOMT.TEST_CODE_MEMORY_MB`` (``--code-memory-mb``) and then in an
  unlinked temporary file, so only the output (top-k tubes, "output MB" as JSON) grows in RAM;
* ``official`` (with ``--official PATH``, a tue-mps/videomt checkout; see
  ``_official_videomt.py``): the official backbone with the same weights and upstream's VIS test
  path re-stated in :func:`_official_videomt.official_style_vis` (all frames in one padded
  tensor, per-frame outputs kept on the CPU in float32, top-k masks of all frames resized at
  once).

    python benchmarks/videomt_memory.py [--frames 10 100 1000] [--size 224 224] [--orig 360 300]
    python benchmarks/videomt_memory.py --official /path/to/videomt   # needs einops importable
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


def child(args):
    sys.path.insert(0, REPO)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    import wsovvis.modeling  # noqa: F401
    from wsovvis.config import add_wsovvis_config

    torch.set_num_threads(1)
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, args.config))
    cfg.MODEL.VIDEOMT.VIT_WEIGHTS = ""
    if args.code_memory_mb is not None:
        cfg.MODEL.VIDEOMT.TEST_CODE_MEMORY_MB = args.code_memory_mb
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    c = cfg.MODEL.VIDEOMT
    h, w = args.size
    frames = LazyFrames(args.frames[0], h, w)
    video = {"video_id": 0, "height": args.orig[0], "width": args.orig[1], "image": frames}
    result = {"frames": len(frames)}
    with torch.no_grad():
        if args.path == "official":
            from _official_videomt import build_official_backbone, official_style_vis

            net = build_official_backbone(
                args.official,
                model_name=c.MODEL_NAME,
                img_size=c.IMG_SIZE,
                num_classes=c.NUM_CLASSES,
                num_queries=c.NUM_QUERIES,
                segmenter_blocks=c.SEGMENTER_BLOCKS,
                norm_queries=c.NORM_QUERIES,
            )
            net.load_state_dict(model.backbone.state_dict(), strict=True)
            net.eval()
            warm = model.preprocess_image([frames[0]])
            net(warm.tensor, resume=False)
            base = peak_rss_mb()
            t0 = time.perf_counter()
            images = model.preprocess_image([frames[i] for i in range(len(frames))])
            official_style_vis(net, images.tensor, images.image_sizes[0], args.orig, c.TEST_TOPK)
        else:
            model.stream_video({**video, "image": [frames[0]]}).finalize()  # warm-up
            base = peak_rss_mb()
            t0 = time.perf_counter()
            stream = model.stream_video(video)
            result["stored_mb"] = stream.acc.stored_bytes() / 2**20
            result["spilled"] = stream.acc.codes.spilled
            out = stream.finalize()
    result["seconds"] = time.perf_counter() - t0
    result["growth_mb"] = peak_rss_mb() - base  # before serialising the output below
    if args.path != "official":
        result["output_mb"] = len(json.dumps(out)) / 2**20
    print(json.dumps(result))


def run_child(args, path, n):
    cmd = [sys.executable, __file__, "--child", "--path", path, "--frames", str(n)]
    cmd += ["--size", *map(str, args.size), "--orig", *map(str, args.orig)]
    cmd += ["--config", args.config, "--official", args.official]
    if args.code_memory_mb is not None:
        cmd += ["--code-memory-mb", str(args.code_memory_mb)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--size", type=int, nargs=2, default=[224, 224], help="network input H W")
    parser.add_argument("--orig", type=int, nargs=2, default=[360, 300], help="original H W")
    parser.add_argument("--config", default="configs/videomt/VidEoMT-ViT-S-LVVIS-pseudo.yaml")
    parser.add_argument("--official", default="", help="tue-mps/videomt checkout")
    parser.add_argument(
        "--code-memory-mb",
        type=float,
        default=None,
        help="MODEL.VIDEOMT.TEST_CODE_MEMORY_MB (default: the config's; 0: codes straight to disk)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", default="wsovvis", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    print(
        f"{args.config}: random weights, input {args.size[0]}x{args.size[1]}, masks to "
        f"{args.orig[0]}x{args.orig[1]}; CPU, 1 thread; peak-RSS growth above model + 1 frame"
    )
    header = f"{'frames':>7} {'wsovvis MB':>11} {'stored MB':>10} {'in':>5} {'output MB':>10} {'s':>7}"
    print(header + (f" {'official MB':>12} {'s':>7}" if args.official else ""))
    for n in args.frames:
        r = run_child(args, "wsovvis", n)
        if "error" in r:
            print(f"{n:>7} error: {r['error']}")
            continue
        where = "disk" if r["spilled"] else "RAM"
        line = (
            f"{n:>7} {r['growth_mb']:>11.1f} {r['stored_mb']:>10.2f} {where:>5} "
            f"{r['output_mb']:>10.2f} {r['seconds']:>7.1f}"
        )
        if args.official:
            o = run_child(args, "official", n)
            line += (
                f" {o['growth_mb']:>12.1f} {o['seconds']:>7.1f}"
                if "error" not in o
                else f" official failed: {o['error']}"
            )
        print(line)
    print(
        "stored MB: the per-frame compact low-resolution mask codes (every query with a positive "
        "logit on a frame\nmay still enter the top-k; random weights give noise masks where every "
        "low-res logit is stored,\na trained model far fewer); in: where they were at the end (RAM "
        "up to MODEL.VIDEOMT.TEST_CODE_MEMORY_MB,\nthen an unlinked temporary file). official: all "
        "frames' (Q, h, w) float32 masks, the frames, and k x T full-size masks."
    )


if __name__ == "__main__":
    main()

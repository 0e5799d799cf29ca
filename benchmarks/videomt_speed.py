#!/usr/bin/env python
"""Streaming inference speed and peak memory of WSVidEoMT (default ViT-S) at the test size.

Random weights, random frames of the size a 720x1280 video gets at test time (short side 448,
padded to a multiple of 32), batch 1, frame by frame with the propagated queries. Reports

* network alone: the backbone forward per frame (normalisation/padding done beforehand, as in
  the official FPS protocol);
* full online pipeline: ``model.inference_video`` (normalise/pad + network + the per-frame
  compact low-resolution mask code, then the top-k masks resized to the original size and
  RLE-encoded at the end);
* with ``--official PATH`` (a checkout of tue-mps/videomt, see ``_official_videomt.py``): the
  official backbone with the SAME weights (our state dict loaded strictly), timed frame by frame
  in its resume/streaming mode, interleaved with ours on the same frames; prints both, the
  ratio, and the max abs difference of the outputs; then upstream's full VIS test path
  (``_official_videomt.official_style_vis``) on the same frames. The official module needs
  ``einops`` and ``transformers`` importable (e.g. installed with ``pip install --target DIR``
  and put on ``PYTHONPATH`` for this run only; its DINOv3 code needs transformers 4.56.1, the
  version upstream pins); without them it is skipped with a message. DINOv3 configs are
  compared too (the official model gets a random HF DINOv3 trunk of the same shape).

GPU protocol (``--device cuda``), as upstream's ``benchmark.py``: backbone forward only, CUDA
events around each frame, ``--amp`` autocast (upstream: fp16), ``--compile`` =
``torch.compile(backbone, dynamic=True)`` (upstream: on), warm-up frames first (upstream: 100
videos), fp32 matmul precision "medium". The paper's FPS (H100, real YTVIS19 val loader) is
printed next to ours as a ratio.

    python benchmarks/videomt_speed.py                                  # CPU, 1 thread, 4 frames
    python benchmarks/videomt_speed.py --official /path/to/videomt      # + official, same weights
    python benchmarks/videomt_speed.py --device cuda --amp fp16 --compile --frames 500
"""

import argparse
import contextlib
import os
import resource
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# tue-mps/videomt model_zoo/dinov2.md, YTVIS19, H100, torch.compile + fp16, backbone forward only
PAPER_FPS = {"vit_small": 294, "vit_base": 251, "vit_large": 160}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=None, help="timed frames (cpu 4, cuda 300)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up frames (cpu 1, cuda 100)")
    parser.add_argument(
        "--size", type=int, nargs=2, default=[448, 796], help="resized frame H W (before padding)"
    )
    parser.add_argument(
        "--orig", type=int, nargs=2, default=[720, 1280], help="original video H W (output masks)"
    )
    parser.add_argument("--config", default="configs/videomt/VidEoMT-ViT-S-LVVIS-pseudo.yaml")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (>1 is erratic on a busy host)"
    )
    parser.add_argument("--amp", choices=["fp16", "bf16", "none"], default="none")
    parser.add_argument("--compile", action="store_true", help="torch.compile(dynamic=True)")
    parser.add_argument(
        "--pipeline-frames",
        type=int,
        default=None,
        help="full-pipeline frames (cpu: --frames, cuda 50)",
    )
    parser.add_argument("--no-pipeline", action="store_true", help="skip the full pipeline")
    parser.add_argument(
        "--official", default="", help="checkout of tue-mps/videomt to time its backbone too"
    )
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.frames is None:
        args.frames = 300 if cuda else 4
    if args.warmup is None:
        args.warmup = 100 if cuda else 1
    if args.pipeline_frames is None:
        args.pipeline_frames = min(args.frames, 50) if cuda else args.frames
    if args.compile:  # frame 0 (fresh queries) and frame >= 1 (propagated) are two graphs
        args.warmup = max(args.warmup, 2)
    if args.frames < 1 or args.pipeline_frames < 1:
        parser.error("--frames and --pipeline-frames must be >= 1")
    return args


class FrameTimer:
    """Times one call: CUDA events (synchronised) on a GPU, ``perf_counter`` on the CPU."""

    def __init__(self, device):
        import torch

        self.cuda = device.type == "cuda"
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)

    def __call__(self, fn):
        """Returns ``(fn(), seconds)``."""
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.start.record()
            out = fn()
            self.end.record()
            torch.cuda.synchronize()
            return out, self.start.elapsed_time(self.end) / 1000.0
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0


class PeakMemory:
    """Peak host RSS (process-wide, monotone) or peak CUDA memory allocated per phase."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.device = device

    def reset(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def read(self) -> str:
        import torch

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if self.cuda:
            cuda = torch.cuda.max_memory_allocated(self.device) / 2**20
            return f"peak CUDA {cuda:8.1f} MB (phase), peak RSS {rss:7.1f} MB (process)"
        return f"peak RSS {rss:7.1f} MB (process so far)"


def build(args):
    import torch
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    import wsovvis.modeling  # noqa: F401
    from wsovvis.config import add_wsovvis_config

    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, args.config))
    cfg.MODEL.VIDEOMT.VIT_WEIGHTS = ""
    cfg.MODEL.DEVICE = args.device
    torch.manual_seed(0)
    return cfg, build_model(cfg).eval()


def paper_fps(model_name: str):
    for key, fps in PAPER_FPS.items():
        if model_name.startswith(key):
            return fps
    return None


def main(argv=None):
    args = parse_args(argv)
    import torch

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda requested but torch.cuda.is_available() is False")
    if not cuda:
        torch.set_num_threads(args.threads)
    else:  # upstream benchmark.py settings
        torch.set_float32_matmul_precision("medium")
        torch._dynamo.config.capture_scalar_outputs = True
    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "none": None}[args.amp]

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=amp_dtype)

    cfg, model = build(args)
    c = cfg.MODEL.VIDEOMT
    timer, mem = FrameTimer(device), PeakMemory(device)
    h, w = args.size
    gen = torch.Generator().manual_seed(0)
    distinct = [
        torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
        for _ in range(min(args.frames, 8))
    ]
    frames = [distinct[i % len(distinct)] for i in range(max(args.frames, args.pipeline_frames))]
    with torch.no_grad():  # normalise + pad outside the timed region, as upstream
        inputs = [model.preprocess_image([f]).tensor for f in distinct]
    pad_h, pad_w = inputs[0].shape[-2:]
    net = torch.compile(model.backbone, dynamic=True) if args.compile else model.backbone
    dev_name = torch.cuda.get_device_name(device) if cuda else f"cpu, {args.threads} threads"
    print(
        f"{c.MODEL_NAME}: {c.NUM_QUERIES} queries, input {h}x{w} padded to {pad_h}x{pad_w}, "
        f"batch 1, {args.frames} timed frames after {args.warmup} warm-up; {dev_name}; "
        f"amp {args.amp}; compile {args.compile}; torch {torch.__version__}"
    )

    def ours_step(i, memory):
        x = inputs[i % len(inputs)]
        with torch.no_grad(), autocast():
            return net(x, num_frames=1, memory=memory)

    # -- network alone -------------------------------------------------------------------------
    memory = None
    for i in range(args.warmup):
        memory = ours_step(i, None if i == 0 else memory)["memory"]
    mem.reset()
    total, memory = 0.0, None
    for i in range(args.frames):
        out, secs = timer(lambda: ours_step(i, memory))
        memory, total = out["memory"], total + secs
    ours_fps = args.frames / total
    print(
        f"network only   : {ours_fps:8.2f} frames/s ({1000 * total / args.frames:8.1f} ms/frame)"
        f"; {mem.read()}"
    )
    fps_ref = paper_fps(c.MODEL_NAME)
    if cuda and fps_ref:
        print(
            f"paper          : {fps_ref:8.2f} frames/s (H100, compile, fp16, YTVIS19 val) -> "
            f"ours/paper = {ours_fps / fps_ref:.2f} (device: {dev_name})"
        )

    # -- full online pipeline ------------------------------------------------------------------
    if not args.no_pipeline:
        n = args.pipeline_frames
        video = {"video_id": 0, "height": args.orig[0], "width": args.orig[1], "image": frames[:n]}
        raw_backbone = model.backbone
        model.backbone = net  # the compiled module when --compile
        mem.reset()
        try:
            with torch.no_grad(), autocast():
                _, secs = timer(lambda: model([video]))
        finally:
            model.backbone = raw_backbone
        print(
            f"full pipeline  : {n / secs:8.2f} frames/s ({1000 * secs / n:8.1f} ms/frame over {n}"
            f" frames; masks -> {args.orig[0]}x{args.orig[1]} RLE); {mem.read()}"
        )

    if args.official:
        compare_official(args, c, model, net, ours_step, inputs, timer, autocast, frames)


def official_state_dict(model, model_name):
    """The wsovvis network's tensors in the official names (DINOv3: HF trunk names)."""
    from wsovvis.modeling.videomt.dinov3 import dinov3_wsovvis_to_official
    from wsovvis.modeling.videomt.vit import is_dinov3

    sd = model.backbone.state_dict()
    if not is_dinov3(model_name):
        return sd
    sd = dinov3_wsovvis_to_official({"backbone." + k: v for k, v in sd.items()})
    return {k[len("backbone.") :]: v for k, v in sd.items()}


def compare_official(args, c, model, net, ours_step, inputs, timer, autocast, frames):
    """Time the official backbone (same weights) interleaved with ours; check the outputs; time
    upstream's full VIS test path (``official_style_vis``) on the pipeline frames."""
    import torch
    from _official_videomt import (
        OfficialUnavailable,
        build_official_backbone,
        official_commit,
        official_style_vis,
    )

    from wsovvis.modeling.videomt.vit import is_dinov3

    vit = model.backbone.encoder.backbone
    try:
        official = build_official_backbone(
            args.official,
            model_name=c.MODEL_NAME,
            img_size=c.IMG_SIZE,
            num_classes=c.NUM_CLASSES,
            num_queries=c.NUM_QUERIES,
            segmenter_blocks=c.SEGMENTER_BLOCKS,
            norm_queries=c.NORM_QUERIES,
            dinov3_like=vit if is_dinov3(c.MODEL_NAME) else None,
        )
        official.load_state_dict(official_state_dict(model, c.MODEL_NAME), strict=True)
    except (OfficialUnavailable, RuntimeError) as e:
        print(f"official       : skipped -- {e}")
        return
    print(f"official       : {args.official} at commit {official_commit(args.official)}")
    official = official.to(inputs[0].device).eval()
    off = torch.compile(official, dynamic=True) if args.compile else official

    def official_step(i):
        with torch.no_grad(), autocast():
            return off(inputs[i % len(inputs)], resume=i > 0)

    for i in range(args.warmup):
        official_step(i)
    t_ours = t_off = 0.0
    d_logits = d_masks = 0.0
    memory = None
    for i in range(args.frames):
        # alternate which model runs first so that background load hits both alike
        if i % 2 == 0:
            mine, s_mine = timer(lambda: ours_step(i, memory))
            theirs, s_theirs = timer(lambda: official_step(i))
        else:
            theirs, s_theirs = timer(lambda: official_step(i))
            mine, s_mine = timer(lambda: ours_step(i, memory))
        memory = mine["memory"]
        t_ours, t_off = t_ours + s_mine, t_off + s_theirs
        d_logits = max(
            d_logits, (mine["pred_logits"] - theirs["pred_logits"]).abs().max().float().item()
        )
        d_masks = max(
            d_masks,
            (mine["pred_masks"] - theirs["pred_masks"].transpose(1, 2)).abs().max().float().item(),
        )
    fps_ours, fps_off = args.frames / t_ours, args.frames / t_off
    print(
        f"interleaved    : ours {fps_ours:8.2f} frames/s, official {fps_off:8.2f} frames/s, "
        f"ours/official = {fps_ours / fps_off:.3f} (same frames, same weights)"
    )
    print(
        f"agreement      : max |diff| over {args.frames} streamed frames: class logits "
        f"{d_logits:.3g}, mask logits {d_masks:.3g} (amp {args.amp})"
    )
    if not args.no_pipeline:
        n = args.pipeline_frames

        def official_full():
            with torch.no_grad(), autocast():
                images = model.preprocess_image(frames[:n])
                return official_style_vis(
                    off, images.tensor, images.image_sizes[0], args.orig, c.TEST_TOPK
                )

        _, secs = timer(official_full)
        print(
            f"official full  : {n / secs:8.2f} frames/s ({1000 * secs / n:8.1f} ms/frame over {n}"
            f" frames; upstream's VIS path: all frames kept, top-k masks resized at the end)"
        )


if __name__ == "__main__":
    main()

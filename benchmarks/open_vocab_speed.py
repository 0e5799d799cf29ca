#!/usr/bin/env python
"""Open-vocabulary naming speed and memory (CPU by default; ratios are measured in the same run).

1. Naming throughput (frames/s) of :class:`wsovvis.open_vocab.TubeClassifier` for the default
   ConvNeXt-L CLIP (``convnext_large_d_320``, random weights: ``pretrained=None``, same compute)
   at its input size, and for the demo's tiny CLIP.
2. Peak memory (VmHWM of a fresh process) naming one video of 10 / 100 / 1000 frames with the
   streaming classifier vs a keep-all-dense-maps baseline (every frame's map kept, then pooled),
   with the tiny CLIP (ConvNeXt-L on 1000 CPU frames would take over an hour); the size of one
   ConvNeXt-L map is printed for scale.

Examples::

    python benchmarks/open_vocab_speed.py                    # small scale (a few minutes on CPU)
    python benchmarks/open_vocab_speed.py --large-frames 8 --lengths 10 100 1000 --size 256 384
    python benchmarks/open_vocab_speed.py --device cuda --large-frames 200 --tiny-frames 2000

With ``--device cuda`` the throughput part runs on the GPU with fp16 autocast (``--no-amp``:
fp32), synchronising before each clock read; the memory part stays a CPU RSS measurement.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def _video(length, height, width, tubes=5, seed=0):
    """Synthetic frames (generated on access, never all held) and rectangle tubes as RLE."""
    from pycocotools import mask as mask_util

    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(tubes):
        h, w = int(rng.integers(height // 6, height // 2)), int(rng.integers(width // 6, width // 2))
        boxes.append((int(rng.integers(0, height - h)), int(rng.integers(0, width - w)), h, w))
    rles = []
    for y, x, h, w in boxes:
        m = np.zeros((height, width), np.uint8, order="F")
        m[y:y + h, x:x + w] = 1
        r = mask_util.encode(m)
        rles.append({"size": [height, width], "counts": r["counts"].decode("ascii")})
    segs = [[r] * length for r in rles]  # the same mask on every frame (timing is mask-agnostic)

    def read(t):
        return np.random.default_rng([seed, t]).integers(0, 256, (height, width, 3), dtype=np.uint8)

    return read, segs


def _classifier(model_name, input_size, frames_per_batch=4, device="cpu", amp=True):
    import torch

    from wsovvis.open_vocab import DenseClip, TubeClassifier, load_clip, load_vocabulary

    model, _ = load_clip(model_name, "", device=device)
    clip = DenseClip(model, input_size=input_size, amp=amp)
    vocab = load_vocabulary([f"class{i}" for i in range(20)])
    dim = model.text_projection.shape[1] if hasattr(model, "text_projection") and \
        model.text_projection is not None else model.visual.head.proj.out_features
    text = torch.nn.functional.normalize(torch.randn(20, dim), dim=-1).to(device)
    return TubeClassifier(clip=clip, vocabulary=vocab, text_embeddings=text, owner=torch.arange(20),
                          frames_per_batch=frames_per_batch)


def throughput(model_name, input_size, frames, height, width, device="cpu", amp=True):
    import torch

    clf = _classifier(model_name, input_size, device=device, amp=amp)
    read, segs = _video(frames, height, width)
    cuda = torch.device(device).type == "cuda"
    warm = 4 if cuda else 1  # a few batches on CUDA (allocator, cuDNN autotuning)
    clf.classify_tubes(read, [s[:warm] for s in segs], height, width)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    clf.classify_tubes(read, segs, height, width)
    sync()
    dt = time.perf_counter() - t0
    return {"model": model_name, "input": list(clf.clip.input_shape(height, width)),
            "frames": frames, "seconds": round(dt, 2), "frames_per_s": round(frames / dt, 3)}


def _vm_hwm_mib() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it restarts at exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _child(mode, length, height, width, model_name, input_size):
    """One measurement in this (fresh) process: prints max RSS in MiB."""
    import torch
    import torch.nn.functional as F

    clf = _classifier(model_name, input_size)
    read, segs = _video(length, height, width)
    base = _vm_hwm_mib()
    held = 0
    if mode == "streaming":
        clf.classify_tubes(read, segs, height, width)
    else:  # keep-all baseline: the whole video's dense maps first, then pooling
        from wsovvis.utils.rle import decode_segmentation

        maps = [clf.clip.dense(torch.from_numpy(read(t)).permute(2, 0, 1)[None])[0] for t in range(length)]
        held = sum(m.numel() * m.element_size() for m in maps)
        for tube in segs:
            embs = []
            for t, seg in enumerate(tube):
                m = torch.from_numpy(decode_segmentation(seg, height, width)).float()
                w = F.adaptive_avg_pool2d(m[None, None], maps[t].shape[-2:]).flatten()
                embs.append(clf.clip.head(((maps[t].flatten(1) @ w) / w.sum())[None]))
    peak = _vm_hwm_mib()
    print(json.dumps({"mode": mode, "frames": length, "peak_rss_mib": round(peak, 1),
                      "rss_growth_mib": round(peak - base, 1),
                      "dense_maps_held_mib": round(held / 2**20, 2)}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--large-model", default="convnext_large_d_320")
    p.add_argument("--large-frames", type=int, default=2, help="frames timed for the large CLIP")
    p.add_argument("--tiny-frames", type=int, default=40)
    p.add_argument("--size", type=int, nargs=2, default=[128, 192], help="frame height width")
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--memory-model", default="wsovvis_tiny_convnext")
    p.add_argument("--memory-input", type=int, default=256, help="CLIP input short side (memory)")
    p.add_argument("--out", default=None, help="also write the numbers as JSON")
    p.add_argument("--device", default="cpu", help="throughput device: cpu, cuda, cuda:N")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA (default: fp16 autocast)")
    p.add_argument("--child", nargs=2, metavar=("MODE", "LENGTH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    h, w = args.size
    if args.child:
        return _child(args.child[0], int(args.child[1]), h, w, args.memory_model, args.memory_input)
    import torch

    amp = not args.no_amp and args.device.startswith("cuda")
    out = {"device": args.device, "amp": amp, "threads": torch.get_num_threads(), "frame_size": [h, w]}
    print(f"[open_vocab_speed] {args.device} (amp {amp}), {out['threads']} CPU threads, frames {h}x{w}, "
          "5 tubes per frame")
    out["throughput"] = [
        throughput(args.large_model, 0, args.large_frames, h, w, args.device, amp),
        throughput("wsovvis_tiny_convnext", h, args.tiny_frames, h, w, args.device, amp),
    ]
    for r in out["throughput"]:
        print(f"  {r['model']:<24} input {r['input'][0]}x{r['input'][1]}: {r['frames_per_s']:.3f} frames/s "
              f"({r['frames']} frames in {r['seconds']} s)")
    a, b = out["throughput"]
    print(f"  tiny / large speed ratio: {b['frames_per_s'] / a['frames_per_s']:.0f}x")
    out["memory"] = []
    for mode in ("streaming", "keep_all"):
        for n in args.lengths:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, str(n), "--size", str(h),
                   str(w), "--memory-model", args.memory_model, "--memory-input", str(args.memory_input)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out["memory"].append(json.loads(res.stdout.strip().splitlines()[-1]))
    gh, gw = (-(-d * 320 // min(h, w)) // 32 for d in (h, w))
    print(f"  one convnext_large_d_320 dense map at 320 short side: 1536x{gh}x{gw} fp32 = "
          f"{1536 * gh * gw * 4 / 2**20:.2f} MiB per frame (what a keep-all path holds per frame)")
    print(f"  peak memory ({args.memory_model}, input short side {args.memory_input}):")
    print(f"  {'frames':>8} {'streaming MiB':>14} {'keep-all MiB':>13} {'maps held MiB':>14}")
    for n in args.lengths:
        s = next(m for m in out["memory"] if m["mode"] == "streaming" and m["frames"] == n)
        k = next(m for m in out["memory"] if m["mode"] == "keep_all" and m["frames"] == n)
        print(f"  {n:>8} {s['peak_rss_mib']:>14.1f} {k['peak_rss_mib']:>13.1f} {k['dense_maps_held_mib']:>14.2f}")
    if args.out:
        from wsovvis.utils.io import atomic_write_json

        atomic_write_json(out, args.out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

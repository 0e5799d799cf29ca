"""Time / memory of the pure-PyTorch MSDeformAttn at SeqFormer encoder and decoder sizes.

Usage::

    python benchmarks/msdeform_attn_bench.py --device cuda --height 448 --width 768 --frames 5
"""
import argparse
import time

import torch

from wsovvis.modeling.layers import MSDeformAttn


def _shapes(h, w):
    return [(-(-h // s), -(-w // s)) for s in (8, 16, 32, 64)]


def bench(device, h, w, frames, queries, dtype, iters):
    """Forward+backward time (ms) of one encoder layer and one decoder cross-attention."""
    shapes = torch.tensor(_shapes(h, w), device=device)
    s = int((shapes[:, 0] * shapes[:, 1]).sum())
    attn = MSDeformAttn(256, 4, 8, 4).to(device)
    memory = torch.randn(frames, s, 256, device=device, requires_grad=True)
    cases = {
        "encoder": (memory, torch.rand(frames, s, 4, 2, device=device)),
        "decoder": (torch.randn(frames, queries, 256, device=device),
                    torch.rand(frames, queries, 4, 4, device=device) * 0.5 + 0.25),
    }
    for name, (query, ref) in cases.items():
        for i in range(iters + 1):
            if i == 1:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                out = attn(query, ref, memory, shapes)
            out.float().square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) / iters * 1e3
        mem = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
        print(f"{name:8s} S={s} Lq={query.shape[1]} frames={frames}: {ms:.1f} ms fwd+bwd, "
              f"peak {mem:.0f} MiB")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--height", type=int, default=448)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--frames", type=int, default=5)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--amp", choices=["none", "fp16", "bf16"], default="none")
    p.add_argument("--iters", type=int, default=5)
    a = p.parse_args()
    dtype = {"none": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[a.amp]
    bench(torch.device(a.device), a.height, a.width, a.frames, a.queries, dtype, a.iters)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Speed of the VideoCutLER PNG -> YTVIS JSON converter (frames/s) for 1 and N worker processes.

Generates a synthetic dataset with VideoCutLER-style palette mask PNGs (``wsovvis.data.synthetic``;
LV-VIS-like 720p frames by default), converts its train split with each worker count, checks that
every run gives the same JSON, and prints a table plus one line for the README.

Example::

    python benchmarks/pseudo_convert_speed.py --num_videos 24 --num_frames 20 --workers 1 2
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

try:
    import wsovvis  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wsovvis.data.synthetic import generate_synthetic_dataset  # noqa: E402
from wsovvis.pseudo import ConvertOptions, convert_videocutler_pngs  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num_videos", type=int, default=24, help="synthetic train videos")
    p.add_argument("--num_frames", type=int, default=20, help="frames per video")
    p.add_argument("--height", type=int, default=720, help="frame height")
    p.add_argument("--width", type=int, default=1280, help="frame width")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    p.add_argument("--repeat", type=int, default=2, help="runs per worker count (best is kept)")
    p.add_argument("--data_dir", default=None,
                   help="reuse / keep the synthetic dataset here (default: a temp dir, deleted)")
    p.add_argument("--json_out", default=None, help="also write the measurements as JSON")
    return p


def _dataset(args, tmp):
    root = args.data_dir or os.path.join(tmp, "synthetic")
    summary = os.path.join(root, "synthetic_summary.json")
    if args.data_dir and os.path.exists(summary):
        print(f"reusing {root}")
    else:
        t0 = time.perf_counter()
        generate_synthetic_dataset(root, preset="demo", seed=0, num_videos=args.num_videos,
                                   num_frames=args.num_frames, height=args.height,
                                   width=args.width, overwrite=True, progress=True)
        print(f"generated {root} in {time.perf_counter() - t0:.1f}s")
    return (os.path.join(root, "videocutler_png", "train", "masks"),
            os.path.join(root, "train", "JPEGImages"))


def main(argv=None) -> int:
    """Run the benchmark; returns the exit status."""
    args = get_parser().parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="pseudo_bench_")
    try:
        mask_root, img_root = _dataset(args, tmp)
        rows, reference = [], None
        for workers in args.workers:
            best = None
            for _ in range(max(args.repeat, 1)):
                opts = ConvertOptions(mask_root=mask_root, img_root=img_root, split_name="train",
                                      num_workers=workers, progress=False)
                t0 = time.perf_counter()
                res = convert_videocutler_pngs(opts)
                blob = json.dumps(res.dataset, separators=(",", ":"))
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            if reference is None:
                reference = blob
            elif blob != reference:
                print(f"error: {workers} workers produced a different JSON", file=sys.stderr)
                return 1
            s = res.report["summary"]
            rows.append({"workers": workers, "seconds": best, "frames": s["frames"],
                         "mask_pngs": s["frames_with_masks"], "videos": s["converted"],
                         "frames_per_s": s["frames"] / best})
        base = rows[0]["frames_per_s"]
        print(f"{'workers':>7} {'seconds':>8} {'frames/s':>9} {'masks/s':>8} {'speed-up':>8}")
        for r in rows:
            r["speedup"] = r["frames_per_s"] / base
            print(f"{r['workers']:>7} {r['seconds']:>8.2f} {r['frames_per_s']:>9.1f} "
                  f"{r['mask_pngs'] / r['seconds']:>8.1f} {r['speedup']:>7.2f}x")
        cpu = os.cpu_count()
        last = rows[-1]
        print(
            f"README: convert_videocutler_png_to_json: {base:.0f} frames/s with 1 worker, "
            f"{last['frames_per_s']:.0f} frames/s with {last['workers']} "
            f"({last['speedup']:.2f}x) on {args.height}x{args.width} synthetic palette PNGs "
            f"({rows[0]['videos']} videos x {args.num_frames} frames, {cpu} CPU cores)"
        )
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump({"args": vars(args), "rows": rows, "cpu_count": cpu}, f, indent=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

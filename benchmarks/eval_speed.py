"""Speed (and equality) of wsovvis' YTVIS scorer against the official youtubevos/cocoapi evaluator.

Cases (full size; ``--scale`` shrinks the number of videos):
  a) LV-VIS scale: 800 videos x 16 frames, 5 GT + 10 predictions per video, 360x640,
     1196 categories, per-category AP (with base/novel).
  b) class-agnostic: 200 videos x 36 frames, 5 GT + 10 predictions per video, 360x640,
     40 categories.

Usage::

    python benchmarks/eval_speed.py [--scale 0.1] [--official /tmp/ytvis_official]

``--official`` is a directory containing ``ytvos.py`` / ``ytvoseval.py`` (with the non-logic
modernisation edits); both evaluators then run in the same process on the same files, and the
script reports per-phase times, the speed ratio and whether the 12 stats and the full
precision/recall/score arrays are identical. Compare CPU (process) times on a shared machine.

What makes wsovvis fast (see ``wsovvis/evaluation/ytvis_eval.py``): with the compiled kernels
(``wsovvis/evaluation/_ytvis_kernels.c``, built by ``make env``), one C pass over each mapped JSON
file packs every mask into flat tables, so the JSON parser only sees the small rest; one kernel
call decodes each mask once, frame by frame, and sums exact integer intersections/unions for the
same-category pairs; accumulate is the official loop, compiled. Matching is vectorised over all
blocks; only non-empty (video, category) pairs are visited. Without a compiler the numpy /
pycocotools path runs (same numbers, ~4x official). ``WSOVVIS_EVAL_KERNELS=0`` forces it.

The wsovvis time printed is the best of ``--repeat`` runs; the first run (cold allocator) is
printed beside it, and both ratios are given.
"""

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ytvis_synthetic import write_case  # noqa: E402

from wsovvis.evaluation import evaluate_ytvis, format_summary  # noqa: E402
from wsovvis.evaluation.ytvis_packed import kernels_available  # noqa: E402

CASES = {
    "a": dict(
        name="lvvis",
        class_agnostic=False,
        spec=dict(
            num_videos=800, num_frames=16, gt_per_video=5, preds_per_video=10, num_categories=1196
        ),
    ),
    "b": dict(
        name="agnostic",
        class_agnostic=True,
        spec=dict(
            num_videos=200, num_frames=36, gt_per_video=5, preds_per_video=10, num_categories=40
        ),
    ),
}


def run_official(directory: str, gt_path: str, res_path: str, class_agnostic: bool):
    """Run the official evaluator; returns (YTVOSeval, phase timings)."""
    sys.path.insert(0, directory)
    try:
        from ytvos import YTVOS
        from ytvoseval import YTVOSeval
    finally:
        sys.path.remove(directory)
    times = {}
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = YTVOS(gt_path)
        times["load_gt"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        dt = gt.loadRes(res_path)
        times["load_results"] = time.perf_counter() - t0
        ev = YTVOSeval(gt, dt, "segm")
        ev.params.useCats = 0 if class_agnostic else 1
        prep = ev._prepare

        def timed_prepare():
            t = time.perf_counter()
            prep()
            times["prepare"] = time.perf_counter() - t

        ev._prepare = timed_prepare
        t0 = time.perf_counter()
        ev.evaluate()
        times["iou+match"] = time.perf_counter() - t0 - times["prepare"]
        t0 = time.perf_counter()
        ev.accumulate()
        ev.summarize()
        times["accumulate"] = time.perf_counter() - t0
    return ev, times


def _fmt(times):
    return "  ".join(f"{k}={v:.3f}s" for k, v in times.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the videos to use")
    parser.add_argument(
        "--official", default=None, help="directory with the official ytvos.py / ytvoseval.py"
    )
    parser.add_argument("--cases", default="ab", help="which cases to run (a, b)")
    parser.add_argument(
        "--cache-dir", default=os.path.join(tempfile.gettempdir(), "wsovvis_evalbench")
    )
    parser.add_argument(
        "--gt-rle",
        choices=["uncompressed", "compressed"],
        default="uncompressed",
        help="GT mask format (YTVIS JSONs use uncompressed counts lists)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="wsovvis runs (best time reported)")
    parser.add_argument("--workers", type=int, default=0, help="wsovvis worker processes")
    args = parser.parse_args(argv)
    all_equal = True
    for key in args.cases:
        case = CASES[key]
        spec = dict(case["spec"])
        spec["num_videos"] = max(1, int(round(spec["num_videos"] * args.scale)))
        t0 = time.perf_counter()
        gt_path, res_path = write_case(
            args.cache_dir, case["name"], gt_uncompressed=args.gt_rle == "uncompressed", **spec
        )
        mode = "class-agnostic" if case["class_agnostic"] else "per-category"
        gen = time.perf_counter() - t0
        print(
            f"== case {key} ({case['name']}, {mode}): {spec}  [data {gen:.1f}s, "
            f"GT {os.path.getsize(gt_path) / 2**20:.1f} MB, results "
            f"{os.path.getsize(res_path) / 2**20:.1f} MB]"
        )
        best, first, res = None, None, None
        for _ in range(max(1, args.repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            res = evaluate_ytvis(
                gt_path,
                res_path,
                class_agnostic=case["class_agnostic"],
                num_workers=args.workers,
            )
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
            first = first or (total, cpu)
            if best is None or total < best[0]:
                best = (total, cpu, dict(res.timings))
        print(
            f"wsovvis : total={best[0]:.3f}s cpu={best[1]:.3f}s  {_fmt(best[2])}  "
            f"(best of {max(1, args.repeat)}; first run {first[0]:.3f}s; workers={args.workers}; "
            f"kernels={'on' if kernels_available() else 'off'})"
        )
        print(format_summary(res))
        if args.official:
            t0, c0 = time.perf_counter(), time.process_time()
            ev, times = run_official(args.official, gt_path, res_path, case["class_agnostic"])
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"official: total={total:.3f}s cpu={cpu:.3f}s  {_fmt(times)}")
            print(
                f"speed-up: wall {total / best[0]:.1f}x, cpu {cpu / best[1]:.1f}x "
                f"(first run: wall {total / first[0]:.1f}x, cpu {cpu / first[1]:.1f}x)"
            )
            with_scores = evaluate_ytvis(
                gt_path, res_path, class_agnostic=case["class_agnostic"], with_scores=True
            )
            same = {
                "stats": np.array_equal(np.asarray(ev.stats), res.stats),
                "precision": np.array_equal(ev.eval["precision"], res.precision),
                "recall": np.array_equal(ev.eval["recall"], res.recall),
                "scores": np.array_equal(ev.eval["scores"], with_scores.scores),
            }
            print("identical: " + ", ".join(f"{k}={v}" for k, v in same.items()))
            all_equal &= all(same.values())
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())

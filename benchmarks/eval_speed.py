"""Speed (and equality) of wsovvis' YTVIS scorer against the official youtubevos/cocoapi evaluator.

Cases (full size; ``--scale`` shrinks the number of videos):
  a) LV-VIS scale: 800 videos x 16 frames, 5 GT + 10 predictions per video, 360x640,
     1196 categories, per-category AP (with base/novel).
  b) class-agnostic: 200 videos x 36 frames, 5 GT + 10 predictions per video, 360x640,
     40 categories.

Usage::

    python benchmarks/eval_speed.py [--scale 0.5] [--official DIR] [--repeat 3]

Whole processes are timed: ``tools/eval_ytvis.py`` (best CPU of ``--repeat`` runs) and, with
``--official DIR`` (an unmodified youtubevos/cocoapi checkout, see
``wsovvis/evaluation/official.py``), a process running the official ``YTVOS`` / ``YTVOSeval`` on
the same files, interleaved with them (best of ``--repeat`` too). Wall and CPU (user + system)
seconds and peak memory are printed for both, with the ratios; the official stats and
precision / recall / scores arrays are then compared with ``evaluate_ytvis`` (bit for bit). On a
shared machine compare CPU times.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ytvis_synthetic import write_case  # noqa: E402

from wsovvis.evaluation import evaluate_ytvis  # noqa: E402

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

# the official evaluator in its own process; saves its arrays for the comparison
OFFICIAL_RUNNER = """
import contextlib, io, sys
import numpy as np
sys.path.insert(0, {root!r})
from wsovvis.evaluation.official import load_official
YTVOS, YTVOSeval = load_official({directory!r})
with contextlib.redirect_stdout(io.StringIO()):
    gt = YTVOS({gt!r})
    ev = YTVOSeval(gt, gt.loadRes({res!r}), "segm")
    ev.params.useCats = {use_cats}
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
np.savez({out!r}, stats=ev.stats, precision=ev.eval["precision"], recall=ev.eval["recall"],
         scores=ev.eval["scores"])
"""


# times a command from a small process of its own: a child forked from this (large) one would
# report this one's memory as its peak
LAUNCHER = """
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def timed(cmd):
    """Run a command; returns (wall s, CPU s, peak RSS MB), raising if it fails."""
    proc = subprocess.run([sys.executable, "-c", LAUNCHER] + cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    wall, cpu, peak = (float(v) for v in proc.stdout.split()[-3:])
    return wall, cpu, peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the videos to use")
    parser.add_argument("--official", default=None, help="youtubevos/cocoapi checkout")
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
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (best CPU reported)")
    args = parser.parse_args(argv)
    cases = []
    for key in args.cases:
        case = CASES[key]
        spec = dict(case["spec"])
        spec["num_videos"] = max(1, int(round(spec["num_videos"] * args.scale)))
        gt_path, res_path = write_case(
            args.cache_dir, case["name"], gt_uncompressed=args.gt_rle == "uncompressed", **spec
        )
        mode = "class-agnostic" if case["class_agnostic"] else "per-category"
        print(f"== case {key} ({case['name']}, {mode}): {spec}  [GT "
              f"{os.path.getsize(gt_path) / 2**20:.1f} MB, results "
              f"{os.path.getsize(res_path) / 2**20:.1f} MB]")
        cli = [sys.executable, os.path.join(ROOT, "tools", "eval_ytvis.py"), "--gt", gt_path]
        cli += ["--results", res_path] + (["--class-agnostic"] if case["class_agnostic"] else [])
        out = os.path.join(args.cache_dir, f"official_{key}.npz")
        code = OFFICIAL_RUNNER.format(root=ROOT, directory=args.official, gt=gt_path, res=res_path,
                                      out=out, use_cats=0 if case["class_agnostic"] else 1)
        ours, official = [], []
        for _ in range(max(1, args.repeat)):  # interleaved: both see the same machine load
            ours.append(timed(cli))
            if args.official:
                official.append(timed([sys.executable, "-c", code]))
        best = min(ours, key=lambda r: r[1])
        print(f"wsovvis  process: wall {best[0]:.2f} s, CPU {best[1]:.2f} s, peak {best[2]:.0f} MB"
              f" (CPU of each run: {', '.join(f'{r[1]:.2f}' for r in ours)})")
        row = [key, mode, best, None, None]
        if official:
            off = min(official, key=lambda r: r[1])
            print(f"official process: wall {off[0]:.2f} s, CPU {off[1]:.2f} s, peak {off[2]:.0f} MB"
                  f" (CPU of each run: {', '.join(f'{r[1]:.2f}' for r in official)})")
            print(f"speed-up: wall {off[0] / best[0]:.1f}x, CPU {off[1] / best[1]:.1f}x")
            row[3] = off
        cases.append((row, gt_path, res_path, case["class_agnostic"], out))
    all_equal = True
    for row, gt_path, res_path, class_agnostic, out in cases:
        res = evaluate_ytvis(gt_path, res_path, class_agnostic=class_agnostic, with_scores=True)
        print(f"case {row[0]} phases (in-process): "
              + "  ".join(f"{k}={v:.3f}s" for k, v in res.timings.items()))
        if row[3] is not None:
            ref = np.load(out)
            same = {k: np.array_equal(ref[k], getattr(res, k))
                    for k in ("stats", "precision", "recall", "scores")}
            print("identical: " + ", ".join(f"{k}={v}" for k, v in same.items()))
            row[4] = all(same.values())
            all_equal &= row[4]
    if args.official:
        print("\n| case | official wall / CPU / peak | wsovvis wall / CPU / peak | CPU ratio "
              "| identical |")
        print("|---|---|---|---|---|")
        for (key, mode, ours, off, same), *_ in cases:
            print(f"| {key} ({mode}) | {off[0]:.2f} s / {off[1]:.2f} s / {off[2]:.0f} MB | "
                  f"{ours[0]:.2f} s / {ours[1]:.2f} s / {ours[2]:.0f} MB | "
                  f"{off[1] / ours[1]:.1f}x | {same} |")
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
r"""Render YTVIS ground truth or a results.json over the frames: one GIF + one PNG per video.

Examples::

    python tools/visualize_ytvis.py --json datasets/lvvis/val/val_instances.json \
        --image-root datasets/lvvis/val/JPEGImages --out vis/gt --max-videos 5
    python tools/visualize_ytvis.py --json val_instances.json --image-root JPEGImages \
        --results outputs/x/inference/results.json --score-thresh 0.3 --out vis/pred
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wsovvis.visualization import visualize_ytvis  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", required=True, help="YTVIS JSON (videos, categories, GT annotations)")
    p.add_argument("--image-root", required=True, help="folder of the videos' file_names")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--results", default=None, help="results.json to draw instead of the GT")
    p.add_argument("--video-ids", type=int, nargs="*", default=None)
    p.add_argument("--max-videos", type=int, default=None)
    p.add_argument("--score-thresh", type=float, default=0.3)
    p.add_argument("--top-k", type=int, default=10, help="max predictions per video")
    p.add_argument("--duration-ms", type=int, default=200, help="GIF frame duration")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if os.path.isfile(args.out):
            raise ValueError(f"--out {args.out} is a file, not a folder")
        for flag, value in (("--top-k", args.top_k), ("--max-videos", args.max_videos),
                            ("--duration-ms", args.duration_ms)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        written = visualize_ytvis(
            args.json,
            args.image_root,
            args.out,
            results_file=args.results,
            video_ids=args.video_ids,
            max_videos=args.max_videos,
            score_thresh=args.score_thresh,
            top_k=args.top_k,
            duration_ms=args.duration_ms,
        )
    except KeyError as e:  # a JSON record without a required key
        print(f"error: missing key {e.args[0]!r} in {args.results or args.json}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:  # bad input: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

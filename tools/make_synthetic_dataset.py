#!/usr/bin/env python
"""Generate the synthetic moving-shapes VIS dataset (LV-VIS layout + VideoCutLER-style PNGs).

Example::

    python tools/make_synthetic_dataset.py --out datasets/synthetic_demo --preset demo --seed 0
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wsovvis.data.synthetic import PRESETS, generate_synthetic_dataset  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="dataset root to create")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="dataset size preset")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same bytes)")
    p.add_argument("--num-videos", type=int,
                   help="override the number of training videos (>= 1); val keeps its preset "
                        "size, capped at this number")
    p.add_argument("--num-frames", type=int, help="override frames per video (>= 1)")
    p.add_argument("--height", type=int, help="override frame height (>= 1)")
    p.add_argument("--width", type=int, help="override frame width (>= 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Generate the dataset and print where its parts are; returns the exit status (2 = error)."""
    args = parse_args(argv)
    try:
        for flag in ("num_videos", "num_frames", "height", "width"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
        if os.path.isfile(args.out):
            raise ValueError(f"--out {args.out} is a file, not a folder")
        paths = generate_synthetic_dataset(
            args.out,
            preset=args.preset,
            seed=args.seed,
            num_videos=args.num_videos,
            num_frames=args.num_frames,
            height=args.height,
            width=args.width,
            overwrite=args.overwrite,
            progress=True,
        )
    except (ValueError, OSError) as e:  # FileExistsError too
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Synthetic dataset ({args.preset}, seed {args.seed}) written to {paths['root']}")
    for split, p in paths["splits"].items():
        s = paths["summary"][split]
        print(
            f"  {split}: {s['videos']} videos, {s['frames']} frames, {s['instances']} GT tracks "
            f"({s['null_frames']} null track-frames); pseudo PNGs {s['pseudo_pngs']}, "
            f"empty pseudo videos {s['pseudo_empty_videos']}, "
            f"frames without PNG {s['pseudo_missing_frames']}"
        )
        for key in ("img_root", "gt_json", "pseudo_mask_root"):
            print(f"    {key:17s} {p[key]}")
    print("  categories: " + json.dumps([(c["id"], c["name"], c["partition"])
                                         for c in paths["categories"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Rewrite a YTVIS / LV-VIS annotation JSON so every annotation has one category ("object").

Example::

    python tools/make_class_agnostic_ytvis_json.py \\
        --in_json datasets/lvvis/val/val_instances.json \\
        --out_json datasets/lvvis/val/val_instances_class_agnostic.json

The original label of each annotation is kept as ``orig_category_id`` and the original category
list as ``orig_categories``. The single category gets ``partition: 0`` only when the input
categories have partitions (LV-VIS); ``tools/eval_ytvis.py`` then reports base / novel AP from the
tracks' original partitions. See ``wsovvis/pseudo/class_agnostic.py``.
"""
import argparse
import os
import sys

try:
    import wsovvis  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wsovvis.pseudo.class_agnostic import make_class_agnostic  # noqa: E402
from wsovvis.utils.io import atomic_write_json, read_json  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--in_json", required=True, help="YTVIS / LV-VIS annotation JSON")
    p.add_argument("--out_json", required=True, help="class-agnostic JSON to write (atomically)")
    p.add_argument("--category_id", type=int, default=1, help="the single category id (default 1)")
    p.add_argument("--category_name", default="object", help="its name (default: object)")
    return p


def main(argv=None) -> int:
    """Run the rewrite; returns the exit status."""
    args = get_parser().parse_args(argv)
    try:
        data = read_json(args.in_json, "annotation JSON")
        out = make_class_agnostic(data, args.category_id, args.category_name)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {args.in_json}: {e}", file=sys.stderr)
        return 2
    atomic_write_json(out, args.out_json, separators=(",", ":"))
    print(
        f"wrote {args.out_json}: {len(out['videos'])} videos, "
        f"{len(out['annotations'])} annotations, "
        f"{len(out['orig_categories'])} original categories -> 1 ({args.category_name!r})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

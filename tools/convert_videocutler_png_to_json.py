#!/usr/bin/env python
"""Convert VideoCutLER mask PNGs (``<mask_root>/<video>/mask_<frame>.png``) to YTVIS pseudo tubes.

Example::

    python tools/convert_videocutler_png_to_json.py \\
        --mask_root outputs/videocutler_lvvis_png/train/masks \\
        --img_root datasets/lvvis/train/JPEGImages \\
        --out_json datasets/lvvis/train/train_pseudo_videocutler.json --split_name train \\
        --num_workers 8

Writes ``--out_json`` (only if at least one video was converted) and a skip report listing every
left-out video with its reason. Exit status: 0 on success, 1 when nothing was converted,
2 on bad arguments or (``--strict``) broken input.
"""
import argparse
import os
import sys

try:
    import wsovvis  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wsovvis.pseudo.videocutler import (  # noqa: E402
    ConversionError,
    ConvertOptions,
    convert_videocutler_pngs,
    read_skip_list,
    write_outputs,
)


def get_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--mask_root", required=True, help="folder of <video>/mask_<frame>.png folders")
    p.add_argument("--img_root", required=True,
                   help="folder of <video>/<frame>.jpg folders; file_names are relative to it")
    p.add_argument("--out_json", required=True, help="YTVIS JSON to write")
    p.add_argument("--split_name", default="", help="split name recorded in the JSON info / report")
    p.add_argument("--skip_list", default=None,
                   help="text file, one video name or id per line (# comments allowed)")
    p.add_argument("--min_masks", type=int, default=3,
                   help="skip videos with fewer mask PNGs (default: 3)")
    p.add_argument("--min_coverage", type=float, default=0.2,
                   help="skip videos where #mask PNGs / #frames is below this (default: 0.2)")
    p.add_argument("--skip_report", default=None,
                   help="skip report JSON (default: <out_json without .json>.skipped.json)")
    p.add_argument("--num_workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--category_id", type=int, default=1, help="category id of every tube")
    p.add_argument("--category_name", default="object", help="name of that category")
    p.add_argument("--ref_json", default=None,
                   help="optional YTVIS JSON of the same frames: reuse its video ids (matched by "
                        "folder name) so the tubes can be scored against it")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 2, naming the file) on broken input instead of skipping "
                        "the video")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return p


def default_skip_report(out_json: str) -> str:
    """``x/tubes.json`` -> ``x/tubes.skipped.json``."""
    stem = out_json[: -len(".json")] if out_json.endswith(".json") else out_json
    return stem + ".skipped.json"


def _check_output(path: str, flag: str) -> None:
    """Refuse an output path that cannot be written as a file, before any work."""
    if os.path.isdir(path):
        raise ConversionError(f"{flag} {path} is a folder; give a file path such as "
                              f"{os.path.join(path, 'tubes.json')}")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConversionError(f"{flag} {path}: {parent} is a file, not a folder")


def main(argv=None) -> int:
    """Run the conversion; returns the exit status."""
    args = get_parser().parse_args(argv)
    report = args.skip_report or default_skip_report(args.out_json)
    try:
        _check_output(args.out_json, "--out_json")
        _check_output(report, "--skip_report")
        if os.path.abspath(report) == os.path.abspath(args.out_json):
            raise ConversionError(f"--skip_report and --out_json are the same file: {report}")
        opts = ConvertOptions(
            mask_root=args.mask_root,
            img_root=args.img_root,
            split_name=args.split_name,
            skip_list=read_skip_list(args.skip_list) if args.skip_list else (),
            min_masks=args.min_masks,
            min_coverage=args.min_coverage,
            num_workers=args.num_workers,
            category_id=args.category_id,
            category_name=args.category_name,
            strict=args.strict,
            ref_json=args.ref_json,
            progress=not args.no_progress,
        )
        result = convert_videocutler_pngs(opts)
        written = write_outputs(result, args.out_json, report)
    except (ConversionError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result.summary_line())
    print(f"skip report: {report}")
    if not written:
        print(f"error: no video converted; {args.out_json} not written", file=sys.stderr)
        return 1
    print(f"wrote {args.out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

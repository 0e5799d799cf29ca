#!/usr/bin/env python
"""Score a YTVIS / LV-VIS results file (official mask AP semantics, fast).

Example::

    python tools/eval_ytvis.py --gt datasets/lvvis/val_instances.json \\
        --results output/inference/results.json --out output/metrics.json

Prints the official 12-line table (plus AP over LV-VIS base / novel categories when the GT
categories have ``partition``; with ``--class-agnostic``, the class-agnostic AP with the other
partition's GT tracks ignored) and optionally writes the metrics as JSON (atomically).
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the scorer does no BLAS work: one OpenBLAS thread spares numpy's thread start-up (~0.05 s CPU)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from wsovvis.evaluation import STAT_NAMES, evaluate_ytvis, format_summary  # noqa: E402


def _clean(v: float):
    """JSON-safe number: NaN / -1 (undefined) become None."""
    return None if (v is None or math.isnan(v) or v < 0) else float(v)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", required=True, help="ground-truth JSON (YTVIS / LV-VIS format)")
    parser.add_argument("--results", required=True, help="results JSON (list of video tracks)")
    parser.add_argument(
        "--class-agnostic", action="store_true", help="pool all categories (official useCats=0)"
    )
    parser.add_argument("--out", default=None, help="write the metrics to this JSON file")
    parser.add_argument(
        "--oracle-labels",
        action="store_true",
        help="first relabel every result with the category of its best video-IoU GT tube "
        "(oracle-label AP: the naming ceiling of these tubes)",
    )
    args = parser.parse_args(argv)
    try:
        results = args.results
        if args.oracle_labels:
            from wsovvis.open_vocab.diagnostics import oracle_labels
            from wsovvis.utils.io import read_json

            results = oracle_labels(read_json(args.results, "results file"), args.gt)
        res = evaluate_ytvis(args.gt, results, class_agnostic=args.class_agnostic)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(res))
    if args.out:
        from wsovvis.utils.io import atomic_write_json

        metrics = {
            "class_agnostic": args.class_agnostic,
            "stats": {k: _clean(v) for k, v in zip(STAT_NAMES, res.stats.tolist())},
            "per_category_ap": {str(k): _clean(v) for k, v in res.per_category_ap.items()},
            "counts": res.counts,
        }
        if res.base_stats is not None:
            metrics["base_stats"] = {
                k: _clean(v) for k, v in zip(STAT_NAMES, res.base_stats.tolist())
            }
            metrics["novel_stats"] = {
                k: _clean(v) for k, v in zip(STAT_NAMES, res.novel_stats.tolist())
            }
            metrics["stats"]["APb"] = metrics["base_stats"]["AP"]
            metrics["stats"]["APn"] = metrics["novel_stats"]["AP"]
        atomic_write_json(metrics, args.out, indent=2)
        print(f"metrics written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

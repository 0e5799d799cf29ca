#!/usr/bin/env python
"""CPU demo of the weakly-supervised pipeline (``make demo``): synthetic data -> VideoCutLER pseudo
tubes -> VidEoMT training -> class-agnostic AP (trained vs untrained) -> GIF/PNG of a val video ->
open-vocabulary naming of the val tubes by a tiny CLIP trained on the fly (AP/APb/APn).

Examples::

    python tools/run_demo.py                       # full demo, a few minutes on 2 CPU cores
    python tools/run_demo.py --output-dir /tmp/d --preset tiny --max-iter 20   # smoke run
"""
import argparse
import logging
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", category=FutureWarning)

from wsovvis.engine.demo import DEMO_CONFIG, run_demo  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--output-dir", default="demo_output")
    p.add_argument("--preset", default="demo", help="synthetic dataset preset (tiny/small/demo)")
    p.add_argument("--config", default=DEMO_CONFIG, help="detectron2 config of the model")
    p.add_argument("--max-iter", type=int, default=None, help="override SOLVER.MAX_ITER")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-procs", type=int, default=1, help="training processes (DDP)")
    p.add_argument("--clip-steps", type=int, default=600,
                   help="training steps of the tiny CLIP that names the val tubes (0: no naming)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="detectron2 overrides KEY VALUE ...")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run_demo(args.output_dir, preset=args.preset, d2_cfg_path=args.config, max_iter=args.max_iter,
             d2_opts=args.opts, seed=args.seed, num_gpus=args.num_procs, clip_steps=args.clip_steps)


if __name__ == "__main__":
    main()

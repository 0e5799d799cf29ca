#!/usr/bin/env python
"""Train / evaluate wsovvis models, tracked by Sacred.

Examples (``X=configs/sacred/videomt_vits_lvvis_pseudo.yaml``)::

    python train_net.py with $X -F runs/vits                      # train, FileStorageObserver
    python train_net.py with $X -F runs/vits -m localhost:27017:wsovvis   # + Mongo (.[mongo] extra)
    python train_net.py with $X num_gpus=2 'd2_opts=["SOLVER.MAX_ITER", 1000]'
    python train_net.py with $X resume=True                       # continue its OUTPUT_DIR
    python train_net.py with $X eval_only=True resume=True        # score the last checkpoint
    python train_net.py with $X eval_only=True 'd2_opts=["MODEL.WEIGHTS", "model.pth"]'
    python train_net.py print_config with $X
    torchrun --nproc_per_node 8 train_net.py with $X num_gpus=1 -F runs/vits

Multi-node: run the same command on every machine with ``num_machines=N machine_rank=i
dist_url=tcp://<host0>:<port>``. torchrun / ``srun`` (one task per GPU) are detected from the
environment; only global rank 0 attaches observers. Everything else lives in :mod:`wsovvis.engine`.
"""
import os
import sys
import warnings

warnings.filterwarnings("ignore", message=".*pkg_resources.*")

from sacred import Experiment  # noqa: E402
from sacred.utils import apply_backspaces_and_linefeeds  # noqa: E402

from wsovvis.engine.checkpoint import CheckpointError  # noqa: E402
from wsovvis.engine.sacred_bridge import (  # noqa: E402
    observer_dependency_error,
    prepare_argv,
    run_sacred,
)
from wsovvis.engine.setup import DEFAULT_CONFIG, ConfigError  # noqa: E402

ex = Experiment("wsovvis", base_dir=os.path.dirname(os.path.abspath(__file__)))
ex.add_config(DEFAULT_CONFIG)
ex.captured_out_filter = apply_backspaces_and_linefeeds


@ex.main
def main(_run, _config):
    """One Sacred Run per launch; workers are spawned inside (see wsovvis.engine.sacred_bridge).

    Bad input (config, data, checkpoint) ends the run with one ``error: ...`` line and exit 2.
    """
    try:
        return run_sacred(_run, _config)
    except (ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    argv = prepare_argv(sys.argv)
    problem = observer_dependency_error(argv)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    ex.run_commandline(argv)

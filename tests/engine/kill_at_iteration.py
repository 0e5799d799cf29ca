"""Run ``train_net.py`` and SIGKILL the process right after a given training iteration.

Test helper of ``test_resume.py``: ``python kill_at_iteration.py ITER train_net.py ARGS...``.
The kill comes from a trainer hook placed after detectron2's (so the periodic checkpoint of that
iteration, if any, is written first), which makes the point of death independent of speed.
"""
import os
import runpy
import signal
import sys

from detectron2.engine import HookBase

from wsovvis.engine.trainer import Trainer


class KillAt(HookBase):
    """SIGKILL this process after iteration ``iteration`` (no cleanup, like a crash or OOM kill)."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_step(self):
        if self.trainer.iter == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    kill_at, train_net = int(sys.argv[1]), os.path.abspath(sys.argv[2])
    build_hooks = Trainer.build_hooks
    Trainer.build_hooks = lambda self: build_hooks(self) + [KillAt(kill_at)]
    sys.argv = [train_net] + sys.argv[3:]
    runpy.run_path(train_net, run_name="__main__")


if __name__ == "__main__":
    main()

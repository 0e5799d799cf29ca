"""shutdown_distributed: no process group survives it (detectron2's cached groups included)."""
import socket

import pytest
import torch.distributed as dist
from detectron2.utils import comm

from wsovvis.engine.launch import _run_then_shutdown, shutdown_distributed


def _init_single_process_group():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


def test_shutdown_drops_detectron2_cached_groups():
    for _ in range(2):
        _init_single_process_group()
        # a stale cache would hand out the group destroyed by the previous round
        assert comm._get_global_gloo_group() is dist.group.WORLD
        comm._LOCAL_PROCESS_GROUP = dist.new_group([0])
        shutdown_distributed()
        assert not dist.is_initialized()
        assert comm._get_global_gloo_group.cache_info().currsize == 0
        assert comm._LOCAL_PROCESS_GROUP is None


def test_shutdown_without_group_is_a_no_op():
    assert not dist.is_initialized()
    shutdown_distributed()
    shutdown_distributed(synchronize=False)


def test_worker_body_runs_then_tears_down():
    """The body of every launch path (also handed to detectron2's CUDA launcher)."""
    _init_single_process_group()
    seen = []
    _run_then_shutdown(lambda *a: seen.append((a, comm._get_global_gloo_group())), (1, 2))
    assert seen[0][0] == (1, 2) and seen[0][1] is not None
    assert not dist.is_initialized()
    assert comm._get_global_gloo_group.cache_info().currsize == 0


def test_worker_body_tears_down_on_error_and_reraises():
    _init_single_process_group()

    def fail():
        raise RuntimeError("rank failed")

    with pytest.raises(RuntimeError, match="rank failed"):
        _run_then_shutdown(fail, (), local_world_size=1)
    assert not dist.is_initialized()
    assert comm._LOCAL_PROCESS_GROUP is None

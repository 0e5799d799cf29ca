"""shutdown_distributed: no process group survives it (detectron2's cached groups included)."""
import socket

import torch.distributed as dist
from detectron2.utils import comm

from wsovvis.engine.launch import shutdown_distributed


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

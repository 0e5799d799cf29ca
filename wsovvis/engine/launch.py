"""Process launching: detectron2-style ``launch()`` that also runs on CPU (gloo); torchrun/SLURM.

Three ways to get N training processes, all ending in ``main_func(*args)`` on every rank with
detectron2's ``comm`` ready (global + local process groups):

* ``launch(...)`` spawns ``num_gpus_per_machine`` workers per machine (run the same command once per
  machine with its ``machine_rank``). With CUDA it is detectron2's ``launch``; without CUDA (or
  with ``use_cuda=False``, i.e. ``MODEL.DEVICE="cpu"``) the same logic runs on the gloo backend
  (used by the CPU DDP tests).
* torchrun / ``srun`` with one task per GPU: :func:`external_dist_env` detects the environment and
  :func:`run_external` joins the existing group instead of spawning.
"""
import logging
import os
from datetime import timedelta
from typing import Callable, Dict, List, Optional

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as d2_launch
from detectron2.utils import comm

__all__ = [
    "DEFAULT_TIMEOUT",
    "check_dist_url",
    "launch",
    "missing_master_env",
    "external_dist_env",
    "run_external",
    "resolve_dist_url",
    "shutdown_distributed",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(minutes=30)


def check_dist_url(dist_url: str, num_machines: int) -> None:
    """Validate a ``dist_url`` for a job of ``num_machines`` machines (nothing is opened).

    Raises:
        ValueError: ``"auto"`` with several machines, or a URL without a scheme.
    """
    if dist_url == "auto" and num_machines > 1:
        raise ValueError(
            "dist_url='auto' only works on one machine; pass "
            "dist_url=tcp://<host of machine 0>:<port> on every machine"
        )
    if dist_url != "auto" and "://" not in dist_url:
        raise ValueError(f"dist_url must be 'auto', tcp://host:port or file://...: {dist_url!r}")


def missing_master_env() -> List[str]:
    """The rendezvous variables (``MASTER_ADDR``, ``MASTER_PORT``) not set in the environment."""
    return [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]


def resolve_dist_url(dist_url: str, num_machines: int) -> str:
    """Turn ``"auto"`` into a free local TCP port (single machine only); validate the rest.

    Args:
        dist_url: ``"auto"``, ``tcp://host:port`` or ``file://...``.
        num_machines: machines in the job (``"auto"`` needs exactly one).

    Returns:
        the URL every process of the job initialises the process group with.

    Raises:
        ValueError: see :func:`check_dist_url`.
    """
    check_dist_url(dist_url, num_machines)
    if dist_url == "auto":
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    return dist_url


def _setup_local_group(num_per_machine: int) -> None:
    """Create detectron2's per-machine process group (public API if present, v0.6 otherwise).

    detectron2 after v0.6 has ``comm.create_local_process_group``. v0.6 (the version wsovvis
    installs) has no public way: ``get_local_rank()`` / ``get_local_size()`` read the module
    global ``comm._LOCAL_PROCESS_GROUP``, which v0.6's own ``launch`` worker
    (``detectron2/engine/launch.py``, ``_distributed_worker``) assigns exactly like this. That
    worker cannot be reused: it requires CUDA and calls ``torch.cuda.set_device``.
    """
    if hasattr(comm, "create_local_process_group"):
        comm.create_local_process_group(num_per_machine)
        return
    rank, world = dist.get_rank(), dist.get_world_size()
    for i in range(world // num_per_machine):
        group = dist.new_group(list(range(i * num_per_machine, (i + 1) * num_per_machine)))
        if i == rank // num_per_machine:
            comm._LOCAL_PROCESS_GROUP = group  # no setter in v0.6 (see the docstring)


def shutdown_distributed(synchronize: bool = True) -> None:
    """Destroy every process group of this process while the interpreter is fully alive.

    ``dist.destroy_process_group()`` alone is not enough: detectron2's ``comm`` keeps the gloo group
    in an ``lru_cache`` and the per-machine group in a module global, so the C++ group outlives the
    call and is only torn down during interpreter finalisation, where gloo's worker threads can
    abort the process (SIGABRT, "terminate called without an active exception"), typically on a
    rank that finished before its peers. Those references are dropped here first.

    Args:
        synchronize: wait at a barrier first, so that no rank closes its connections while a peer
            still runs its last collective (set ``False`` on an error path: peers may be gone).
    """
    if not dist.is_available() or not dist.is_initialized():
        return
    if synchronize:
        comm.synchronize()
    # detectron2 (v0.6 and main) has no public teardown of these references, and v0.6's
    # ``launch`` asserts ``_LOCAL_PROCESS_GROUP is None`` before it creates the group again.
    # detectron2 main also caches ``create_local_process_group`` (lru_cache): without clearing
    # it, a second launch in this process would skip creating the new local group.
    comm._get_global_gloo_group.cache_clear()
    if hasattr(comm, "_LOCAL_PROCESS_GROUP"):
        comm._LOCAL_PROCESS_GROUP = None
    create_local = getattr(comm, "create_local_process_group", None)
    if hasattr(create_local, "cache_clear"):
        create_local.cache_clear()
    dist.destroy_process_group()


def _run_then_shutdown(main_func: Callable, args: tuple,
                       local_world_size: Optional[int] = None) -> None:
    """Worker body of every launch path: ``main_func(*args)`` between set-up and teardown.

    Args:
        main_func, args: the job.
        local_world_size: processes on this machine, to create detectron2's local group (None
            when the launcher made it already, as detectron2's CUDA worker does).
    """
    try:
        if local_world_size is not None:
            _setup_local_group(local_world_size)
            comm.synchronize()
        main_func(*args)
    except BaseException:
        shutdown_distributed(synchronize=False)  # peers may be gone: no barrier
        raise
    shutdown_distributed()


def _cpu_worker(local_rank, main_func, world_size, num_per_machine, machine_rank, dist_url, args,
                timeout):
    global_rank = machine_rank * num_per_machine + local_rank
    dist.init_process_group(
        backend="gloo", init_method=dist_url, world_size=world_size, rank=global_rank,
        timeout=timeout,
    )
    _run_then_shutdown(main_func, args, num_per_machine)


def launch(
    main_func: Callable,
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str = "auto",
    args: tuple = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
    use_cuda: Optional[bool] = None,
) -> None:
    """Run ``main_func(*args)`` in ``num_gpus_per_machine`` processes on this machine.

    Same contract as ``detectron2.engine.launch``; without CUDA, ``num_gpus_per_machine`` is the
    number of CPU processes and the gloo backend is used. If any worker raises, the others are
    terminated and the error is re-raised here (``torch.multiprocessing`` join semantics).

    Args:
        main_func: picklable (module-level) function run on every rank.
        num_gpus_per_machine: processes per machine.
        num_machines: machines in the job.
        machine_rank: rank of this machine.
        dist_url: ``"auto"`` (single machine) or ``tcp://host:port``.
        args: arguments of ``main_func``.
        timeout: process-group timeout.
        use_cuda: one GPU per process with NCCL (True) or CPU processes with gloo (False); None =
            ``torch.cuda.is_available()``. Pass False for CPU models on a machine with GPUs.
    """
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    dist_url = resolve_dist_url(dist_url, num_machines)
    if use_cuda is None:
        use_cuda = torch.cuda.is_available()
    if use_cuda:
        d2_launch(_run_then_shutdown, num_gpus_per_machine, num_machines, machine_rank,
                  dist_url, (main_func, args), timeout=timeout)
        return
    mp.start_processes(
        _cpu_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )


def external_dist_env() -> Optional[Dict[str, int]]:
    """Detect a process started by torchrun or ``srun`` (one task per GPU).

    Returns:
        ``{"rank", "world_size", "local_rank", "local_world_size"}`` or None when this process
        should spawn its own workers. ``srun`` is treated as one-task-per-GPU only when its job
        step starts more tasks than nodes (``SLURM_STEP_NUM_TASKS`` > ``SLURM_STEP_NUM_NODES``,
        which only ``srun`` sets): one task per node, or the batch script of an ``sbatch
        --ntasks=N`` job running ``train_net.py`` directly, spawns workers with ``launch()``.
        Its variables are mapped to torchrun's (``MASTER_ADDR`` and ``MASTER_PORT`` must be
        exported by the job script).
    """
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env and int(env["WORLD_SIZE"]) > 1:
        local_world = int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"]))
        return {
            "rank": int(env["RANK"]),
            "world_size": int(env["WORLD_SIZE"]),
            "local_rank": int(env.get("LOCAL_RANK", 0)),
            "local_world_size": local_world,
        }
    # SLURM_NTASKS / SLURM_PROCID are also set in an sbatch script outside any srun step.
    ntasks = int(env.get("SLURM_STEP_NUM_TASKS", 1))
    nnodes = int(env.get("SLURM_STEP_NUM_NODES", 1))
    if ntasks > 1 and ntasks > nnodes and "SLURM_PROCID" in env:
        return {
            "rank": int(env["SLURM_PROCID"]),
            "world_size": ntasks,
            "local_rank": int(env.get("SLURM_LOCALID", 0)),
            "local_world_size": ntasks // nnodes,
        }
    return None


def run_external(main_func: Callable, dist_env: Dict[str, int], args: tuple = (),
                 timeout: timedelta = DEFAULT_TIMEOUT, use_cuda: Optional[bool] = None) -> None:
    """Join the process group of an externally launched job and run ``main_func(*args)``.

    Args:
        main_func: function run on this rank.
        dist_env: the layout returned by :func:`external_dist_env`.
        args: arguments of ``main_func``.
        timeout: process-group timeout.
        use_cuda: as in :func:`launch` (NCCL + one GPU per process, or gloo on CPU).

    Raises:
        RuntimeError: ``MASTER_ADDR`` or ``MASTER_PORT`` is not set.
    """
    for key, value in (("RANK", "rank"), ("WORLD_SIZE", "world_size"),
                       ("LOCAL_RANK", "local_rank")):
        os.environ.setdefault(key, str(dist_env[value]))
    missing = missing_master_env()
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} must be set for torchrun/srun launches")
    if use_cuda is None:
        use_cuda = torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(dist_env["local_rank"])
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    _run_then_shutdown(main_func, args, dist_env["local_world_size"])

"""Data-parallel training across SageMaker instances with torch.distributed.

SageMaker describes the cluster in /opt/ml/input/config/resourceconfig.json (current_host, hosts,
network_interface_name; sagemaker-training also exports SM_HOSTS / SM_CURRENT_HOST). The first host
is the rendezvous point, as in sagemaker-training. One process per GPU on each host (nccl), or one
process per host without GPUs (gloo). GPU and CPU share every line except the backend, the device
and the spawn of extra local processes, so the CPU tests exercise the same code.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, Subset

log = logging.getLogger(__name__)

# The rendezvous port on the first host. Every host of a job gets the same environment, so
# MASTER_PORT (torch's own name for it) set on the job moves it everywhere at once; tests and parallel
# runs on one machine pass a free port in Cluster instead.
DEFAULT_MASTER_PORT = 29500
# Generous: every host decodes its data set before the first collective call.
TIMEOUT = timedelta(minutes=30)
# The exit code of a rank that finished its work but whose peer ended first (the peer's own code
# and log say why); 70 is sysexits' EX_SOFTWARE.
PEER_LEFT = 70
# Once one local process has failed, how long the others get to end by themselves (a gloo peer
# notices the closed connection at once) before they are terminated.
GRACE_S = 30.0


class ClusterError(ValueError):
    """SageMaker's description of the cluster is unusable; the message names the file or variable."""


@dataclass(frozen=True)
class Cluster:
    hosts: tuple[str, ...]
    current_host: str
    interface: str | None = None
    port: int = DEFAULT_MASTER_PORT

    @classmethod
    def from_sagemaker(cls, resource_config) -> Cluster:
        """From resourceconfig.json, else SM_HOSTS/SM_CURRENT_HOST, else one host (a local run); the
        rendezvous port from MASTER_PORT (default 29500)."""
        port = master_port()
        if resource_config.is_file():
            try:
                config = json.loads(resource_config.read_text())
                return cls(tuple(config["hosts"]), config["current_host"], config.get("network_interface_name"), port)
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ClusterError(f"{resource_config} is not SageMaker's resource config: {err!r}") from None
        if "SM_HOSTS" in os.environ:
            try:
                hosts = tuple(json.loads(os.environ["SM_HOSTS"]))
            except json.JSONDecodeError as err:
                raise ClusterError(f"SM_HOSTS is not a JSON list: {err}") from None
            return cls(
                hosts, os.environ.get("SM_CURRENT_HOST", hosts[0]), os.environ.get("SM_NETWORK_INTERFACE_NAME"), port
            )
        return cls(("localhost",), "localhost", port=port)

    def __post_init__(self):
        if not self.hosts or self.current_host not in self.hosts:
            raise ClusterError(f"current host {self.current_host!r} is not among the hosts {list(self.hosts)}")


def master_port() -> int:
    value = os.environ.get("MASTER_PORT", str(DEFAULT_MASTER_PORT))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ClusterError(f"MASTER_PORT must be a TCP port (1-65535), got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Context:
    """Where this process sits: global rank, number of processes, its GPU (or the CPU)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """The one process that writes the model, checkpoints and metric lines."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def processes_per_host() -> int:
    return torch.cuda.device_count() or 1


def launch(worker: Callable[[Context], int], cluster: Cluster, per_host: int | None = None) -> int:
    """Run `worker` in every process of this host and return this host's exit code.

    One process per host runs in this process; several (one per GPU) are spawned, each calling
    `worker` with its own Context. `per_host` overrides the GPU count (tests run 2 on CPU).
    """
    per_host = per_host or processes_per_host()
    if per_host == 1:
        return _run(0, worker, cluster, 1)
    processes = torch.multiprocessing.start_processes(
        _spawned, args=(worker, cluster, per_host), nprocs=per_host, join=False, start_method="spawn"
    )
    try:
        while not processes.join(grace_period=GRACE_S):
            pass
    except torch.multiprocessing.ProcessExitedException:
        # Every process has ended by now. The first to end is not always the one that failed (a
        # peer's PEER_LEFT can come first), so the code comes from all of them.
        return host_exit_code([process.exitcode for process in processes.processes])
    return 0


def host_exit_code(codes: list[int]) -> int:
    """One code for this host's processes: the first real failure in rank order, else PEER_LEFT."""
    codes = [128 - code if code < 0 else code for code in codes]  # -N: ended by signal N, as a shell says
    failures = [code for code in codes if code not in (0, PEER_LEFT)]
    return failures[0] if failures else PEER_LEFT


def _spawned(local_rank: int, worker, cluster: Cluster, per_host: int) -> None:
    code = _run(local_rank, worker, cluster, per_host)
    if code:
        raise SystemExit(code)  # spawn reports it as ProcessExitedException with this exit code


def _run(local_rank: int, worker, cluster: Cluster, per_host: int) -> int:
    world_size = len(cluster.hosts) * per_host
    rank = cluster.hosts.index(cluster.current_host) * per_host + local_rank
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    context = Context(rank, world_size, local_rank, device)
    if world_size == 1:
        return worker(context)
    if cluster.interface:  # the cluster network, not e.g. the loopback or a management interface
        os.environ.setdefault("GLOO_SOCKET_IFNAME", cluster.interface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", cluster.interface)
    backend = "nccl" if device.type == "cuda" else "gloo"
    log.info(
        "rank %d of %d on %s (%s, %s), rendezvous at %s:%d",
        rank,
        world_size,
        cluster.current_host,
        device,
        backend,
        cluster.hosts[0],
        cluster.port,
    )
    dist.init_process_group(
        backend,
        init_method=f"tcp://{cluster.hosts[0]}:{cluster.port}",
        rank=rank,
        world_size=world_size,
        timeout=TIMEOUT,
    )
    try:
        code = worker(context)
        if code == 0:  # a failed rank skips it: its peers may be inside another collective call
            try:
                dist.barrier()  # no rank tears down while a peer still talks to it
            except RuntimeError as err:  # gloo and nccl raise subclasses of RuntimeError
                log.warning("rank %d finished, but a peer ended first (its log says why): %s", rank, err)
                return PEER_LEFT
        return code
    finally:
        # DistributedDataParallel sits in a reference cycle, so it outlives the worker until the
        # next garbage collection; collected after the process group is gone (or at exit), it
        # aborts the process: "terminate called without an active exception", SIGABRT. Seen in
        # 4 of 30 two-process runs on torch 2.14.1 without this collect, 0 of 30 with it.
        gc.collect()
        dist.destroy_process_group()


# --- Collective helpers: no-ops in a single process --------------------------------------------


def _reduce(context: Context, values: list[float], op) -> list[float]:
    if not context.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


def all_sum(context: Context, values: list[float]) -> list[float]:
    return _reduce(context, values, dist.ReduceOp.SUM)


def all_max(context: Context, values: list[float]) -> list[float]:
    return _reduce(context, values, dist.ReduceOp.MAX)


def any_true(context: Context, flag: bool) -> bool:
    """True on every rank when it is true on any (so all ranks stop at the same step)."""
    return all_max(context, [float(flag)])[0] > 0


def same_on_all(context: Context, values: list[float]) -> bool:
    return all_max(context, values) == [-v for v in all_max(context, [-v for v in values])]


def barrier(context: Context) -> None:
    if context.distributed:
        dist.barrier()


def wrap(model: torch.nn.Module, context: Context) -> torch.nn.Module:
    """DistributedDataParallel (gradients averaged across ranks every step) when there are several."""
    if not context.distributed:
        return model
    device_ids = [context.local_rank] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


# --- Sharding ----------------------------------------------------------------------------------


class EpochSampler(DistributedSampler):
    """This rank's shuffled share of the training set; it can start part-way through an epoch.

    The order depends only on (seed, epoch), so a job resumed after an interruption skips exactly
    the batches it had already trained on. Used with one process too, so both paths are the same.
    """

    def __init__(self, dataset, context: Context, seed: int):
        super().__init__(
            dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=seed, drop_last=False
        )
        self.skip = 0

    def start(self, epoch: int, skip: int = 0) -> None:
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return self.num_samples - self.skip


def shard(dataset, context: Context):
    """Every world_size-th item from this rank's index: disjoint, no padding (exact evaluation sums)."""
    if not context.distributed:
        return dataset
    return Subset(dataset, range(context.rank, len(dataset), context.world_size))

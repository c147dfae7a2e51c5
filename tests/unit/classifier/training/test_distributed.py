"""torch.distributed set-up from SageMaker's description, with real gloo processes on localhost.

Two paths start ranks: one process per host (CPU instances; emulated with two "hosts" that are both
this machine) and several spawned processes per host (one per GPU on GPU instances; run here on CPU
with gloo). Both run the same worker, which checks ranks, reductions, sharding and DDP's averaging.
"""

import functools
import json
import multiprocessing
import socket
from pathlib import Path

import pytest
import torch

from classifier.training import distributed
from classifier.training.distributed import Cluster, Context


def test_cluster_from_resourceconfig(tmp_path, monkeypatch):
    monkeypatch.delenv("MASTER_PORT", raising=False)
    config = tmp_path / "resourceconfig.json"
    config.write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"], "network_interface_name": "eth0"})
    )
    assert Cluster.from_sagemaker(config) == Cluster(("algo-1", "algo-2"), "algo-2", "eth0")
    config.write_text('{"hosts": ["algo-1"]}')
    with pytest.raises(distributed.ClusterError, match="resourceconfig.json"):
        Cluster.from_sagemaker(config)
    missing = tmp_path / "none.json"
    monkeypatch.setenv("SM_HOSTS", '["algo-1","algo-2"]')
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-1")
    assert Cluster.from_sagemaker(missing) == Cluster(("algo-1", "algo-2"), "algo-1")
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-9")
    with pytest.raises(distributed.ClusterError, match="algo-9"):
        Cluster.from_sagemaker(missing)
    monkeypatch.delenv("SM_HOSTS")
    assert Cluster.from_sagemaker(missing) == Cluster(("localhost",), "localhost")
    monkeypatch.setenv("MASTER_PORT", "23456")  # the job's environment moves the rendezvous on every host
    assert Cluster.from_sagemaker(missing).port == 23456
    monkeypatch.setenv("MASTER_PORT", "http")
    with pytest.raises(distributed.ClusterError, match="MASTER_PORT"):
        Cluster.from_sagemaker(missing)


def free_port() -> int:
    """A port nothing listens on now: parallel runs and leftover processes never share the rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sampler_resumes_mid_epoch_and_shards_cover_the_data():
    data = list(range(10))
    one = distributed.EpochSampler(data, Context(), seed=3)
    one.start(2)
    order = list(one)
    assert sorted(order) == data and len(one) == 10
    one.start(2, skip=4)  # a resumed job: the same order, without the 4 items already trained on
    assert list(one) == order[4:] and len(one) == 6
    one.start(3)
    assert list(one) != order  # a new order every epoch
    shards = [distributed.EpochSampler(data, Context(rank, 2), seed=3) for rank in (0, 1)]
    for shard in shards:
        shard.start(2)
    assert sorted(list(shards[0]) + list(shards[1])) == data
    assert sorted(distributed.shard(data, Context(0, 3))[i] for i in range(4)) == [0, 3, 6, 9]


def test_single_process_helpers_are_no_ops():
    context = Context()
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, context) is model
    assert distributed.all_sum(context, [1.0, 2.0]) == [1.0, 2.0]
    assert distributed.any_true(context, True) and not distributed.any_true(context, False)
    assert distributed.launch(lambda c: 7 if c == Context() else 0, Cluster(("localhost",), "localhost"), 1) == 7


def worker(out: Path, context: Context) -> int:
    """Runs in every rank; writes what it saw to out/<rank>.json."""
    torch.manual_seed(0)
    found = {"rank": context.rank, "world": context.world_size, "main": context.is_main}
    found["sum"] = distributed.all_sum(context, [1.0, float(context.rank)])
    found["any"] = distributed.any_true(context, context.rank == 1)
    found["same"] = distributed.same_on_all(context, [5.0])
    found["differ"] = distributed.same_on_all(context, [float(context.rank)])
    # DDP averages gradients: two ranks on half a batch each == one process on the whole batch.
    model = torch.nn.Linear(4, 1)
    inputs, targets = torch.arange(16.0).reshape(4, 4) / 16, torch.arange(4.0).reshape(4, 1)
    wrapped = distributed.wrap(model, context)
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.1)
    half = slice(2 * context.rank, 2 * context.rank + 2)
    torch.nn.functional.mse_loss(wrapped(inputs[half]), targets[half]).backward()
    optimizer.step()
    found["weight"] = model.weight.detach().flatten().tolist()  # DDP trains the module it wraps
    (out / f"{context.rank}.json").write_text(json.dumps(found))
    return 0


def single_process_weight() -> list[float]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    inputs, targets = torch.arange(16.0).reshape(4, 4) / 16, torch.arange(4.0).reshape(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.mse_loss(model(inputs), targets).backward()
    optimizer.step()
    return model.weight.detach().flatten().tolist()


def check(out: Path) -> None:
    results = [json.loads((out / f"{rank}.json").read_text()) for rank in (0, 1)]
    assert [(r["rank"], r["world"], r["main"]) for r in results] == [(0, 2, True), (1, 2, False)]
    for r in results:
        assert r["sum"] == [2.0, 1.0] and r["any"] is True and r["same"] is True and r["differ"] is False
        assert r["weight"] == pytest.approx(single_process_weight(), abs=1e-6)


def host(host_worker, current: str, port: int) -> None:
    cluster = Cluster(("localhost", "127.0.0.1"), current, "lo", port)
    raise SystemExit(distributed.launch(host_worker, cluster, per_host=1))


def two_hosts(host_worker) -> list[int]:
    """Each 'instance' is a process that finds its rank from its host name; their exit codes."""
    spawn = multiprocessing.get_context("spawn")
    port = free_port()
    hosts = [spawn.Process(target=host, args=(host_worker, name, port)) for name in ("localhost", "127.0.0.1")]
    for process in hosts:
        process.start()
    for process in hosts:
        process.join(timeout=120)
    return [p.exitcode for p in hosts]


def test_two_hosts_one_process_each(tmp_path):
    """The CPU-instance path: one process per host."""
    assert two_hosts(functools.partial(worker, tmp_path)) == [0, 0]
    check(tmp_path)


def test_one_host_two_spawned_processes(tmp_path):
    """The GPU-instance path (one process per GPU), on CPU with gloo: spawn, local ranks, exit codes."""
    cluster = Cluster(("localhost",), "localhost", port=free_port())
    assert distributed.launch(functools.partial(worker, tmp_path), cluster, per_host=2) == 0
    check(tmp_path)


def failing_worker(context: Context) -> int:
    return 3 if context.rank == 1 else 0


def test_a_failing_spawned_rank_gives_its_exit_code():
    """Rank 0 finishes, rank 1 fails: the host reports rank 1's code, whichever process ends first
    (rank 0's barrier fails once rank 1 is gone, and that can come first: 1 run in 18 before)."""
    for _ in range(3):
        assert (
            distributed.launch(failing_worker, Cluster(("localhost",), "localhost", port=free_port()), per_host=2) == 3
        )


def test_a_host_whose_peer_failed_says_so_and_the_failed_host_keeps_its_code():
    assert two_hosts(failing_worker) == [distributed.PEER_LEFT, 3]


def test_host_exit_code_prefers_a_real_failure_in_rank_order():
    left = distributed.PEER_LEFT
    assert distributed.host_exit_code([left, 3]) == 3
    assert distributed.host_exit_code([0, 1, 3]) == 1
    assert distributed.host_exit_code([left, -15]) == 143  # terminated by SIGTERM, as a shell says
    assert distributed.host_exit_code([0, left]) == left

"""Redis Cluster part of ``python -m benchmarks cluster``: ``run(args)``.

(a) Hub throughput: N status events (16 tasks) on a status stream (the memory
    broker, so the store is what is measured; ``--redis-amqp`` uses the real
    RabbitMQ stream), the StatusHub writes them to one Redis, and to the
    6-node Redis Cluster with and without the replica wait (``WAIT 1`` after
    each batch, the cluster default), each with the cluster layout's sharded
    publish (``SPUBLISH``, the default: the message stays on the slot's
    shard) and with a classic ``PUBLISH`` in the same script (broadcast to
    every node over the cluster bus; what the layout did before). Rounds
    interleaved, medians, ratios to the single Redis of the same run; the
    load average is printed with the table.
(c) Workers (``benchmarks/_cluster_workers.py``, printed before (b)): DLQ
    dead letters and a 2-stage workflow chain, with and without the replica
    wait before acks.
(b) Recovery after a primary kill (``--redis-kills``, 5): a writer runs the
    status write script on one task's keys in a loop; the primary of that slot
    is SIGKILLed; recovery = kill to the first write that succeeds afterwards
    (on the promoted replica); also the longest single write in the window.
    The killed node is restarted and resynced before the next kill.

The cluster is the test harness's (``scripts/redis_cluster.py``:
``cluster-node-timeout 1000`` ms, so a promotion takes about 2 s; production
clusters keep a larger node timeout and recover proportionally later).
On a 2-core machine shared by RabbitMQ, seven redis-servers and the client,
these are not production figures: read the ratios.

``python -m benchmarks._cluster_redis [--redis-events N] [--redis-rounds N] [--redis-kills N]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import attrs

from benchmarks._cluster_workers import worker_rows
from benchmarks._redis import redis_url
from benchmarks._rounds import rotated

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

__all__ = ["add_arguments", "run"]

WRITERS = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``run`` reads (``benchmarks/cluster.py`` adds them to its parser)."""
    parser.add_argument("--redis-events", type=int, default=4000, help="events per hub round")
    parser.add_argument("--redis-rounds", type=int, default=3, help="interleaved hub rounds")
    parser.add_argument("--redis-kills", type=int, default=5, help="primary kills (recovery)")
    parser.add_argument(
        "--redis-amqp",
        action="store_true",
        help="feed the hub from the real RabbitMQ stream (RELAYNA_TEST_AMQP_URL) "
        "instead of the memory broker",
    )
    parser.add_argument(
        "--redis-worker-messages",
        type=int,
        default=400,
        help="messages per round of the worker rows (DLQ, workflow chain)",
    )
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])


@contextmanager
def _cluster() -> Iterator[Any]:
    """The harness cluster: RELAYNA_TEST_REDIS_CLUSTER_DIR's, else one started here."""
    from redis_cluster import RedisCluster

    directory = os.environ.get("RELAYNA_TEST_REDIS_CLUSTER_DIR")
    if directory:
        yield RedisCluster.load(directory)
        return
    cluster = RedisCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _status_config(prefix: str, cluster: bool) -> Any:
    """The cluster key layout when the status store has one (``cluster=True``),
    else all of a run's keys under one hash tag (one slot, one primary)."""
    from relayna.status import StatusStoreConfig

    if cluster and "cluster" in attrs.fields_dict(StatusStoreConfig):
        return StatusStoreConfig(prefix=prefix, cluster=True)  # type: ignore[call-arg]
    return StatusStoreConfig(prefix=f"{{{prefix}}}" if cluster else prefix)


async def _hub_rate(
    url: str, n: int, broker_url: str, replica_acks: int | None, classic: bool
) -> float:
    from relayna.status import WRITE_STATUS_SCRIPT, StatusHub, StatusHubConfig, StatusStore
    from relayna.topology import StatusTopologyBase
    from relayna.transport import is_cluster_store_url, open_broker, open_store

    unique = uuid.uuid4().hex[:6]
    topology = StatusTopologyBase(status_exchange=f"bx.{unique}", status_queue=f"bq.{unique}")
    async with open_broker(broker_url) as broker, open_store(url) as store:
        await topology.plan().apply(broker)

        async def publish(start: int) -> None:
            import orjson

            for i in range(start, n, WRITERS):
                event = {"task_id": f"t{i % WRITERS}", "status": "running", "event_id": f"e{i}"}
                await broker.publish(topology.status_exchange, "s", orjson.dumps(event))

        async with anyio.create_task_group() as tg:
            for start in range(WRITERS):
                tg.start_soon(publish, start)
        prefix = f"bench-rc-{unique}"
        status = StatusStore(store, _status_config(prefix, is_cluster_store_url(url)))
        if classic:  # the cluster layout's write with PUBLISH instead of SPUBLISH
            status._script = WRITE_STATUS_SCRIPT
        config = StatusHubConfig(
            queue=topology.status_queue, offset="first", replica_acks=replica_acks
        )
        hub = StatusHub(broker, status, config)
        async with anyio.create_task_group() as tg:
            started = time.perf_counter()
            await tg.start(hub.run)
            while True:  # poll: the hub's counter
                if hub.stats.stored >= n:
                    break
                await anyio.sleep(0.005)
            elapsed = time.perf_counter() - started
            tg.cancel_scope.cancel()
        if not broker_url.startswith("memory"):
            await broker.delete_queue(topology.status_queue)
            await broker.delete_exchange(topology.status_exchange)
    return n / elapsed


async def _recover_once(cluster: Any, url: str) -> tuple[float, float]:
    """(seconds from SIGKILL to the next successful write, longest write)."""
    from relayna.errors import StoreError
    from relayna.status import WRITE_STATUS_SCRIPT
    from relayna.transport import open_store

    tag = f"{{bench-rc-kill-{uuid.uuid4().hex[:6]}}}"
    killed_at: float | None = None
    recovered = anyio.Event()
    result: list[float] = []
    longest = 0.0
    async with open_store(url + "?failover_timeout=30") as store:

        async def writer() -> None:
            nonlocal longest
            i = 0
            while not recovered.is_set():
                i += 1
                keys = [f"{tag}:m:{i}", f"{tag}:h"]
                began = time.perf_counter()
                try:
                    await store.run_script(
                        WRITE_STATUS_SCRIPT, keys, [b"e", 60000, 10, f"{tag}:c", "t"]
                    )
                except StoreError:
                    continue
                finally:
                    if killed_at is not None:
                        longest = max(longest, time.perf_counter() - began)
                if killed_at is not None and began > killed_at:
                    result.append(time.perf_counter() - killed_at)
                    recovered.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            await anyio.sleep(0.3)  # warm: the writer is in its loop
            port = cluster.primary_of(tag)
            await anyio.to_thread.run_sync(cluster.kill, port)  # returns when it is gone
            killed_at = time.perf_counter()
            await recovered.wait()
        await anyio.to_thread.run_sync(cluster.restart, port)
        await anyio.to_thread.run_sync(lambda: cluster.wait_ok(timeout=60, replicas=True))
    return result[0], longest


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> int:
    events = int(getattr(args, "redis_events", 4000))
    # benchmarks/cluster.py's --rounds/--kills when it has no --redis-* options
    rounds = int(getattr(args, "redis_rounds", getattr(args, "rounds", 3)))
    kills = int(getattr(args, "redis_kills", getattr(args, "kills", 5)))
    backend = str(getattr(args, "backend", "asyncio"))
    broker = "memory://"
    if getattr(args, "redis_amqp", False):
        broker = os.environ["RELAYNA_TEST_AMQP_URL"]
    with redis_url() as single, _cluster() as cluster:
        cluster.wait_ok(timeout=60, replicas=True)
        cases = [
            ("single Redis (native client)", single, None, True),
            ("Cluster, WAIT 1, SPUBLISH (default)", cluster.url, None, False),
            ("Cluster, WAIT 1, classic PUBLISH", cluster.url, None, True),
            ("Cluster, replica_acks=0, SPUBLISH", cluster.url, 0, False),
            ("Cluster, replica_acks=0, classic PUBLISH", cluster.url, 0, True),
        ]
        rates: dict[str, list[float]] = {name: [] for name, *_ in cases}
        loads = [os.getloadavg()[0]]
        for r in range(rounds):
            for name, url, acks, classic in rotated(cases, r):
                rates[name].append(
                    anyio.run(_hub_rate, url, events, broker, acks, classic, backend=backend)
                )
            loads.append(os.getloadavg()[0])
        base = statistics.median(rates[cases[0][0]])
        print(
            f"\nRedis Cluster: hub throughput, {events} status events x {rounds} interleaved "
            f"rounds, broker {broker.split(':')[0]}, {backend} (medians; 2 shared cores, "
            "not production figures: read the ratios); load average (1 min) "
            f"{min(loads):.1f}-{max(loads):.1f} during the rounds"
        )
        print(f"{'case':<44} {'events/s':>10} {'vs single':>10}")
        for name, *_ in cases:
            median = statistics.median(rates[name])
            print(f"{name:<44} {median:>10.0f} {median / base:>9.2f}x")
        worker_rows(
            single,
            cluster.url,
            int(getattr(args, "redis_worker_messages", 400)),
            rounds,
            backend,
        )
        recoveries: list[float] = []
        spikes: list[float] = []
        for _ in range(kills):
            recovery, spike = anyio.run(_recover_once, cluster, cluster.url, backend=backend)
            recoveries.append(recovery)
            spikes.append(spike)
        print(
            f"\nRedis Cluster: recovery after SIGKILL of a primary, {kills} kills "
            f"(cluster-node-timeout 1000 ms; the writer's slot)"
        )
        print(f"{'':<44} {'p50 s':>10} {'p99 s':>10}")
        print(
            f"{'kill -> next successful write':<44} {_pct(recoveries, 0.5):>10.2f} "
            f"{_pct(recoveries, 0.99):>10.2f}"
        )
        print(
            f"{'longest single write (latency spike)':<44} {_pct(spikes, 0.5):>10.2f} "
            f"{_pct(spikes, 0.99):>10.2f}"
        )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Faults on the link between relayna and Redis, under the status hub and SSE clients (issue 26).

The runtime (its StatusHub and the SSE routes, served over a loopback socket)
reaches the real Redis only through :mod:`_fault_proxy`; status events go
through the memory broker (the fault here is Redis's). 20 clients follow 20
tasks over SSE while 40 events per task are published at 20 Hz, a probe
writes statuses of its own through the same link, and one fault hits it:

* ``latency``: 30 ms more on every chunk, both ways, for the whole run;
* ``bandwidth``: 200 kB/s each way on every connection, for the whole run;
* ``drip``: replies arrive one byte at a time for a second;
* ``reset``: RST in the middle of a RESP frame, a few bytes into whatever
  flows next, alternately towards Redis and back, until both the hub's
  command connection and the pubsub connection were cut;
* ``blackhole``: every live connection half-opened for good (bytes dropped,
  nothing closed; ``FaultProxy.sever``) and new ones silent for 2 s: only
  the store's own liveness checks can tell (``stream_timeout=1`` on commands,
  ``pubsub_keepalive=0.5`` on the pubsub connection).

Pass: every probe write ends within a bound, stored or with a typed
``StoreError`` (never a hang, never another exception), and every one
reported stored is in the history; the hub resumes by itself and stores
every event it acked exactly once, in order (a write whose reply was lost is
retried and found by its dedupe marker); each client's stream, duplicates
removed, equals the stored history (gap-free; the Jepsen-style checker: 0
lost, 0 unexpected), duplicates on the wire at most one per reconnect, no
``resync`` (the store never lost an event), the terminal event reaches every
client and its stream closes. Every Redis adapter (native and coredis on
both backends, redis-py on asyncio).

Two short checks per adapter and backend isolate the liveness checks: a
command on a half-open link fails with ``StoreConnectionLost`` after
``stream_timeout`` and the next one succeeds on a new connection; a pubsub
subscriber on a half-open link gets ``PubSubReconnected`` after the keepalive
finds it dead, then messages again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
import pytest
from _sse_clients import Client, follow, http_client
from _status_server import serve

from _fault_proxy import FaultProxy, open_fault_proxy  # tests/ is on sys.path
from _history_checker import History
from _transports import REDIS_ADAPTERS
from relayna.api import RelaynaRuntime, RuntimeConfig, open_relayna_runtime
from relayna.contracts import StatusEvent, encode_status
from relayna.errors import StoreConnectionLost, StoreError
from relayna.status import StatusStore, StatusStoreConfig, decode_status_body
from relayna.topology import StatusTopologyBase
from relayna.transport import PubSubMessage, PubSubReconnected, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

Adapter = Literal["native", "coredis", "redis-py"]
N_TASKS = 20
N_EVENTS = 40
RATE_HZ = 20.0
STREAM_TIMEOUT = 1.0
LINK_OPTIONS = f"connect_timeout=1&stream_timeout={STREAM_TIMEOUT:g}&pubsub_keepalive=0.5"
BLACKHOLE_FOR = 2.0
#: a status write: a new connection (1 s), the command (1 s), NOSCRIPT + retry, with room
WRITE_BOUND = 5 * STREAM_TIMEOUT
#: faults injected and survived, per adapter/backend (printed for the closing note)
SURVIVED: Counter[str] = Counter()


@pytest.fixture(params=REDIS_ADAPTERS)
def combo(request: pytest.FixtureRequest) -> tuple[Adapter, str]:
    adapter, backend = request.param
    return adapter, backend


@pytest.fixture
def anyio_backend(combo: tuple[Adapter, str]) -> str:
    return combo[1]


Fault = Callable[[FaultProxy, RelaynaRuntime, anyio.Event], Awaitable[None]]


async def _latency(proxy: FaultProxy, runtime: RelaynaRuntime, emitted: anyio.Event) -> None:
    proxy.upstream.latency = proxy.downstream.latency = 0.03


async def _bandwidth(proxy: FaultProxy, runtime: RelaynaRuntime, emitted: anyio.Event) -> None:
    proxy.upstream.bytes_per_second = proxy.downstream.bytes_per_second = 200_000


async def _drip(proxy: FaultProxy, runtime: RelaynaRuntime, emitted: anyio.Event) -> None:
    await anyio.sleep(N_EVENTS / RATE_HZ / 4)
    proxy.downstream.drip = 0.0005
    await anyio.sleep(1.0)
    proxy.clear()


async def _reset(proxy: FaultProxy, runtime: RelaynaRuntime, emitted: anyio.Event) -> None:
    assert runtime.hub is not None
    await anyio.sleep(0.3)
    k = 0
    while not emitted.is_set() and (
        runtime.hub.stats.store_failures == 0 or runtime.stream_stats.gap_fills == 0
    ):
        toxics = proxy.upstream if k % 2 == 0 else proxy.downstream
        before = proxy.stats.resets
        toxics.reset_after = 3 + 11 * k  # a few bytes into the next chunk: mid-frame
        with anyio.move_on_after(2):
            while proxy.stats.resets == before:  # noqa: ASYNC110 - polling the proxy
                await anyio.sleep(0.005)
        proxy.clear()
        k += 1
        await anyio.sleep(0.2)


async def _blackhole(proxy: FaultProxy, runtime: RelaynaRuntime, emitted: anyio.Event) -> None:
    await anyio.sleep(N_EVENTS / RATE_HZ / 4)
    proxy.sever()  # the live connections: for good
    proxy.upstream.blackhole = proxy.downstream.blackhole = True  # new ones: for a while
    await anyio.sleep(BLACKHOLE_FOR)
    proxy.clear()


FAULTS: dict[str, Fault] = {
    "latency": _latency,
    "bandwidth": _bandwidth,
    "drip": _drip,
    "reset": _reset,
    "blackhole": _blackhole,
}


def _proxied(redis_url: str, proxy: FaultProxy) -> str:
    _host_port, _, db = redis_url.removeprefix("redis://").partition("/")
    return f"redis://127.0.0.1:{proxy.port}/{db}?{LINK_OPTIONS}"


def _redis_port(redis_url: str) -> int:
    host_port = redis_url.removeprefix("redis://").partition("/")[0]
    return int(host_port.rsplit(":", 1)[1])


async def _probe_writes(
    url: str, adapter: Adapter, config: StatusStoreConfig, probe: History, emitted: anyio.Event
) -> list[float]:
    """Write the probe task's statuses until the run ends; each write is
    bounded and ends stored or with a typed StoreError (anything else fails)."""
    durations: list[float] = []
    n = 0
    async with open_store(url, adapter=adapter) as raw:
        store = StatusStore(raw, config)
        while not emitted.is_set():
            event = StatusEvent(task_id="probe", status="running", event_id=f"probe-{n}")
            start = anyio.current_time()
            try:
                with anyio.fail_after(WRITE_BOUND):
                    await store.write(decode_status_body(encode_status(event)))
            except StoreError:
                probe.publish(f"probe-{n}", "unknown")  # the reply may be what was lost
            else:
                probe.publish(f"probe-{n}", "ok")
            durations.append(anyio.current_time() - start)
            n += 1
            await anyio.sleep(0.05)
    return durations


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_store_link_fault_under_the_hub_and_sse_clients(
    redis_url: str, unique: str, combo: tuple[Adapter, str], fault: str
) -> None:
    adapter = combo[0]
    topology = StatusTopologyBase(status_exchange=f"lf.{unique}", status_queue=f"lf.{unique}")
    store_config = StatusStoreConfig(prefix=f"lf-{unique}", ttl_seconds=300)
    tasks = [f"lf-{n}" for n in range(N_TASKS)]
    clients = [Client(task) for task in tasks]
    history, probe = History(), History()
    emitted = anyio.Event()
    probe_durations: list[float] = []

    with anyio.fail_after(60):
        async with (
            open_fault_proxy(_redis_port(redis_url)) as proxy,
            open_relayna_runtime(
                RuntimeConfig(
                    store_url=_proxied(redis_url, proxy),
                    broker_url="memory://",
                    topology=topology,
                    store=store_config,
                    store_adapter=adapter,
                )
            ) as runtime,
            serve(runtime) as base,
        ):
            assert runtime.hub is not None
            assert runtime.broker is not None
            broker = runtime.broker
            ready = 0
            all_ready = anyio.Event()

            def on_ready() -> None:
                nonlocal ready
                ready += 1
                if ready == N_TASKS:
                    all_ready.set()

            async def run_client(client: Client) -> None:
                async with http_client(base) as http:
                    await follow(http, client, on_ready)

            async def run_probe() -> None:
                probe_durations.extend(
                    await _probe_writes(
                        _proxied(redis_url, proxy), adapter, store_config, probe, emitted
                    )
                )

            async with anyio.create_task_group() as tg:
                for client in clients:
                    tg.start_soon(run_client, client)
                await all_ready.wait()
                tg.start_soon(run_probe)
                async with anyio.create_task_group() as faults:
                    faults.start_soon(FAULTS[fault], proxy, runtime, emitted)
                    t0 = anyio.current_time()
                    for n in range(N_EVENTS):
                        status = "completed" if n == N_EVENTS - 1 else "running"
                        for task in tasks:
                            event = StatusEvent(task_id=task, status=status, event_id=f"{task}-{n}")
                            await broker.publish("", topology.status_queue, encode_status(event))
                            history.publish(event.event_id or "", "ok")  # the broker took it
                        await anyio.sleep_until(t0 + (n + 1) / RATE_HZ)
                    emitted.set()
                # the clients end by themselves: terminal event, then the stream closes

            # The terminal events were stored (the clients read them), but the replies
            # to the last writes may still be on their way back through the fault.
            def settled() -> bool:
                assert runtime.hub is not None
                done = runtime.hub.stats.stored + runtime.hub.stats.duplicates
                return done >= N_TASKS * N_EVENTS and not broker.unacked_count(
                    topology.status_queue
                )

            while not settled():  # noqa: ASYNC110 - polling the hub, under the test's deadline
                await anyio.sleep(0.02)
            proxy.clear()
            async with open_store(redis_url) as direct_store:  # not through the proxy
                direct = StatusStore(direct_store, store_config)
                histories = {t: [e["event_id"] for e in reversed(await direct.history(t))]
                             for t in tasks}  # fmt: skip
                probe_stored = [e["event_id"] for e in await direct.history("probe")]
            unacked = broker.unacked_count(topology.status_queue)
            hub_stats, stream_stats = runtime.hub.stats, runtime.stream_stats

    for client in clients:
        for event_id in dict.fromkeys(client.received):
            history.consume(event_id)
    for event_id in probe_stored:
        probe.consume(event_id)
    verdict, probe_verdict = history.verdict(), probe.verdict()
    print(
        f"\n[{fault}, {'-'.join(combo)}] sse {verdict.summary()} | probe writes "
        f"{len(probe_durations)} {probe_verdict.summary()} max={max(probe_durations):.2f}s | "
        f"proxy={proxy.stats} hub stored={hub_stats.stored} duplicates={hub_stats.duplicates} "
        f"store_failures={hub_stats.store_failures} gap_fills={stream_stats.gap_fills} "
        f"client reconnects={sum(c.reconnects for c in clients)} "
        f"wire duplicates={sum(c.duplicates for c in clients)}"
    )
    # status writes: typed failure or success within the bound; every success stored
    assert probe_durations
    assert max(probe_durations) < WRITE_BOUND
    assert not probe_verdict.lost, probe_verdict.summary()
    assert not probe_verdict.unexpected, probe_verdict.summary()
    # the hub: every acked event stored, once, in order; nothing left unacked
    for task in tasks:
        assert histories[task] == [f"{task}-{n}" for n in range(N_EVENTS)], task
    # a write Redis applied but whose reply the fault ate is retried: its dedupe marker
    # makes the retry a counted duplicate, not a second copy
    assert hub_stats.stored + hub_stats.duplicates == N_TASKS * N_EVENTS
    assert unacked == 0
    # the clients: gap-free, ended by the terminal event
    assert not verdict.lost, verdict.summary()
    assert not verdict.unexpected, verdict.summary()
    for client in clients:
        assert list(dict.fromkeys(client.received)) == histories[client.task_id], client.task_id
        assert client.duplicates <= client.reconnects, client.task_id
        assert client.terminal_at is not None
        assert client.closed_at is not None
        assert client.after_terminal == 0
        assert all(c.resyncs == 0 for c in client.connections), client.task_id
    assert stream_stats.opened == stream_stats.closed
    # the fault really hit
    if fault in ("latency", "bandwidth"):
        assert proxy.stats.forwarded_bytes > 0
    if fault == "drip":
        assert proxy.stats.forwarded_bytes > 0
    if fault == "reset":
        assert proxy.stats.resets >= 2
        assert hub_stats.store_failures >= 1  # the hub's connection was cut
        assert stream_stats.gap_fills >= 1  # and the pubsub connection
    if fault == "blackhole":
        assert proxy.stats.severed >= 2
        assert proxy.stats.blackholed_bytes > 0
        assert hub_stats.store_failures >= 1  # stream_timeout found the dead command link
        assert stream_stats.gap_fills >= 1  # the keepalive found the dead pubsub link
    SURVIVED[f"{'-'.join(combo)} {fault}"] += 1
    print(f"store link faults survived so far: {sum(SURVIVED.values())} {dict(SURVIVED)}")


async def test_a_command_on_a_half_open_link_fails_typed_then_recovers(
    redis_url: str, unique: str, combo: tuple[Adapter, str]
) -> None:
    key = f"relayna-test:{unique}:k"
    with anyio.fail_after(20):
        async with (
            open_fault_proxy(_redis_port(redis_url)) as proxy,
            open_store(_proxied(redis_url, proxy), adapter=combo[0]) as store,
        ):
            await store.set(key, "before")
            proxy.sever()
            start = anyio.current_time()
            with pytest.raises(StoreConnectionLost):
                await store.set(key, "lost")  # a write: never retried by the adapter
            assert anyio.current_time() - start < STREAM_TIMEOUT + 3.0  # room for a loaded box
            assert await store.get(key) in (b"before", b"lost")  # a new connection
            await store.delete(key)
    assert proxy.stats.severed >= 1


async def test_a_half_open_pubsub_link_is_found_by_the_keepalive(
    redis_url: str, unique: str, combo: tuple[Adapter, str]
) -> None:
    channel = f"relayna-test:{unique}:ch"
    events: list[Any] = []
    with anyio.fail_after(20):
        async with (
            open_fault_proxy(_redis_port(redis_url)) as proxy,
            open_store(_proxied(redis_url, proxy), adapter=combo[0]) as store,
            open_store(redis_url) as direct,
            store.subscribe(channel) as sub,
        ):
            await direct.publish(channel, "before")
            events.append(await sub.__anext__())
            proxy.sever()  # the subscription's connection (and the command one)
            await direct.publish(channel, "unseen")  # lost with the link: pubsub is at most once
            events.append(await sub.__anext__())  # the keepalive PING went unanswered
            await direct.publish(channel, "after")
            events.append(await sub.__anext__())
    assert events == [
        PubSubMessage(channel, b"before"),
        PubSubReconnected(),
        PubSubMessage(channel, b"after"),
    ]

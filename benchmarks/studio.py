"""relayna-studio benchmark: federation overhead, pull-sync ingest, task search, live relays.

Everything runs in this process on loopback: a relayna service (relayna's
own ``status_routes`` on hypercorn, memory store), Studio (hypercorn, the
real Redis from RELAYNA_TEST_REDIS_URL or one started by
scripts/services.py), clients on httpx. Printed, never asserted.

(a) federation overhead: ``GET /studio/services/svc/status/{id}`` through
    Studio vs ``GET /status/{id}`` on the service, sequential requests on a
    kept-alive client, interleaved; and ``GET /studio/tasks/svc/{id}`` (task
    detail: four upstream calls at once) against the same direct call; and a
    minimal proxy (one route forwarding to the service on a shared httpx
    client) as the cost of one more hop on this machine. Target: < 2 ms
    added at p50.
(b) pull-sync ingest from one service's feed of N events: events/s, against
    two floors measured in the same run (``_studio_floor``): the same writes
    as one script per event pipelined in pages of 200 (earlier runs' "raw
    pipelined writes"), and Studio's batched insert on prepared events (no
    HTTP, no validation, no search index).
    Targets: >= 5,000 events/s and >= 0.8x the floor. A row for Studio's
    Redis Cluster key layout (``RELAYNA_STUDIO_STORE_CLUSTER_KEYS``) on the
    same single Redis: pull sync and the batched insert, the two layouts
    alternating (two rounds each, the better round kept).
(c) task search over 100k indexed tasks with two filters (service and
    status): p50/p99 of the query route. Target: p99 < 20 ms. Rows for the
    cluster key layout on the same Redis (one index per service): the same
    query, and a query without ``service_id`` (status only, so the cluster
    layout asks all 10 services' indexes and merges) in both layouts.
(d) 500 concurrent browsers on ``/studio/tasks/svc/{id}/stream``: process
    memory per stream (RSS delta / streams; it includes the client, Studio
    and the service side of each stream) and p99 relay latency (service
    write -> frame at the client).

``python -m benchmarks studio [--requests 1000] [--events 20000] [--tasks 100000]
[--streams 500] [--only a,b,c,d]``
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from benchmarks._studio_floor import batch_floor, per_event_floor
from relayna.api import RuntimeConfig, open_relayna_runtime, serving, status_routes
from relayna.transport import open_store
from relayna_studio import StudioSettings, open_studio, studio_app
from relayna_studio._pull_sync import pull_sync
from relayna_studio._search import TaskIndex

HOST = "127.0.0.2"


class _Resolver:
    async def resolve(self, host: str, port: int) -> list[Any]:
        import ipaddress

        return [ipaddress.ip_address(HOST)]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    return sock


BASE = datetime(2026, 5, 1, tzinfo=UTC)


def _feed_events(n: int) -> list[dict[str, Any]]:
    return [
        {
            "cursor": str(i),
            "task_id": f"task-{i % 500}",
            "event_type": "status.processing",
            "source_kind": "status",
            "component": "status",
            "timestamp": (BASE + timedelta(milliseconds=i)).isoformat(),
            "event_id": f"e{i}",
            "payload": {"status": "processing", "n": i},
        }
        for i in range(1, n + 1)
    ]


@asynccontextmanager
async def _service(feed: list[dict[str, Any]]) -> AsyncIterator[tuple[str, Any]]:
    caps = {
        "supported_routes": ["status.latest", "status.events", "events.feed"],
        "feature_flags": [],
        "service_metadata": {"compatibility": "capabilities_v1"},
    }

    async def capabilities(request: Request) -> Response:
        return JSONResponse(caps)

    async def feed_page(request: Request) -> Response:
        limit = int(request.query_params.get("limit", "100"))
        after = int(request.query_params.get("after", "0"))
        items = feed[after : after + limit]
        return JSONResponse(
            {
                "count": len(items),
                "items": items,
                "next_cursor": items[-1]["cursor"] if items else str(after),
            }
        )

    async with open_relayna_runtime(RuntimeConfig(store_url="memory://")) as runtime:

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
            yield {"relayna": runtime}

        routes = [
            Route("/relayna/capabilities", capabilities),
            Route("/events/feed", feed_page),
            *status_routes(max_streams_per_client=None),
        ]
        sock = _bind()
        async with serving(
            Starlette(routes=routes, lifespan=lifespan), sock=sock, graceful_timeout=1
        ) as url:
            try:
                yield url.replace(HOST, "svc.bench.test"), runtime
            finally:
                runtime.request_shutdown()


@asynccontextmanager
async def _studio(redis_url: str, **overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    prefix = f"bench-studio:{uuid.uuid4().hex[:8]}"
    settings = StudioSettings(
        redis_url=redis_url,
        registry_prefix=f"{prefix}:services",
        event_store_prefix=f"{prefix}:events",
        health_store_prefix=f"{prefix}:health",
        task_search_index_prefix=f"{prefix}:search",
        auth_prefix=f"{prefix}:auth",
        audit_prefix=f"{prefix}:audit",
        lease_prefix=f"{prefix}:leases",
        allowed_hosts=(".bench.test",),
        allowed_networks=(f"{HOST}/32",),
        auth_enabled=False,
        **overrides,
    )
    async with open_studio(settings, resolver=_Resolver()) as runtime:
        app = studio_app(runtime)
        async with (
            serving(app, graceful_timeout=1) as base,
            httpx.AsyncClient(
                base_url=base,
                limits=httpx.Limits(max_connections=2000),
                timeout=httpx.Timeout(30.0, read=120.0),
            ) as client,
        ):
            try:
                yield client, runtime
            finally:
                await _cleanup(redis_url, prefix)


async def _cleanup(url: str, prefix: str) -> None:
    import coredis

    async with coredis.Redis.from_url(url) as client:
        # the cluster layout's global keys start with a brace: "{prefix:...}:..."
        keys = [k async for k in client.scan_iter(match=f"*{prefix}*", count=2000)]
        for i in range(0, len(keys), 500):
            await client.delete(keys[i : i + 500])


async def _register(client: httpx.AsyncClient, base: str) -> None:
    r = await client.post(
        "/studio/services",
        json={
            "service_id": "svc",
            "name": "svc",
            "base_url": base,
            "environment": "bench",
            "auth_mode": "internal_network",
        },
    )
    assert r.status_code == 201, r.text
    assert (await client.post("/studio/services/svc/refresh")).status_code == 200


@asynccontextmanager
async def _minimal_proxy(upstream: str) -> AsyncIterator[str]:
    """The least an HTTP proxy does: one Starlette route that calls the service on a
    shared keep-alive httpx client and answers its bytes (no registry, policy,
    decoding or enrichment). Its added latency is the cost of one more hop on
    this machine; Studio's own cost is what it adds beyond that."""
    async with httpx.AsyncClient(base_url=upstream) as client:

        async def forward(request: Request) -> Response:
            answer = await client.get(f"/status/{request.path_params['task_id']}")
            return Response(answer.content, answer.status_code, media_type="application/json")

        app = Starlette(routes=[Route("/status/{task_id}", forward)])
        async with serving(app, graceful_timeout=1) as url:
            yield url


async def bench_federation(redis_url: str, requests: int) -> list[str]:
    async with _service([]) as (base, service), _studio(redis_url) as (studio, _rt):
        await _register(studio, base)
        await service.status.write({"task_id": "t1", "status": "completed", "event_id": "e1"})
        direct_url = base.replace("svc.bench.test", HOST)
        async with (
            httpx.AsyncClient(base_url=direct_url) as direct,
            _minimal_proxy(direct_url) as proxy_url,
            httpx.AsyncClient(base_url=proxy_url) as proxy,
        ):
            kinds = {
                "direct GET /status/{id}": (direct, "/status/t1"),
                "minimal proxy GET /status/{id}": (proxy, "/status/t1"),
                "studio GET /studio/services/svc/status/{id}": (
                    studio,
                    "/studio/services/svc/status/t1",
                ),
                "studio GET /studio/tasks/svc/{id} (detail)": (studio, "/studio/tasks/svc/t1"),
            }
            times: dict[str, list[float]] = {k: [] for k in kinds}
            cpu: dict[str, float] = dict.fromkeys(kinds, 0.0)
            for _ in range(20):
                for client, path in kinds.values():
                    await client.get(path)
            for _ in range(requests):
                for name, (client, path) in kinds.items():
                    c0, t0 = time.process_time(), time.perf_counter()
                    r = await client.get(path)
                    times[name].append((time.perf_counter() - t0) * 1000)
                    cpu[name] += time.process_time() - c0
                    assert r.status_code == 200, r.text
    ref = times["direct GET /status/{id}"]
    hop = times["minimal proxy GET /status/{id}"]
    ref_cpu = cpu["direct GET /status/{id}"] * 1000 / requests
    rows = ["(a) federation overhead, ms per request (sequential, keep-alive)"]
    rows.append(
        f"  {'route':<44} {'p50':>6} {'p99':>6} {'+p50':>6} {'+p99':>6} {'-proxy p50':>10}"
        f" {'cpu':>5} {'+cpu':>5}"
    )
    for name, values in times.items():
        mean_cpu = cpu[name] * 1000 / requests
        p50, p99 = _pct(values, 0.5), _pct(values, 0.99)
        rows.append(
            f"  {name:<44} {p50:6.2f} {p99:6.2f} {p50 - _pct(ref, 0.5):6.2f}"
            f" {p99 - _pct(ref, 0.99):6.2f} {p50 - _pct(hop, 0.5):10.2f}"
            f" {mean_cpu:5.2f} {mean_cpu - ref_cpu:5.2f}"
        )
    rows.append(
        "  (+ = added to the direct call; -proxy = added beyond the minimal proxy's hop;"
        " cpu = mean CPU time of this process per request: client, Studio and service"
        " share it, so on a busy machine the latency grows with it)"
    )
    return rows


async def _pull_rate(
    redis_url: str, feed: list[dict[str, Any]], cluster: bool
) -> tuple[float, int]:
    async with (
        _service(feed) as (base, _svc),
        _studio(redis_url, event_history_maxlen=len(feed), store_cluster_keys=cluster) as (
            studio,
            runtime,
        ),
    ):
        await _register(studio, base)
        t0 = time.perf_counter()
        total = 0
        while True:
            got = await pull_sync(runtime, "svc")
            total += got
            if got == 0:
                break
        return total / (time.perf_counter() - t0), total


async def bench_pull(redis_url: str, events: int) -> list[str]:
    feed = _feed_events(events)
    rates: dict[bool, list[float]] = {False: [], True: []}
    batched: dict[bool, list[float]] = {False: [], True: []}
    total = 0
    async with open_store(redis_url) as store:
        prefix = f"bench-floor:{uuid.uuid4().hex[:8]}"
        floor = await per_event_floor(store, prefix, feed)
        await _cleanup(redis_url, prefix)
        for _round in range(2):
            for cluster in (False, True):
                rate, total = await _pull_rate(redis_url, feed, cluster)
                rates[cluster].append(rate)
                prefix = f"bench-floor:{uuid.uuid4().hex[:8]}"
                batched[cluster].append(await batch_floor(store, prefix, feed, cluster=cluster))
                await _cleanup(redis_url, prefix)
    pull_rate, cluster_rate = max(rates[False]), max(rates[True])
    batch, cluster_batch = max(batched[False]), max(batched[True])
    return [
        "(b) pull-sync ingest, events/s",
        f"  pull sync (HTTP feed -> validate -> insert -> search index): {pull_rate:9.0f}  ({total} events)",
        f"  floor: the same writes, one script per event, pipelined:     {floor:9.0f}",
        f"  floor: Studio's batched insert on prepared events:           {batch:9.0f}",
        f"  ratio to the per-event floor: {pull_rate / floor:.2f}x; "
        f"to the batched floor: {pull_rate / batch:.2f}x",
        f"  cluster key layout, same Redis: pull sync {cluster_rate:9.0f} "
        f"({cluster_rate / pull_rate:.2f}x default); batched insert {cluster_batch:9.0f} "
        f"({cluster_batch / batch:.2f}x default)",
    ]


async def _build_index(index: TaskIndex, tasks: int, statuses: list[str]) -> float:
    t0 = time.perf_counter()
    for s in range(10):
        record = {"service_id": f"svc-{s}", "name": f"Service {s}", "environment": "bench"}
        batch = []
        for i in range(tasks // 10):
            stamp = (BASE + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            batch.append(
                {
                    "task_id": f"task-{s}-{i}",
                    "event_type": "status",
                    "timestamp": stamp,
                    "ingested_at": stamp,
                    "payload": {"status": statuses[i % 4]},
                }
            )
            if len(batch) == 1000:
                await index.upsert(record, batch)
                batch = []
        if batch:
            await index.upsert(record, batch)
    return time.perf_counter() - t0


async def bench_search(redis_url: str, tasks: int) -> list[str]:
    prefix = f"bench-search:{uuid.uuid4().hex[:8]}"
    statuses = ["queued", "processing", "completed", "failed"]
    async with open_store(redis_url) as store:
        indexes = {
            False: TaskIndex(store, f"{prefix}:d"),
            True: TaskIndex(store, f"{prefix}:c", cluster=True),
        }
        builds = {c: await _build_index(i, tasks, statuses) for c, i in indexes.items()}
        times: dict[tuple[bool, bool], list[float]] = {}
        for q in range(300):  # the layouts and query kinds interleaved
            for by_service in (True, False):
                for cluster, index in indexes.items():
                    filters = {"status": statuses[q % 4]}
                    if by_service:
                        filters["service_id"] = f"svc-{q % 10}"
                    t1 = time.perf_counter()
                    page, _ = await index.search(
                        filters, time_from=None, time_to=None, limit=50, cursor=None
                    )
                    times.setdefault((cluster, by_service), []).append(
                        (time.perf_counter() - t1) * 1000
                    )
                    assert len(page) == 50
    await _cleanup(redis_url, prefix)

    def row(cluster: bool, by_service: bool) -> str:
        t = times[(cluster, by_service)]
        return f"p50 {_pct(t, 0.5):6.2f} ms   p99 {_pct(t, 0.99):6.2f} ms"

    return [
        f"(c) task search over {tasks} tasks, filters service_id + status, limit 50 "
        f"(index built in {builds[False]:.1f}s)",
        f"  {row(False, True)}",
        f"  cluster key layout, same Redis (built in {builds[True]:.1f}s): {row(True, True)}",
        "  status only (no service_id; the cluster layout merges 10 services' indexes):",
        f"    default layout:      {row(False, False)}",
        f"    cluster key layout:  {row(True, False)}",
    ]


async def bench_streams(redis_url: str, streams: int) -> list[str]:
    async with _service([]) as (base, service), _studio(redis_url) as (studio, _rt):
        await _register(studio, base)
        for i in range(streams):
            await service.status.write(
                {"task_id": f"s{i}", "status": "queued", "event_id": f"s{i}-0"}
            )
        rss0 = _rss_kib()
        latencies: list[float] = []
        ready = 0
        all_ready = anyio.Event()
        sent: dict[str, float] = {}

        async def browser(i: int) -> None:
            nonlocal ready
            async with studio.stream("GET", f"/studio/tasks/svc/s{i}/stream") as r:
                assert r.status_code == 200, r.status_code
                counted = False
                async for line in r.aiter_lines():
                    if line.startswith("id: s") and line.endswith("-0") and not counted:
                        counted = True
                        ready += 1
                        if ready == streams:
                            all_ready.set()
                    elif line.startswith("id: ") and line.endswith("-1"):
                        latencies.append((time.perf_counter() - sent[f"s{i}"]) * 1000)
                        return

        async with anyio.create_task_group() as tg:
            for i in range(streams):
                tg.start_soon(browser, i)
            with anyio.fail_after(120):
                await all_ready.wait()
            rss1 = _rss_kib()
            for i in range(streams):
                sent[f"s{i}"] = time.perf_counter()
                await service.status.write(
                    {"task_id": f"s{i}", "status": "completed", "event_id": f"s{i}-1"}
                )
                await anyio.sleep(0.002)
    return [
        f"(d) {streams} concurrent browsers on /studio/tasks/svc/{{id}}/stream",
        f"  memory per stream (process RSS delta, client + Studio + service): {(rss1 - rss0) / streams:.1f} KiB",
        f"  relay latency (service write -> frame at client): p50 {_pct(latencies, 0.5):.2f} ms"
        f"  p99 {_pct(latencies, 0.99):.2f} ms  ({len(latencies)} events)",
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks studio",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests per route in (a)")
    parser.add_argument("--events", type=int, default=20000, help="feed events in (b)")
    parser.add_argument("--tasks", type=int, default=100000, help="indexed tasks in (c)")
    parser.add_argument("--streams", type=int, default=500, help="concurrent streams in (d)")
    parser.add_argument("--only", default="a,b,c,d", help="which parts to run (default a,b,c,d)")
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="async backend"
    )
    args = parser.parse_args(argv)
    url = os.environ.get("RELAYNA_TEST_REDIS_URL")
    svc = None
    if url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
        from services import Services

        svc = Services.start()
        url = svc.redis_url
    parts = set(args.only.split(","))

    async def run() -> None:
        print(f"relayna-studio benchmark ({args.backend}, Redis {url})", flush=True)
        if "a" in parts:
            print("\n".join(await bench_federation(url, args.requests)), flush=True)
        if "b" in parts:
            print("\n".join(await bench_pull(url, args.events)), flush=True)
        if "c" in parts:
            print("\n".join(await bench_search(url, args.tasks)), flush=True)
        if "d" in parts:
            print("\n".join(await bench_streams(url, args.streams)), flush=True)

    try:
        anyio.run(run, backend=args.backend)
    finally:
        if svc is not None:
            svc.stop()
    return 0

"""relayna-studio telemetry benchmark: a task page's logs + metrics + trace, and query building.

Everything runs in this process on loopback. The providers are small
stand-ins with canned answers of realistic size (Loki: 100 log lines in 4
streams; Prometheus: one series of 121 points per query; Tempo: a 20-span
trace), served by hypercorn like Studio, so the numbers are Studio's cost,
not a provider's. Printed, never asserted.

(a) the task page: the three panels a browser loads at once — task logs
    (1 Loki call), task metrics (22 Prometheus range queries, 8 at a time)
    and the trace (1 Tempo call) — through Studio, against the same provider
    calls made directly with a plain httpx client in the same pattern (the
    providers' own time). Reported: p50/p99 of both and of Studio's overhead
    (Studio - direct, per round).
(b) query construction: microseconds per call of each pure builder, against
    a naive f-string selector (no escaping, the reference).

``python -m benchmarks studio_telemetry [--rounds 200] [--backend asyncio|trio]``
"""

from __future__ import annotations

import argparse
import base64
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.studio import HOST, _pct, _Resolver
from relayna.api import serving
from relayna_studio import StudioSettings, open_studio, studio_app
from relayna_studio._loki import LogRequest, build_logql, loki_page, loki_params
from relayna_studio._promql import GROUPS, MetricsRequest, group_query, parse_matrix
from relayna_studio._tempo import discover_trace_ids, normalize_trace

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = 1_714_550_400


def loki_answer() -> bytes:
    streams = []
    for s in range(4):
        values = [
            [str((T0 + 100 - i) * 10**9 + s), f'{{"task_id":"t-1","msg":"line {i} of stream {s}"}}']
            for i in range(25)
        ]
        streams.append({"stream": {"service": "checkout", "app": f"app-{s}"}, "values": values})
    return orjson.dumps({"status": "success", "data": {"resultType": "streams", "result": streams}})


def prom_answer() -> bytes:
    values = [[T0 + 30 * i, str(1.5 + i)] for i in range(121)]
    return orjson.dumps(
        {
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]},
        }
    )


def tempo_answer() -> bytes:
    def b64(hex_id: str) -> str:
        return base64.b64encode(bytes.fromhex(hex_id)).decode()

    spans = [
        {"traceId": b64(TRACE), "spanId": b64(f"{i + 1:016x}"), "parentSpanId": b64(f"{i:016x}") if i else "",
         "name": "relayna.consumer.task_message", "kind": 5,
         "startTimeUnixNano": str(T0 * 10**9 + i * 10**6), "endTimeUnixNano": str(T0 * 10**9 + (i + 5) * 10**6),
         "attributes": [{"key": "relayna.task_id", "value": {"stringValue": "t-1"}}],
         "status": {"code": 0}}
        for i in range(20)
    ]  # fmt: skip
    return orjson.dumps({"batches": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "worker"}}]},
        "instrumentationLibrarySpans": [{"spans": spans}]}]})  # fmt: skip


def providers() -> Starlette:
    answers = {"loki": loki_answer(), "prom": prom_answer(), "tempo": tempo_answer()}

    def route(name: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            return Response(answers[name], media_type="application/json")

        return handler

    return Starlette(routes=[
        Route("/loki/api/v1/query_range", route("loki")),
        Route("/api/v1/query_range", route("prom")),
        Route("/api/traces/{trace_id}", route("tempo")),
    ])  # fmt: skip


@asynccontextmanager
async def stack() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with serving(providers(), host=HOST, port=0, graceful_timeout=1) as provider_base:
        port = provider_base.rsplit(":", 1)[1]
        settings = StudioSettings(
            redis_url="memory://", allowed_hosts=(".bench.test",),
            allowed_networks=(f"{HOST}/32",), auth_enabled=False,
            pull_sync_interval_seconds=None, health_refresh_interval_seconds=None,
            retention_prune_interval_seconds=None, registry_prefix=f"bench:{uuid.uuid4().hex[:6]}",
        )  # fmt: skip
        async with open_studio(settings, resolver=_Resolver()) as runtime:
            async with (
                serving(studio_app(runtime), host="127.0.0.1", port=0, graceful_timeout=1) as base,
                httpx.AsyncClient(base_url=base, timeout=30) as client,
            ):
                base_url = f"http://p.bench.test:{port}"
                response = await client.post("/studio/services", json={
                    "service_id": "checkout", "name": "Checkout", "environment": "bench",
                    "base_url": "http://svc.bench.test", "auth_mode": "internal_network",
                    "log_config": {"base_url": base_url, "service_selector_labels": {"service": "checkout"},
                                   "task_match_mode": "contains"},
                    "metrics_config": {"base_url": base_url, "namespace": "shop",
                                       "service_selector_labels": {"service": "checkout"}},
                    "trace_config": {"base_url": base_url},
                })  # fmt: skip
                assert response.status_code == 201, response.text
                yield client, provider_base


WINDOW = {"from": str(T0), "to": str(T0 + 3600)}


async def studio_round(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for path, params in (
            ("/studio/tasks/checkout/t-1/logs", WINDOW),
            ("/studio/tasks/checkout/t-1/metrics", {**WINDOW, "step": "30"}),
            ("/studio/tasks/checkout/t-1/traces", {"trace_id": TRACE}),
        ):

            async def one(path: str = path, params: dict[str, str] = params) -> None:
                response = await client.get(path, params=params)
                assert response.status_code == 200, response.text

            tg.start_soon(one)
    return time.perf_counter() - started


async def direct_round(client: httpx.AsyncClient, base: str) -> float:
    limiter = anyio.CapacityLimiter(8)
    started = time.perf_counter()

    async def get(url: str, params: dict[str, str] | None = None) -> None:
        async with limiter:
            response = await client.get(url, params=params)
            response.json()

    async with anyio.create_task_group() as tg:
        tg.start_soon(get, f"{base}/loki/api/v1/query_range", {"query": '{service="checkout"}'})
        tg.start_soon(get, f"{base}/api/traces/{TRACE}")
        for _ in GROUPS:
            tg.start_soon(get, f"{base}/api/v1/query_range", {"query": "up"})
    return time.perf_counter() - started


async def bench_page(rounds: int) -> list[str]:
    async with stack() as (client, base), httpx.AsyncClient(timeout=30) as direct:
        for _ in range(10):  # warm both paths
            await studio_round(client)
            await direct_round(direct, base)
        studio: list[float] = []
        providers_only: list[float] = []
        for _ in range(rounds):  # interleaved, so load changes hit both alike
            providers_only.append(await direct_round(direct, base))
            studio.append(await studio_round(client))
    overhead = [s - d for s, d in zip(studio, providers_only, strict=True)]
    rows = [
        "(a) task page: logs + metrics (22 groups) + trace, three panels at once",
        f"{'':28} {'p50 ms':>9} {'p99 ms':>9}",
    ]
    for label, values in (
        ("providers direct (ref)", providers_only),
        ("through Studio", studio),
        ("Studio overhead", overhead),
    ):
        rows.append(f"{label:28} {_pct(values, 0.5) * 1e3:9.2f} {_pct(values, 0.99) * 1e3:9.2f}")
    return rows


def _per_call(fn: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def bench_build(n: int) -> list[str]:
    log_config = {"service_selector_labels": {"service": "checkout", "team": "shop"},
                  "source_label": "app", "level_label": "level", "task_match_mode": "contains",
                  "pod_label": "pod", "pod_value_template": "{pod}"}  # fmt: skip
    request = LogRequest(
        start_ns=0, end_ns=10**19, limit=100, task_id="t-1", source="api", text="error"
    )
    metrics_config = {"service_selector_labels": {"service": "checkout"}, "namespace": "shop"}
    mreq = MetricsRequest(0, 3600, 30, tuple(GROUPS))
    loki_body = orjson.loads(loki_answer())
    prom_body = orjson.loads(prom_answer())
    tempo_body = orjson.loads(tempo_answer())
    detail = {"history": [{"meta": {"trace_id": TRACE}, "status": "completed"}] * 20,
              "graph": {"nodes": [{"annotations": {"trace_id": TRACE}}] * 50}}  # fmt: skip

    def naive() -> str:  # the reference: no escaping, no validation
        labels = {**log_config["service_selector_labels"], "app": "api"}
        return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + '} |= "t-1"'

    cases = [
        ("naive f-string selector (ref)", naive),
        ("build_logql (selector + 2 filters)", lambda: build_logql(log_config, "svc", request)),
        ("loki_params", lambda: loki_params("{a=\"b\"}", request)),
        ("loki_page (100 lines, JSON bodies)", lambda: loki_page(log_config, "svc", request, loki_body)),
        ("group_query, per group (avg of 22)", lambda: [group_query(metrics_config, "s", g, mreq) for g in GROUPS]),
        ("parse_matrix (121 points)", lambda: parse_matrix(prom_body, "memory_usage")),
        ("normalize_trace (20 spans)", lambda: normalize_trace(tempo_body)),
        ("discover_trace_ids (task detail)", lambda: discover_trace_ids(detail)),
    ]  # fmt: skip
    rows = ["(b) query construction", f"{'':38} {'µs/call':>9}"]
    for label, fn in cases:
        value = _per_call(fn, n)
        if label.startswith("group_query"):
            value /= len(GROUPS)
        rows.append(f"{label:38} {value:9.1f}")
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks studio_telemetry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=200, help="task pages loaded in (a)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per builder in (b)")
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="async backend"
    )
    args = parser.parse_args(argv)

    async def run() -> None:
        print(f"relayna-studio telemetry benchmark ({args.backend})", flush=True)
        print("\n".join(await bench_page(args.rounds)), flush=True)
        print("\n".join(bench_build(args.calls)), flush=True)

    anyio.run(run, backend=args.backend)
    return 0

"""Status routes over real HTTP (hypercorn on loopback + httpx), both backends."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import orjson
import pytest
from starlette.applications import Starlette

from relayna.api import RelaynaRuntime, RuntimeConfig, open_relayna_runtime, status_routes
from relayna.contracts import ContractAliasConfig, StatusEvent, encode_status
from relayna.errors import StoreConnectionLost
from relayna.status import StatusStoreConfig
from relayna.topology import StatusTopologyBase

pytestmark = pytest.mark.anyio

Serve = Callable[[Any], Any]


def ev(n: int, task: str = "t1", status: str = "running", **extra: Any) -> dict[str, Any]:
    return {"task_id": task, "event_id": f"{task}-{n}", "status": status, **extra}


@asynccontextmanager
async def app_server(
    serve: Serve, unique: str, *, max_history: int = 50, **route_options: Any
) -> AsyncIterator[tuple[RelaynaRuntime, httpx.AsyncClient]]:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    config = RuntimeConfig(
        store_url="memory://",
        broker_url="memory://",
        topology=topology,
        store=StatusStoreConfig(max_history=max_history),
    )
    async with open_relayna_runtime(config) as runtime:

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
            yield {"relayna": runtime}

        app = Starlette(routes=status_routes(**route_options), lifespan=lifespan)
        async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
            try:
                yield runtime, client
            finally:
                runtime.request_shutdown()


async def sse_events(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    until: Callable[[list[dict[str, str]]], bool] | None = None,
    progress: Callable[[list[dict[str, str]]], None] | None = None,
) -> tuple[int, list[dict[str, str]], httpx.Headers]:
    """Read an SSE response until it ends (or ``until`` holds).

    ``progress(events)`` is called with the events so far after each chunk,
    so a test can act once the stream reached a point (no sleeping).
    """
    events: list[dict[str, str]] = []
    async with client.stream("GET", path, headers=headers) as response:
        buffer = ""
        async for chunk in response.aiter_text():
            buffer += chunk
            *complete, buffer = buffer.split("\n\n")
            for block in complete:
                events.extend(parse_sse(block + "\n\n"))
            if progress is not None:
                progress(events)
            if until is not None and until(events):
                break
        return response.status_code, events, response.headers


def parse_sse(text: str) -> list[dict[str, str]]:
    """Events as dicts of field -> value (``data`` lines joined), comments as ``{":": text}``."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if line == "":
            if fields:
                events.append(fields)
            fields = {}
        elif line.startswith(":"):
            events.append({":": line[1:].strip()})
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = f"{fields[name]}\n{value}" if name in fields else value
    if fields:
        events.append(fields)
    return events


def status_ids(events: list[dict[str, str]]) -> list[str]:
    return [e["id"] for e in events if e.get("event") == "status"]


async def test_latest_status_route(serve: Serve, unique: str) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique) as (runtime, client):
            response = await client.get("/status/t1")
            assert response.status_code == 404
            assert response.json() == {"detail": "No status found for task_id 't1'"}
            await runtime.status.write(ev(1))
            await runtime.status.write(ev(2, status="completed"))
            response = await client.get("/status/t1")
            assert response.status_code == 200
            assert response.json() == {"task_id": "t1", "event": ev(2, status="completed")}


async def test_bad_ids_are_422_without_touching_the_store(serve: Serve, unique: str) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique) as (_runtime, client):
            for path in [
                "/status/" + "x" * 5000,
                "/status/a%0d%0ab",
                "/events/a%20b",
                "/status/..",
            ]:
                response = await client.get(path)
                assert response.status_code in (404, 422), path
                if response.status_code == 422:
                    assert "detail" in response.json()
            assert (await client.get("/status/a%0d%0ab")).status_code == 422
            assert (await client.get("/events/" + "y" * 300)).status_code == 422


async def test_http_alias_names_the_path_parameter_and_fields(serve: Serve, unique: str) -> None:
    aliases = ContractAliasConfig(field_aliases={"task_id": "documentId"})
    with anyio.fail_after(10):
        async with app_server(serve, unique, aliases=aliases) as (runtime, client):
            await runtime.status.write(ev(1, "doc-9"))
            body = (await client.get("/status/doc-9")).json()
            assert body["documentId"] == "doc-9"
            assert body["event"]["documentId"] == "doc-9"
            assert "task_id" not in body["event"]


async def test_sse_replays_history_goes_live_and_closes_on_terminal(
    serve: Serve, unique: str
) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique, retry_ms=1500) as (runtime, client):
            await runtime.status.write(ev(1))
            await runtime.status.write(ev(2, message='evil\n\ndata: {"status":"completed"}'))
            replayed = anyio.Event()

            def watch(events: list[dict[str, str]]) -> None:
                if "t1-2" in status_ids(events):
                    replayed.set()

            async with anyio.create_task_group() as tg:
                result: dict[str, Any] = {}

                async def read() -> None:
                    result["r"] = await sse_events(client, "/events/t1", progress=watch)

                tg.start_soon(read)
                await replayed.wait()  # history is through: 3 and 4 can only arrive live
                await runtime.status.write(ev(3))
                await runtime.status.write(ev(4, status="completed"))
            code, events, headers = result["r"]
            assert code == 200
            assert headers["content-type"].startswith("text/event-stream")
            assert headers["cache-control"] == "no-cache, no-store, must-revalidate"
            assert headers["x-accel-buffering"] == "no"
            assert events[0] == {"event": "ready", "retry": "1500", "data": "{}"}
            assert status_ids(events) == ["t1-1", "t1-2", "t1-3", "t1-4"]
            forged = next(e for e in events if e.get("id") == "t1-2")
            assert orjson.loads(forged["data"])["message"].startswith("evil\n\ndata:")


async def test_resume_variants(serve: Serve, unique: str) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique) as (runtime, client):
            for n in range(1, 4):
                await runtime.status.write(ev(n))
            enough: Callable[[list[dict[str, str]]], bool] = lambda evs: len(status_ids(evs)) >= 1  # noqa: E731
            _, events, _ = await sse_events(
                client, "/events/t1", headers={"Last-Event-ID": "t1-2"}, until=enough
            )
            assert status_ids(events) == ["t1-3"]
            _, events, _ = await sse_events(
                client, "/events/t1?last_event_id=t1-1",
                until=lambda evs: len(status_ids(evs)) >= 2,
            )  # fmt: skip
            assert status_ids(events) == ["t1-2", "t1-3"]
            for garbage in ["x" * 300, "other-task-id"]:
                _, events, _ = await sse_events(
                    client, "/events/t1", headers={"Last-Event-ID": garbage},
                    until=lambda evs: len(status_ids(evs)) >= 3,
                )  # fmt: skip
                assert [e.get("event") for e in events[:2]] == ["ready", "resync"]
                assert status_ids(events) == ["t1-1", "t1-2", "t1-3"]
            await runtime.status.write(ev(4, status="failed"))
            response = await client.get("/events/t1", headers={"Last-Event-ID": "t1-4"})
            assert response.status_code == 204
            assert response.content == b""


async def test_accept_json_gives_a_snapshot(serve: Serve, unique: str) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique) as (runtime, client):
            await runtime.status.write(ev(1))
            await runtime.status.write(ev(2, status="completed"))
            response = await client.get("/events/t1", headers={"Accept": "application/json"})
            assert response.status_code == 200
            assert response.json() == {
                "task_id": "t1", "count": 2, "terminal": True, "events": [ev(1), ev(2, status="completed")],
            }  # fmt: skip


async def test_keepalive_and_shutdown_end_the_stream(serve: Serve, unique: str) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique, keepalive=0.1) as (runtime, client):
            kept_alive = anyio.Event()

            def watch(events: list[dict[str, str]]) -> None:
                if {":": "keepalive"} in events:
                    kept_alive.set()

            async with anyio.create_task_group() as tg:
                result: dict[str, Any] = {}

                async def read() -> None:
                    result["r"] = await sse_events(client, "/events/t1", progress=watch)

                tg.start_soon(read)
                await kept_alive.wait()
                runtime.request_shutdown()
            _, events, _ = result["r"]
            assert events[0]["event"] == "ready"
            assert {":": "keepalive"} in events


async def test_slow_client_is_disconnected_others_unaffected(serve: Serve, unique: str) -> None:
    big = "x" * 65536
    total = 200
    with anyio.fail_after(30):
        async with app_server(serve, unique, buffer_size=32) as (runtime, client):
            async with anyio.create_task_group() as tg:
                result: dict[str, Any] = {}

                async def fast() -> None:
                    result["fast"] = await sse_events(client, "/events/t1")

                tg.start_soon(fast)
                async with httpx.AsyncClient(base_url=str(client.base_url)) as slow_client:
                    async with slow_client.stream("GET", "/events/t1") as slow:
                        assert slow.status_code == 200
                        for n in range(total):
                            done = n == total - 1
                            await runtime.status.write(
                                ev(n, status="completed" if done else "running", message=big)
                            )
                            await anyio.sleep(0.002)
                        while True:  # poll: the condition is another task's counter
                            if not (runtime.stream_stats.slow_disconnects == 0):
                                break
                            await anyio.sleep(0.01)
            _, events, _ = result["fast"]
            assert status_ids(events) == [f"t1-{n}" for n in range(total)]
            assert runtime.stream_stats.slow_disconnects == 1


async def test_gap_free_seam_over_http(serve: Serve, unique: str) -> None:
    """1,000 events while clients connect at random moments (some resuming)."""
    total, clients = 1000, 8
    rng = random.Random(unique)
    expected = [f"t1-{n}" for n in range(total)]
    with anyio.fail_after(60):
        async with app_server(serve, unique, max_history=total) as (runtime, client):
            state = {"written": 0}
            seen: dict[int, list[str]] = {}

            async def follow(index: int, join_at: int) -> None:
                while True:  # poll: the condition is another task's counter
                    if not (state["written"] < join_at):
                        break
                    await anyio.sleep(0.002)
                headers = {}
                start = 0
                if index % 2 and state["written"]:
                    start = rng.randrange(state["written"])
                    headers["Last-Event-ID"] = expected[start]
                    start += 1
                _, events, _ = await sse_events(client, "/events/t1", headers=headers)
                seen[index] = status_ids(events)
                assert seen[index] == expected[start:], index

            async with anyio.create_task_group() as tg:
                for index in range(clients):
                    tg.start_soon(follow, index, rng.randrange(total))
                for n in range(total):
                    status_text = "completed" if n == total - 1 else "running"
                    await runtime.status.write(ev(n, status=status_text))
                    state["written"] = n + 1
                    if n % 25 == 0:
                        await anyio.sleep(0.001)
            assert len(seen) == clients


async def test_hub_end_to_end_and_stream_history(serve: Serve, unique: str) -> None:
    with anyio.fail_after(15):
        async with app_server(serve, unique) as (runtime, client):
            assert runtime.broker is not None
            assert runtime.hub is not None
            topology = runtime.config.topology
            assert topology is not None
            for n in range(5):
                event = StatusEvent(
                    task_id="t1" if n % 2 == 0 else "t2",
                    status="completed" if n == 4 else "running",
                    event_id=f"h{n}",
                )
                await runtime.broker.publish(
                    topology.status_exchange, event.task_id, encode_status(event)
                )
            while True:  # poll: the condition is another task's counter
                if not (runtime.hub.stats.stored < 5):
                    break
                await anyio.sleep(0.01)
            assert (await client.get("/status/t1")).json()["event"]["event_id"] == "h4"
            response = await client.get("/history", params={"task_id": "t1", "max_seconds": 2})
            assert response.status_code == 200
            body = response.json()
            assert body["task_id"] == "t1"
            assert body["count"] == 3
            assert [e["event_id"] for e in body["events"]] == ["h0", "h2", "h4"]
            response = await client.get("/history", params={"max_scan": 2, "limit": 10**9})
            assert response.status_code == 200
            assert response.json()["count"] == 2


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"task_id": "t1", "limit": "-1"},
        {"task_id": "t1", "limit": "abc"},
        {"task_id": "t1", "max_scan": "0"},
        {"task_id": "t1", "max_seconds": "nan"},
        {"task_id": "t1", "start_offset": "yesterday"},
        {"task_id": "bad id"},
        {"task_id": "t1", "stop_on_terminal": "maybe"},
    ],
)
async def test_history_rejects_bad_params(serve: Serve, unique: str, query: dict[str, str]) -> None:
    with anyio.fail_after(10):
        async with app_server(serve, unique) as (_runtime, client):
            response = await client.get("/history", params=query)
            assert response.status_code == 422
            assert "detail" in response.json()


class _CloseFails:
    """A memory store whose subscriptions raise StoreConnectionLost as they close
    (Redis went away while a stream was ending)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def subscribe(self, *channels: str) -> Any:
        @asynccontextmanager
        async def subscription() -> AsyncIterator[Any]:
            async with self._inner.subscribe(*channels) as sub:
                yield sub
            raise StoreConnectionLost("pubsub gone while closing", url="memory://")

        return subscription()


async def test_a_store_error_after_the_204_does_not_start_a_second_response(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by T7 on trio: the stream's store error surfaced after the 204 was
    sent, the route then sent a 503 on the same request, h11 refused it and
    hypercorn's trio worker took the whole server down."""
    from relayna.transport import open_store

    with anyio.fail_after(10):
        async with open_store("memory://") as inner:
            config = RuntimeConfig(store_url="memory://")
            async with open_relayna_runtime(config, store=_CloseFails(inner)) as runtime:

                @asynccontextmanager
                async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
                    yield {"relayna": runtime}

                app = Starlette(routes=status_routes(), lifespan=lifespan)
                async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
                    await runtime.status.write(ev(1, status="completed"))
                    for _ in range(3):
                        response = await client.get("/events/t1", headers={"Last-Event-ID": "t1-1"})
                        assert response.status_code == 204
                    response = await client.get("/status/t1")  # the server still serves
                    assert response.status_code == 200
                    runtime.request_shutdown()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text

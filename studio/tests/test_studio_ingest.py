"""Event ingest: pull sync from a 20,000-event feed, the gap report, push ingest auth,
listings with stable cursors, the live activity stream. Memory store and real Redis."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from relayna.api import serving
from relayna.errors import ConfigurationError
from relayna.transport import PubSubMessage
from relayna_studio import studio_app
from relayna_studio._event_keys import EventKeys
from relayna_studio._events import EventStore
from relayna_studio._pull_sync import pull_sync
from relayna_studio._sse import ChannelStream
from studio_support import TableResolver, open_test_studio, settings_for

pytestmark = pytest.mark.anyio

HOST = "127.0.0.2"
BASE = datetime(2026, 5, 1, tzinfo=UTC)
CAPS = {
    "supported_routes": ["events.feed"],
    "feature_flags": [],
    "service_metadata": {"compatibility": "capabilities_v1"},
}


class Feed:
    """``GET /events/feed?after=&limit=`` of relayna's documented shape (oldest first, reset flag)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []  # retained window, seq = index + first
        self.first = 1

    def produce(self, count: int, task_of: int = 50) -> None:
        start = self.first + len(self.events)
        for seq in range(start, start + count):
            self.events.append(
                {
                    "cursor": str(seq),
                    "task_id": f"task-{seq % task_of}",
                    "event_type": "status.processing",
                    "source_kind": "status" if seq % 3 else "observation",
                    "component": "status",
                    "timestamp": (BASE + timedelta(seconds=seq)).isoformat(),
                    "event_id": f"e{seq}",
                    "payload": {"status": "processing", "n": seq},
                }
            )

    def trim(self, keep: int) -> None:
        drop = len(self.events) - keep
        self.events = self.events[drop:]
        self.first += drop

    async def route(self, request: Request) -> Response:
        limit = int(request.query_params.get("limit", "100"))
        after = request.query_params.get("after")
        reset, skipped = False, 0
        start = 0
        if after is not None:
            position = int(after)
            if position < self.first - 1:
                reset, skipped = True, self.first - 1 - position
            else:
                start = position - self.first + 1
        items = self.events[start : start + limit]
        nxt = items[-1]["cursor"] if items else after
        body: dict[str, Any] = {"count": len(items), "items": items, "next_cursor": nxt}
        if reset:
            body.update(reset=True, skipped=skipped)
        return JSONResponse(body)


@asynccontextmanager
async def feed_service(feed: Feed) -> AsyncIterator[int]:
    async def caps(request: Request) -> Response:
        return JSONResponse(CAPS)

    app = Starlette(
        routes=[Route("/relayna/capabilities", caps), Route("/events/feed", feed.route)]
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(64)
    port = int(sock.getsockname()[1])
    async with serving(app, sock=sock, graceful_timeout=0.2):
        yield port


async def test_pull_sync_20000_events_none_lost_none_duplicated_gap_reported(
    store_url: str,
) -> None:
    feed = Feed()
    feed.produce(20_000)
    settings = settings_for(
        store_url,
        f"pull:{uuid.uuid4().hex[:8]}",
        allowed_hosts=(".test",),
        allowed_networks=(f"{HOST}/32",),
        event_history_maxlen=25_000,
        federation_timeout_seconds=10.0,
    )
    with anyio.fail_after(110):
        async with (
            feed_service(feed) as port,
            open_test_studio(settings, resolver=TableResolver({"feed.test": [HOST]})) as studio,
        ):
            client, runtime = studio.client, studio.runtime
            created = await client.post(
                "/studio/services",
                json={
                    "service_id": "feeder",
                    "name": "Feeder",
                    "base_url": f"http://feed.test:{port}",
                    "environment": "test",
                    "auth_mode": "internal_network",
                },
            )
            assert created.status_code == 201
            assert await pull_sync(runtime, "feeder") == 0  # not healthy yet: not synced
            assert (await client.post("/studio/services/feeder/refresh")).status_code == 200
            total = 0
            for _ in range(10):
                got = await pull_sync(runtime, "feeder")
                total += got
                if got == 0:
                    break
            assert total == 20_000
            keys = EventKeys(settings.event_store_prefix, settings.cluster_keys)
            history = await runtime.store.lrange(keys.service_history("feeder"), 0, -1)
            assert len(history) == 20_000
            assert len(set(history)) == 20_000
            assert await pull_sync(runtime, "feeder") == 0  # idle: nothing twice
            # a trimmed feed: the stored cursor fell off the window
            feed.produce(3_000)
            feed.trim(1_000)
            assert await pull_sync(runtime, "feeder") == 1_000
            health = (await client.get("/studio/services/feeder/health")).json()
            assert health["events_skipped"] == 2_000
            assert health["observation_freshness"]["latest_ingested_at"] is not None
            page = (await client.get("/studio/services/feeder/events?limit=3")).json()
            assert [e["event_id"] for e in page["items"]] == ["e23000", "e22999", "e22998"]
            assert page["items"][0]["ingest_method"] == "pull"
            assert page["items"][0]["dedupe_key"] == "feeder:status:e23000"


async def test_listing_cursors_filters_and_bad_queries(studio_factory: Any) -> None:
    with anyio.fail_after(30):
        async with studio_factory(push_ingest_enabled=True) as studio:
            client = studio.client
            await client.post(
                "/studio/services",
                json={
                    "service_id": "svc",
                    "name": "s",
                    "base_url": "http://svc.example.test",
                    "environment": "prod",
                    "auth_mode": "internal_network",
                },
            )
            events = [
                {
                    "service_id": "svc",
                    "ingest_method": "push",
                    "event": {
                        "task_id": f"t{i % 3}",
                        "event_type": "status.completed" if i % 2 else "TaskMessageReceived",
                        "source_kind": "status" if i % 2 else "observation",
                        "timestamp": f"2026-05-01T12:00:{i:02d}Z",
                        "payload": {"i": i},
                    },
                }
                for i in range(30)
            ]
            counts = (await client.post("/studio/ingest/events", json={"events": events})).json()
            assert counts == {"inserted": 30, "duplicate": 0, "invalid": 0}
            again = (await client.post("/studio/ingest/events", json={"events": events[:5]})).json()
            assert again == {"inserted": 0, "duplicate": 5, "invalid": 0}
            late = {**events[0], "event": {**events[0]["event"], "payload": {"late": 1}}}
            stored = (await client.post("/studio/ingest/events", json={"events": [late]})).json()
            assert stored["inserted"] == 1
            seen: list[str] = []
            cursor = None
            while True:
                url = "/studio/services/svc/events?limit=7" + (
                    f"&before={cursor}" if cursor else ""
                )
                page = (await client.get(url)).json()
                seen += [e["dedupe_key"] for e in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert len(seen) == 31
            assert len(set(seen)) == 31
            newest = (await client.get("/studio/services/svc/events?limit=1")).json()["items"][0]
            assert newest["payload"] == {"i": 29}
            ooo = [
                e
                for e in (await client.get("/studio/tasks/svc/t0/events?limit=500")).json()["items"]
                if e["payload"] == {"late": 1}
            ]
            assert ooo[0]["out_of_order"] is True
            only = (
                await client.get(
                    "/studio/services/svc/events?task_id=t1&source_kind=status"
                    "&from=2026-05-01T12:00:10Z&to=2026-05-01T12:00:20Z"
                )
            ).json()
            assert {e["task_id"] for e in only["items"]} == {"t1"}
            assert all("12:00:10" <= e["timestamp"][11:19] <= "12:00:20" for e in only["items"])
            for query in [
                "from=yesterday",
                "from=2026-05-02T00:00:00Z&to=2026-05-01T00:00:00Z",
                "limit=0",
                "limit=501",
                "source_kind=other",
                "task_id=a%20b",
                "before=a%20b",
                "nope=1",
            ]:
                response = await client.get(f"/studio/services/svc/events?{query}")
                assert response.status_code == 422, query
            assert (await client.get("/studio/services/ghost/events")).status_code == 404


async def test_push_ingest_is_off_by_default_and_authenticated_per_service(
    studio_factory: Any,
) -> None:
    body = {
        "events": [
            {
                "service_id": "svc",
                "ingest_method": "push",
                "event": {
                    "task_id": "t",
                    "event_type": "x",
                    "source_kind": "status",
                    "event_id": "e1",
                },
            }
        ]
    }
    with anyio.fail_after(30):
        async with studio_factory() as studio:
            off = await studio.client.post("/studio/ingest/events", json=body)
            assert off.status_code == 403
        async with studio_factory(
            push_ingest_enabled=True, auth_enabled=True, push_ingest_max_events=3
        ) as studio:
            tokens = studio.runtime.tokens
            admin, _ = await tokens.create(name="admin", role="admin")
            own, _ = await tokens.create(name="fwd", role="ingest", service_id="svc")
            other, _ = await tokens.create(name="fwd2", role="ingest", service_id="other")
            reader, _ = await tokens.create(name="r", role="reader")
            await studio.client.post(
                "/studio/services",
                headers=studio.headers(admin),
                json={
                    "service_id": "svc",
                    "name": "s",
                    "base_url": "http://svc.example.test",
                    "environment": "prod",
                    "auth_mode": "internal_network",
                },
            )
            assert (await studio.client.post("/studio/ingest/events", json=body)).status_code == 401
            response = await studio.client.post(
                "/studio/ingest/events", json=body, headers=studio.headers(reader)
            )
            assert response.status_code == 403
            wrong = await studio.client.post(
                "/studio/ingest/events", json=body, headers=studio.headers(other)
            )
            assert wrong.json() == {"inserted": 0, "duplicate": 0, "invalid": 1}
            right = await studio.client.post(
                "/studio/ingest/events", json=body, headers=studio.headers(own)
            )
            assert right.json() == {"inserted": 1, "duplicate": 0, "invalid": 0}
            too_many = {"events": body["events"] * 4}
            assert (
                await studio.client.post(
                    "/studio/ingest/events", json=too_many, headers=studio.headers(own)
                )
            ).status_code == 413
            bad_events = {
                "events": [
                    {
                        "service_id": "svc",
                        "event": {"task_id": "a b", "event_type": "x", "source_kind": "status"},
                    },
                    {
                        "service_id": "svc",
                        "event": {"task_id": "t", "event_type": "x", "source_kind": "bogus"},
                    },
                    {"service_id": "svc", "event": "nope"},
                ]
            }
            counts = (
                await studio.client.post(
                    "/studio/ingest/events", json=bad_events, headers=studio.headers(own)
                )
            ).json()
            assert counts == {"inserted": 0, "duplicate": 0, "invalid": 3}
            for junk in ({"events": "x"}, {"events": [], "extra": 1}, []):
                response = await studio.client.post(
                    "/studio/ingest/events", json=junk, headers=studio.headers(own)
                )
                assert response.status_code == 422


@pytest.mark.parametrize("cluster_keys", [False, True], ids=["default-layout", "cluster-layout"])
async def test_live_activity_stream(studio_factory: Any, cluster_keys: bool) -> None:
    """The live stream hears an ingested event; in the cluster key layout over a
    sharded channel only (a classic subscriber of the same name hears nothing)."""
    with anyio.fail_after(30):
        async with studio_factory(
            push_ingest_enabled=True, store_cluster_keys=cluster_keys
        ) as studio:
            client = studio.client
            await client.post(
                "/studio/services",
                json={
                    "service_id": "svc",
                    "name": "s",
                    "base_url": "http://svc.example.test",
                    "environment": "prod",
                    "auth_mode": "internal_network",
                },
            )
            body = {
                "events": [
                    {
                        "service_id": "svc",
                        "event": {
                            "task_id": "t1",
                            "event_type": "x",
                            "source_kind": "status",
                            "event_id": "live-1",
                        },
                    }
                ]
            }
            received: list[str] = []
            store = studio.runtime.store
            channel = EventStore(
                store, studio.runtime.settings.event_store_prefix, cluster=cluster_keys
            ).keys.service_channel("svc")
            # httpx's ASGI transport buffers whole responses: stream through a real server
            app = studio_app(studio.runtime)
            async with (
                store.subscribe(channel) as classic,
                serving(app, graceful_timeout=0.5) as base,
                httpx.AsyncClient(base_url=base) as live,
                live.stream("GET", "/studio/services/svc/events/stream") as stream,
            ):
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                async for line in lines:
                    if line.startswith("data:"):  # the ready frame's data
                        break
                await client.post("/studio/ingest/events", json=body)
                async for line in lines:
                    received.append(line)
                    if line.startswith("data:"):
                        break
                # What reached the classic channel before this marker: the event
                # in the default layout, nothing in the cluster layout.
                await store.publish(channel, b"marker")
                first = await _next_message(classic)
                assert (first == b"marker") is cluster_keys
            assert "id: svc:status:live-1" in received
            assert "event: event" in received
            assert (await client.get("/studio/services/ghost/events/stream")).status_code == 404


async def _next_message(subscription: Any) -> bytes:
    async for message in subscription:
        if isinstance(message, PubSubMessage):
            return bytes(message.data)
    raise AssertionError("the subscription ended")


async def test_a_sharded_stream_needs_a_store_with_sharded_pubsub() -> None:
    class ClassicOnly:  # a third-party store without spublish/ssubscribe
        pass

    with pytest.raises(ConfigurationError, match="sharded"):
        ChannelStream(cast(Any, ClassicOnly()), "c", shutdown=anyio.Event(), sharded=True)
    ChannelStream(cast(Any, ClassicOnly()), "c", shutdown=anyio.Event())  # classic: fine

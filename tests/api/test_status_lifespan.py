"""relayna_lifespan: the runtime opened by the app's lifespan, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from relayna.api import RuntimeConfig, relayna_lifespan, status_routes
from relayna.topology import StatusTopologyBase

pytestmark = pytest.mark.anyio


async def test_lifespan_without_broker(serve: Callable[[Any], Any]) -> None:
    shutdown = anyio.Event()
    app = Starlette(
        routes=status_routes(keepalive=0.05),
        lifespan=relayna_lifespan(RuntimeConfig(store_url="memory://"), shutdown_event=shutdown),
    )
    with anyio.fail_after(10):
        async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/status/t1")).status_code == 404
            response = await client.get("/history", params={"task_id": "t1"})
            assert response.status_code == 400
            assert response.json() == {"detail": "no status stream is configured"}
            async with client.stream("GET", "/events/t1") as stream:
                assert stream.status_code == 200
                chunks = stream.aiter_text()
                assert "event: ready" in await chunks.__anext__()
                shutdown.set()  # the app's own shutdown trigger ends every stream
                rest = "".join([c async for c in chunks])
            assert rest == "" or ": keepalive" in rest


async def test_lifespan_with_memory_broker_runs_the_hub(
    serve: Callable[[Any], Any], unique: str
) -> None:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    config = RuntimeConfig(store_url="memory://", broker_url="memory://", topology=topology)
    shutdown = anyio.Event()
    app = Starlette(
        routes=status_routes(), lifespan=relayna_lifespan(config, shutdown_event=shutdown)
    )
    with anyio.fail_after(10):
        async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
            response = await client.get("/history", params={"max_scan": 10, "max_seconds": 0.3})
            assert response.status_code == 200
            # An empty stream: nothing delivered, so the wait ends at max_seconds
            # (never "idle": idleness only counts after a first delivery).
            assert response.json() == {
                "count": 0, "events": [], "stopped_by": "max_seconds", "scanned": 0, "skipped": 0
            }  # fmt: skip
            shutdown.set()

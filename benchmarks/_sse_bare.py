"""Servers for :mod:`benchmarks.sse`, each in its own process.

``python -m benchmarks._sse_bare KIND BACKEND PORT STORE_URL`` serves, with
hypercorn on ``BACKEND`` (asyncio or trio) at ``127.0.0.1:PORT``:

* ``bare``: Starlette + sse-starlette. ``GET /stream?n=N&rate=R`` yields N
  events from an async generator, R events/s (0: as fast as the server takes
  them). Each event's ``data`` carries ``"t"``: the server's
  ``time.perf_counter()`` (CLOCK_MONOTONIC, comparable across processes) just
  before it is handed to sse-starlette.
* ``asgi``: the same events from a plain ASGI app (no Starlette, no
  sse-starlette): one ``http.response.body`` send per event, so what is
  left is hypercorn.
* ``relayna``: ``status_routes`` over a relayna runtime on ``STORE_URL``.
  ``GET /produce/{task}?n=N&rate=R`` writes N status events for ``task``
  (the last one ``completed``) through ``runtime.status.write``, each with
  ``"t"`` taken just before its write, and answers when all are written.
* ``relayna-stock``: the same, with sse-starlette's ``EventSourceResponse``
  over ``open_status_stream`` at ``/events/{task}`` instead of relayna's own
  ASGI response (to tell relayna's stream from its response path).
* ``bare-fastpath``, ``asgi-fastpath`` (trio): the same with hypercorn's trio
  ``TCPServer.protocol_send`` patched to take its lock without a checkpoint
  when it is free and to try one non-blocking ``send`` before ``send_all``:
  the two scheduler passes per ASGI send that the upstream report is about.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson


def _event(task: str, i: int, n: int) -> dict[str, Any]:
    return {
        "task_id": task,
        "event_id": f"{task}-{i}",
        "status": "completed" if i == n - 1 else "running",
        "message": "x" * 64,
        "t": time.perf_counter(),
    }


async def _paced(n: int, rate: float) -> AsyncIterator[int]:
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = time.perf_counter()
    for i in range(n):
        yield i
        if interval:
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)


def _bare_app() -> Any:
    from sse_starlette import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    async def stream(request: Request) -> Any:
        n = int(request.query_params.get("n", "1000"))
        rate = float(request.query_params.get("rate", "0"))

        async def events() -> AsyncIterator[dict[str, Any]]:
            async for i in _paced(n, rate):
                yield {"id": str(i), "event": "status", "data": orjson.dumps(_event("b", i, n))}

        return EventSourceResponse(events(), sep="\n")

    return Starlette(routes=[Route("/stream", stream)])


def _asgi_app() -> Any:
    from urllib.parse import parse_qs

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        query = parse_qs(scope["query_string"].decode())
        n, rate = int(query["n"][0]), float(query["rate"][0])
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for i in _paced(n, rate):
            frame = b"id: %d\nevent: status\ndata: %s\n\n" % (i, orjson.dumps(_event("a", i, n)))
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def _relayna_app(runtime: Any, *, stock: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import BaseRoute, Route

    from relayna.api import status_routes

    async def produce(request: Request) -> Any:
        task = request.path_params["task"]
        n = int(request.query_params.get("n", "1000"))
        rate = float(request.query_params.get("rate", "0"))
        async for i in _paced(n, rate):
            await runtime.status.write(_event(task, i, n))
        return JSONResponse({"written": n})

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"relayna": runtime}

    routes: list[BaseRoute] = [Route("/produce/{task}", produce)]
    if stock:
        routes.append(Route("/events/{task}", _stock_endpoint(runtime)))
    else:
        # A large buffer: the throughput run writes as fast as it can.
        routes += status_routes(max_streams_per_client=None, buffer_size=1_000_000)
    return Starlette(routes=routes, lifespan=lifespan)


def _stock_endpoint(runtime: Any) -> Any:
    from sse_starlette import EventSourceResponse
    from starlette.requests import Request

    from relayna.api import encode_item
    from relayna.status import open_status_stream

    async def endpoint(request: Request) -> Any:
        task = request.path_params["task"]

        async def frames() -> AsyncIterator[bytes]:
            async with open_status_stream(
                runtime.status, task, buffer_size=1_000_000, shutdown=runtime.shutdown_event
            ) as items:
                async for item in items:
                    yield encode_item(item)

        return EventSourceResponse(frames())

    return endpoint


def _patch_hypercorn_trio_send() -> None:
    """The experiment of ``*-fastpath``: a send that does not block does not yield.

    hypercorn 0.18's ``TCPServer.protocol_send`` does ``async with send_lock``
    (a checkpoint), ``with CancelScope(shield=True)`` and ``send_all`` (another
    checkpoint) for every chunk. Here: take the lock without waiting when it
    is free, try one non-blocking ``send``, and only enter the shielded scope
    and ``send_all`` for what did not fit (plain TCP only; it is a benchmark).
    """
    import trio
    from hypercorn.events import Closed, RawData
    from hypercorn.trio.tcp_server import TCPServer

    original = TCPServer.protocol_send

    async def protocol_send(self: TCPServer, event: Any) -> None:
        if not isinstance(event, RawData) or self.send_lock.locked():
            await original(self, event)
            return
        self.send_lock.acquire_nowait()
        try:
            try:
                sent = self.stream.socket._sock.send(event.data)  # type: ignore[attr-defined]
            except BlockingIOError:
                sent = 0
            if sent < len(event.data):
                with trio.CancelScope(shield=True):
                    await self.stream.send_all(memoryview(event.data)[sent:])
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            await self.protocol.handle(Closed())
        finally:
            self.send_lock.release()

    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]


def _serve(kind: str, backend: str, port: int, store_url: str) -> None:
    from hypercorn.config import Config

    if kind.endswith("-fastpath"):
        if backend != "trio":
            raise SystemExit("-fastpath patches hypercorn's trio server only")
        _patch_hypercorn_trio_send()
        kind = kind.removesuffix("-fastpath")

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = config.errorlog = None

    async def run(app: Any) -> None:
        if backend == "trio":
            from hypercorn.trio import serve as trio_serve

            await trio_serve(app, config)
        else:
            from hypercorn.asyncio import serve as asyncio_serve

            await asyncio_serve(app, config)

    async def main() -> None:
        if kind == "bare":
            await run(_bare_app())
            return
        if kind == "asgi":
            await run(_asgi_app())
            return
        from relayna.api import RuntimeConfig, open_relayna_runtime

        async with open_relayna_runtime(RuntimeConfig(store_url=store_url)) as runtime:
            await run(_relayna_app(runtime, stock=kind == "relayna-stock"))

    anyio.run(main, backend=backend)


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])

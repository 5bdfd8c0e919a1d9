"""serve_asgi: hypercorn on the test's backend, and a shutdown that a stuck client cannot hold."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from relayna.api import (
    RelaynaRuntime,
    RuntimeConfig,
    open_relayna_runtime,
    serve_asgi,
    status_routes,
)

pytestmark = pytest.mark.anyio


def _app(runtime: RelaynaRuntime) -> Starlette:
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"relayna": runtime}

    return Starlette(routes=status_routes(buffer_size=100_000), lifespan=lifespan)


async def test_reports_the_bound_port_and_stops_on_the_trigger() -> None:
    stop = anyio.Event()
    with anyio.fail_after(20):
        async with open_relayna_runtime(RuntimeConfig(store_url="memory://")) as runtime:
            async with anyio.create_task_group() as tg:
                url = await tg.start(
                    partial(
                        serve_asgi,
                        _app(runtime),
                        host="127.0.0.1",
                        port=0,
                        shutdown_trigger=stop.wait,
                    )
                )
                assert url.startswith("http://127.0.0.1:")
                assert not url.endswith(":0")
                async with httpx.AsyncClient(base_url=url) as client:
                    response = await client.get("/status/t1")
                assert response.status_code == 404
                stop.set()  # serve_asgi returns, so the task group exits


@pytest.mark.parametrize("how", ["trigger", "cancel"])
async def test_shutdown_ends_although_a_client_stopped_reading(how: str) -> None:
    """A client that never reads blocks hypercorn's write for good (on trio it is
    shielded from cancellation); serve_asgi shuts the connection down after the
    graceful timeout (or, when cancelled, after ``force_close_after``), so the
    server stops and the client sees the connection end."""
    stop = anyio.Event()
    message = "m" * 4000
    with anyio.fail_after(60), ExitStack() as stack:
        async with open_relayna_runtime(RuntimeConfig(store_url="memory://")) as runtime:
            async with anyio.create_task_group() as tg:

                async def trigger() -> None:
                    await stop.wait()
                    runtime.request_shutdown()

                url = await tg.start(
                    partial(
                        serve_asgi,
                        _app(runtime),
                        host="127.0.0.1",
                        port=0,
                        shutdown_trigger=trigger,
                        graceful_timeout=0.5,
                        force_close_after=0.5,
                    )
                )
                host, port = url.removeprefix("http://").split(":")
                slow = stack.enter_context(socket.socket())
                slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                await anyio.to_thread.run_sync(slow.connect, (host, int(port)))
                await anyio.to_thread.run_sync(
                    slow.sendall, f"GET /events/t1 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
                )

                def read_head() -> None:  # up to the ready frame, then never again
                    head = b""
                    while b"event: ready" not in head:
                        head += slow.recv(1024)

                await anyio.to_thread.run_sync(read_head)
                # 16 MB of frames: more than any socket buffers hold, so the
                # server's write to the client blocks for good.
                for n in range(4000):
                    event = {"task_id": "t1", "event_id": f"e{n}", "message": message}
                    await runtime.status.write({**event, "status": "running"})
                if how == "trigger":
                    stop.set()
                else:
                    tg.cancel_scope.cancel()
            # serve_asgi returned while the client still holds its socket open.

        def drain() -> None:  # blocking reads until the server's FIN (or reset)
            slow.settimeout(10)  # TimeoutError: the server left the connection open
            try:
                while slow.recv(1 << 16):
                    pass
            except ConnectionResetError:
                pass

        await anyio.to_thread.run_sync(drain)


async def _endless(scope: Any, receive: Any, send: Any) -> None:
    """``/endless`` streams 64 KiB chunks for ever; anything else answers ``pong``."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] != "/endless":
        headers = [(b"content-length", b"4")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"pong"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})


def _stuck_client(host: str, port: int) -> socket.socket:
    """A client that asks for the endless stream, reads its head, then never reads again."""
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((host, port))
    slow.sendall(f"GET /endless HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    slow.settimeout(10)
    assert slow.recv(16).startswith(b"HTTP/1.1 200")
    return slow


def _ping(conn: socket.socket, host: str) -> bytes:
    conn.sendall(f"GET /ping HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    reply = b""
    while not reply.endswith(b"pong"):
        chunk = conn.recv(4096)
        assert chunk, "the connection was closed"
        reply += chunk
    return reply


def _until_closed(conn: socket.socket) -> None:
    """Blocking reads until the server's FIN or reset (TimeoutError: it never came)."""
    conn.settimeout(10)
    try:
        while conn.recv(1 << 16):
            pass
    except ConnectionResetError:
        pass


async def _cancel_with_a_stuck_client(stack: ExitStack, force_close_after: float | None) -> None:
    """Serve ``_endless``, stick a client on it, cancel; returns once the server
    stopped and the client saw its connection end."""
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            url = await tg.start(
                partial(
                    serve_asgi,
                    _endless,
                    shutdown_trigger=anyio.sleep_forever,
                    graceful_timeout=0.2,
                    force_close_after=force_close_after,
                )
            )
            host, port = url.removeprefix("http://").split(":")
            slow = stack.enter_context(
                await anyio.to_thread.run_sync(_stuck_client, host, int(port))
            )
            scope.cancel()
    assert scope.cancelled_caught
    await anyio.to_thread.run_sync(_until_closed, slow)


async def test_stopping_one_server_aborts_only_its_own_connections() -> None:
    """A server is cancelled with a client stuck on it; another server in the same
    process keeps its open keep-alive connection, which still answers afterwards.
    The abort is bounded by the graceful timeout plus force_close_after."""
    with anyio.fail_after(30), ExitStack() as stack:
        async with anyio.create_task_group() as tg:
            url = await tg.start(
                partial(serve_asgi, _endless, shutdown_trigger=anyio.sleep_forever)
            )
            host, port = url.removeprefix("http://").split(":")
            kept = stack.enter_context(socket.create_connection((host, int(port))))
            kept.settimeout(10)
            assert (await anyio.to_thread.run_sync(_ping, kept, host)).endswith(b"pong")
            await _cancel_with_a_stuck_client(stack, force_close_after=0.2)
            assert (await anyio.to_thread.run_sync(_ping, kept, host)).endswith(b"pong")
            tg.cancel_scope.cancel()


async def test_cancelling_is_bounded_even_without_force_close_after() -> None:
    """force_close_after=None waits for hypercorn after the trigger; a cancellation
    still aborts what is left once the graceful timeout has passed."""
    with anyio.fail_after(30), ExitStack() as stack:
        await _cancel_with_a_stuck_client(stack, force_close_after=None)


async def test_a_server_forgets_connections_that_ended() -> None:
    from hypercorn.config import Config

    from relayna.api._hypercorn_patch import track

    config = Config()
    connections = track(config)
    stop = anyio.Event()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            # serve_asgi builds its own Config; drive the patched serve loop directly
            # with this one, as any hypercorn server in the process would run.
            listener = socket.create_server(("127.0.0.1", 0))
            port = listener.getsockname()[1]
            listener.setblocking(False)
            config.bind = [f"fd://{listener.detach()}"]
            tg.start_soon(_hypercorn_serve, config, stop)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                response = await client.get("/ping")  # queued by the listener until served
                assert response.text == "pong"
                assert len(connections) == 1  # the client's keep-alive connection
            while len(connections):  # noqa: ASYNC110 - polling, with the deadline above
                await anyio.sleep(0.01)
            stop.set()


async def _hypercorn_serve(config: Any, stop: anyio.Event) -> None:
    import sniffio

    if sniffio.current_async_library() == "trio":
        from hypercorn.trio import serve as trio_serve

        await trio_serve(_endless, config, shutdown_trigger=stop.wait)
    else:
        from hypercorn.asyncio import serve as asyncio_serve

        await asyncio_serve(_endless, config, shutdown_trigger=stop.wait)


def test_the_patch_sits_where_hypercorns_serve_loops_look_up_their_connection_handler() -> None:
    """An upgrade of hypercorn that renames these internals fails here, loudly."""
    import hypercorn.asyncio.run
    import hypercorn.asyncio.tcp_server
    import hypercorn.trio.run
    import hypercorn.trio.tcp_server

    from relayna.api import _hypercorn_patch

    _hypercorn_patch.install()
    _hypercorn_patch.install()  # idempotent
    assert vars(hypercorn.trio.run)["TCPServer"] is _hypercorn_patch.TrackedTrioTCPServer
    assert vars(hypercorn.asyncio.run)["TCPServer"] is _hypercorn_patch.TrackedAsyncioTCPServer
    assert _hypercorn_patch.TrackedTrioTCPServer.__bases__ == (hypercorn.trio.tcp_server.TCPServer,)
    assert _hypercorn_patch.TrackedAsyncioTCPServer.__bases__ == (
        hypercorn.asyncio.tcp_server.TCPServer,
    )

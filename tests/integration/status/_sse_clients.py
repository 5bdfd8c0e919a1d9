"""EventSource-like SSE clients over httpx, and a program that runs many of them.

Each :class:`Client` follows one task's ``GET /events/{task_id}``: it records
every status id on the wire (with the time it arrived), counts ``resync``
frames per connection, and reconnects with ``Last-Event-ID`` (the last id it
received) whenever the stream ends before the terminal event, as a browser's
EventSource does. Times are ``time.monotonic()``, comparable across processes.

Run as a program (``python _sse_clients.py BASE_URL BACKEND SPEC OUT``), it
follows every task of ``SPEC`` (JSON ``[{"task_id": ..., "first_last_event_id":
...}]``) at once, prints ``ready`` when every first stream answered ``ready``,
and writes the clients as JSON to ``OUT`` when every one of them has received
its terminal event and seen its stream close. The fault test runs the clients
in their own process, as browsers would be: 200 clients parsing 4,000 events/s
cost about as much CPU as the server that sends them.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import attrs
import httpx
import orjson

__all__ = ["Client", "Connection", "follow", "http_client", "load_clients", "read_stream"]

RETRY = 0.1  # the reconnect delay (EventSource's retry)


@attrs.define
class Connection:
    last_event_id: str | None
    started: float
    status: int | None = None
    ids: int = 0  # status events received on this connection
    resyncs: int = 0
    ready: bool = False
    end: str = "eof"


@attrs.define
class Client:
    task_id: str
    first_last_event_id: str | None = None
    connections: list[Connection] = attrs.Factory(list)
    received: list[str] = attrs.Factory(list)  # every status id on the wire, in order
    times: list[float] = attrs.Factory(list)  # when each arrived
    terminal_at: float | None = None
    closed_at: float | None = None  # end of the stream that carried the terminal event
    after_terminal: int = 0  # frames after the terminal event (must be 0)
    lost_at: float | None = None  # a stream ended early and no event arrived since
    reconnect_latencies: list[tuple[float, float]] = attrs.Factory(list)  # (lost, next event)

    @property
    def reconnects(self) -> int:
        return len(self.connections) - 1

    @property
    def duplicates(self) -> int:
        return len(self.received) - len(set(self.received))


def load_clients(path: Path) -> list[Client]:
    clients = []
    for raw in orjson.loads(path.read_bytes()):
        raw["connections"] = [Connection(**c) for c in raw["connections"]]
        raw["reconnect_latencies"] = [tuple(x) for x in raw["reconnect_latencies"]]
        clients.append(Client(**raw))
    return clients


def http_client(base: str) -> httpx.AsyncClient:
    """One per SSE client, like a browser tab (httpcore's pool does work
    quadratic in its connections: one pool of 200 costs more than the server)."""
    return httpx.AsyncClient(
        base_url=base, timeout=httpx.Timeout(30.0, connect=5.0), trust_env=False
    )


def parse_frame(frame: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in frame.decode().split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
    return fields


async def follow(
    http: httpx.AsyncClient, client: Client, on_ready: Callable[[], None] = lambda: None
) -> None:
    """Follow ``client.task_id`` until its terminal event and the end of that stream."""
    while True:
        last = client.received[-1] if client.received else client.first_last_event_id
        conn = Connection(last, time.monotonic())
        client.connections.append(conn)
        headers = {"accept": "text/event-stream"}
        if last is not None:
            headers["last-event-id"] = last
        try:
            async with http.stream("GET", f"/events/{client.task_id}", headers=headers) as resp:
                conn.status = resp.status_code
                if resp.status_code == 200:
                    await read_stream(resp, client, conn, on_ready)
                else:
                    await resp.aread()
        except httpx.HTTPError as exc:
            conn.end = type(exc).__name__
        if client.terminal_at is not None:
            if client.closed_at is None:
                client.closed_at = time.monotonic()
            return
        if client.lost_at is None:
            client.lost_at = time.monotonic()
        await anyio.sleep(RETRY)


async def read_stream(
    resp: httpx.Response,
    client: Client,
    conn: Connection,
    on_ready: Callable[[], None] = lambda: None,
) -> None:
    buffer = b""
    async for chunk in resp.aiter_bytes():
        buffer += chunk
        *frames, buffer = buffer.split(b"\n\n")
        now = time.monotonic()
        for frame in frames:
            fields = parse_frame(frame)
            kind = fields.get("event")
            if kind is None:
                continue  # keep-alive comment
            if client.terminal_at is not None:
                client.after_terminal += 1
            elif kind == "status":
                event_id = fields["id"]
                data = orjson.loads(fields["data"])
                if data["event_id"] != event_id or data["task_id"] != client.task_id:
                    raise AssertionError(f"{client.task_id}: frame {frame!r}")
                conn.ids += 1
                client.received.append(event_id)
                client.times.append(now)
                if client.lost_at is not None:
                    client.reconnect_latencies.append((client.lost_at, now))
                    client.lost_at = None
                if data["status"] == "completed":
                    client.terminal_at = now
            elif kind == "resync":
                conn.resyncs += 1
            elif kind == "ready":
                if not conn.ready and len(client.connections) == 1:
                    on_ready()
                conn.ready = True
    if client.terminal_at is not None:
        client.closed_at = time.monotonic()


async def _main(base: str, clients: list[Client]) -> None:
    waiting = len(clients)

    def ready() -> None:
        nonlocal waiting
        waiting -= 1
        if waiting == 0:
            print("ready", flush=True)

    async def run(client: Client) -> None:
        async with http_client(base) as http:
            await follow(http, client, ready)

    with anyio.fail_after(80):
        async with anyio.create_task_group() as tg:
            for client in clients:
                tg.start_soon(run, client)


if __name__ == "__main__":
    # The measuring instrument must not stop for full GC passes (the process
    # lives seconds; reference counting frees almost everything).
    gc.disable()
    base_url, backend, spec, out = sys.argv[1:5]
    followers = [Client(**item) for item in orjson.loads(Path(spec).read_bytes())]
    try:
        anyio.run(_main, base_url, followers, backend=backend)
    finally:
        Path(out).write_bytes(orjson.dumps([attrs.asdict(c) for c in followers]))

"""SSE delivery on hypercorn, asyncio vs trio: bare sse-starlette and relayna.

Each server runs in its own process (:mod:`benchmarks._sse_bare`); the client
is a blocking socket in this process (no event loop, so it costs the same for
both backends), reading chunks and parsing the ``"t"`` timestamp the server
put into each event (``time.perf_counter``, CLOCK_MONOTONIC, comparable
across processes on Linux).

* ``bare``: hypercorn + Starlette + sse-starlette ``EventSourceResponse``
  over an async generator.
* ``asgi`` (``--kinds asgi,...``): the same events from a plain ASGI app,
  one ``http.response.body`` per event: hypercorn alone.
* ``relayna``: ``status_routes`` over a relayna runtime; a second request
  makes the server write the events through ``StatusStore.write``
  (``--store memory`` by default, so the store does not dominate; ``redis``
  uses ``RELAYNA_TEST_REDIS_URL``).
* ``relayna-stock`` (on by default; ``--no-stock`` leaves it out):
  ``open_status_stream`` behind sse-starlette's ``EventSourceResponse`` instead
  of relayna's response - the same store write and fan-out, so relayna vs
  relayna-stock compares the **SSE response alone** (the like-with-like row
  printed last). ``bare`` does less work (no store write, no fan-out): it is a
  floor, not a competitor.
* ``bare-fastpath``, ``asgi-fastpath`` (``--fastpath``, trio only): with
  hypercorn's trio send path patched not to yield on a send that does not
  block (see :mod:`benchmarks._sse_bare`); compared against the same kind on
  asyncio.

Per run and server: throughput (N events as fast as the server takes them,
events/s at the client, and server CPU µs per event from /proc), then
latency p50/p99 at 20 and 500 events/s (server timestamp -> frame parsed by
the client). Runs are interleaved (kind x backend inside each repetition);
the table shows min - max over the repetitions.

``python -m benchmarks sse [--reps 3] [--events 20000] [--store memory|redis]
[--kinds bare,relayna] [--no-stock] [--fastpath] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_T = re.compile(rb'"t":([0-9.eE+-]+)')
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    events: int
    seconds: float
    cpu_s: float
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if q == 0.5:
            return statistics.median(ordered) * 1000
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class Server:
    def __init__(self, kind: str, backend: str, store_url: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.kind, self.backend = kind, backend
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._sse_bare", kind, backend, str(self.port),
             store_url],
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError(f"{kind}/{backend} server did not start") from None
                time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def _request(self, path: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        return sock

    def run(self, n: int, rate: float, task: str) -> Run:
        """One stream of ``n`` events at ``rate`` events/s (0: unpaced)."""
        producer: socket.socket | None = None
        if self.kind.startswith(("bare", "asgi")):
            sse = self._request(f"/stream?n={n}&rate={rate}")
            start: Callable[[], None] | None = None
        else:
            sse = self._request(f"/events/{task}")

            def start() -> None:
                nonlocal producer
                producer = self._request(f"/produce/{task}?n={n}&rate={rate}")

        try:
            return self._read(sse, n, start)
        finally:
            sse.close()
            if producer is not None:
                producer.settimeout(30)
                while producer.recv(1 << 16).find(b'"written"') < 0:
                    pass
                producer.close()

    def _read(self, sse: socket.socket, n: int, start: Callable[[], None] | None) -> Run:
        sse.settimeout(60)
        buffer = b""
        latencies: list[float] = []
        began = cpu0 = 0.0
        if start is None:
            began, cpu0 = time.perf_counter(), _cpu(self.proc.pid)
        last = began
        while len(latencies) < n:
            chunk = sse.recv(1 << 18)
            if not chunk:
                raise RuntimeError(f"stream ended after {len(latencies)} of {n} events")
            now = time.perf_counter()
            buffer += chunk
            cut = buffer.rfind(b"\n\n")
            if cut < 0:
                continue
            frames, buffer = buffer[: cut + 2], buffer[cut + 2 :]
            if start is not None and b"event: ready" in frames:
                began, cpu0 = time.perf_counter(), _cpu(self.proc.pid)
                start()
                start = None
            for match in _T.finditer(frames):
                latencies.append(now - float(match.group(1)))
            last = now
        return Run(len(latencies), last - began, _cpu(self.proc.pid) - cpu0, latencies)


def _span(values: list[float], fmt: str = "{:.2f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if len(values) == 1 else f"{fmt.format(lo)} - {fmt.format(hi)}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks sse")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--events", type=int, default=20_000, help="throughput run size")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run at 20 ev/s")
    parser.add_argument("--store", choices=["memory", "redis"], default="memory")
    parser.add_argument("--kinds", default="bare,relayna", help="comma-separated server kinds")
    parser.add_argument(
        "--no-stock",
        dest="stock",
        action="store_false",
        help="leave out relayna-stock (relayna's stream behind sse-starlette's response)",
    )
    parser.add_argument(
        "--fastpath", action="store_true", help="also KIND-fastpath (trio) of bare and asgi"
    )
    parser.add_argument("--backends", default="asyncio,trio", help="comma-separated backends")
    args = parser.parse_args(argv)
    store_url = "memory://"
    if args.store == "redis":
        from benchmarks.status import _redis_url

        store_url = _redis_url()
    kinds = args.kinds.split(",") + ["relayna-stock"] * args.stock
    if args.fastpath:
        kinds += [f"{kind}-fastpath" for kind in kinds if kind in ("bare", "asgi")]
    backends = args.backends.split(",")
    plan = [
        (kind, backend)
        for kind in kinds
        for backend in backends
        if not kind.endswith("-fastpath") or backend == "trio"
    ]
    results: dict[tuple[str, str], dict[str, list[Run]]] = {
        key: {"tput": [], "20": [], "500": []} for key in plan
    }
    servers = {key: Server(*key, store_url) for key in plan}
    try:
        for server in servers.values():  # warm up: imports, first allocations
            server.run(200, 0, "warm")
        for rep in range(args.reps):
            for key, server in servers.items():
                tag = f"r{rep}"
                out = results[key]
                out["tput"].append(server.run(args.events, 0, f"{tag}-tput"))
                out["20"].append(server.run(int(20 * args.seconds), 20, f"{tag}-20"))
                out["500"].append(server.run(int(500 * args.seconds / 2.5), 500, f"{tag}-500"))
                print(f"  rep {rep} {key[0]:>13}/{key[1]:<7} "
                      f"{out['tput'][-1].rate:8.0f} ev/s  "
                      f"{out['tput'][-1].cpu_s / out['tput'][-1].events * 1e6:5.1f} µs/ev  "
                      f"20: {out['20'][-1].pct(0.5):5.2f}/{out['20'][-1].pct(0.99):5.2f} ms  "
                      f"500: {out['500'][-1].pct(0.5):5.2f}/{out['500'][-1].pct(0.99):5.2f} ms",
                      flush=True)  # fmt: skip
    finally:
        for server in servers.values():
            server.close()

    print(f"\nSSE delivery, hypercorn, {args.reps} runs (min - max), store {args.store}; "
          "bare = a floor (a generator only: no store write, no fan-out)")  # fmt: skip
    print(f"{'server':>22} | {'throughput ev/s':>17} | {'CPU µs/ev':>11} | "
          f"{'20 ev/s p50 / p99 ms':>25} | {'500 ev/s p50 / p99 ms':>25}")  # fmt: skip
    for (kind, backend), out in results.items():
        tput = [r.rate for r in out["tput"]]
        cpu = [r.cpu_s / r.events * 1e6 for r in out["tput"]]
        lat = {
            k: f"{_span([r.pct(0.5) for r in out[k]])} / {_span([r.pct(0.99) for r in out[k]])}"
            for k in ("20", "500")
        }
        print(f"{kind + '/' + backend:>22} | {_span(tput, '{:.0f}'):>17} | "
              f"{_span(cpu, '{:.1f}'):>11} | {lat['20']:>25} | {lat['500']:>25}")  # fmt: skip
    for kind in kinds:  # KIND-fastpath is trio only: against KIND on asyncio
        a = results.get((kind.removesuffix("-fastpath"), "asyncio"))
        t = results.get((kind, "trio"))
        if a is None or t is None:
            continue
        ratios = [tr.rate / ar.rate for ar, tr in zip(a["tput"], t["tput"], strict=True)]
        cpu = [
            (ar.cpu_s / ar.events) / (tr.cpu_s / tr.events) if tr.cpu_s else float("nan")
            for ar, tr in zip(a["tput"], t["tput"], strict=True)
        ]
        print(f"trio / asyncio {kind:>13}: throughput {_span(ratios)} x "
              f"(per run), CPU-per-event efficiency {_span(cpu)} x")  # fmt: skip
    for backend in backends:  # like with like: the same stream, two SSE responses
        ours, stock = results.get(("relayna", backend)), results.get(("relayna-stock", backend))
        if ours is None or stock is None:
            continue
        tput = [o.rate / k.rate for o, k in zip(ours["tput"], stock["tput"], strict=True)]
        cpu = [
            (k.cpu_s / k.events) / (o.cpu_s / o.events) if o.cpu_s else float("nan")
            for o, k in zip(ours["tput"], stock["tput"], strict=True)
        ]
        print(f"relayna's SSE response / sse-starlette's, same stream and store work "
              f"({backend}): throughput {_span(tput)} x, CPU-per-event efficiency "
              f"{_span(cpu)} x (per run)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Store benchmark: the atomic status-write script through the store adapters.

Each event is one EVALSHA of the production status write (WRITE_STATUS_SCRIPT:
dedupe check + LPUSH + LTRIM + PEXPIRE + SADD + PUBLISH + marker SET). Measured in the same run, with 1 and 16
concurrent writers:

* relayna's native client and its coredis adapter, on asyncio and on trio,
* raw coredis ``evalsha`` (asyncio and trio) — the reference for adapter overhead,
* raw redis-py ``evalsha`` (asyncio) — a peer reference.

Then the round trip of one write at a low rate (50 writes/s, a cold process
between writes, as on the status path): p50/p99 per client.

Uses RELAYNA_TEST_REDIS_URL if set, else starts Redis with scripts/services.py.
Targets: adapter ≤ 10% slower than raw coredis; trio within 15% of asyncio.

``--part roundtrip``: client CPU per trivial round trip (EVALSHA, GET) of the
native client against redis-py+hiredis and minimal asyncio/trio clients
(see benchmarks/_roundtrip.py); ``--part all`` runs both parts.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from benchmarks import _roundtrip as roundtrip
from benchmarks._redis import redis_url
from benchmarks._rounds import rotated
from relayna.status import WRITE_STATUS_SCRIPT as STATUS_WRITE_SCRIPT
from relayna.transport import open_store

Write = Callable[[int], Awaitable[Any]]


def _args(prefix: str, i: int) -> tuple[list[str], list[Any]]:
    keys = [f"{prefix}d:{i}", f"{prefix}h:{i % 64}", f"{prefix}c:{i % 64}"]
    return keys, [f"event-{i}", 60000, 100, f"{prefix}ch", f"child-{i % 10}"]


async def _drive(write: Write, events: int, writers: int) -> float:
    per = events // writers

    async def worker(w: int) -> None:
        for j in range(per):
            await write(w * per + j)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for w in range(writers):
            tg.start_soon(worker, w)
    return per * writers / (time.perf_counter() - start)


async def _cleanup(url: str, prefix: str) -> None:
    import coredis

    async with coredis.Redis.from_url(url) as client:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(keys[i : i + 500])


async def bench_adapter(url: str, events: int, writers: int, adapter: str = "coredis") -> float:
    prefix = f"relayna-bench:{uuid.uuid4().hex[:8]}:"
    async with open_store(url, adapter=adapter) as store:  # type: ignore[arg-type]

        async def write(i: int) -> None:
            keys, args = _args(prefix, i)
            await store.run_script(STATUS_WRITE_SCRIPT, keys, args)

        await write(-1)
        rate = await _drive(write, events, writers)
    await _cleanup(url, prefix)
    return rate


async def bench_raw_coredis(url: str, events: int, writers: int) -> float:
    import coredis
    from coredis.retry import NoRetryPolicy

    prefix = f"relayna-bench:{uuid.uuid4().hex[:8]}:"
    async with coredis.Redis.from_url(url, retry_policy=NoRetryPolicy()) as client:
        sha = await client.script_load(STATUS_WRITE_SCRIPT.lua)

        async def write(i: int) -> None:
            keys, args = _args(prefix, i)
            await client.evalsha(sha, keys=keys, args=args)

        rate = await _drive(write, events, writers)
    await _cleanup(url, prefix)
    return rate


async def bench_raw_redispy(url: str, events: int, writers: int) -> float:
    import redis.asyncio as aredis

    prefix = f"relayna-bench:{uuid.uuid4().hex[:8]}:"
    client = aredis.Redis.from_url(url, max_connections=64)
    try:
        sha = await client.script_load(STATUS_WRITE_SCRIPT.lua)
        assert sha == hashlib.sha1(STATUS_WRITE_SCRIPT.lua.encode()).hexdigest()

        async def write(i: int) -> None:
            keys, args = _args(prefix, i)
            await client.evalsha(sha, len(keys), *keys, *args)

        rate = await _drive(write, events, writers)
    finally:
        await client.aclose()
    await _cleanup(url, prefix)
    return rate


async def idle_round_trip(url: str, client: str, samples: int = 150) -> tuple[float, float]:
    """(p50, p99) ms of one status write every 20 ms through ``client``."""
    prefix = f"relayna-bench:{uuid.uuid4().hex[:8]}:"
    times: list[float] = []
    if client == "redis-py":
        import redis.asyncio as aredis

        rclient = aredis.Redis.from_url(url)
        sha = await rclient.script_load(STATUS_WRITE_SCRIPT.lua)

        async def write(i: int) -> None:
            keys, args = _args(prefix, i)
            await rclient.evalsha(sha, len(keys), *keys, *args)

        try:
            await _sample(write, samples, times)
        finally:
            await rclient.aclose()
    else:
        async with open_store(url, adapter=client) as store:  # type: ignore[arg-type]

            async def write(i: int) -> None:
                keys, args = _args(prefix, i)
                await store.run_script(STATUS_WRITE_SCRIPT, keys, args)

            await _sample(write, samples, times)
    await _cleanup(url, prefix)
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000


async def _sample(write: Write, samples: int, times: list[float]) -> None:
    await write(-1)
    for i in range(samples):
        await anyio.sleep(0.02)
        start = time.perf_counter()
        await write(i)
        times.append(time.perf_counter() - start)


Case = tuple[str, Callable[..., Awaitable[float]], str, tuple[Any, ...]]


def _interleaved(cases: list[Case], rounds: int) -> dict[str, list[float]]:
    """Every case once per round, the order rotating between rounds, so drift
    on a shared machine hits all cases alike."""
    samples: dict[str, list[float]] = {name: [] for name, _, _, _ in cases}
    for r in range(rounds):
        for name, fn, backend, args in rotated(cases, r):
            samples[name].append(anyio.run(fn, *args, backend=backend))
    return samples


def run(url: str, events: int, repeat: int) -> None:
    print(
        f"store benchmark: {events} status writes per run, median (range) over {repeat}"
        f" interleaved rounds, {url}"
    )
    header = f"{'writers':>7}  {'case':<26} {'events/s':>9} {'range':>15}  {'ratio':<40}"
    print(header)
    print("-" * len(header))
    for writers in (1, 16):
        common = (url, events, writers)
        cases: list[Case] = [
            ("raw coredis asyncio", bench_raw_coredis, "asyncio", common),
            ("raw coredis trio", bench_raw_coredis, "trio", common),
            ("raw redis-py asyncio", bench_raw_redispy, "asyncio", common),
            ("relayna coredis asyncio", bench_adapter, "asyncio", (*common, "coredis")),
            ("relayna coredis trio", bench_adapter, "trio", (*common, "coredis")),
            ("relayna native asyncio", bench_adapter, "asyncio", (*common, "native")),
            ("relayna native trio", bench_adapter, "trio", (*common, "native")),
        ]
        samples = _interleaved(cases, repeat)
        m = {name: statistics.median(values) for name, values in samples.items()}
        raw_a, raw_t, peer = (
            m["raw coredis asyncio"],
            m["raw coredis trio"],
            m["raw redis-py asyncio"],
        )
        ratios = {
            "raw redis-py asyncio": f"{peer / raw_a:.2f}x raw coredis",
            "relayna coredis asyncio": f"{m['relayna coredis asyncio'] / raw_a:.2f}x raw coredis",
            "relayna coredis trio": (
                f"{m['relayna coredis trio'] / raw_t:.2f}x raw (trio);"
                f" {m['relayna coredis trio'] / m['relayna coredis asyncio']:.2f}x asyncio"
            ),
            "relayna native asyncio": (
                f"{m['relayna native asyncio'] / raw_a:.2f}x raw coredis;"
                f" {m['relayna native asyncio'] / peer:.2f}x redis-py"
            ),
            "relayna native trio": (
                f"{m['relayna native trio'] / raw_t:.2f}x raw (trio);"
                f" {m['relayna native trio'] / m['relayna native asyncio']:.2f}x asyncio"
            ),
        }
        for name, _, _, _ in cases:
            values = samples[name]
            spread = f"{min(values):,.0f}-{max(values):,.0f}"
            print(f"{writers:>7}  {name:<26} {m[name]:>9,.0f} {spread:>15}  {ratios.get(name, '')}")
    print("\none status write every 20 ms (the process idles between writes): round trip")
    cases = [("redis-py", "asyncio")] + [
        (c, b) for c in ("coredis", "native") for b in ("asyncio", "trio")
    ]
    for client, backend in cases:
        p50, p99 = anyio.run(idle_round_trip, url, client, backend=backend)
        print(f"  {client:<9} {backend:<8} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks store", description=__doc__)
    parser.add_argument("--events", type=int, default=4000, help="status writes per run")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--part",
        choices=("writes", "roundtrip", "all"),
        default="writes",
        help="writes: status-write throughput and idle round trip (the default);"
        " roundtrip: client CPU per trivial round trip against the floors (benchmarks/_roundtrip.py)",
    )
    parser.add_argument(
        "--roundtrips", type=int, default=20000, help="round trips per case of the roundtrip part"
    )
    args = parser.parse_args(argv)
    with redis_url() as url:
        if args.part in ("writes", "all"):
            run(url, args.events, args.repeat)
        if args.part in ("roundtrip", "all"):
            roundtrip.run(url, args.roundtrips, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DLQ store benchmark (Redis, relayna's native client unless noted).

(a) Listing 50 records, with and without filters, from 10k / 100k / 1M
    records (100 DLQ queues, 5 reasons, one task per record): p50 / p99 per
    query shape. O(page) means the times stay flat as the store grows. The
    reference in the same run is the floor of any indexed listing: one
    ZREVRANGEBYSCORE of 50 ids plus 50 pipelined HMGETs of the same fields.
(b) ``add`` rate (one atomic script per record: record + 10 indexes + TTL)
    against a raw pipelined SET + ZADD per record (one round trip each, the
    original's add shape without its list), same client, same Redis;
    1 and 16 concurrent writers, best of 3. The raw reference encodes its
    records before the clock starts; a second reference encodes them in the
    timed loop (``encode_record``, which every add pays).
(c) Queue summaries (``/dlq/queues`` counts) with 100 queues, measured at
    each size (10k records per queue at 1M).

Uses RELAYNA_TEST_REDIS_URL if set, else starts Redis with scripts/services.py.
Targets: (a) p99 < 5 ms at 1M; (b) >= 0.9x raw; (c) < 5 ms.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from benchmarks._redis import redis_url
from relayna.consumer import make_dlq_record
from relayna.dlq import Cursor, DLQQuery, DLQStore, DLQStoreConfig
from relayna.dlq._codec import LIST_FIELDS
from relayna.transport import Store, open_store

QUEUES = 100
REASONS = ("handler_error", "decode_error", "schema", "too_large", "no_handler")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(n: int) -> Any:
    return make_dlq_record(
        queue_name=f"svc{n % QUEUES}.dlq",
        source_queue_name=f"svc{n % QUEUES}",
        retry_queue_name=f"svc{n % QUEUES}.retry",
        task_id=f"task-{n}",
        correlation_id=f"corr-{n}",
        service_name=f"worker-{n % 7}",
        reason=REASONS[(n // QUEUES) % len(REASONS)],
        exception_type="ValueError",
        exception_message="the downstream service answered 503",
        retry_attempt=3,
        max_retries=3,
        headers={"relayna-retry-attempt": 3, "relayna-source-queue": f"svc{n % QUEUES}"},
        content_type="application/json",
        body=b'{"task_id": "task-%d", "payload": {"order": %d, "items": [1, 2, 3]}}' % (n, n),
        dead_lettered_at=T0 + timedelta(milliseconds=n),
    )


async def cleanup(url: str, prefix: str) -> None:
    import coredis

    async with coredis.Redis.from_url(url) as client:
        batch: list[str] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                await client.delete(batch)
                batch = []
        if batch:
            await client.delete(batch)


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99)] * 1000


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float]:
    await fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return percentiles(times)


async def fill(dlq: DLQStore, start: int, stop: int) -> None:
    batch = 500
    for i in range(start, stop, batch):
        results = await dlq.add_many([record(n) for n in range(i, min(i + batch, stop))])
        assert all(r is True for r in results), results[:3]


async def listing_rows(
    store: Store, dlq: DLQStore, size: int, runs: int
) -> list[tuple[str, float, float]]:
    rng = random.Random(size)
    mid = dlq.keys.records
    raw = store._pipeline  # type: ignore[attr-defined]  # the reference uses the raw client

    async def floor() -> None:
        ids = await store.zrangebyscore(mid, float("-inf"), float("inf"), count=50, desc=True)
        await raw([[b"HMGET", dlq.keys.record(i.decode()), *LIST_FIELDS] for i in ids])

    middle = Cursor(int((T0 + timedelta(milliseconds=size // 2)).timestamp() * 1000), "z")
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("reference: ZREVRANGE 50 + 50 HMGET", floor),
        ("newest 50, no filter", lambda: dlq.list_records(limit=50)),
        ("50 from the middle (cursor)", lambda: dlq.list_records(cursor=middle, limit=50)),
        ("queue (1%)", lambda: dlq.list_records(DLQQuery(queue_name="svc7.dlq"), limit=50)),
        (
            "queue + reason (0.2%)",
            lambda: dlq.list_records(DLQQuery(queue_name="svc7.dlq", reason="schema"), limit=50),
        ),
        (
            "one task",
            lambda: dlq.list_records(DLQQuery(task_id=f"task-{rng.randrange(size)}"), limit=50),
        ),
        (
            "failed-task view: service + error type",
            lambda: dlq.list_records(
                DLQQuery(service_name="worker-3", error_type="ValueError"), limit=50
            ),
        ),
    ]
    rows = []
    for name, fn in cases:
        p50, p99 = await timed(fn, runs)
        rows.append((name, p50, p99))
    p50, p99 = await timed(dlq.queue_counts, max(runs // 4, 20))
    rows.append((f"(c) queue summaries, {QUEUES} queues", p50, p99))
    return rows


async def bench_lists(url: str, sizes: list[int], runs: int) -> None:
    prefix = f"relayna-bench-dlq:{uuid.uuid4().hex[:8]}"
    try:
        async with open_store(url) as store:
            dlq = DLQStore(store, DLQStoreConfig(prefix=prefix))
            have = 0
            for size in sizes:
                start = time.perf_counter()
                await fill(dlq, have, size)
                rate = (size - have) / (time.perf_counter() - start)
                have = size
                print(f"\n{size:,} records (filled at {rate:,.0f} adds/s in batches of 500)")
                print(f"  {'query (limit 50)':<42} {'p50 ms':>8} {'p99 ms':>8}")
                for name, p50, p99 in await listing_rows(store, dlq, size, runs):
                    print(f"  {name:<42} {p50:8.3f} {p99:8.3f}")
    finally:
        await cleanup(url, prefix)


async def add_rate(url: str, adapter: str, writers: int, events: int, raw: str) -> float:
    """Adds per second; ``raw``: "" (DLQStore.add), "raw" (SET + ZADD of records
    encoded before the clock starts) or "raw+enc" (the same, encoding each
    record in the timed loop, as any add must)."""
    prefix = f"relayna-bench-dlq-add:{uuid.uuid4().hex[:8]}"
    records = [record(n) for n in range(events)]
    async with open_store(url, adapter=adapter) as store:  # type: ignore[arg-type]
        dlq = DLQStore(store, DLQStoreConfig(prefix=prefix, ttl_seconds=86400))
        await dlq.prepare()
        if raw:
            from relayna.dlq._codec import encode_record, score_of

            def encode(r: Any) -> tuple[str, dict[str, bytes], int]:
                fields = encode_record(r, max_body_bytes=1 << 20)[0]
                return r.dlq_id, fields, score_of(r.dead_lettered_at)

            encoded = [encode(r) for r in records] if raw == "raw" else []
            pipe = store._pipeline  # type: ignore[attr-defined]

            async def one(i: int) -> None:
                dlq_id, fields, score = encoded[i] if encoded else encode(records[i])
                value = fields["facts"] + fields.get("body", b"")
                await pipe(
                    [
                        [b"SET", f"{prefix}:r:{dlq_id}", value, "PX", 86_400_000],
                        [b"ZADD", f"{prefix}:all", score, dlq_id],
                    ]
                )
        else:

            async def one(i: int) -> None:
                await dlq.add(records[i])

        per = events // writers

        async def writer(w: int) -> None:
            for j in range(per):
                await one(w * per + j)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for w in range(writers):
                tg.start_soon(writer, w)
        rate = per * writers / (time.perf_counter() - start)
    await cleanup(url, prefix)
    return rate


def bench_adds(url: str, events: int, repeat: int) -> None:
    print(f"\n(b) add rate: {events} records per run, best of {repeat}")
    print(
        f"  {'writers':>7}  {'client':<8} {'backend':<8} {'raw SET+ZADD/s':>15} {'add/s':>9} "
        f"{'ratio':>6}  {'raw+encode/s':>12} {'ratio':>6}"
    )
    for writers in (1, 16):
        for adapter in ("native", "coredis"):
            for backend in ("asyncio", "trio"):
                raw, ours, fair = (
                    max(
                        anyio.run(add_rate, url, adapter, writers, events, mode, backend=backend)
                        for _ in range(repeat)
                    )
                    for mode in ("raw", "", "raw+enc")
                )
                print(
                    f"  {writers:>7}  {adapter:<8} {backend:<8} {raw:>15,.0f} {ours:>9,.0f} "
                    f"{ours / raw:>5.2f}x  {fair:>12,.0f} {ours / fair:>5.2f}x"
                )
    print(
        "  raw SET+ZADD: records encoded before the clock starts (the target's reference);\n"
        "  raw+encode: the same with encode_record() in the timed loop, the part of any add\n"
        "  that is not the store's (the facts JSON, the body check)"
    )


def run(url: str, sizes: list[int], runs: int, events: int, repeat: int) -> None:
    print(f"DLQ benchmark on {url}")
    print("(a) listings and (c) summaries, asyncio, native client")
    anyio.run(bench_lists, url, sizes, runs)
    bench_adds(url, events, repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks dlq", description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="record counts for (a)")
    parser.add_argument("--runs", type=int, default=300, help="timed listings per case")
    parser.add_argument("--events", type=int, default=4000, help="adds per (b) run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with redis_url() as url:
        run(url, sizes, args.runs, args.events, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())

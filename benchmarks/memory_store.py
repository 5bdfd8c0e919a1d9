"""Memory store benchmark: relayna's scripts on ``memory://``, against references in the same run.

Cases (one writer, asyncio and trio, best of ``--repeat``):

* ``status write`` — the production status write (WRITE_STATUS_SCRIPT: ten
  ``redis.call``s) on the memory store,
* ``lease acquire+release`` — two small scripts (two to three calls each),
* ``GET`` — a plain command on the same store (no script): the floor,
* ``status write on Redis`` — the same script through the native client to a
  local Redis (needs RELAYNA_TEST_REDIS_URL or starts one): what the memory
  store stands in for.

The memory store runs each script's Lua in an embedded Lua 5.1 (see
docs/store.md). To compare with a tree where it ran hand-written Python twins,
run this file with that tree's ``src`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from benchmarks._redis import redis_url
from relayna.consumer import LeaseStore
from relayna.status import WRITE_STATUS_SCRIPT
from relayna.transport import Store, open_memory_store, open_store

Op = Callable[[Store, int], Awaitable[Any]]


async def _status(store: Store, i: int) -> None:
    keys = [f"b:marker:{i}", f"b:history:{i % 64}", f"b:children:{i % 64}"]
    await store.run_script(WRITE_STATUS_SCRIPT, keys, [b"event", 60000, 50, "b:channel", "child"])


async def _lease(store: Store, i: int) -> None:
    leases, lease_id = LeaseStore(store, prefix="b:lease"), str(i % 64)
    await leases.acquire(lease_id, "owner", 60)
    await leases.release(lease_id, "owner")


async def _get(store: Store, i: int) -> None:
    await store.get(f"b:missing:{i % 64}")


async def _rate(url: str, op: Op, n: int) -> float:
    async with open_store(url) if url != "memory://" else open_memory_store() as store:
        await op(store, -1)
        start = time.perf_counter()
        for i in range(n):
            await op(store, i)
        elapsed = time.perf_counter() - start
        if url != "memory://":
            for pattern in ("marker", "history", "children", "lease"):
                await store.delete(*(f"b:{pattern}:{i}" for i in range(-1, max(n, 64))))
    return n / elapsed


def run(redis_url: str | None, n: int, repeat: int) -> None:
    print(f"memory store benchmark: {n} operations per run, best of {repeat}, one writer")
    header = f"{'case':<30} {'backend':<8} {'ops/s':>10} {'µs/op':>8}  ratio"
    print(header)
    print("-" * len(header))
    for backend in ("asyncio", "trio"):

        def best(url: str, op: Op, count: int = n, backend: str = backend) -> float:
            return max(anyio.run(_rate, url, op, count, backend=backend) for _ in range(repeat))

        get = best("memory://", _get)
        status = best("memory://", _status)
        lease = best("memory://", _lease)
        rows = [
            ("GET (plain command)", get, "1.00x"),
            ("status write", status, f"{get / status:.2f}x GET"),
            ("lease acquire+release", lease, f"{get / lease:.2f}x GET"),
        ]
        if redis_url:
            redis = best(redis_url, _status, min(n, 4000))
            rows.append(("status write on Redis", redis, f"memory is {status / redis:.2f}x faster"))
        for name, rate, ratio in rows:
            print(f"{name:<30} {backend:<8} {rate:>10,.0f} {1e6 / rate:>8.1f}  {ratio}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks memory_store", description=__doc__)
    parser.add_argument("--ops", type=int, default=20000, help="operations per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; the best counts")
    parser.add_argument(
        "--no-redis", action="store_true", help="skip the Redis reference (no server started)"
    )
    args = parser.parse_args(argv)
    if args.no_redis:
        run(None, args.ops, args.repeat)
        return 0
    with redis_url() as url:
        run(url, args.ops, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())

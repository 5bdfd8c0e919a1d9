"""relayna.pipeline throughput next to relais 0.2.1 and aiostream (same run).

``python -m benchmarks pipeline [--items N] [--repeat R]``

Scenarios, N items each (default 100 000):

* ``a``: ``Map(async no-op)``
* ``b``: ``Map(sleep 1 ms)`` at concurrency 100
* ``c``: ``Map(async no-op) | Filter(even) | Batch(100)``

relais and aiostream are asyncio-only and run only under asyncio. Each cell is
the best of ``R`` runs, in items/s. Targets: relayna/asyncio >= 5x relais on a
and c, >= 3x on b; trio >= 0.8x asyncio.

``raw`` is a reference measured in the same run on both backends: the same
scenario hand-written on plain anyio (one task per stage, memory streams of the
same capacity as relayna's links, ``send_nowait``/``receive_nowait`` fast
paths, a checkpoint every 64 items; for ``b`` a pool of 100 workers each doing
``await anyio.sleep(0.001)``). Its trio/asyncio ratio is what the backend
allows; relayna's trio gap is its own only where its ratio falls below that.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio import BrokenResourceError, EndOfStream, WouldBlock
from anyio.lowlevel import checkpoint
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from relayna.pipeline import DEFAULT_BUFFER_SIZE, Batch, Filter, Map

SCENARIOS = ("a", "b", "c")


async def _noop(x: int) -> int:
    return x


async def _sleep_1ms(x: int) -> int:
    await anyio.sleep(0.001)
    return x


def _even(x: int) -> bool:
    return x % 2 == 0


def _expected(scenario: str, n: int) -> int:
    if scenario == "c":
        return -(-((n + 1) // 2) // 100)
    return n


# -- the contenders: each returns the number of results ---------------------------


async def _relayna(scenario: str, n: int) -> int:
    if scenario == "a":
        pipeline: Any = range(n) | Map(_noop)
    elif scenario == "b":
        pipeline = range(n) | Map(_sleep_1ms, concurrency=100)
    else:
        pipeline = range(n) | Map(_noop) | Filter(_even) | Batch(100)
    return len(await pipeline.collect())


async def _relais(scenario: str, n: int) -> int:
    import relais

    if scenario == "a":
        pipeline: Any = range(n) | relais.Map(_noop)
    elif scenario == "b":
        pipeline = range(n) | relais.Map(_sleep_1ms)  # relais: 100 concurrent tasks
    else:
        pipeline = range(n) | relais.Map(_noop) | relais.Filter(_even) | relais.Batch(100)
    return len(await pipeline.collect())


async def _aiostream(scenario: str, n: int) -> int:
    from aiostream import pipe, stream

    source: Any = stream.iterate(range(n))
    if scenario == "a":
        chain = source | pipe.map(_noop, task_limit=100)
    elif scenario == "b":
        chain = source | pipe.map(_sleep_1ms, task_limit=100)
    else:
        chain = source | pipe.map(_noop, task_limit=100) | pipe.filter(_even) | pipe.chunks(100)
    return len(await stream.list(chain))


# -- raw anyio reference: the same work without relayna ---------------------------

_RawTx = MemoryObjectSendStream[Any]
_RawRx = MemoryObjectReceiveStream[Any]
_EVERY = 64


async def _raw_send(tx: _RawTx, item: Any) -> bool:
    """``send_nowait`` fast path; True when it had to wait (the budget restarts)."""
    try:
        tx.send_nowait(item)
    except WouldBlock:
        await tx.send(item)
        return True
    return False


async def _raw_feed(n: int, tx: _RawTx) -> None:
    async with tx:
        budget = _EVERY
        for i in range(n):
            if await _raw_send(tx, i):
                budget = _EVERY
            else:
                budget -= 1
                if not budget:
                    budget = _EVERY
                    await checkpoint()


async def _raw_stage(rx: _RawRx, tx: _RawTx, kind: str) -> None:
    """One task: ``map`` (await no-op), ``filter`` (even) or ``batch`` (100)."""
    async with rx, tx:
        budget = _EVERY
        batch: list[Any] = []
        while True:
            try:
                item = rx.receive_nowait()
            except WouldBlock:
                try:
                    item = await rx.receive()
                except EndOfStream:
                    break
                budget = _EVERY
            except EndOfStream:
                break
            else:
                budget -= 1
                if not budget:
                    budget = _EVERY
                    await checkpoint()
            if kind == "map":
                item = await _noop(item)
            elif kind == "filter":
                if not _even(item):
                    continue
            else:
                batch.append(item)
                if len(batch) < 100:
                    continue
                item, batch = batch, []
            await _raw_send(tx, item)
        if batch:
            await _raw_send(tx, batch)


async def _raw_sleeper(rx: _RawRx, tx: _RawTx) -> None:
    async with rx, tx:
        async for item in rx:
            await anyio.sleep(0.001)
            try:
                await _raw_send(tx, item)
            except BrokenResourceError:
                return


async def _raw(scenario: str, n: int) -> int:
    stages = ["map"] if scenario == "a" else ["map", "filter", "batch"]
    if scenario == "b":
        stages = ["sleep"]
    tx, rx = anyio.create_memory_object_stream[Any](DEFAULT_BUFFER_SIZE)
    count = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(_raw_feed, n, tx)
        for kind in stages:
            next_tx, next_rx = anyio.create_memory_object_stream[Any](DEFAULT_BUFFER_SIZE)
            if kind == "sleep":
                async with next_tx, rx:
                    for _ in range(100):
                        tg.start_soon(_raw_sleeper, rx.clone(), next_tx.clone())
            else:
                tg.start_soon(_raw_stage, rx, next_tx, kind)
            rx = next_rx
        async with rx:
            budget = _EVERY
            while True:
                try:
                    rx.receive_nowait()
                except WouldBlock:
                    try:
                        await rx.receive()
                    except EndOfStream:
                        break
                    budget = _EVERY
                except EndOfStream:
                    break
                else:
                    budget -= 1
                    if not budget:
                        budget = _EVERY
                        await checkpoint()
                count += 1
    return count


def _measure(
    fn: Callable[[str, int], Awaitable[int]], scenario: str, n: int, backend: str, repeat: int
) -> float:
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        count = anyio.run(fn, scenario, n, backend=backend)
        elapsed = time.perf_counter() - started
        if count != _expected(scenario, n):
            raise RuntimeError(f"{fn.__name__}/{scenario}: {count} results")
        best = max(best, n / elapsed)
    return best


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks pipeline")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n, repeat = args.items, args.repeat
    contenders: list[tuple[str, Callable[[str, int], Awaitable[int]], str]] = [
        ("relayna/asyncio", _relayna, "asyncio"),
        ("relayna/trio", _relayna, "trio"),
        ("raw/asyncio", _raw, "asyncio"),
        ("raw/trio", _raw, "trio"),
        ("relais/asyncio", _relais, "asyncio"),
        ("aiostream/asyncio", _aiostream, "asyncio"),
    ]
    rates: dict[tuple[str, str], float] = {}
    print(f"{n} items, best of {repeat}; items/s")
    print(f"{'scenario':<28}" + "".join(f"{name:>19}" for name, _, _ in contenders))
    labels = {
        "a": "a: Map(async no-op)",
        "b": "b: Map(sleep 1ms) c=100",
        "c": "c: Map|Filter|Batch(100)",
    }
    for scenario in SCENARIOS:
        row = f"{labels[scenario]:<28}"
        for name, fn, backend in contenders:
            rate = _measure(fn, scenario, n, backend, repeat)
            rates[scenario, name] = rate
            row += f"{rate:>19,.0f}"
        print(row, flush=True)
    print()
    print(
        f"{'ratios':<28}{'vs relais':>12}{'vs aiostream':>14}{'target':>8}"
        f"{'trio/asyncio':>14}{'raw t/a':>9}{'relayna/raw a':>15}{'relayna/raw t':>15}"
    )
    ok = True
    for scenario in SCENARIOS:
        ours = rates[scenario, "relayna/asyncio"]
        ours_trio = rates[scenario, "relayna/trio"]
        vs_relais = ours / rates[scenario, "relais/asyncio"]
        vs_aiostream = ours / rates[scenario, "aiostream/asyncio"]
        trio_ratio = ours_trio / ours
        raw_trio_ratio = rates[scenario, "raw/trio"] / rates[scenario, "raw/asyncio"]
        vs_raw_asyncio = ours / rates[scenario, "raw/asyncio"]
        vs_raw_trio = ours_trio / rates[scenario, "raw/trio"]
        target = 3.0 if scenario == "b" else 5.0
        met = vs_relais >= target and trio_ratio >= 0.8
        ok &= met
        print(
            f"{labels[scenario]:<28}{vs_relais:>11.1f}x{vs_aiostream:>13.1f}x"
            f"{'>=' + str(target) + 'x':>8}{trio_ratio:>13.2f}x{raw_trio_ratio:>8.2f}x"
            f"{vs_raw_asyncio:>14.2f}x{vs_raw_trio:>14.2f}x {'ok' if met else 'MISSED'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

"""relayna.pipeline throughput next to relais 0.2.1, aiostream and plain asyncio (same run).

``python -m benchmarks pipeline [--items N] [--rounds R]``

Scenarios, N items each (default 100 000):

* ``a``: ``Map(async no-op)`` (concurrency 1)
* ``c``: ``Map(async no-op) | Filter(even) | Batch(100)``
* ``b``: ``Map(sleep 1 ms)`` at concurrency 100
* ``s1`` / ``s10`` / ``s100``: ``Map(f)`` where ``f`` always suspends once
  (``checkpoint()``: a real trip through the event loop, no timer) at
  concurrency 1, 10 and 100 - the realistic case, where every call awaits I/O.

In ``a`` and ``c`` the coroutine never suspends, so relayna's no-task fast path
runs it inline while relais and aiostream (task_limit=100) start a task per
item; the fair references there are **aiostream with ``task_limit=1``** and a
plain **``asyncio.gather`` with a semaphore** of the scenario's concurrency. The
``s*`` rows compare like with like: every contender pays a suspension per item.

``raw`` is the same scenario hand-written on plain anyio (one task per stage,
memory streams of relayna's capacity, ``send_nowait``/``receive_nowait`` fast
paths, a checkpoint every 64 items; for ``b``/``s*`` a pool of C workers). Its
trio/asyncio ratio is what the backend allows.

relais, aiostream and gather are asyncio-only. **Rounds are interleaved**: each
round runs every (scenario, contender) cell once, the order rotating between
rounds; the table shows the median and the range over rounds, in items/s.
Targets (issue 11): relayna/asyncio >= 5x relais on a and c, >= 3x on b;
trio >= 0.8x asyncio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio import BrokenResourceError, EndOfStream, WouldBlock
from anyio.lowlevel import checkpoint
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from benchmarks._rounds import rotated
from relayna.pipeline import DEFAULT_BUFFER_SIZE, Batch, Filter, Map

#: key -> (label, concurrency)
SCENARIOS: dict[str, tuple[str, int]] = {
    "a": ("a: Map(async no-op)", 1),
    "c": ("c: Map|Filter|Batch(100)", 1),
    "b": ("b: Map(sleep 1ms) c=100", 100),
    "s1": ("s1: Map(suspends) c=1", 1),
    "s10": ("s10: Map(suspends) c=10", 10),
    "s100": ("s100: Map(suspends) c=100", 100),
}


async def _noop(x: int) -> int:
    return x


async def _sleep_1ms(x: int) -> int:
    await anyio.sleep(0.001)
    return x


async def _suspend(x: int) -> int:
    await checkpoint()
    return x


def _call(scenario: str) -> Callable[[int], Awaitable[int]]:
    if scenario == "b":
        return _sleep_1ms
    if scenario.startswith("s"):
        return _suspend
    return _noop


def _even(x: int) -> bool:
    return x % 2 == 0


def _expected(scenario: str, n: int) -> int:
    if scenario == "c":
        return -(-((n + 1) // 2) // 100)
    return n


# -- the contenders: each returns the number of results ---------------------------


async def _relayna(scenario: str, n: int) -> int:
    concurrency = SCENARIOS[scenario][1]
    if scenario == "c":
        pipeline: Any = range(n) | Map(_noop) | Filter(_even) | Batch(100)
    elif concurrency == 1:
        pipeline = range(n) | Map(_call(scenario))
    else:
        pipeline = range(n) | Map(_call(scenario), concurrency=concurrency)
    return len(await pipeline.collect())


async def _relais(scenario: str, n: int) -> int:
    import relais

    if scenario == "c":
        pipeline: Any = range(n) | relais.Map(_noop) | relais.Filter(_even) | relais.Batch(100)
    else:  # relais runs 100 concurrent tasks: compared only where that is the scenario's
        pipeline = range(n) | relais.Map(_call(scenario))
    return len(await pipeline.collect())


async def _aiostream_limit(scenario: str, n: int, task_limit: int) -> int:
    from aiostream import pipe, stream

    source: Any = stream.iterate(range(n))
    mapped = source | pipe.map(_call(scenario), task_limit=task_limit)
    if scenario == "c":
        mapped = mapped | pipe.filter(_even) | pipe.chunks(100)
    return len(await stream.list(mapped))


async def _aiostream(scenario: str, n: int) -> int:
    """aiostream at the scenario's concurrency (task_limit=100 for a and c, as before)."""
    limit = 100 if scenario in ("a", "c") else SCENARIOS[scenario][1]
    return await _aiostream_limit(scenario, n, limit)


async def _aiostream_1(scenario: str, n: int) -> int:
    return await _aiostream_limit(scenario, n, 1)


async def _gather(scenario: str, n: int) -> int:
    """The hand-written asyncio answer: one task per item, a semaphore of the
    scenario's concurrency, ``asyncio.gather``."""
    import asyncio

    call = _call(scenario)
    limit = asyncio.Semaphore(SCENARIOS[scenario][1])

    async def one(x: int) -> int:
        async with limit:
            return await call(x)

    results = await asyncio.gather(*(one(i) for i in range(n)))
    return len(results)


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


async def _raw_worker(rx: _RawRx, tx: _RawTx, call: Callable[[int], Awaitable[int]]) -> None:
    async with rx, tx:
        async for item in rx:
            item = await call(item)
            try:
                await _raw_send(tx, item)
            except BrokenResourceError:
                return


async def _raw(scenario: str, n: int) -> int:
    stages = {"a": ["map"], "c": ["map", "filter", "batch"]}.get(scenario, ["pool"])
    workers = SCENARIOS[scenario][1]
    tx, rx = anyio.create_memory_object_stream[Any](DEFAULT_BUFFER_SIZE)
    count = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(_raw_feed, n, tx)
        for kind in stages:
            next_tx, next_rx = anyio.create_memory_object_stream[Any](DEFAULT_BUFFER_SIZE)
            if kind == "pool":
                async with next_tx, rx:
                    for _ in range(workers):
                        tg.start_soon(_raw_worker, rx.clone(), next_tx.clone(), _call(scenario))
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


Contender = Callable[[str, int], Awaitable[int]]

#: name, coroutine, backend, the scenarios it runs (None: all)
CONTENDERS: list[tuple[str, Contender, str, frozenset[str] | None]] = [
    ("relayna/asyncio", _relayna, "asyncio", None),
    ("relayna/trio", _relayna, "trio", None),
    ("raw/asyncio", _raw, "asyncio", None),
    ("raw/trio", _raw, "trio", None),
    ("relais/asyncio", _relais, "asyncio", frozenset({"a", "b", "c", "s100"})),
    ("aiostream/asyncio", _aiostream, "asyncio", None),
    ("aiostream tl=1/asyncio", _aiostream_1, "asyncio", frozenset({"a", "c"})),
    ("gather+sem/asyncio", _gather, "asyncio", frozenset({"a", "b", "s1", "s10", "s100"})),
]


def _once(fn: Contender, scenario: str, n: int, backend: str) -> float:
    started = time.perf_counter()
    count = anyio.run(fn, scenario, n, backend=backend)
    elapsed = time.perf_counter() - started
    if count != _expected(scenario, n):
        raise RuntimeError(f"{fn.__name__}/{scenario}: {count} results")
    return n / elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks pipeline")
    parser.add_argument("--items", type=int, default=100_000, help="items per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated subset of a,c,b,s1,s10,s100",
    )
    args = parser.parse_args(argv)
    n, rounds = args.items, args.rounds
    chosen = [key for key in args.scenarios.split(",") if key]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    cells = [
        (scenario, name, fn, backend)
        for scenario in chosen
        for name, fn, backend, only in CONTENDERS
        if only is None or scenario in only
    ]
    samples: dict[tuple[str, str], list[float]] = {(sc, name): [] for sc, name, _, _ in cells}
    for r in range(rounds):
        for scenario, name, fn, backend in rotated(cells, (r * len(cells)) // max(rounds, 1)):
            samples[scenario, name].append(_once(fn, scenario, n, backend))
    med = {key: statistics.median(values) for key, values in samples.items()}
    print(f"{n} items per run; median (range) over {rounds} interleaved rounds; items/s")
    print(f"{'scenario':<28}{'contender':<24}{'items/s':>12}{'range':>24}{'relayna/asyncio ÷':>20}")
    for scenario in chosen:
        ours = med[scenario, "relayna/asyncio"]
        for name, _, _, only in CONTENDERS:
            if only is not None and scenario not in only:
                continue
            values = samples[scenario, name]
            spread = f"{min(values):,.0f}-{max(values):,.0f}"
            print(
                f"{SCENARIOS[scenario][0]:<28}{name:<24}{med[scenario, name]:>12,.0f}"
                f"{spread:>24}{ours / med[scenario, name]:>19.2f}x"
            )
    print()
    print(f"{'targets':<28}{'vs relais':>12}{'target':>8}{'trio/asyncio':>14}{'raw t/a':>9}")
    ok = True
    for scenario in chosen:
        ours = med[scenario, "relayna/asyncio"]
        trio_ratio = med[scenario, "relayna/trio"] / ours
        raw_ratio = med[scenario, "raw/trio"] / med[scenario, "raw/asyncio"]
        if (scenario, "relais/asyncio") in med and scenario in ("a", "b", "c"):
            vs_relais = ours / med[scenario, "relais/asyncio"]
            target = 3.0 if scenario == "b" else 5.0
            met = vs_relais >= target and trio_ratio >= 0.8
            relais_cell = f"{vs_relais:>11.1f}x{'>=' + str(target) + 'x':>8}"
        else:
            met = trio_ratio >= 0.8
            relais_cell = f"{'-':>12}{'-':>8}"
        ok &= met
        print(
            f"{SCENARIOS[scenario][0]:<28}{relais_cell}{trio_ratio:>13.2f}x{raw_ratio:>8.2f}x"
            f" {'ok' if met else 'MISSED'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

"""Structured concurrency: early exit, cancellation, limits, backpressure, scale."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from anyio.lowlevel import checkpoint

from relayna.pipeline import DEFAULT_BUFFER_SIZE, Batch, Filter, FlatMap, Map, Take

pytestmark = pytest.mark.anyio


class Counter:
    """A source that counts what it produced and whether it was closed."""

    def __init__(self) -> None:
        self.produced = 0
        self.closed = False

    def sync(self) -> Iterator[int]:
        try:
            while True:
                self.produced += 1
                yield self.produced - 1
        finally:
            self.closed = True

    async def async_(self) -> AsyncIterator[int]:
        try:
            while True:
                await checkpoint()
                self.produced += 1
                yield self.produced - 1
        finally:
            self.closed = True


async def test_infinite_sync_generator_with_take_stops_early() -> None:
    counter = Counter()
    with anyio.fail_after(5):
        result = await (counter.sync() | Map(lambda x: x * 2) | Take(3)).collect()
    assert sorted(result) == [0, 2, 4]
    pipeline = Map(lambda x: x * 2) | Take(3)
    bound = (
        DEFAULT_BUFFER_SIZE
        + sum(s.buffer_size for s in pipeline.steps)
        + pipeline.steps[0].concurrency  # type: ignore[attr-defined]
        + 2
    )
    assert 3 <= counter.produced <= bound
    assert counter.closed


async def test_async_generator_source_is_closed_on_early_exit() -> None:
    counter = Counter()
    with anyio.fail_after(5):
        async with (counter.async_() | Map(lambda x: x)).stream() as results:
            async for item in results:
                if item == 5:
                    break
    assert counter.closed
    assert counter.produced < 200


async def test_leaving_stream_with_full_buffers_never_hangs() -> None:
    counter = Counter()
    with anyio.fail_after(5):
        async with (counter.sync() | Map(lambda x: x, buffer_size=1)).stream() as results:
            await anyio.wait_all_tasks_blocked()  # every buffer full: every task waits
            assert counter.produced > 2  # items wait in the links
            assert await results.__anext__() == 0
    assert counter.closed


@pytest.mark.parametrize("concurrency", [1, 7, 50])
async def test_concurrency_limit_is_reached_and_never_exceeded(concurrency: int) -> None:
    in_flight = 0
    peak = 0

    async def work(x: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.005)
        in_flight -= 1
        return x

    with anyio.fail_after(10):
        result = await (range(200) | Map(work, concurrency=concurrency)).collect()
    assert result == list(range(200))
    assert peak == concurrency


async def test_backpressure_bound_with_a_stalled_consumer() -> None:
    counter = Counter()
    pipeline = (
        counter.sync()
        | Map(lambda x: x, concurrency=4, buffer_size=3)
        | Filter(bool, concurrency=2)
    )
    bound = pipeline.backpressure_bound
    # input link + Map link + Filter link + Map workers + Filter workers + the feeder's item
    assert bound == DEFAULT_BUFFER_SIZE + 3 + DEFAULT_BUFFER_SIZE + 4 + 2 + 1
    with anyio.fail_after(5):
        async with pipeline.stream() as results:
            await anyio.wait_all_tasks_blocked()  # the consumer stalls: all else waits
            stalled_at = counter.produced
            for _ in range(10):  # production really stopped: nothing runs any more
                await checkpoint()
            assert counter.produced == stalled_at
            await results.__anext__()
    assert stalled_at <= bound
    assert stalled_at >= DEFAULT_BUFFER_SIZE  # the links did fill
    assert Batch(5).max_in_flight == 5
    assert (range(3) | Map(lambda x: x) | Take(2, ordered=True)).backpressure_bound is None


async def test_async_source_backpressure_bound() -> None:
    counter = Counter()
    slow_pipeline = counter.async_() | Map(lambda x: x, concurrency=2)
    bound = slow_pipeline.backpressure_bound
    assert bound is not None
    with anyio.fail_after(5):
        async with slow_pipeline.stream():
            await anyio.wait_all_tasks_blocked()  # filled up to where it waits
    assert 0 < counter.produced <= bound


async def test_cancelling_the_callers_scope_cancels_everything_and_runs_finally() -> None:
    started = 0
    finished = 0
    counter = Counter()
    all_busy = anyio.Event()

    async def slow(x: int) -> int:
        nonlocal started, finished
        started += 1
        if started == 10:
            all_busy.set()
        try:
            await anyio.sleep_forever()
        finally:
            finished += 1
        return x  # pragma: no cover

    async def expand(x: int) -> AsyncIterator[int]:
        yield x
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        with anyio.CancelScope() as scope:

            async def cancel_when_all_busy() -> None:
                await all_busy.wait()
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_when_all_busy)
                await (counter.async_() | FlatMap(expand) | Map(slow, concurrency=10)).collect()
    assert scope.cancelled_caught
    assert started == finished == 10
    assert counter.closed


async def test_no_tasks_leak_after_runs() -> None:
    async def count_tasks() -> int:
        await checkpoint()
        return len(anyio.get_running_tasks())

    before = await count_tasks()
    with anyio.fail_after(5):
        await (range(1000) | Map(lambda x: x, concurrency=20) | Take(5)).collect()
        with anyio.move_on_after(0.05):
            await (Counter().sync() | Map(anyio.sleep, concurrency=30)).collect()
        async with (range(10) | Map(lambda x: x)).stream() as results:
            async for _ in results:
                break
    assert await count_tasks() == before


async def test_hundred_thousand_items() -> None:
    async def inc(x: int) -> int:
        return x + 1

    n = 100_000
    with anyio.fail_after(30):
        result = await (range(n) | Map(inc) | Filter(lambda x: x % 2) | Batch(100)).collect()
        total = 0
        async with (range(n) | Map(inc)).stream() as results:
            async for _ in results:
                total += 1
    assert sum(len(b) for b in result) == n // 2
    assert result[0][:3] == [1, 3, 5]
    assert [x for b in result for x in b] == list(range(1, n + 1, 2))
    assert total == n


async def test_concurrent_runs_of_one_pipeline_are_independent() -> None:
    async def tagged(x: int) -> int:
        await anyio.sleep(0.001 * (x % 3))
        return x

    pipeline = Map(tagged, concurrency=5) | Map(lambda x: x * 2)
    results: dict[int, list[int]] = {}

    async def run(offset: int) -> None:
        results[offset] = await pipeline.collect(range(offset, offset + 50))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for offset in range(0, 500, 50):
                tg.start_soon(run, offset)
    assert results == {o: [2 * x for x in range(o, o + 50)] for o in range(0, 500, 50)}

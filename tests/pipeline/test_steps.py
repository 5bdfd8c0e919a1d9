"""Behaviour of every step, composition and ordering (both backends)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import anyio
import pytest
from anyio.lowlevel import checkpoint
from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.pipeline import (
    AsyncIteratorStep,
    Batch,
    Distinct,
    ErrorPolicy,
    Filter,
    FlatMap,
    GroupBy,
    Index,
    Map,
    Pipeline,
    Reduce,
    Skip,
    Sort,
    Take,
)

pytestmark = pytest.mark.anyio


async def double(x: int) -> int:
    await checkpoint()
    return 2 * x


async def agen(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await checkpoint()
        yield i


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1, 2, 3], [2, 4, 6]),
        (range(4), [0, 2, 4, 6]),
        ((5,), [10]),
        ({3}, [6]),
        ({"a": 1}, ["aa"]),
        ("generator", [0, 2, 4]),
        ([], []),
    ],
)
async def test_map_accepts_every_input_kind(data: object, expected: list[object]) -> None:
    if data == "generator":
        data = (i for i in range(3))
    with anyio.fail_after(5):
        assert await (data | Map(lambda x: x * 2)).collect() == expected  # type: ignore[operator]


async def test_async_iterable_input_and_async_iterator_step() -> None:
    with anyio.fail_after(5):
        assert await (agen(4) | Map(double)).collect() == [0, 2, 4, 6]
        assert await (AsyncIteratorStep(agen(3)) | Map(double)).collect() == [0, 2, 4]
        with pytest.raises(TypeError):
            Map(double) | AsyncIteratorStep(agen(1))


async def test_map_sync_async_and_awaitable_returning_functions() -> None:
    with anyio.fail_after(5):
        assert await ([1, 2] | Map(lambda x: x + 1)).collect() == [2, 3]
        assert await ([1, 2] | Map(double)).collect() == [2, 4]
        assert await ([1, 2] | Map(lambda x: double(x))).collect() == [2, 4]


async def test_filter_sync_and_async() -> None:
    async def odd(x: int) -> bool:
        await checkpoint()
        return bool(x % 2)

    with anyio.fail_after(5):
        assert await (range(7) | Filter(lambda x: x % 2 == 0)).collect() == [0, 2, 4, 6]
        assert await (range(7) | Filter(odd)).collect() == [1, 3, 5]
        assert await ([] | Filter(odd)).collect() == []


async def test_flat_map_sync_async_and_async_generators_keep_sub_order() -> None:
    async def pair(x: int) -> list[int]:
        await anyio.sleep(random.random() / 1000)
        return [x, x]

    async def spread(x: int) -> AsyncIterator[int]:
        for i in range(x):
            await anyio.sleep(random.random() / 1000)
            yield x * 10 + i

    with anyio.fail_after(5):
        assert await (range(3) | FlatMap(lambda x: range(x))).collect() == [0, 0, 1]
        assert await (range(3) | FlatMap(pair)).collect() == [0, 0, 1, 1, 2, 2]
        assert await ([1, 2, 3] | FlatMap(spread)).collect() == [10, 20, 21, 30, 31, 32]
        assert await ([4] | FlatMap(lambda x: [])).collect() == []


async def test_flat_map_indices_are_nested() -> None:
    with anyio.fail_after(5):
        async with ([7, 8] | FlatMap(lambda x: [x, x])).open() as session:
            pairs = sorted([pair async for pair in session.indexed()], key=lambda p: p[0])
    assert [idx for idx, _ in pairs] == [
        Index(0, Index(0)),
        Index(0, Index(1)),
        Index(1, Index(0)),
        Index(1, Index(1)),
    ]
    assert Index(1) < Index(1, Index(0)) < Index(2)
    assert Index(2).with_sub_index(3).to_key() == (2, 3)


@pytest.mark.parametrize("ordered", [False, True])
async def test_take_and_skip(ordered: bool) -> None:
    with anyio.fail_after(5):
        taken = await (range(10) | Take(3, ordered=ordered)).collect()
        skipped = await (range(10) | Skip(7, ordered=ordered)).collect()
        assert await ([] | Take(2, ordered=ordered)).collect() == []
        assert await (range(3) | Take(0, ordered=ordered)).collect() == []
        assert await ([1] | Skip(5, ordered=ordered)).collect() == []
    assert taken == [0, 1, 2]
    assert skipped == [7, 8, 9]


async def test_ordered_take_picks_lowest_indices_under_uneven_delays() -> None:
    async def slow_first(x: int) -> int:
        await anyio.sleep(0.02 if x < 3 else 0)
        return x

    with anyio.fail_after(5):
        ordered = await (range(10) | Map(slow_first) | Take(3, ordered=True)).collect()
        unordered = await (range(10) | Map(slow_first) | Take(3)).collect()
    assert ordered == [0, 1, 2]
    assert all(x >= 3 for x in unordered)
    assert len(unordered) == 3


async def test_sort_is_stable_and_supports_reverse_and_async_keys() -> None:
    words = ["bb", "a", "cc", "d", "eee"]

    async def length(w: str) -> int:
        await checkpoint()
        return len(w)

    with anyio.fail_after(5):
        assert await (words | Sort(len)).collect() == ["a", "d", "bb", "cc", "eee"]
        assert await (words | Sort(length, reverse=True)).collect() == [
            "eee",
            "bb",
            "cc",
            "a",
            "d",
        ]
        assert await ([3, 1, 2] | Sort()).collect() == [1, 2, 3]
        assert await ([] | Sort()).collect() == []
        assert await ([1] | Sort() | Map(lambda x: x + 1)).collect() == [2]


async def test_distinct_keeps_first_occurrence_including_unhashables() -> None:
    rows = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 1, "v": "c"}]
    with anyio.fail_after(5):
        assert await ([3, 1, 3, 2, 1] | Distinct()).collect() == [3, 1, 2]
        assert await (rows | Distinct(lambda r: r["id"])).collect() == rows[:2]
        assert await ([[1], [2], [1]] | Distinct()).collect() == [[1], [2]]
        assert await ([] | Distinct()).collect() == []
        with pytest.warns(RuntimeWarning, match="unhashable"):
            result = await ([[i] for i in range(5)] | Distinct(max_unhashable_items=2)).collect()
    assert result == [[i] for i in range(5)]


async def test_batch_sizes_and_streaming_timeout() -> None:
    with anyio.fail_after(5):
        assert await (range(7) | Batch(3)).collect() == [[0, 1, 2], [3, 4, 5], [6]]
        assert await ([] | Batch(3)).collect() == []
        assert await ([1] | Batch(3)).collect() == [[1]]

    released = anyio.Event()

    async def trickle() -> AsyncIterator[int]:
        yield 1
        yield 2
        await released.wait()  # until the first batch came out
        yield 3

    with anyio.fail_after(5):
        seen: list[list[int]] = []
        async with (trickle() | Batch(10, timeout=0.05)).stream() as batches:
            async for batch in batches:
                seen.append(batch)
                released.set()
    # The first batch could only be emitted by the timeout: the source was waiting.
    assert seen == [[1, 2], [3]]


@settings(max_examples=40, deadline=None)
@given(
    order=st.lists(st.integers(0, 19), min_size=1, max_size=20, unique=True).flatmap(
        lambda items: st.permutations(items)
    ),
    size=st.integers(1, 6),
)
async def test_batches_come_in_emission_order_whatever_order_items_complete(
    order: list[int], size: int
) -> None:
    """A concurrent Map finishes items in any order; Batch still gives full
    batches first and the partial one last, each batch sorted, nothing lost.
    The completion order is the drawn permutation: each item waits for its
    turn, released one at a time (no timing involved)."""
    items = sorted(order)
    turn = {item: anyio.Event() for item in items}
    started = {item: anyio.Event() for item in items}

    async def finish_in_order() -> None:
        for item in order:
            await started[item].wait()
            turn[item].set()
            for _ in range(3):  # let it reach the batcher before the next one
                await checkpoint()

    async def slow(x: int) -> int:
        started[x].set()
        await turn[x].wait()
        return x

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(finish_in_order)
            batches = await (items | Map(slow, concurrency=len(items)) | Batch(size)).collect()
    full, rest = divmod(len(items), size)
    assert [len(b) for b in batches] == [size] * full + ([rest] if rest else [])
    assert all(b == sorted(b) for b in batches)
    assert sorted(x for b in batches for x in b) == items


async def test_a_batch_is_indexed_by_its_emission() -> None:
    with anyio.fail_after(5):
        async with (range(5) | Batch(2)).stream() as session:
            pairs = [pair async for pair in session.indexed()]
    assert sorted(pairs, key=lambda p: p[0]) == [
        (Index(0), [0, 1]), (Index(1), [2, 3]), (Index(2), [4]),
    ]  # fmt: skip


async def test_reduce_and_group_by() -> None:
    async def add(acc: int, x: int) -> int:
        await checkpoint()
        return acc + x

    with anyio.fail_after(5):
        assert await (range(5) | Reduce(add, 0)).collect() == [10]
        assert await (["a", "b", "c"] | Reduce(lambda a, b: a + b)).collect() == ["abc"]
        assert await ([] | Reduce(add, 7)).collect() == [7]
        assert await ([5] | Reduce(add)).collect() == [5]
        groups = await (["bb", "a", "cc", "d"] | Map(double) | GroupBy(len)).collect()
        assert await ([] | GroupBy(len)).collect() == [{}]
    assert groups == [{4: ["bbbb", "cccc"], 2: ["aa", "dd"]}]
    assert list(groups[0]) == [4, 2]


async def test_collect_is_index_ordered_and_stream_is_completion_ordered() -> None:
    async def delayed(x: int) -> int:
        await anyio.sleep((5 - x) * 0.02)
        return x

    pipeline = Map(delayed) | Map(lambda x: x * 10)
    with anyio.fail_after(5):
        assert await pipeline.collect(range(5)) == [0, 10, 20, 30, 40]
        async with pipeline.stream(range(5)) as results:
            streamed = [r async for r in results]
    assert streamed == [40, 30, 20, 10, 0]


async def test_composition_forms_and_input_rules() -> None:
    step1, step2 = Map(lambda x: x + 1), Map(lambda x: x * 2)
    chained = step1 | step2
    with anyio.fail_after(5):
        assert await chained.collect([1]) == [4]
        assert await ([1] | chained).collect() == [4]
        assert await (Pipeline([step1]) | Pipeline([step2])).collect([1]) == [4]
        assert await Pipeline([step1]).then(step2).collect([1]) == [4]
        assert await Pipeline([step1, step2], input_data=[1]).collect() == [4]
        assert await ([1] | step1).then(step2).collect() == [4]
        with pytest.raises(ValueError, match="twice"):
            await ([1] | chained).collect([2])
        with pytest.raises(ValueError, match="No input"):
            await chained.collect()
        with pytest.raises(ValueError, match="twice"):
            [2] | ([1] | chained)  # type: ignore[operator]
    policy_pipeline = chained.with_error_policy(ErrorPolicy.COLLECT)
    assert policy_pipeline.error_policy is ErrorPolicy.COLLECT
    assert chained.error_policy is ErrorPolicy.FAIL_FAST
    with pytest.raises(AttributeError):
        chained.steps = ()  # type: ignore[misc]


async def test_callbacks_see_every_result() -> None:
    seen: list[int] = []

    async def record(x: int) -> None:
        seen.append(x)

    with anyio.fail_after(5):
        results = await (range(20) | Map(double)).collect(on_result=record)
    assert sorted(seen) == results == [2 * i for i in range(20)]


async def test_session_results_and_cancel() -> None:
    with anyio.fail_after(5):
        async with (range(100) | Map(double)).open() as session:
            first = await session.__anext__()
            rest = await session.results()
        assert sorted([first, *rest]) == [2 * i for i in range(100)]

        def endless() -> object:
            i = 0
            while True:
                yield i
                i += 1

        async with (endless() | Map(double)).open() as session:
            await session.__anext__()
            session.cancel()
            await anyio.sleep(1)  # cancelled by session.cancel(): returns at once
            pytest.fail("session.cancel() did not cancel the body")  # pragma: no cover


async def test_batch_timeout_under_steady_flow_keeps_every_item_in_order() -> None:
    # The deadline is also checked while items keep arriving without waits, so
    # an expired batch is emitted early; nothing is lost and each batch is in index order.
    batches = await (range(5000) | Map(double) | Batch(10_000, timeout=1e-9)).collect()
    assert sorted(x for b in batches for x in b) == [2 * i for i in range(5000)]
    assert all(b == sorted(b) for b in batches)
    assert len(batches) > 1

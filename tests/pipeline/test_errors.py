"""Error policies through chains and stateful steps; source failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from anyio.lowlevel import checkpoint

from relayna.errors import RelaynaError
from relayna.pipeline import (
    Batch,
    ErrorPolicy,
    Filter,
    FlatMap,
    GroupBy,
    Index,
    Map,
    PipelineError,
    Reduce,
    Sort,
    Take,
)

pytestmark = pytest.mark.anyio


async def fail_on_3(x: int) -> int:
    await checkpoint()
    if x == 3:
        raise KeyError(x)
    return x


async def test_fail_fast_raises_one_pipeline_error_with_context() -> None:
    started: list[int] = []
    finished: list[int] = []

    async def slow(x: int) -> int:
        started.append(x)
        try:
            await anyio.sleep(10)
        finally:
            finished.append(x)
        return x  # pragma: no cover

    with anyio.fail_after(5):
        with pytest.raises(PipelineError) as info:
            await (range(10) | Map(fail_on_3) | Map(slow)).collect()
    error = info.value
    assert isinstance(error, RelaynaError)
    assert isinstance(error.original_error, KeyError)
    assert error.__cause__ is error.original_error
    assert error.step_name == "Map"
    assert error.item_index == Index(3)
    assert started  # work was in flight when the failure hit ...
    assert sorted(finished) == sorted(started)  # ... and every finally ran


async def test_fail_fast_from_stream_is_not_an_exception_group() -> None:
    seen: list[int] = []

    async def consume() -> None:
        async with (range(10) | Map(fail_on_3)).stream() as results:
            async for item in results:
                seen.append(item)

    with anyio.fail_after(5), pytest.raises(PipelineError) as info:
        await consume()
    assert info.value.item_index == Index(3)
    assert 3 not in seen


async def test_ignore_drops_failed_items_and_reports_them() -> None:
    errors: list[PipelineError] = []
    pipeline = Map(fail_on_3) | Filter(lambda x: x != 5) | Map(lambda x: x * 10)
    with anyio.fail_after(5):
        result = await pipeline.collect(range(7), ErrorPolicy.IGNORE, on_error=errors.append)
    assert result == [0, 10, 20, 40, 60]
    assert [e.item_index for e in errors] == [Index(3)]


async def test_collect_returns_errors_in_index_position_through_a_chain() -> None:
    pipeline = (range(6) | Map(fail_on_3) | Map(lambda x: 1 // (x - 1))).with_error_policy(
        ErrorPolicy.COLLECT
    )
    with anyio.fail_after(5):
        result = await pipeline.collect()
        async with pipeline.stream() as results:
            streamed = [r async for r in results]
    assert [type(r) for r in result] == [int, PipelineError, int, PipelineError, int, int]
    assert isinstance(result[1], PipelineError)
    assert isinstance(result[1].original_error, ZeroDivisionError)
    assert isinstance(result[3], PipelineError)
    assert result[3].original_error.args == (3,)
    assert len(streamed) == 6
    assert sum(isinstance(r, PipelineError) for r in streamed) == 2


async def test_errors_pass_through_stateful_and_batching_steps() -> None:
    with anyio.fail_after(5):
        sorted_ = await (range(6) | Map(fail_on_3) | Sort(lambda x: -x)).collect(
            error_policy=ErrorPolicy.IGNORE
        )
        batched = await (range(6) | Map(fail_on_3) | Batch(2)).collect(
            error_policy=ErrorPolicy.COLLECT
        )
        grouped = await (range(6) | Map(fail_on_3) | GroupBy(lambda x: x % 2)).collect(
            error_policy=ErrorPolicy.COLLECT
        )
        taken = await (range(6) | Map(fail_on_3) | Take(4, ordered=True)).collect(
            error_policy=ErrorPolicy.IGNORE
        )
    assert sorted_ == [5, 4, 2, 1, 0]
    assert sum(isinstance(b, PipelineError) for b in batched) == 1
    assert sorted(x for b in batched if isinstance(b, list) for x in b) == [0, 1, 2, 4, 5]
    assert [g for g in grouped if isinstance(g, dict)] == [{0: [0, 2, 4], 1: [1, 5]}]
    assert taken == [0, 1, 2, 4]


async def test_stateful_step_failures_follow_the_policy() -> None:
    def bad_reducer(acc: int, x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return acc + x

    with anyio.fail_after(5):
        with pytest.raises(PipelineError) as info:
            await ([] | Reduce(lambda a, b: a + b)).collect()
        assert isinstance(info.value.original_error, ValueError)
        assert info.value.step_name == "Reduce"
        assert await (range(4) | Reduce(bad_reducer, 0)).collect(
            error_policy=ErrorPolicy.IGNORE
        ) == [4]
        with pytest.raises(PipelineError) as info:
            await (range(4) | Reduce(bad_reducer, 0)).collect()
        assert info.value.item_index == Index(2)
        mixed = await ([1, "a", 2] | Sort()).collect(error_policy=ErrorPolicy.COLLECT)
        assert len(mixed) == 1
        assert isinstance(mixed[0], PipelineError)
        assert isinstance(mixed[0].original_error, TypeError)


async def test_flat_map_failure_keeps_earlier_outputs_under_collect() -> None:
    def explode(x: int) -> Iterator[int]:
        yield x
        raise RuntimeError("boom")

    with anyio.fail_after(5):
        result = await ([1, 2] | FlatMap(explode)).collect(error_policy=ErrorPolicy.COLLECT)
    assert [r if not isinstance(r, PipelineError) else "E" for r in result] == [1, "E", 2, "E"]
    assert result[1].item_index == Index(0)  # type: ignore[union-attr]


@pytest.mark.parametrize("policy", list(ErrorPolicy))
async def test_source_exceptions_are_never_lost(policy: ErrorPolicy) -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    async def abroken() -> AsyncIterator[int]:
        yield 1
        raise OSError("socket gone")

    with anyio.fail_after(5):
        for source in (broken(), abroken()):
            with pytest.raises(PipelineError) as info:
                await (source | Map(lambda x: x)).collect(error_policy=policy)
            assert isinstance(info.value.original_error, OSError)
            assert info.value.step_name == "source"
            assert info.value.item_index == Index(1)


async def test_user_exception_in_callback_propagates_unwrapped() -> None:
    def on_result(_: int) -> None:
        raise LookupError("callback")

    with anyio.fail_after(5), pytest.raises(LookupError):
        await (range(3) | Map(lambda x: x)).collect(on_result=on_result)
    with anyio.fail_after(5), pytest.raises(KeyError):
        async with (range(3) | Map(lambda x: x)).stream():
            raise KeyError("body")

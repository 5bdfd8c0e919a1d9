"""The dev fan-out's aggregation script: each child counted once, the parent
completed by exactly one call, through duplicates, any order and concurrency.
Memory store and real Redis, both backends."""

from __future__ import annotations

import random

import anyio
import pytest

from relayna.devserver._fanout import FanoutResults
from relayna.transport import open_store

pytestmark = pytest.mark.anyio


async def test_duplicates_count_once_and_only_the_last_new_child_completes(
    store_url: str, unique: str
) -> None:
    rng = random.Random(unique)
    with anyio.fail_after(20):
        async with open_store(store_url) as store:
            results = FanoutResults(store, prefix=f"t-{unique}")
            for round_ in range(5):
                parent = f"p{round_}"
                children = [f"{parent}.{n}" for n in range(1, 5)]
                deliveries = children + rng.choices(children, k=4)  # redeliveries
                rng.shuffle(deliveries)
                seen: set[str] = set()
                outcomes = []
                for child in deliveries:
                    seen.add(child)
                    done, completes = await results.record(parent, child, {"c": child}, 4)
                    assert done == len(seen)
                    outcomes.append(completes)
                first_full = next(
                    i for i in range(len(deliveries)) if set(deliveries[: i + 1]) == set(children)
                )
                assert [i for i, c in enumerate(outcomes) if c] == [first_full]
                assert await results.results(parent) == {c: {"c": c} for c in children}
                ttl = await store.ttl(results.key(parent))
                assert ttl is not None
                assert 0 < ttl <= 86_400


async def test_concurrent_children_complete_the_parent_once(store_url: str, unique: str) -> None:
    with anyio.fail_after(20):
        async with open_store(store_url) as store:
            results = FanoutResults(store, prefix=f"t-{unique}")
            completions: list[str] = []

            async def child(n: int) -> None:
                if (await results.record("p", f"p.{n}", n, 20))[1]:
                    completions.append(f"p.{n}")

            async with anyio.create_task_group() as tg:
                for n in [*range(20), *range(10)]:  # ten children twice
                    tg.start_soon(child, n)
            assert len(completions) == 1
            assert len(await results.results("p")) == 20

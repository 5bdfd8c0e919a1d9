"""Checked by mypy --strict in tests/unit/test_typing.py: documented usage type-checks."""

from __future__ import annotations

from relayna.pipeline import Batch, Filter, Map, Pipeline


async def fetch(url: str) -> dict[str, int]:
    return {url: len(url)}


def size(item: dict[str, int]) -> int:
    return sum(item.values())


async def run() -> list[list[int]]:
    pipeline: Pipeline[str, list[int]] = Map(fetch) | Map(size) | Filter(bool) | Batch(5)
    results = await (["a", "bb"] | pipeline).collect()
    return results

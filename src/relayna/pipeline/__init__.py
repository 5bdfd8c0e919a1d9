"""Bounded-stream async pipelines on anyio (the Relais design, structured).

::

    from relayna.pipeline import Map, Filter, Batch

    results = await (range(10) | Map(fetch, concurrency=20) | Filter(ok)).collect()

    async with (urls | Map(fetch)).stream() as results:
        async for page in results:
            ...

Runs under asyncio and trio. Every task of a run lives in the task group the
run's ``async with`` (or ``collect``) owns; see ``docs/pipeline.md``.
"""

from ._apply import Filter, Map
from ._base import DEFAULT_BUFFER_SIZE, DEFAULT_CONCURRENCY, AsyncIteratorStep, Pipeline, Step
from ._errors import ErrorPolicy, PipelineError
from ._index import Index
from ._session import PipelineSession
from ._stateful import Distinct, GroupBy, Reduce, Sort
from ._steps import Batch, FlatMap, Skip, Take

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_CONCURRENCY",
    "AsyncIteratorStep",
    "Batch",
    "Distinct",
    "ErrorPolicy",
    "Filter",
    "FlatMap",
    "GroupBy",
    "Index",
    "Map",
    "Pipeline",
    "PipelineError",
    "PipelineSession",
    "Reduce",
    "Skip",
    "Sort",
    "Step",
    "Take",
]

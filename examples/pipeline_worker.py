"""A worker whose handler processes its payload with ``relayna.pipeline``.

What it shows
-------------
* Inside a task handler, ``urls | Map(fetch, concurrency=4) | Batch(5)`` runs
  the items of one task with bounded concurrency (never more than 4 fetches
  at once, bounded buffers between the steps) in the handler's own task
  group: cancelling the handler (worker drain, shutdown) cancels the
  pipeline, and nothing outlives it.
* ``ErrorPolicy.COLLECT``: an item that fails does not fail the task; its
  ``PipelineError`` (with ``item_index`` and ``original_error``) arrives in the
  stream next to the results, and the handler counts it.
* ``Batch(5)`` groups results for a bulk write (here: an in-memory "sink")
  and the handler publishes one ``running`` status per written batch, with
  ``meta.progress``, then a ``summary`` status with a ``result``. The worker
  adds ``processing`` / ``completed`` around it (``LifecycleStatuses``).

Run it::

    python examples/pipeline_worker.py [--backend trio] [--broker-url amqp://...] [--store-url redis://...]
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
from _common import MEMORY, cli, follow_status, new_id, print_events

from relayna.api import RuntimeConfig, open_relayna_runtime
from relayna.consumer import LifecycleStatuses, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.pipeline import Batch, ErrorPolicy, Map, PipelineError
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology

TOPOLOGY = SharedTasksSharedStatusTopology(
    tasks_exchange="examples.pipeline.tasks",
    tasks_queue="examples.pipeline.tasks",
    tasks_routing_key="task",
    status_exchange="examples.pipeline.status",
    status_queue="examples.pipeline.status",
)


class CrawlHandler:
    """``handler(task, ctx)``: fetch every URL of ``task.payload["urls"]``.

    Keeps a little bookkeeping (``max_in_flight``, ``sink``) so the demo can
    show the concurrency bound and what was written.
    """

    def __init__(self, *, concurrency: int = 4, batch_size: int = 5, fetch_seconds: float = 0.05):
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.fetch_seconds = fetch_seconds
        self.in_flight = 0
        self.max_in_flight = 0
        self.sink: list[list[dict[str, Any]]] = []  # one entry per bulk write

    async def fetch(self, url: str) -> dict[str, Any]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.fetch_seconds)  # the HTTP request goes here
            if "broken" in url:
                raise ConnectionError(f"{url}: connection reset")
            return {"url": url, "bytes": 100 * len(url)}
        finally:
            self.in_flight -= 1

    async def __call__(self, task: TaskEnvelope, ctx: TaskContext) -> None:
        urls: list[str] = task.payload["urls"]
        pipeline = (
            urls | Map(self.fetch, concurrency=self.concurrency) | Batch(self.batch_size)
        ).with_error_policy(ErrorPolicy.COLLECT)
        fetched, failed = 0, []
        async with pipeline.stream() as results:  # completion order
            async for item in results:
                if isinstance(item, PipelineError):
                    index = item.item_index.index if item.item_index is not None else None
                    failed.append({"index": index, "error": str(item.original_error)})
                    continue
                self.sink.append(item)  # one bulk write per batch
                fetched += len(item)
                await ctx.publish_status(
                    status="running",
                    message=f"stored {fetched}/{len(urls)} pages",
                    meta={"progress": round((fetched + len(failed)) / len(urls), 3)},
                )
        await ctx.publish_status(
            status="summary",
            message=f"{fetched} fetched, {len(failed)} failed",
            result={"fetched": fetched, "failed": failed},
        )


async def main(
    *,
    broker_url: str = MEMORY,
    store_url: str = MEMORY,
    pages: int = 12,
    concurrency: int = 4,
    fetch_seconds: float = 0.05,
    time_limit: float = 30.0,
) -> dict[str, Any]:
    """One crawl task of ``pages`` URLs (one of them broken); return its statuses."""
    config = RuntimeConfig(broker_url=broker_url, store_url=store_url, topology=TOPOLOGY)
    handler = CrawlHandler(concurrency=concurrency, fetch_seconds=fetch_seconds)
    urls = [f"https://example.org/page/{i}" for i in range(pages)]
    urls[pages // 2] = "https://broken.example.org/"
    with anyio.fail_after(time_limit):
        async with open_relayna_runtime(config) as runtime:
            assert runtime.broker is not None
            consumer = TaskConsumer(
                topology=TOPOLOGY,
                broker=runtime.broker,
                handler=handler,
                statuses=LifecycleStatuses(enabled=True),
            )
            async with anyio.create_task_group() as workers:
                await workers.start(consumer.run)
                async with open_relayna_client(TOPOLOGY, runtime.broker, declare=False) as client:
                    task = await client.publish_task(
                        {"task_id": new_id("crawl"), "payload": {"urls": urls}}
                    )
                events = await follow_status(runtime.status, task.task_id)
                workers.cancel_scope.cancel()
    print_events(f"statuses of {task.task_id}:", events)
    print(f"at most {handler.max_in_flight} fetches ran at once (limit {concurrency}); "
          f"bulk writes: {[len(b) for b in handler.sink]}")  # fmt: skip
    return {
        "events": events,
        "max_in_flight": handler.max_in_flight,
        "writes": [len(b) for b in handler.sink],
    }


if __name__ == "__main__":
    sys.exit(cli(main, __doc__))

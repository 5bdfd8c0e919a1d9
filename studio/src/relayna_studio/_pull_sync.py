"""Pull sync: ingest a service's ``GET /events/feed`` into the event store.

Only services whose registry status is ``healthy`` and whose
``capabilities_v1`` document lists ``events.feed`` are synced (as in the
original). Per service and run:

1. read the stored cursor ``{p}:pull-cursor:{sid}`` (none: start from the
   oldest event the feed still retains);
2. fetch pages of 200 **after** the cursor (oldest first, relayna's feed),
   at most 25 pages per run; ingest each page and store its
   ``next_cursor`` in one script call (the cursor moves with exactly the
   events it covers: a crash loses no progress, a replay is deduplicated).
   The next page is fetched and validated while the current one is stored
   (a bounded two-stage pipeline in the run's own task group). New events
   reach the search index at the end of the run (every 25 pages), so a task
   seen on many pages of a run is rewritten once;
3. a page with ``reset: true`` means the cursor fell off the feed's retained
   window: events were trimmed before Studio could fetch them. The number
   the feed reports as ``skipped`` (1 when it does not say) is added to
   ``{p}:service:{sid}:events-skipped`` and shown in health as
   ``events_skipped`` — never silent (the original skipped them unnoticed).

A backlog larger than one run is not a gap: the next run continues from the
stored cursor.
"""

from __future__ import annotations

from typing import Any

import anyio

from relayna_studio._errors import UpstreamError
from relayna_studio._events import Prepared
from relayna_studio._federation import Federation, advertised
from relayna_studio._routes_events import count_ingest, event_store, run_event_hooks
from relayna_studio._runtime import StudioRuntime

__all__ = ["MAX_PAGES", "PAGE_SIZE", "pull_sync"]

PAGE_SIZE = 200
MAX_PAGES = 25
#: Pages whose new events are folded into the search index together (a task
#: seen on several pages is rewritten once, not once per page).
INDEX_EVERY = MAX_PAGES


async def pull_sync(runtime: StudioRuntime, service_id: str) -> int:
    """One sync run for one service; returns how many events were newly stored.

    Raises:
        UpstreamError: the feed could not be read (the run stops; progress
            made so far is kept).
    """
    record = await runtime.registry.get(service_id)
    if (
        record is None
        or record["status"] != "healthy"
        or advertised(record.get("capabilities"), "events.feed") is not True
    ):
        return 0
    events = event_store(runtime)
    keys = events.keys
    fed = Federation(runtime)
    raw = await runtime.store.get(keys.pull_cursor(service_id))
    start = raw.decode() if raw else None
    stored = 0
    # two stages: the next page is fetched and validated while the current one is
    # stored (the store round trip is I/O, so the CPU work of the next page fits in it)
    send, pages = anyio.create_memory_object_stream[tuple[Prepared, Any, Any]](1)

    async def fetch() -> None:
        cursor = start
        async with send:
            for _ in range(MAX_PAGES):
                params: dict[str, Any] = {"limit": PAGE_SIZE}
                if cursor is not None:
                    params["after"] = cursor
                body = await fed.call(
                    service_id, "events.feed", "GET", "/events/feed", params=params, record=record
                )
                items = body.get("items")
                if not isinstance(items, list):
                    raise UpstreamError(
                        "the event feed has no items list",
                        status=502,
                        code="invalid_response_shape",
                        service_id=service_id,
                    )
                nxt = body.get("next_cursor")
                await send.send((events.prepare_many(service_id, items, "pull"), body, nxt))
                if not (isinstance(nxt, str) and nxt and nxt != cursor) or len(items) < PAGE_SIZE:
                    return
                cursor = nxt

    async with anyio.create_task_group() as tg:
        tg.start_soon(fetch)
        cursor = start
        unindexed: list[dict[str, Any]] = []
        async with pages:
            async for prepared, body, nxt in pages:
                if body.get("reset") is True:
                    skipped = body.get("skipped")
                    count = skipped if type(skipped) is int and skipped > 0 else 1
                    await runtime.store.incr(keys.events_skipped(service_id), count)
                    runtime.metrics.events_skipped.inc(count)
                moved = isinstance(nxt, str) and nxt and nxt != cursor
                # the events and the cursor past them are stored in one script call
                result = await events.insert(service_id, prepared, cursor=nxt if moved else None)
                count_ingest(runtime, "pull", result)
                stored += result.inserted
                unindexed += result.stored
                if len(unindexed) >= INDEX_EVERY * PAGE_SIZE:
                    await run_event_hooks(runtime, service_id, unindexed)
                    unindexed = []
                if moved:
                    cursor = nxt
        await run_event_hooks(runtime, service_id, unindexed)
    return stored

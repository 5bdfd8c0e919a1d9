"""Keep the task index in step with the event store and the registry; startup backfill."""

from __future__ import annotations

from typing import Any

from relayna_studio._routes_events import event_store
from relayna_studio._routes_search import task_index
from relayna_studio._runtime import StudioRuntime

__all__ = ["backfill", "install_search_hooks"]


def install_search_hooks(runtime: StudioRuntime) -> None:
    """Every newly stored event updates its task document; a deleted service loses its documents."""
    index = task_index(runtime)

    async def on_events(service_id: str, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        record = await runtime.registry.get(service_id)
        if record is not None:
            await index.upsert(record, events)

    async def on_deleted(service_id: str) -> None:
        await index.remove_service(service_id)

    runtime.on_events_stored.append(on_events)
    runtime.on_service_deleted.append(on_deleted)


async def backfill(runtime: StudioRuntime) -> int:
    """Replay each service's retained events, oldest first, into an empty index."""
    index = task_index(runtime)
    events = event_store(runtime)
    written = 0
    for record in await runtime.registry.list():
        retained = await events.history_for_backfill(str(record["service_id"]))
        for i in range(0, len(retained), 500):
            written += await index.upsert(record, retained[i : i + 500])
    return written

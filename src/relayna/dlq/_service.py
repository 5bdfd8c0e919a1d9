"""``DLQService``: listings, details, replay, failed-task investigation and retry.

The replay / manual-retry protocol is described in :mod:`relayna.dlq._replay`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import anyio
import attrs

from relayna.contracts import format_datetime, is_valid_identifier
from relayna.dlq._inspect import BrokerDLQInspector, BrokerDLQMessage, record_from_broker
from relayna.dlq._query import MAX_LIMIT, Cursor, DLQQuery
from relayna.dlq._replay import Republishing
from relayna.dlq._store import DLQStore
from relayna.dlq._views import dlq_detail, dlq_summary, failed_detail, failed_summary
from relayna.errors import ConfigurationError, ContractError, NotFound
from relayna.status import StatusStore
from relayna.transport import Broker

__all__ = ["BrokerImport", "DLQService"]


@attrs.frozen(kw_only=True)
class BrokerImport:
    """What :meth:`DLQService.import_broker_messages` indexed.

    ``dlq_ids``: the record of every message read, in queue order;
    ``added``: those this import created (the others were indexed already).
    """

    queue_name: str
    dlq_ids: tuple[str, ...]
    added: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue_name": self.queue_name,
            "dlq_ids": list(self.dlq_ids),
            "added": list(self.added),
            "count": len(self.dlq_ids),
        }


class DLQService(Republishing):
    """The DLQ operations over a :class:`DLQStore` and a broker.

    Args:
        store: the records.
        broker: publishes replays and retries (with confirm) and answers the
            passive declares of ``/dlq/queues``; ``None``: read-only.
        status: adds latest status and history to details.
        inspector: reads live DLQ messages (``/broker/dlq/messages``).
        broker_queue_names: the DLQ queues the inspector may read (allowlist).
        service_id: reported as ``service_id`` in failed-task views.
        graph_path: the execution-graph link in details (``{task_id}`` is
            replaced); ``None`` leaves it out.
    """

    def __init__(
        self,
        store: DLQStore,
        broker: Broker | None = None,
        *,
        status: StatusStore | None = None,
        inspector: BrokerDLQInspector | None = None,
        broker_queue_names: Sequence[str] = (),
        service_id: str | None = None,
        graph_path: str | None = "/executions/{task_id}/graph",
    ) -> None:
        self.store = store
        self.broker = broker
        self.status = status
        self.inspector = inspector
        self.broker_queue_names = tuple(
            dict.fromkeys(n.strip() for n in broker_queue_names if n.strip())
        )
        self.service_id = service_id
        self.graph_path = graph_path

    # -- shared ------------------------------------------------------------------

    async def _statuses(self, task_id: str | None) -> tuple[Any, list[Any]]:
        if self.status is None or task_id is None or not is_valid_identifier(task_id):
            return None, []
        history = await self.status.history(task_id)
        return (history[0] if history else None), history

    def _graph_url(self, task_id: str | None) -> str | None:
        if self.graph_path is None or task_id is None:
            return None
        return self.graph_path.replace("{task_id}", task_id)

    async def _inspect(self, name: str) -> tuple[bool, int | None]:
        if self.broker is None:
            return False, None
        try:
            info = await self.broker.inspect_queue(name)
        except NotFound:
            return False, None
        return True, info.message_count

    async def _with_broker_counts(
        self, counts: Sequence[tuple[str, int, datetime | None]], *, broker_only: bool
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any] | None] = [None] * len(counts)
        limiter = anyio.CapacityLimiter(16)

        async def one(i: int, name: str, indexed: int, last: datetime | None) -> None:
            async with limiter:
                exists, depth = await self._inspect(name)
            if broker_only and indexed == 0 and not exists:
                return
            out[i] = {
                "queue_name": name,
                "indexed_count": indexed,
                "last_indexed_at": None if last is None else format_datetime(last),
                "exists": exists,
                "message_count": depth,
            }

        async with anyio.create_task_group() as tg:
            for i, (name, indexed, last) in enumerate(counts):
                tg.start_soon(one, i, name, indexed, last)
        return [item for item in out if item is not None]

    # -- DLQ messages ------------------------------------------------------------

    async def queue_summaries(self) -> list[dict[str, Any]]:
        """``/dlq/queues``: indexed queues with their live broker depth."""
        counts = await self.store.queue_counts()
        return await self._with_broker_counts(
            [(c.queue_name, c.indexed_count, c.last_indexed_at) for c in counts], broker_only=False
        )

    async def broker_queue_summaries(self) -> list[dict[str, Any]]:
        """``/broker/dlq/queues``: indexed queues plus the allowlisted ones that exist."""
        indexed = {c.queue_name: c for c in await self.store.queue_counts()}
        names = sorted(set(indexed) | set(self.broker_queue_names))
        rows = [
            (n, indexed[n].indexed_count, indexed[n].last_indexed_at)
            if n in indexed
            else (n, 0, None)
            for n in names
        ]
        return await self._with_broker_counts(rows, broker_only=True)

    async def list_messages(
        self, query: DLQQuery | None = None, *, cursor: Cursor | None = None, limit: int = 50
    ) -> dict[str, Any]:
        page = await self.store.list_records(query, cursor=cursor, limit=min(limit, MAX_LIMIT))
        return {"items": [dlq_summary(r) for r in page.records], "next_cursor": page.next_cursor}

    async def records_for_task(self, task_id: str, limit: int) -> list[dict[str, Any]]:
        """The task's records as summaries, newest first (the execution graph's
        DLQ record reader)."""
        page = await self.store.list_records(DLQQuery(task_id=task_id), limit=max(1, limit))
        return [dlq_summary(r) for r in page.records]

    async def message_detail(self, dlq_id: str) -> dict[str, Any] | None:
        record = await self.store.get(dlq_id)
        if record is None:
            return None
        latest, history = await self._statuses(record.task_id)
        return dlq_detail(
            record,
            latest_status=latest,
            status_history=history,
            execution_graph_url=self._graph_url(record.task_id),
        )

    # -- failed tasks --------------------------------------------------------------

    async def list_failed_tasks(
        self, query: DLQQuery | None = None, *, cursor: Cursor | None = None, limit: int = 50
    ) -> dict[str, Any]:
        page = await self.store.list_records(query, cursor=cursor, limit=min(limit, MAX_LIMIT))
        return {
            "items": [failed_summary(r, service_id=self.service_id) for r in page.records],
            "next_cursor": page.next_cursor,
            "errors": [f"record {dlq_id} could not be decoded" for dlq_id in page.skipped],
        }

    async def failed_task_detail(self, failure_id: str) -> dict[str, Any] | None:
        record = await self.store.get(failure_id)
        if record is None:
            return None
        latest, history = await self._statuses(record.task_id)
        return failed_detail(
            record, latest_status=latest, status_history=history, service_id=self.service_id
        )

    async def mark_investigated(
        self, failure_id: str, *, investigated_by: str | None = None, note: str | None = None
    ) -> dict[str, Any] | None:
        done = await self.store.set_investigation(
            failure_id, investigated=True, by=investigated_by or "operator", note=note
        )
        return await self.failed_task_detail(failure_id) if done else None

    async def mark_uninvestigated(self, failure_id: str) -> dict[str, Any] | None:
        done = await self.store.set_investigation(failure_id, investigated=False)
        return await self.failed_task_detail(failure_id) if done else None

    async def delete_failed_task(self, failure_id: str) -> bool:
        return await self.store.delete(failure_id)

    # -- broker ----------------------------------------------------------------

    def check_broker_queue(self, queue_name: str) -> str:
        """``queue_name`` if it is in the allowlist.

        Raises:
            ContractError: reason ``queue_not_allowed`` (the routes answer 400).
        """
        name = queue_name.strip()
        if name not in self.broker_queue_names:
            allowed = ", ".join(sorted(self.broker_queue_names)) or "none"
            raise ContractError(
                f"Unsupported broker DLQ queue '{name[:255]}'. Allowed queues: {allowed}.",
                reason="queue_not_allowed",
            )
        return name

    async def list_broker_messages(
        self, *, queue_name: str | None = None, task_id: str | None = None, limit: int = 50
    ) -> list[BrokerDLQMessage]:
        """Live messages of the allowlisted DLQ queues (all of them, or ``queue_name``)."""
        if self.inspector is None:
            raise ConfigurationError("no broker DLQ inspector is configured")
        limit = max(1, min(limit, MAX_LIMIT))
        names = (
            [self.check_broker_queue(queue_name)] if queue_name else list(self.broker_queue_names)
        )
        items: list[BrokerDLQMessage] = []
        for name in names:
            try:
                found = await self.inspector.list_messages(name, limit=limit)
            except NotFound:
                continue
            for item in found:
                if task_id is None or item.task_id == task_id:
                    items.append(item)
                    if len(items) >= limit:
                        return items
        return items

    async def import_broker_messages(self, queue_name: str, *, limit: int = 50) -> BrokerImport:
        """Index live messages of an allowlisted DLQ queue (e.g. dead-lettered by
        RabbitMQ itself, without relayna headers) so they can be replayed.

        The messages stay in the queue. Idempotent: ids come from the message
        facts, so importing twice adds nothing. Shared by ``relayna dlq
        import`` and ``POST /broker/dlq/messages/import``.

        Raises:
            ConfigurationError: no inspector is configured.
            ContractError: ``queue_name`` is outside the allowlist.
            StoreError: a record could not be written (those before it were).
        """
        if self.inspector is None:
            raise ConfigurationError("no broker DLQ inspector is configured")
        name = self.check_broker_queue(queue_name)
        messages = await self.inspector.list_messages(name, limit=max(1, min(limit, MAX_LIMIT)))
        now = self.store.now()
        records = [record_from_broker(message, now=now) for message in messages]
        added = []
        for record, outcome in zip(records, await self.store.add_many(records), strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome:
                added.append(record.dlq_id)
        return BrokerImport(
            queue_name=name,
            dlq_ids=tuple(r.dlq_id for r in records),
            added=tuple(added),
        )

"""The republish protocol of :class:`~relayna.dlq.DLQService`: replay and manual retry.

Replay and manual retry follow one protocol (theory of operation):

1. read the record (404 when missing) and decide the target queue;
2. **claim** it: one script takes the record's lock (SET NX PX) and, only if
   the record's state allows it, writes the *intent* (``state=replaying`` for
   a replay). Concurrent callers get :class:`~relayna.errors.DLQConflict`
   (``in_progress``, ``already_replayed``, ...): exactly one wins;
3. publish the original bytes **with confirm**, bounded by ``publish_timeout``;
4. **finish**: record the result (``replayed``, ``replay_count + 1``) and
   release the lock, in one script.

If the publish fails for certain (unroutable, nacked, no broker node
answered) the claim is aborted and nothing changes. If its outcome is unknown
(connection lost — ``PublishOutcomeUnknown`` from a failing-over broker —,
timeout, cancellation) — or the process dies between 3 and 4, leaving the intent
behind until the lock expires — the record shows ``unconfirmed_republish``
(kind, start time, target) on its next read and goes back to
``dead_lettered``; a plain replay or retry is then refused with
``unconfirmed_republish`` until the operator checked the task and passes
``force``. A replay is never lost silently, and never doubled silently.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import anyio
import attrs

from relayna.consumer import DLQRecord
from relayna.contracts import format_datetime
from relayna.dlq._republish import (
    UNKNOWN_SOURCE,
    check_queue_name,
    manual_retry_headers,
    override_bytes,
    replay_headers,
    republish_properties,
    task_id_of_payload,
)
from relayna.dlq._store import DLQStore
from relayna.errors import (
    AccessRefused,
    BrokerUnavailable,
    ChannelClosed,
    ConfigurationError,
    DLQConflict,
    NotFound,
    PublishNacked,
    StoreError,
    UnroutableError,
)
from relayna.transport import Broker

__all__ = ["RETRYABLE_STATUSES", "ManualRetry", "ReplayResult", "Republishing", "RetryResult"]

log = logging.getLogger("relayna.dlq")

#: Failed-task statuses that allow a manual retry (as the original).
RETRYABLE_STATUSES = frozenset({"DLQ", "retry_exhausted", "terminal_failed"})
#: Publish errors after which the message certainly did not reach a queue
#: (``BrokerUnavailable``: no broker node answered, nothing was sent).
_NOT_PUBLISHED = (
    UnroutableError,
    PublishNacked,
    NotFound,
    AccessRefused,
    ChannelClosed,
    BrokerUnavailable,
)
_MISSING = object()


@attrs.frozen
class ReplayResult:
    dlq_id: str
    target_queue_name: str
    state: str
    replayed_at: datetime
    replay_count: int
    forced: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "dlq_id": self.dlq_id,
            "target_queue_name": self.target_queue_name,
            "state": self.state,
            "replayed_at": format_datetime(self.replayed_at),
            "replay_count": self.replay_count,
            "forced": self.forced,
        }


@attrs.frozen(kw_only=True)
class ManualRetry:
    """A manual retry request (``POST /failed-tasks/{id}/retry`` body).

    ``override_payload``: any JSON value (a string is sent as its bytes and
    must itself be JSON for a JSON message). ``force``: retry again after an
    earlier manual retry or an unconfirmed republish.
    """

    target_queue: str | None = None
    override_payload: Any = _MISSING
    retried_by: str | None = None
    note: str | None = None
    force: bool = False

    @property
    def has_override(self) -> bool:
        return self.override_payload is not _MISSING


@attrs.frozen
class RetryResult:
    failure_id: str
    target_queue: str
    retry_status: str
    retried_at: datetime
    retried_by: str
    retried_task_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "failure_id": self.failure_id,
            "target_queue": self.target_queue,
            "retry_status": self.retry_status,
            "retried_at": format_datetime(self.retried_at),
            "retried_by": self.retried_by,
            "retried_task_id": self.retried_task_id,
        }


def _conflict(code: str, message: str, dlq_id: str) -> DLQConflict:
    return DLQConflict(message, code=code, dlq_id=dlq_id)


class Republishing:
    """Replay and manual retry; mixed into :class:`~relayna.dlq.DLQService`."""

    store: DLQStore
    broker: Broker | None

    def _target(self, record: DLQRecord, *, direct: bool, target_queue: str | None) -> str:
        if target_queue is not None:
            return check_queue_name(target_queue)
        if record.source_queue_name == UNKNOWN_SOURCE:
            raise _conflict(
                "source_unknown",
                "the record does not say which queue it came from: name a target queue",
                record.dlq_id,
            )
        if direct or not record.retry_queue_name:
            return record.source_queue_name
        return record.retry_queue_name

    def _publisher(self) -> Broker:
        if self.broker is None:
            raise ConfigurationError("this DLQ service has no broker to publish with")
        return self.broker

    async def _publish(
        self,
        dlq_id: str,
        token: str,
        target: str,
        body: bytes,
        record: DLQRecord,
        headers: dict[str, Any],
    ) -> None:
        """Publish with confirm; on failure give the claim up (see the module docs)."""
        broker = self._publisher()
        try:
            with anyio.fail_after(self.store.config.publish_timeout):
                await broker.publish(
                    "", target, body, republish_properties(record, headers), mandatory=True
                )
        except _NOT_PUBLISHED:
            with anyio.CancelScope(shield=True):
                await self._abort(dlq_id, token, unknown=False)
            raise
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._abort(dlq_id, token, unknown=True)
            raise

    async def _abort(self, dlq_id: str, token: str, *, unknown: bool) -> None:
        try:
            await self.store.abort(dlq_id, token, unknown=unknown)
        except (StoreError, OSError) as exc:
            # The intent stays; it is resolved as unconfirmed when the lock expires.
            log.error("DLQ %s: giving up the republish claim failed: %r", dlq_id, exc)

    async def replay(
        self,
        dlq_id: str,
        *,
        force: bool = False,
        direct: bool = False,
        target_queue: str | None = None,
    ) -> ReplayResult | None:
        """Republish the record's original bytes; None when the record is missing.

        The target is the record's retry queue (the replay waits the retry
        delay), or its source queue with ``direct`` (or when it has no retry
        queue), or ``target_queue``.

        Raises:
            DLQConflict: ``in_progress``, ``already_replayed`` (without
                ``force``), ``unconfirmed_republish`` (without ``force``),
                ``payload_unavailable``, ``source_unknown``.
            ContractError: an invalid ``target_queue``.
            BrokerError: the publish failed (the record is unchanged; for an
                unknown outcome it shows ``unconfirmed_republish``).
        """
        self._publisher()
        record = await self.store.get(dlq_id)
        if record is None:
            return None
        if not record.payload_available:
            raise _conflict(
                "payload_unavailable",
                f"the payload was not kept ({record.body_omitted}); the copy is still in "
                f"{record.queue_name}",
                dlq_id,
            )
        target = self._target(record, direct=direct, target_queue=target_queue)
        claim = await self.store.claim(dlq_id, kind="replay", force=force, target=target)
        if claim is None:
            return None
        claimed = claim.record
        now = self.store.now()
        assert claimed.body is not None
        await self._publish(
            dlq_id, claim.token, target, claimed.body, claimed, replay_headers(claimed, now)
        )
        outcome = await self.store.finish(dlq_id, claim.token, target=target)
        if outcome != "done":
            log.error(
                "DLQ %s was replayed to %s but the record changed meanwhile (%s)",
                dlq_id,
                target,
                outcome,
            )
        updated = await self.store.get(dlq_id)
        return ReplayResult(
            dlq_id=dlq_id,
            target_queue_name=target,
            state=updated.state if updated else "replayed",
            replayed_at=(updated.replayed_at if updated and updated.replayed_at else now),
            replay_count=updated.replay_count if updated else claimed.replay_count + 1,
            forced=force,
        )

    async def retry_failed_task(
        self, failure_id: str, request: ManualRetry | None = None
    ) -> RetryResult | None:
        """Publish the task again (to its source queue unless named), once.

        Raises:
            DLQConflict: ``manual_retry_not_allowed`` (status), ``manual_retry_payload_unavailable``,
                ``in_progress``, ``already_retried`` / ``unconfirmed_republish``
                (without ``force``), ``source_unknown``.
            ContractError: an invalid target queue or override payload.
            BrokerError: the publish failed.
        """
        request = request or ManualRetry()
        self._publisher()
        record = await self.store.get(failure_id)
        if record is None:
            return None
        if record.status not in RETRYABLE_STATUSES:
            raise _conflict(
                "manual_retry_not_allowed",
                "Manual retry is only allowed after the task exceeds max attempts and reaches "
                "DLQ/retry_exhausted state.",
                failure_id,
            )
        if request.has_override:
            body = override_bytes(request.override_payload, record.content_type)
        elif record.body is None:
            raise _conflict(
                "manual_retry_payload_unavailable",
                "Manual retry is blocked because the original payload is unavailable.",
                failure_id,
            )
        else:
            body = record.body
        if request.target_queue is not None:
            target = check_queue_name(request.target_queue)
        elif record.source_queue_name == UNKNOWN_SOURCE:
            raise _conflict("source_unknown", "name a target_queue for this record", failure_id)
        else:
            target = record.source_queue_name
        claim = await self.store.claim(failure_id, kind="retry", force=request.force, target=target)
        if claim is None:
            return None
        now = self.store.now()
        await self._publish(
            failure_id,
            claim.token,
            target,
            body,
            claim.record,
            manual_retry_headers(claim.record, now),
        )
        retried_task_id = (
            task_id_of_payload(request.override_payload) if request.has_override else record.task_id
        )
        by = request.retried_by or "operator"
        await self.store.finish(
            failure_id,
            claim.token,
            target=target,
            retried_by=by,
            retried_task_id=retried_task_id,
            note=request.note,
        )
        return RetryResult(
            failure_id=failure_id,
            target_queue=target,
            retry_status="retried",
            retried_at=now,
            retried_by=by,
            retried_task_id=retried_task_id,
        )

"""``DLQStore``: indexed DLQ records on any :class:`~relayna.transport.Store`.

Every write is one atomic script (see ``_lua`` for the theory of operation and
:mod:`relayna.dlq._keys` for the key layout). Listings are O(page): they walk
the smallest matching index newest-first from the cursor and check the other
filters by membership, with a bounded scan per call.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from relayna.consumer import DLQRecord
from relayna.contracts import format_datetime, is_valid_identifier
from relayna.dlq._codec import (
    LIST_ARGS,
    decode_listed,
    decode_record,
    encode_record,
    score_of,
)
from relayna.dlq._keys import INDEXED_FIELDS, DLQKeys, DLQStoreConfig
from relayna.dlq._query import INVESTIGATION_STATES, Cursor, DLQQuery
from relayna.dlq._scripts import (
    ABORT_SCRIPT,
    ADD_SCRIPT,
    ALL_SCRIPTS,
    CLAIM_SCRIPT,
    DELETE_SCRIPT,
    FINISH_SCRIPT,
    GET_SCRIPT,
    INVESTIGATE_SCRIPT,
    LIST_SCRIPT,
    SUMMARY_SCRIPT,
)
from relayna.errors import ContractError, DLQConflict, StoreError
from relayna.transport import Script, Store, Value, run_script_calls

__all__ = ["Claim", "DLQPage", "DLQStore", "QueueCount"]

log = logging.getLogger("relayna.dlq")

#: Index entries one listing script call looks at before it hands back a cursor.
SCAN_BUDGET = 2000
#: Script calls one listing makes at most to fill a page.
MAX_ROUNDS = 10
#: Index key names a store remembers before it starts over.
_INDEX_KEY_CACHE = 4096
#: The immutable indexed fields after the DLQ queue (the add script's KEYS[5...]).
_OTHER_INDEXED = tuple((a, f) for a, f in INDEXED_FIELDS.items() if f != "queue")

_CONFLICTS = {
    "in_progress": "a replay or manual retry of this record is in progress",
    "already_replayed": "the record was already replayed; use force=true to replay it again",
    "already_retried": "the task was already retried manually; use force to retry it again",
    "unconfirmed_republish": (
        "an earlier replay or manual retry of this record did not confirm (the process "
        "stopped or the connection was lost mid-publish): the message may be in flight; "
        "check the task's status, then use force to publish it again"
    ),
}


@attrs.frozen
class DLQPage:
    """One page of a listing. ``skipped`` are ids whose stored record did not decode."""

    records: list[DLQRecord]
    next_cursor: str | None
    skipped: list[str] = attrs.field(factory=list)


@attrs.frozen
class QueueCount:
    queue_name: str
    indexed_count: int
    last_indexed_at: datetime | None


@attrs.frozen
class Claim:
    """A held replay / manual-retry lock and the record as it was claimed."""

    token: str
    record: DLQRecord


def _fields(flat: Sequence[Any]) -> dict[str, bytes]:
    return {
        (flat[i].decode() if isinstance(flat[i], bytes) else str(flat[i])): flat[i + 1]
        for i in range(0, len(flat), 2)
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class DLQStore:
    """DLQ records with indexes, on a memory or Redis store.

    It is the consumers' :class:`~relayna.consumer.DLQRecorder` (``add``) and
    the storage of :class:`~relayna.dlq.DLQService`. ``clock`` (epoch seconds)
    decides what has expired; tests pass a fake one.
    """

    def __init__(
        self,
        store: Store,
        config: DLQStoreConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config or DLQStoreConfig()
        self.keys = DLQKeys.of(self.config)
        self._clock = clock
        self._ttl_ms = (
            0 if self.config.ttl_seconds is None else round(self.config.ttl_seconds * 1000)
        )
        self._lock_ms = round(self.config.lock_seconds * 1000)
        self._base = self.keys.base
        self._index_keys: dict[tuple[str, str], str] = {}
        self.bad_records = 0

    # -- plumbing ----------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _context(self) -> list[Value]:
        cutoff = round(self._clock() * 1000) - self._ttl_ms if self._ttl_ms else 0
        return [self._base, self._ttl_ms, cutoff]

    def _index(self, field: str, value: str) -> str:
        """``keys.index(field, value)``, remembered (values repeat: queues, reasons...)."""
        key = self._index_keys.get((field, value))
        if key is None:
            if len(self._index_keys) >= _INDEX_KEY_CACHE:
                self._index_keys.clear()
            key = self._index_keys[(field, value)] = self.keys.index(field, value)
        return key

    async def _run(self, script: Script, keys: list[str], args: Sequence[Value]) -> Any:
        return await self.store.run_script(script, keys, [*self._context(), *args])

    async def prepare(self) -> None:
        """Load the scripts now (stores that cache them), so first calls are one round trip."""
        load = getattr(self.store, "load_script", None)
        if load is not None:
            for script in ALL_SCRIPTS:
                await load(script)

    @staticmethod
    def _check_id(dlq_id: str) -> None:
        if not is_valid_identifier(dlq_id):
            raise ContractError("invalid dlq_id", errors=[("dlq_id", "not an identifier")])

    def _decode(self, fields: dict[str, bytes], dlq_id: str) -> DLQRecord | None:
        try:
            return decode_record(fields, fields.get("body"))
        except ContractError as exc:
            self._bad(dlq_id, exc)
            return None

    def _decode_listed(
        self, dlq_id: bytes, facts: bytes | None, pairs: Sequence[bytes]
    ) -> DLQRecord | None:
        try:
            return decode_listed(facts, pairs)
        except ContractError as exc:
            self._bad(_text(dlq_id), exc)
            return None

    def _bad(self, dlq_id: str, exc: ContractError) -> None:
        self.bad_records += 1
        log.warning("skipping DLQ record %s: %s", dlq_id, exc)

    # -- writes --------------------------------------------------------------------

    async def add(self, record: DLQRecord) -> bool:
        """Store a new record atomically (record, indexes, TTL, retention).

        Returns:
            True if stored; False if a record with this ``dlq_id`` exists (a
            redelivered dead-letter) or the record is already past its TTL.

        Raises:
            ContractError: an invalid ``dlq_id`` or state value.
            StoreError: the store failed; nothing was written.
        """
        keys, args = self._add_call(record)
        return int(await self._run(ADD_SCRIPT, keys, args)) == 1

    async def add_many(self, records: Sequence[DLQRecord]) -> list[bool | StoreError]:
        """:meth:`add` for many records in one round trip (each atomic on its own).

        Each entry is what :meth:`add` returns for that record, or the
        :class:`StoreError` it failed with.
        """
        context = self._context()
        calls = []
        for record in records:
            keys, args = self._add_call(record)
            calls.append((keys, [*context, *args]))
        results = await run_script_calls(self.store, ADD_SCRIPT, calls)
        return [r if isinstance(r, StoreError) else int(r) == 1 for r in results]

    def _add_call(self, record: DLQRecord) -> tuple[list[str], list[Value]]:
        self._check_id(record.dlq_id)
        if record.investigation_status not in INVESTIGATION_STATES or record.state not in (
            "dead_lettered",
            "replayed",
        ):
            raise ContractError("invalid record state", errors=[("state", record.state)])
        fields, _ = encode_record(record, max_body_bytes=self.config.max_body_bytes)
        index = self._index
        keys = self.keys
        script_keys = [
            keys.record(record.dlq_id),
            keys.records,
            keys.queues,
            index("queue", record.queue_name),
        ]
        for attribute, field in _OTHER_INDEXED:
            value = getattr(record, attribute)
            if value is not None:
                script_keys.append(index(field, str(value)))
        script_keys.append(index("state", record.state))
        script_keys.append(index("investigation", record.investigation_status))
        args: list[Value] = [
            record.dlq_id,
            score_of(record.dead_lettered_at),
            record.queue_name,
            self.config.max_records or 0,
            fields["facts"],
            fields["state"],
            fields["replay_count"],
            fields["investigation_status"],
            fields["retry_status"],
        ]
        body = fields.get("body")
        if body is not None:
            args.append(body)
        return script_keys, args

    async def set_investigation(
        self,
        dlq_id: str,
        *,
        investigated: bool,
        by: str | None = None,
        note: str | None = None,
    ) -> bool:
        """Mark investigated (who, note, now) or back to unreviewed; False if missing."""
        self._check_id(dlq_id)
        at = format_datetime(self.now()) if investigated else ""
        result = await self._run(
            INVESTIGATE_SCRIPT,
            [self.keys.record(dlq_id)],
            [
                dlq_id,
                "investigated" if investigated else "unreviewed",
                at,
                (by or "") if investigated else "",
                (note or "") if investigated else "",
            ],
        )
        return _text(result) == "ok"

    async def delete(self, dlq_id: str) -> bool:
        """Delete the record and its index entries; False if missing.

        Raises:
            DLQConflict: ``in_progress`` while a replay holds the record.
        """
        self._check_id(dlq_id)
        result = _text(await self._run(DELETE_SCRIPT, [self.keys.record(dlq_id)], [dlq_id]))
        if result == "in_progress":
            raise DLQConflict(_CONFLICTS["in_progress"], code="in_progress", dlq_id=dlq_id)
        return result == "deleted"

    # -- republish protocol (see DLQService.replay) --------------------------------

    async def claim(self, dlq_id: str, *, kind: str, force: bool, target: str) -> Claim | None:
        """Take the record's lock and record the intent to republish it.

        Returns None for a missing record.

        Raises:
            DLQConflict: ``in_progress``, ``already_replayed`` / ``already_retried``
                (without ``force``), ``unconfirmed_republish`` (without ``force``).
        """
        self._check_id(dlq_id)
        token = uuid.uuid4().hex
        reply = await self._run(
            CLAIM_SCRIPT,
            [self.keys.record(dlq_id)],
            [
                dlq_id,
                token,
                kind,
                "1" if force else "0",
                format_datetime(self.now()),
                target,
                self._lock_ms,
            ],
        )
        code = _text(reply[0])
        if code == "missing":
            return None
        if code != "claimed":
            raise DLQConflict(_CONFLICTS.get(code, code), code=code, dlq_id=dlq_id)
        fields = _fields(reply[1:])
        record = decode_record(fields, fields.get("body"))
        return Claim(token=token, record=record)

    async def finish(
        self,
        dlq_id: str,
        token: str,
        *,
        target: str,
        retried_by: str | None = None,
        retried_task_id: str | None = None,
        note: str | None = None,
    ) -> str:
        """Record a confirmed republish and release the lock.

        Returns ``done``; ``lost`` when the intent was no longer this claim's
        (its lock expired and another claim took over); ``missing``.
        """
        reply = await self._run(
            FINISH_SCRIPT,
            [self.keys.record(dlq_id)],
            [
                dlq_id,
                token,
                format_datetime(self.now()),
                target,
                retried_by or "",
                retried_task_id or "",
                note or "",
            ],
        )
        return _text(reply)

    async def abort(self, dlq_id: str, token: str, *, unknown: bool) -> None:
        """Give the claim up; ``unknown``: the message may have been published."""
        await self._run(
            ABORT_SCRIPT, [self.keys.record(dlq_id)], [dlq_id, token, "1" if unknown else "0"]
        )

    # -- reads -------------------------------------------------------------------

    async def get(self, dlq_id: str) -> DLQRecord | None:
        """The record with its body, or None (missing, expired or undecodable).

        A ``replaying`` record whose lock expired is resolved first (see
        :attr:`DLQRecord.unconfirmed_republish`).
        """
        self._check_id(dlq_id)
        flat = await self._run(GET_SCRIPT, [self.keys.record(dlq_id)], [dlq_id])
        if not flat:
            return None
        return self._decode(_fields(flat), dlq_id)

    async def list_records(
        self, query: DLQQuery | None = None, *, cursor: Cursor | None = None, limit: int = 50
    ) -> DLQPage:
        """Records matching ``query``, newest first, at most ``limit``, from ``cursor``.

        A page may hold fewer than ``limit`` records while ``next_cursor`` is
        set, when very selective filters made the bounded scan stop early:
        follow the cursor.
        """
        query = query or DLQQuery()
        keys = [self.keys.records] + [
            self.keys.index(field, value) for field, value in query.index_filters()
        ]
        high = "+inf"
        if query.failed_to is not None:
            high = str(score_of(query.failed_to))
        cursor_id = ""
        if cursor is not None:
            if high == "+inf" or cursor.score <= int(high):
                high, cursor_id = str(cursor.score), cursor.dlq_id
        low = "-inf"
        if query.failed_from is not None:
            low = str(score_of(query.failed_from))
        if self._ttl_ms:
            cutoff = round(self._clock() * 1000) - self._ttl_ms
            low = str(cutoff) if low == "-inf" else str(max(cutoff, int(low)))
        records: list[DLQRecord] = []
        skipped: list[str] = []
        next_cursor: str | None = None
        for _ in range(MAX_ROUNDS):
            want = limit - len(records)
            reply = await self._run(
                LIST_SCRIPT, keys, [high, cursor_id, low, want, SCAN_BUDGET, *LIST_ARGS]
            )
            more = int(reply[0])
            i, end = 3, len(reply)
            while i < end:  # id, facts, n, n (field, value) pairs
                start = i + 3
                i = start + 2 * int(reply[start - 1])
                record = self._decode_listed(reply[start - 3], reply[start - 2], reply[start:i])
                if record is None:
                    skipped.append(_text(reply[start - 3]))
                else:
                    records.append(record)
            if more == 0:
                next_cursor = None
                break
            high, cursor_id = str(int(float(_text(reply[1])))), _text(reply[2])
            next_cursor = Cursor(int(high), cursor_id).encode()
            if more == 1 or len(records) >= limit:
                break
        return DLQPage(records=records, next_cursor=next_cursor, skipped=skipped)

    async def queue_counts(self) -> list[QueueCount]:
        """Indexed records and the newest dead-letter time per DLQ queue (O(queues))."""
        reply = await self._run(SUMMARY_SCRIPT, [self.keys.queues], [])
        out = []
        for i in range(0, len(reply), 3):
            newest = int(float(_text(reply[i + 2])))
            out.append(
                QueueCount(
                    queue_name=_text(reply[i]),
                    indexed_count=int(reply[i + 1]),
                    last_indexed_at=datetime.fromtimestamp(newest / 1000, UTC),
                )
            )
        return sorted(out, key=lambda q: q.queue_name)

"""Failed-task notifications: the job (one replica sends, nothing twice, a failed send keeps the batch).

Keys (``{p}`` = ``RELAYNA_STUDIO_FAILED_TASK_EMAIL_PREFIX``, default
``studio:failed_task_email``, the original's names):

* ``{p}:settings``: ``{enabled, batch_wait_seconds, updated_at}`` (the
  runtime toggle; defaults from the environment);
* ``{p}:batch:lock``: one replica's run (``SET NX``, TTL = send timeout +
  30 s, extended after every scanned page and every send, released by
  compare-and-delete);
* ``{p}:pending``: ``{started_at, items[], delivered{target: [keys]}}``;
* ``{p}:notified:{service_id}:{failure_id}``: sent, for the dedupe TTL.

One run (every ``RELAYNA_STUDIO_FAILED_TASK_EMAIL_INTERVAL_SECONDS``):

1. nothing when disabled, or when another replica holds the lock;
2. page through every unreviewed failed task of every service (Studio's
   merged listing, 200 at a time, following cursors, at most
   :data:`MAX_PAGES` pages);
3. add the items neither notified nor pending to the pending batch (its
   timer starts with its first item);
4. record the batch, then send what is due to every configured target —
   with ``batch_wait_seconds = 0`` one notification per item, otherwise one
   combined notification once the batch is ``batch_wait_seconds`` old;
5. record **each** success right after it, in one script that checks the
   lock is still ours and extends it by a full TTL: a target that succeeded
   is never sent the same item again, an item is ``notified`` once every
   target has it; a failed send keeps the batch and restarts its timer.

A run may therefore take any number of lock lifetimes (a backlog, a slow
receiver): the lock only has to outlive one send (bounded by the send
timeout) and its record. When a record is refused (the lock was lost, e.g.
the process stalled longer than the TTL) the run stops at once, before its
next send; the replica holding the lock continues from what was recorded.

Each request carries ``X-Relayna-Delivery`` (stable per batch and target), so
even the one repeat Studio cannot rule out — a crash after the receiver's
2xx and before its record — can be dropped by the receiver.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import orjson
from anyio.abc import TaskStatus

from relayna.errors import ConfigurationError, RelaynaError
from relayna.transport import Script
from relayna_studio._errors import UpstreamError
from relayna_studio._failed_tasks import merged_failed_tasks
from relayna_studio._federation import Federation
from relayna_studio._notify_render import (
    delivery_id,
    due,
    email_document,
    item_key,
    sign,
    slim,
    webhook_document,
)
from relayna_studio._runtime import StudioRuntime
from relayna_studio._settings import MAX_BATCH_WAIT_SECONDS
from relayna_studio._timefmt import format_time, load_object, now_utc

__all__ = ["MAX_PAGES", "Notifier", "run_notifications"]

log = logging.getLogger("relayna_studio.notifications")

MAX_PAGES = 50
SCAN_LIMIT = 200

_RELEASE = Script(
    name="relayna_studio.notify.release",
    lua="""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""",
)
_RENEW = Script(
    name="relayna_studio.notify.renew",
    lua="""
-- KEYS: lock   ARGV: owner, lock ttl (ms)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
""",
)
_COMMIT = Script(
    name="relayna_studio.notify.commit",
    lua="""
-- KEYS: lock, pending, notified keys...
-- ARGV: owner, pending json ('' = delete), dedupe ttl (s), lock ttl (ms)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[2] == '' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[2]) end
for i = 3, #KEYS do redis.call('SET', KEYS[i], '1', 'EX', ARGV[3]) end
return 1
""",
)


class Notifier:
    """The notification job and its settings for one runtime.

    ``clock`` (epoch seconds) is injectable so that tests decide when a
    batch is due. ``lock_seconds`` is the lock's TTL (default: the send
    timeout + 30 s); it must exceed the send timeout, since the lock has to
    outlive one send and its record.
    """

    def __init__(
        self,
        runtime: StudioRuntime,
        *,
        clock: Callable[[], float] = time.time,
        lock_seconds: float | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.clock = clock
        self.prefix = self.settings.global_prefix(self.settings.failed_task_email_prefix)
        self.owner = uuid.uuid4().hex
        timeout = self.settings.failed_task_email_timeout_seconds
        self.lock_seconds = timeout + 30 if lock_seconds is None else lock_seconds
        if self.lock_seconds <= timeout:
            raise ConfigurationError(
                f"the notification lock ({self.lock_seconds} s) must outlive one send "
                f"(RELAYNA_STUDIO_FAILED_TASK_EMAIL_TIMEOUT_SECONDS = {timeout} s)"
            )
        self._lock_key = f"{self.prefix}:batch:lock"

    # -- settings ---------------------------------------------------------------

    @property
    def targets(self) -> list[str]:
        out = []
        if self.settings.email_configured:
            out.append("email")
        if self.settings.failed_task_webhook_url:
            out.append("webhook")
        return out

    async def stored_settings(self) -> dict[str, Any]:
        stored = load_object(await self.runtime.store.get(f"{self.prefix}:settings")) or {}
        enabled = stored.get("enabled", self.settings.failed_task_email_enabled)
        wait = stored.get("batch_wait_seconds", self.settings.failed_task_email_batch_wait_seconds)
        return {
            "enabled": bool(enabled) and self.settings.notifications_configured,
            "batch_wait_seconds": int(wait) if isinstance(wait, int) else 0,
            "updated_at": stored.get("updated_at"),
        }

    def document(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The settings route's answer (the original's shape, plus ``targets``)."""
        return {
            "configured": self.settings.notifications_configured,
            "enabled": bool(stored["enabled"]),
            "batch_wait_seconds": stored["batch_wait_seconds"],
            "max_batch_wait_seconds": MAX_BATCH_WAIT_SECONDS,
            # hidden while notifications are not configured, as the original
            "receivers": (
                list(self.settings.failed_task_email_receivers)
                if self.settings.notifications_configured
                else []
            ),
            "targets": self.targets,
            "updated_at": stored.get("updated_at"),
        }

    async def update_settings(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        current = await self.stored_settings()
        new = {**current, **changes, "updated_at": format_time(now_utc())}
        await self.runtime.store.set(f"{self.prefix}:settings", orjson.dumps(new))
        return await self.stored_settings()

    # -- one run -----------------------------------------------------------------

    async def run_once(self) -> dict[str, int]:
        """One run (see the module docs); returns what it did, for logs and tests."""
        result = {"scanned": 0, "queued": 0, "sent": 0, "failed": 0, "locked": 0, "lost": 0}
        stored = await self.stored_settings()
        if not stored["enabled"]:
            return result
        store = self.runtime.store
        if not await store.set(self._lock_key, self.owner, ttl=self.lock_seconds, nx=True):
            result["locked"] = 1
            return result
        try:
            if not await self._run_locked(stored["batch_wait_seconds"], result):
                result["lost"] = 1
                log.error(
                    "failed-task notifications: the lock was lost; the run stopped, "
                    "what it recorded stays and the replica holding the lock goes on"
                )
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await store.run_script(_RELEASE, [self._lock_key], [self.owner])
        return result

    async def _renew(self) -> bool:
        """Extend the lock by a full TTL if it is still ours."""
        ttl_ms = max(1, round(self.lock_seconds * 1000))
        return bool(
            int(await self.runtime.store.run_script(_RENEW, [self._lock_key], [self.owner, ttl_ms]))
        )

    async def _scan(self) -> list[dict[str, Any]] | None:
        """Every unreviewed failed task; None when the lock was lost while paging."""
        fed = Federation(self.runtime)
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        seen_cursors: set[str] = set()
        for _ in range(MAX_PAGES):
            page = await merged_failed_tasks(
                fed, {"investigation_status": "unreviewed"}, SCAN_LIMIT, cursor
            )
            for error in page["errors"]:
                log.warning(
                    "failed-task scan: %s: %s", error.get("service_id"), error.get("detail")
                )
            items += [
                i
                for i in page["items"]
                if i.get("investigation_status", "unreviewed") == "unreviewed"
            ]
            if not await self._renew():
                return None
            cursor = page["next_cursor"]
            if cursor is None or cursor in seen_cursors:
                break
            seen_cursors.add(cursor)
        return [i for i in items if isinstance(i.get("failure_id"), str)]

    async def _run_locked(self, wait: int, result: dict[str, int]) -> bool:
        """One run under the lock; False as soon as the lock turns out to be lost."""
        store = self.runtime.store
        pending = load_object(await store.get(f"{self.prefix}:pending")) or {}
        items: list[dict[str, Any]] = list(pending.get("items") or [])
        delivered: dict[str, list[str]] = dict(pending.get("delivered") or {})
        started_at = pending.get("started_at")
        scanned = await self._scan()
        if scanned is None:
            return False
        result["scanned"] = len(scanned)
        known = {item_key(i) for i in items}
        fresh = [i for i in scanned if item_key(i) not in known]
        flags = await store.mget([f"{self.prefix}:notified:{item_key(i)}" for i in fresh])
        for item, flag in zip(fresh, flags, strict=True):
            if flag is None and item_key(item) not in known:
                items.append(slim(item))
                known.add(item_key(item))
                result["queued"] += 1
        if items and started_at is None:
            started_at = self.clock()
        if not await self._commit(items, delivered, started_at, []):
            return False
        if not due(started_at, wait, self.clock()):
            return True
        batches = [[i] for i in items] if wait == 0 else [items]
        notified: set[str] = set()
        any_failed = False
        for batch in batches:
            for target in self.targets:
                have = set(delivered.get(target, [])) | notified
                todo = [i for i in batch if item_key(i) not in have]
                if not todo:
                    continue
                if not await self._send(target, todo):
                    any_failed = True
                    result["failed"] += 1
                    continue
                result["sent"] += 1
                delivered.setdefault(target, []).extend(item_key(i) for i in todo)
                done = [
                    i
                    for i in items
                    if all(item_key(i) in delivered.get(t, []) for t in self.targets)
                ]
                keys = {item_key(i) for i in done}
                notified |= keys
                items = [i for i in items if item_key(i) not in keys]
                delivered = {t: [k for k in v if k not in keys] for t, v in delivered.items()}
                if not await self._commit(items, delivered, started_at if items else None, done):
                    return False
        if items and (any_failed or wait == 0):
            started_at = self.clock()  # a failed batch waits again from now
        return await self._commit(items, delivered, started_at if items else None, [])

    async def _commit(
        self,
        items: Sequence[Mapping[str, Any]],
        delivered: Mapping[str, list[str]],
        started_at: float | None,
        done: Sequence[Mapping[str, Any]],
    ) -> bool:
        """Record the batch and ``done`` items, extending the lock; False if it is not ours."""
        pending = (
            orjson.dumps({"started_at": started_at, "items": list(items), "delivered": delivered})
            if items
            else b""
        )
        keys = [self._lock_key, f"{self.prefix}:pending"]
        keys += [f"{self.prefix}:notified:{item_key(i)}" for i in done]
        ttl = max(1, round(self.settings.failed_task_email_dedupe_ttl_seconds))
        lock_ms = max(1, round(self.lock_seconds * 1000))
        committed = await self.runtime.store.run_script(
            _COMMIT, keys, [self.owner, pending, ttl, lock_ms]
        )
        return bool(int(committed))

    async def _send(self, target: str, items: Sequence[Mapping[str, Any]]) -> bool:
        settings = self.settings
        prefix = settings.failed_task_email_title_prefix
        delivery = delivery_id(items, target)
        headers = {"x-relayna-delivery": delivery, "idempotency-key": delivery}
        if target == "email":
            assert settings.failed_task_email_service_url
            assert settings.failed_task_email_api_key
            url = settings.failed_task_email_service_url
            document = email_document(items, settings.failed_task_email_receivers, prefix)
            headers["x-api-key"] = settings.failed_task_email_api_key
        else:
            assert settings.failed_task_webhook_url
            assert settings.failed_task_webhook_secret
            url = settings.failed_task_webhook_url
            document = webhook_document(items, prefix, format_time(now_utc()))
        content = orjson.dumps(document)
        if target == "webhook":
            stamp = int(self.clock())
            headers["x-relayna-timestamp"] = str(stamp)
            headers["x-relayna-signature"] = sign(
                settings.failed_task_webhook_secret or "", stamp, content
            )
        counter = self.runtime.metrics.notifications
        try:
            response = await self.runtime.egress.request(
                "POST", url, content=content, headers=headers,
                deadline=settings.failed_task_email_timeout_seconds,
            )  # fmt: skip
        except UpstreamError as exc:
            log.warning("failed-task %s notification failed: %s", target, exc.detail)
            counter.labels(target, "error").inc()
            return False
        if not 200 <= response.status_code < 300:
            log.warning("failed-task %s notification answered %s", target, response.status_code)
            counter.labels(target, "error").inc()
            return False
        counter.labels(target, "sent").inc()
        return True


async def run_notifications(
    runtime: StudioRuntime, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """The job loop (a ``tg.start`` target); a failing run is logged, never fatal."""
    notifier = Notifier(runtime)
    task_status.started()
    while True:
        try:
            outcome = await notifier.run_once()
            if outcome["sent"] or outcome["failed"]:
                log.info("failed-task notifications: %s", outcome)
        except RelaynaError as exc:
            log.warning("failed-task notifications: run failed: %s", exc)
        await anyio.sleep(runtime.settings.failed_task_email_interval_seconds)

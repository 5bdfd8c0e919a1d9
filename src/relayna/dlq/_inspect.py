"""Broker DLQ inspectors: read live messages of a DLQ queue and leave them there.

Two implementations of :class:`BrokerDLQInspector`:

* :class:`ManagementDLQInspector`, the RabbitMQ management HTTP API
  (``POST /api/queues/{vhost}/{queue}/get`` with ``ackmode=ack_requeue_true``)
  through httpx. Credentials come from the URL or arguments and never appear
  in logs or errors (URLs are redacted).
* :class:`PeekDLQInspector`, any broker with :class:`~relayna.transport.SupportsPeek`
  (the native AMQP client: ``basic.get`` + ``basic.nack(requeue)``; the memory
  broker), for deployments without the management plugin.

Both return :class:`BrokerDLQMessage` (the original's shape).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit, urlunsplit

import attrs
import httpx

from relayna._urls import redact_url
from relayna.consumer import EXCEPTION_MESSAGE, DLQRecord, jsonable_headers, make_dlq_record
from relayna.contracts import format_datetime, get_header, is_valid_identifier, read_count_header
from relayna.contracts import headers as h
from relayna.dlq._codec import inspect_body
from relayna.dlq._republish import UNKNOWN_SOURCE
from relayna.errors import BrokerError, ContractError, NotFound
from relayna.transport import PeekedMessage, SupportsPeek

__all__ = [
    "BrokerDLQInspector",
    "BrokerDLQMessage",
    "ManagementDLQInspector",
    "PeekDLQInspector",
    "broker_message",
    "record_from_broker",
]

#: Largest body one inspected message carries (the management API truncates).
MAX_INSPECT_BODY = 1024 * 1024


@attrs.frozen(kw_only=True)
class BrokerDLQMessage:
    """A live message of a DLQ queue, as ``/broker/dlq/messages`` shows it."""

    queue_name: str
    message_key: str
    task_id: str | None
    correlation_id: str | None
    reason: str | None
    source_queue_name: str
    content_type: str | None
    body_encoding: str
    dead_lettered_at: datetime | None
    headers: dict[str, Any]
    body: Any
    raw_body_b64: str
    redelivered: bool | None
    truncated: bool = False
    raw_body: bytes = attrs.field(default=b"", repr=False)
    message_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue_name": self.queue_name,
            "message_key": self.message_key,
            "task_id": self.task_id,
            "correlation_id": self.correlation_id,
            "reason": self.reason,
            "source_queue_name": self.source_queue_name,
            "content_type": self.content_type,
            "body_encoding": self.body_encoding,
            "dead_lettered_at": (
                None if self.dead_lettered_at is None else format_datetime(self.dead_lettered_at)
            ),
            "headers": self.headers,
            "body": self.body,
            "raw_body_b64": self.raw_body_b64,
            "redelivered": self.redelivered,
            "truncated": self.truncated,
        }


@runtime_checkable
class BrokerDLQInspector(Protocol):
    async def list_messages(self, queue_name: str, *, limit: int) -> list[BrokerDLQMessage]:
        """Up to ``limit`` messages from the head of ``queue_name``, left in the queue.

        Raises:
            BrokerError: the broker could not be read (``NotFound`` for a missing queue).
        """
        ...


def _death(headers: Mapping[str, Any]) -> Mapping[str, Any] | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return None


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return text or None


def broker_message(
    queue_name: str,
    body: bytes,
    *,
    headers: Mapping[str, Any] | None,
    correlation_id: str | None,
    content_type: str | None,
    message_id: str | None,
    redelivered: bool | None,
    timestamp: datetime | None = None,
    truncated: bool = False,
) -> BrokerDLQMessage:
    """Build the view of one message: source, reason and time from the relayna
    headers, else the broker's ``x-first-death-*`` / ``x-death`` bookkeeping;
    ``source_queue_name`` is ``"unknown"`` when nothing tells it."""
    table = dict(headers or {})
    death = _death(table)
    source = (
        _str(get_header(table, h.SOURCE_QUEUE))
        or _str(table.get("x-first-death-queue"))
        or _str(death.get("queue") if death else None)
        or UNKNOWN_SOURCE
    )
    reason = (
        _str(get_header(table, h.FAILURE_REASON))
        or _str(table.get("x-first-death-reason"))
        or _str(death.get("reason") if death else None)
    )
    when = _as_time(death.get("time") if death else None) or timestamp
    key = (
        _str(message_id)
        or _str(table.get("message_id"))
        or _str(table.get("x-message-id"))
        or _str(get_header(table, h.MESSAGE_ID_HEADER))
    )
    if key is None:
        digest = hashlib.sha256()
        for part in (queue_name.encode(), body, (correlation_id or "").encode()):
            digest.update(part)
            digest.update(b"\x00")
        key = digest.hexdigest()
    value, encoding = inspect_body(body)
    task_id = _str(table.get(h.TASK_ID))
    if task_id is None and isinstance(value, Mapping):
        task_id = _str(value.get("task_id"))
    return BrokerDLQMessage(
        queue_name=queue_name,
        message_key=key,
        task_id=task_id,
        correlation_id=correlation_id,
        reason=reason,
        source_queue_name=source,
        content_type=content_type,
        body_encoding=encoding,
        dead_lettered_at=when,
        headers=jsonable_headers(table),
        body=value,
        raw_body_b64=base64.b64encode(body).decode("ascii"),
        redelivered=redelivered,
        truncated=truncated,
        raw_body=body,
        message_id=_str(message_id),
    )


class PeekDLQInspector:
    """Reads DLQ messages through the broker connection (``basic.get`` + requeue)."""

    def __init__(self, broker: SupportsPeek) -> None:
        self.broker = broker

    async def list_messages(self, queue_name: str, *, limit: int) -> list[BrokerDLQMessage]:
        peeked: list[PeekedMessage] = await self.broker.peek(queue_name, limit=limit)
        return [
            broker_message(
                queue_name,
                m.body,
                headers=m.properties.headers,
                correlation_id=m.properties.correlation_id,
                content_type=m.properties.content_type,
                message_id=m.properties.message_id,
                redelivered=m.redelivered,
                timestamp=m.properties.timestamp,
            )
            for m in peeked
        ]


class ManagementDLQInspector:
    """Reads DLQ messages through the RabbitMQ management HTTP API.

    Args:
        base_url: ``http(s)://[user:password@]host:port/`` of the management plugin.
        username / password: override the URL's credentials (default guest/guest).
        vhost: the virtual host of the queues.
        timeout: seconds for the whole request.
        client: an ``httpx.AsyncClient`` to use (closed by its owner).
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        vhost: str = "/",
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the management URL must be http(s)://host:port/")
        netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self._base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.url = redact_url(base_url)
        self._auth = (
            username if username is not None else (parts.username or "guest"),
            password if password is not None else (parts.password or "guest"),
        )
        self.vhost = vhost
        self.timeout = timeout
        self._client = client

    async def list_messages(self, queue_name: str, *, limit: int) -> list[BrokerDLQMessage]:
        path = f"/api/queues/{quote(self.vhost, safe='')}/{quote(queue_name, safe='')}/get"
        request = {
            "count": limit,
            "ackmode": "ack_requeue_true",
            "encoding": "base64",
            "truncate": MAX_INSPECT_BODY,
        }
        try:
            if self._client is not None:
                response = await self._client.post(
                    self._base + path, json=request, auth=self._auth, timeout=self.timeout
                )
            else:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.post(self._base + path, json=request, auth=self._auth)
        except httpx.HTTPError as exc:
            raise BrokerError(
                f"management API request failed: {type(exc).__name__}", url=self.url
            ) from None
        if response.status_code == 404:
            raise NotFound(f"no queue {queue_name!r} in vhost {self.vhost!r}", url=self.url)
        if response.status_code != 200:
            raise BrokerError(
                f"management API answered {response.status_code} for queue {queue_name!r}",
                url=self.url,
            )
        try:
            items = response.json()
        except ValueError:
            raise BrokerError("management API answered with invalid JSON", url=self.url) from None
        if not isinstance(items, list):
            raise BrokerError("management API answered with an unexpected shape", url=self.url)
        return [self._message(queue_name, item) for item in items if isinstance(item, Mapping)]

    @staticmethod
    def _message(queue_name: str, item: Mapping[str, Any]) -> BrokerDLQMessage:
        props = item.get("properties")
        props = props if isinstance(props, Mapping) else {}
        payload = item.get("payload") or ""
        if item.get("payload_encoding") == "base64":
            body = base64.b64decode(payload)
        else:
            body = str(payload).encode("utf-8")
        size = item.get("payload_bytes")
        headers = props.get("headers")
        stamp = props.get("timestamp")
        return broker_message(
            queue_name,
            body,
            headers=headers if isinstance(headers, Mapping) else {},
            correlation_id=_str(props.get("correlation_id")),
            content_type=_str(props.get("content_type")),
            message_id=_str(props.get("message_id")),
            redelivered=bool(item.get("redelivered")),
            timestamp=_as_time(stamp),
            truncated=isinstance(size, int) and size > len(body),
        )


def record_from_broker(message: BrokerDLQMessage, *, now: datetime) -> DLQRecord:
    """A DLQ record for a live broker message (``DLQService.import_broker_messages``).

    Its id comes from the message facts, so importing twice keeps one record.
    It has no retry queue: a replay goes to the source queue, or to a queue
    the operator names when the source is ``unknown``.
    """
    headers = message.headers
    try:
        attempt = read_count_header(headers)
    except ContractError:
        attempt = 0
    max_retries = None
    try:
        if get_header(headers, h.MAX_RETRIES) is not None:
            max_retries = read_count_header(headers, h.MAX_RETRIES)
    except ContractError:
        max_retries = None
    record = make_dlq_record(
        queue_name=message.queue_name,
        source_queue_name=message.source_queue_name,
        retry_queue_name=None,
        task_id=message.task_id if is_valid_identifier(message.task_id) else None,
        correlation_id=message.correlation_id,
        service_name="broker-import",
        reason=message.reason or "unknown",
        exception_type=_str(get_header(headers, h.EXCEPTION_TYPE)),
        exception_message=_str(headers.get(EXCEPTION_MESSAGE)),
        retry_attempt=attempt,
        max_retries=max_retries,
        headers=headers,
        content_type=message.content_type,
        body=message.raw_body,
        message_id=message.message_id,
        dead_lettered_at=message.dead_lettered_at or now,
    )
    if message.truncated:
        record = attrs.evolve(record, body=None, body_omitted="truncated")
    return record

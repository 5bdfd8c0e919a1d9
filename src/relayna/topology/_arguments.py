"""Queue arguments: typed fields in, an ``x-*`` argument table out.

Every queue's arguments come from several *sources*: the built-in typed fields
(TTL, dead-letter exchange, consumer timeout, ...), explicit overrides and
extra keyword arguments (globally and, for workflow stages, per stage). A key
may come from exactly one source. A key set twice is a :class:`TopologyError`
naming the key and both sources; nothing is silently overridden.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, TypeAlias

from relayna.errors import TopologyError
from relayna.transport import StreamOffset

__all__ = [
    "QUEUE_TYPES",
    "QueueType",
    "merge_queue_arguments",
    "queue_builtin_arguments",
    "WORK_QUEUE_TYPES",
    "check_quorum_arguments",
    "status_builtin_arguments",
    "validate_max_priority",
    "work_queue_arguments",
    "validate_stream_offset",
]

QueueType: TypeAlias = Literal["classic", "quorum", "stream"]
QUEUE_TYPES: tuple[str, ...] = ("classic", "quorum", "stream")
#: What ``work_queue_type`` may be: task, retry, DLQ and workflow stage queues.
WORK_QUEUE_TYPES: tuple[str, ...] = ("classic", "quorum")

#: Classic-queue arguments a quorum queue refuses (RabbitMQ 3.10), and why.
_NOT_FOR_QUORUM = {
    "x-max-priority": "quorum queues have no priorities",
    "x-queue-mode": "quorum queues have no lazy mode (they keep messages on disk anyway)",
    "x-queue-master-locator": "quorum queues place their leader with x-queue-leader-locator",
    "x-queue-version": "x-queue-version is a classic queue setting",
}

_GIB = 1024**3
_MIB = 1024**2


def merge_queue_arguments(
    family: str, *sources: tuple[str, Mapping[str, Any] | None]
) -> dict[str, Any]:
    """Merge named argument sources into one table.

    Args:
        family: what the queue is (``"task"``, ``"status"``, ``"workflow stage 'x'"``),
            used in error messages.
        sources: ``(source_name, arguments)`` pairs, e.g. ``("built-in fields", {...})``.

    Returns:
        A new dict holding every key of every source, in source order.

    Raises:
        TopologyError: a key appears in two sources. ``problems`` lists one
            entry per conflicting key, each naming the key and both sources.
    """
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    problems: list[str] = []
    for source_name, arguments in sources:
        for key, value in (arguments or {}).items():
            if not isinstance(key, str) or not key:
                problems.append(
                    f"{family} queue argument keys must be non-empty strings ({source_name})"
                )
                continue
            if key in owner:
                problems.append(
                    f"{family} queue argument {key!r} is set in both {owner[key]} and {source_name}"
                )
                continue
            owner[key] = source_name
            merged[key] = value
    if problems:
        raise TopologyError(problems[0], problems=problems)
    max_priority = merged.get("x-max-priority")
    if max_priority is not None:
        merged["x-max-priority"] = validate_max_priority(max_priority, label=family)
    return merged


def validate_max_priority(value: object, *, label: str) -> int:
    """Return ``value`` as an int in 1..255 or raise :class:`TopologyError`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
        raise TopologyError(f"{label} max priority must be an integer in 1..255, got {value!r}")
    return value


def validate_stream_offset(value: object, *, label: str) -> StreamOffset:
    """Check a stream offset: ``first``/``last``/``next``, an int >= 0 or a datetime."""
    if value in ("first", "last", "next"):
        return value
    if isinstance(value, datetime):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise TopologyError(
        f"{label} must be 'first', 'last', 'next', an offset >= 0 or a datetime, got {value!r}"
    )


def _positive(value: int | None, name: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        problems.append(f"{name} must be a positive integer, got {value!r}")
        return None
    return value


def queue_builtin_arguments(
    family: str,
    *,
    message_ttl_ms: int | None = None,
    dead_letter_exchange: str | None = None,
    consumer_timeout_ms: int | None = None,
    single_active_consumer: bool | None = None,
    max_priority: int | None = None,
    queue_type: str | None = None,
) -> dict[str, Any]:
    """The ``x-*`` arguments of a work queue from its typed fields.

    ``message_ttl_ms`` → ``x-message-ttl``; ``dead_letter_exchange`` →
    ``x-dead-letter-exchange``; ``consumer_timeout_ms`` → ``x-consumer-timeout``;
    ``single_active_consumer`` → ``x-single-active-consumer``; ``max_priority``
    → ``x-max-priority`` (1..255); ``queue_type`` → ``x-queue-type``.

    Raises:
        TopologyError: a value out of range, listing every problem.
    """
    problems: list[str] = []
    args: dict[str, Any] = {}
    ttl = _positive(message_ttl_ms, f"{family} message TTL (ms)", problems)
    if ttl is not None:
        args["x-message-ttl"] = ttl
    if dead_letter_exchange:
        args["x-dead-letter-exchange"] = dead_letter_exchange
    timeout = _positive(consumer_timeout_ms, f"{family} consumer timeout (ms)", problems)
    if timeout is not None:
        args["x-consumer-timeout"] = timeout
    if single_active_consumer is not None:
        args["x-single-active-consumer"] = bool(single_active_consumer)
    if max_priority is not None:
        try:
            args["x-max-priority"] = validate_max_priority(max_priority, label=family)
        except TopologyError as exc:
            problems.append(str(exc))
    if queue_type is not None:
        if queue_type not in QUEUE_TYPES:
            problems.append(f"{family} queue type must be one of {QUEUE_TYPES}, got {queue_type!r}")
        else:
            args["x-queue-type"] = queue_type
    if problems:
        raise TopologyError(problems[0], problems=problems)
    return args


def work_queue_arguments(
    family: str,
    *,
    work_queue_type: str,
    delivery_limit: int | None,
    dead_letters: bool,
) -> dict[str, Any]:
    """The cluster arguments of a work queue (task, retry, DLQ, workflow stage).

    ``classic`` adds nothing (a classic queue keeps its arguments). ``quorum``
    adds ``x-queue-type=quorum``, ``x-delivery-limit`` when given, and for a
    queue that dead-letters (``dead_letters``: it has a dead-letter exchange)
    ``x-dead-letter-strategy=at-least-once`` with ``x-overflow=reject-publish``
    (what at-least-once needs): a quorum queue's default dead-lettering is
    at-most-once, which may drop a message when a leader changes.

    Raises:
        TopologyError: an unknown type, a non-positive limit, or a limit on a
            classic queue (classic queues do not count deliveries).
    """
    problems: list[str] = []
    if work_queue_type not in WORK_QUEUE_TYPES:
        problems.append(
            f"work_queue_type must be one of {WORK_QUEUE_TYPES}, got {work_queue_type!r}"
        )
    limit = _positive(delivery_limit, f"{family} delivery limit", problems)
    if limit is not None and work_queue_type != "quorum":
        problems.append(
            f"{family} delivery_limit={limit} needs work_queue_type='quorum' "
            "(classic queues do not count deliveries)"
        )
    if problems:
        raise TopologyError(problems[0], problems=problems)
    if work_queue_type != "quorum":
        return {}
    args: dict[str, Any] = {"x-queue-type": "quorum"}
    if limit is not None:
        args["x-delivery-limit"] = limit
    if dead_letters:
        args["x-dead-letter-strategy"] = "at-least-once"
        args["x-overflow"] = "reject-publish"
    return args


def check_quorum_arguments(family: str, arguments: Mapping[str, Any]) -> None:
    """Refuse merged arguments a quorum queue does not take (e.g. ``x-max-priority``).

    Raises:
        TopologyError: one problem per refused argument, each saying why.
    """
    if arguments.get("x-queue-type") != "quorum":
        return
    problems = [
        f"{family} queue is a quorum queue: {key} is not allowed ({why})"
        for key, why in _NOT_FOR_QUORUM.items()
        if key in arguments
    ]
    if arguments.get("x-overflow") == "reject-publish-dlx":
        problems.append(
            f"{family} queue is a quorum queue: x-overflow=reject-publish-dlx is not allowed "
            "(use reject-publish or drop-head)"
        )
    if problems:
        raise TopologyError(problems[0], problems=problems)


def status_builtin_arguments(
    *,
    use_streams: bool,
    queue_ttl_ms: int | None = None,
    stream_max_length_gb: int | None = None,
    stream_max_segment_size_mb: int | None = None,
    stream_max_age: str | None = None,
    stream_initial_cluster_size: int | None = None,
) -> dict[str, Any]:
    """The ``x-*`` arguments of the shared status queue.

    Streams on (the default): ``x-queue-type=stream``, ``x-max-length-bytes``
    (GB * 1024**3), ``x-stream-max-segment-size-bytes`` (MB * 1024**2),
    ``x-max-age`` (e.g. ``"7D"``) and ``x-initial-cluster-size`` (how many
    nodes hold a replica; RabbitMQ's default is every node). Streams off:
    ``x-expires`` from ``queue_ttl_ms``.
    """
    problems: list[str] = []
    args: dict[str, Any] = {}
    if use_streams:
        args["x-queue-type"] = "stream"
        gb = _positive(stream_max_length_gb, "status stream max length (GB)", problems)
        if gb is not None:
            args["x-max-length-bytes"] = gb * _GIB
        mb = _positive(stream_max_segment_size_mb, "status stream max segment size (MB)", problems)
        if mb is not None:
            args["x-stream-max-segment-size-bytes"] = mb * _MIB
        if stream_max_age is not None:
            if not _is_max_age(stream_max_age):
                problems.append(
                    "status stream max age must look like '7D', '12h', '30m' or '60s' "
                    f"(units Y M D h m s), got {stream_max_age!r}"
                )
            else:
                args["x-max-age"] = stream_max_age
        size = _positive(
            stream_initial_cluster_size, "status stream initial cluster size", problems
        )
        if size is not None:
            args["x-initial-cluster-size"] = size
    else:
        ttl = _positive(queue_ttl_ms, "status queue TTL (ms)", problems)
        if ttl is not None:
            args["x-expires"] = ttl
        if stream_max_length_gb is not None or stream_max_segment_size_mb is not None:
            problems.append("status stream retention is set but status_use_streams is False")
        if stream_max_age is not None:
            problems.append("status stream max age is set but status_use_streams is False")
        if stream_initial_cluster_size is not None:
            problems.append(
                "status stream initial cluster size is set but status_use_streams is False"
            )
    if problems:
        raise TopologyError(problems[0], problems=problems)
    return args


def _is_max_age(value: str) -> bool:
    return (
        len(value) >= 2 and value[:-1].isdigit() and int(value[:-1]) > 0 and value[-1] in "YMDhms"
    )

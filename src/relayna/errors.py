"""The one exception hierarchy of relayna.

Every error a user can see derives from :class:`RelaynaError`. Adapters map
their library's exceptions to these at the edge, so callers never need to
import aiormq, coredis or redis-py to handle a failure.

::

    RelaynaError
    ├── ConfigurationError
    │   └── UnsupportedBackendError
    ├── ContractError                (invalid envelope / identifier / body)
    │   ├── EnvelopeTooLarge
    │   └── WorkflowContractError
    ├── TopologyError
    ├── DuplicateTaskError           (publish(if_exists="error") of an existing task id)
    ├── DLQConflict                  (replay / retry / delete refused: code, dlq_id)
    ├── ToolDenied                   (an MCP operational tool refused: disabled, no token)
    ├── WorkflowError                (a workflow run cannot do what was asked)
    │   ├── WorkflowRunNotFound
    │   └── WorkflowConflict         (replay into a running stage, nothing to resume)
    └── TransportError               (carries the password-redacted URL)
        ├── BrokerError
        │   ├── BrokerConnectionError
        │   │   ├── AuthenticationError
        │   │   ├── BrokerUnavailable  (no node answered within the bound: nothing sent)
        │   │   └── ConnectionLost
        │   │       └── PublishOutcomeUnknown  (lost while a publish awaited its confirm)
        │   ├── ChannelClosed         (reply_code, reply_text)
        │   │   ├── PreconditionFailed  (406)
        │   │   │   └── ConsumerTimedOut  (a delivery outlived the consumer timeout)
        │   │   ├── NotFound            (404)
        │   │   └── AccessRefused       (403)
        │   ├── ProtocolError         (garbage or oversized frames from the peer)
        │   ├── UnroutableError       (mandatory publish with no queue)
        │   ├── PublishNacked
        │   ├── PublishBlocked        (connection.blocked outlived the deadline)
        │   └── ConsumerCancelled     (basic.cancel from the server)
        └── StoreError
            ├── StoreConnectionError
            │   ├── StoreAuthenticationError
            │   └── StoreConnectionLost
            ├── ScriptError
            ├── CrossSlotError        (one call's keys in several Redis Cluster slots)
            └── SlowSubscriberError
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager

from anyio import get_cancelled_exc_class

__all__ = [
    "AccessRefused",
    "AuthenticationError",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerUnavailable",
    "ChannelClosed",
    "ConfigurationError",
    "ConnectionLost",
    "ConsumerCancelled",
    "CrossSlotError",
    "ConsumerTimedOut",
    "ContractError",
    "DuplicateTaskError",
    "DLQConflict",
    "EnvelopeTooLarge",
    "NotFound",
    "PreconditionFailed",
    "ProtocolError",
    "PublishBlocked",
    "PublishOutcomeUnknown",
    "PublishNacked",
    "RelaynaError",
    "ScriptError",
    "SlowSubscriberError",
    "StoreAuthenticationError",
    "StoreConnectionError",
    "StoreConnectionLost",
    "StoreError",
    "ToolDenied",
    "TopologyError",
    "TransportError",
    "UnroutableError",
    "UnsupportedBackendError",
    "WorkflowConflict",
    "WorkflowContractError",
    "WorkflowError",
    "WorkflowRunNotFound",
    "sole_exception",
    "unwrap_groups",
]


class RelaynaError(Exception):
    """Base class of every relayna error."""


class ConfigurationError(RelaynaError):
    """Invalid configuration: a bad URL, an unknown scheme, conflicting options."""


class UnsupportedBackendError(ConfigurationError):
    """An adapter was selected under an async backend it cannot run on."""


class ContractError(RelaynaError):
    """A message or identifier violates the wire contract.

    ``errors`` lists ``(path, message)`` pairs with readable paths such as
    ``"tasks[2].task_id"``. ``reason`` is a short machine-readable code used
    for dead-letter reasons and metrics (``schema``, ``invalid_json``,
    ``too_large``, ``decode_error``, ``invalid_header`` ...).
    """

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[tuple[str, str]] = (),
        reason: str = "schema",
    ) -> None:
        self.errors: list[tuple[str, str]] = list(errors)
        self.reason = reason
        if self.errors:
            details = "; ".join(f"{path or '<root>'}: {msg}" for path, msg in self.errors)
            message = f"{message} ({details})"
        super().__init__(message)

    @property
    def fields(self) -> list[str]:
        return [path for path, _ in self.errors]


class EnvelopeTooLarge(ContractError):
    """A body exceeds the configured size limit (checked before decoding)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"body of {size} bytes exceeds the limit of {limit} bytes",
            errors=[("body", "too large")],
            reason="too_large",
        )


class WorkflowContractError(ContractError):
    """A workflow publish or consume breaks the stage contract."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        stage: str | None = None,
        source: str | None = None,
        target: str | None = None,
        action: str | None = None,
    ) -> None:
        self.stage = stage
        self.source = source
        self.target = target
        self.action = action
        super().__init__(message, reason=reason)


class TopologyError(RelaynaError):
    """A topology is inconsistent (duplicate queues, unknown stages, conflicting arguments)."""

    def __init__(self, message: str, *, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems) or [message]
        super().__init__(message)


class DuplicateTaskError(RelaynaError):
    """A task id that already exists was published with ``if_exists="error"``.

    Nothing was published. ``task_id`` is the id.
    """

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"task_id {task_id!r} already exists (it was published, or has statuses); "
            "nothing was published"
        )


class DLQConflict(RelaynaError):
    """A DLQ operation refused because of the record's state (HTTP 409).

    ``code`` is machine-readable: ``already_replayed``, ``in_progress``,
    ``unconfirmed_republish``, ``payload_unavailable``, ``source_unknown``,
    ``manual_retry_not_allowed``, ``manual_retry_payload_unavailable``,
    ``already_retried``.
    """

    def __init__(self, message: str, *, code: str, dlq_id: str) -> None:
        self.code = code
        self.dlq_id = dlq_id
        super().__init__(message)


class ToolDenied(RelaynaError):
    """An operation refused to its caller: it is disabled, or the caller's
    credential is missing or wrong (the MCP server's operational tools)."""


class WorkflowError(RelaynaError):
    """A request about a workflow run that cannot be carried out."""

    def __init__(self, message: str, *, task_id: str | None = None, stage: str | None = None):
        self.task_id = task_id
        self.stage = stage
        super().__init__(message)


class WorkflowRunNotFound(WorkflowError):
    """No run state exists for the task (never started, or expired)."""


class WorkflowConflict(WorkflowError):
    """The run's state forbids it (``code``: ``stage_running``, ``run_completed``,
    ``nothing_to_replay``, ``nothing_to_resume``, ``join_completed``,
    ``run_cancelled``, ``run_ended``; ``status``: how an ended run ended)."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        task_id: str | None = None,
        stage: str | None = None,
        status: str | None = None,
    ) -> None:
        self.code = code
        self.status = status
        super().__init__(message, task_id=task_id, stage=stage)


class TransportError(RelaynaError):
    """A broker or store failure. ``url`` is always password-redacted."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(f"{message} [{url}]" if url else message)


class BrokerError(TransportError):
    """A failure talking to the message broker.

    ``reply_code`` / ``reply_text``: the broker's AMQP reply when it sent one
    (a closed connection or channel, a returned publish), else None.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        reply_code: int | None = None,
        reply_text: str | None = None,
    ) -> None:
        self.reply_code = reply_code
        self.reply_text = reply_text
        super().__init__(message, url=url)


class BrokerConnectionError(BrokerError):
    """The connection could not be established (refused, DNS, TLS, handshake)."""


class AuthenticationError(BrokerConnectionError):
    """The broker refused the credentials (ACCESS_REFUSED during the handshake).

    Not worth retrying: supervisors stop instead of hammering the broker.
    """


class ConnectionLost(BrokerConnectionError):
    """An established connection closed: by the server (with reply code/text),
    by a missed heartbeat, or by the network."""


class PublishOutcomeUnknown(ConnectionLost):
    """The connection died while a publish waited for its confirm: the broker
    may or may not have taken the message.

    Raised by a failing-over broker (:func:`relayna.transport.open_failover_broker`)
    instead of republishing on the next node: only the caller knows whether
    a second copy is harmless (a cancel is; a task publish may not be).
    """


class BrokerUnavailable(BrokerConnectionError):
    """No broker node answered within the caller's bound
    (:func:`relayna.transport.open_failover_broker`'s ``unavailable_timeout``).

    The operation was not attempted: nothing was sent.
    """


class ChannelClosed(BrokerError):
    """The server closed a channel. The connection stays usable."""


class PreconditionFailed(ChannelClosed):
    """406 PRECONDITION_FAILED, e.g. a redeclare with other arguments."""


class ConsumerTimedOut(PreconditionFailed):
    """The broker closed a consumer's channel because one of its deliveries stayed
    unacknowledged longer than the queue's consumer timeout (RabbitMQ's
    ``consumer_timeout`` setting, or ``x-consumer-timeout``).

    The broker has already requeued every unacknowledged delivery of that
    channel: they will be redelivered (``redelivered=True``), and acking them
    on the closed channel is no longer possible.
    """


class NotFound(ChannelClosed):
    """404 NOT_FOUND, e.g. publishing to a missing exchange."""


class AccessRefused(ChannelClosed):
    """403 ACCESS_REFUSED on a channel operation."""


class ProtocolError(BrokerError):
    """The peer sent bytes that are not valid AMQP (or frames over frame-max)."""


class UnroutableError(BrokerError):
    """A ``mandatory`` publish reached no queue (``basic.return``)."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        exchange: str = "",
        routing_key: str = "",
        reply_code: int | None = None,
        reply_text: str | None = None,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        super().__init__(message, url=url, reply_code=reply_code, reply_text=reply_text)


class PublishNacked(BrokerError):
    """The broker answered a publish with ``basic.nack`` (internal error)."""


class PublishBlocked(BrokerError):
    """The connection stayed ``connection.blocked`` past the caller's deadline."""


class ConsumerCancelled(BrokerError):
    """The server cancelled a consumer (queue deleted, consumer timeout...)."""

    def __init__(self, message: str, *, url: str | None = None, queue: str = "") -> None:
        self.queue = queue
        super().__init__(message, url=url)


class StoreError(TransportError):
    """A failure talking to the key-value store."""


class StoreConnectionError(StoreError):
    """The store could not be reached (refused, DNS, TLS)."""


class StoreAuthenticationError(StoreConnectionError):
    """The store refused the password."""


class StoreConnectionLost(StoreConnectionError):
    """An established store connection closed mid-command."""


class ScriptError(StoreError):
    """A server-side script failed."""


class CrossSlotError(StoreError):
    """The keys of one atomic call hash to different Redis Cluster slots
    (raised before anything is sent); ``keys`` names them."""

    def __init__(self, message: str, *, url: str | None = None, keys: tuple[str, ...] = ()) -> None:
        self.keys = keys
        super().__init__(message, url=url)


class SlowSubscriberError(StoreError):
    """A pubsub subscriber fell behind its bounded buffer and was dropped."""


# -- exception groups stop at relayna's public boundaries --------------------------
#
# Task groups wrap even a lone error in an exception group. relayna's public
# context managers (brokers, stores, pipelines, consumers) promise plain typed
# errors, so each boundary re-raises a group holding one real error as that
# error. Cancellation leaves do not count: they are the siblings the task group
# cancelled because of the real error.


def sole_exception(
    group: BaseExceptionGroup[BaseException],
    real: Callable[[BaseException], bool] | None = None,
) -> BaseException | None:
    """The only real leaf of a (possibly nested) group, else ``None``.

    One exception object raised by several tasks counts once: a lost AMQP
    connection fails every channel with the same ``ConnectionLost``, and two
    tasks of one consumer (its deliveries and its control listener) may both
    raise it before either is cancelled.

    ``real`` tells a real error from a cancellation; the default (in a running
    event loop) rejects the backend's cancellation class. Outside a loop, pass
    e.g. ``lambda e: isinstance(e, Exception)`` (both backends' cancellations
    are ``BaseException`` only).
    """
    if real is None:
        cancelled = get_cancelled_exc_class()

        def real(exc: BaseException) -> bool:
            return not isinstance(exc, cancelled)

    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        elif real(exc) and not any(exc is seen for seen in leaves):
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else None


@contextmanager
def unwrap_groups() -> Generator[None, None, None]:
    """Re-raise a group holding exactly one real error as that error (else the group)."""
    try:
        yield
    except BaseExceptionGroup as group:
        sole = sole_exception(group)
        if sole is None:
            raise
        raise sole from None

"""Retry configuration and the pure settle decision.

Theory of operation
-------------------
Every delivery ends in exactly one :data:`Decision`. The runtime turns a
decision into effects and then exactly one settlement:

============  ==========================================  ==================
decision      effects (each confirmed before settling)    settlement
============  ==========================================  ==================
Ack           lifecycle status "completed"                ack
Retry         copy to ``<queue>.retry`` with attempt + 1   ack
DeadLetter    copy to ``<queue>.dlq`` + DLQ record         ack
Reject        status "failed"                              reject(requeue=False)
Requeue       lifecycle status "failed"                    nack(requeue=True)
Stop          status "cancelled" / "expired" (or none)     ack
============  ==========================================  ==================

:func:`decide` is data in, data out: it never looks at a broker. Attempts are
counted from 0 (the first delivery); ``max_retries=2`` therefore allows three
attempts, and the retry copy always carries ``attempt + 1`` so attempts never
go down. Poison (undecodable, invalid, unroutable) messages always dead-letter
without calling the handler. A failure that is not the handler's own verdict
on the task (``Failed.never_drop``: a manual retry nobody could take) also
dead-letters when there is no retry policy: a reject would let RabbitMQ drop
the only copy.

A cancelled task (:class:`Cancelled`) stops: never retried, never
dead-lettered. An expired one (:class:`Expired`) stops too, unless
``on_expiry=ExpiryAction.DEAD_LETTER`` keeps a DLQ copy for a replay. A retry
that could only run after the task's deadline (``remaining_ms`` no larger
than the delay) is not scheduled: the task stops ``expired`` now.
"""

from __future__ import annotations

import enum
from typing import Any, TypeAlias

import attrs

__all__ = [
    "Ack",
    "Cancelled",
    "DeadLetter",
    "Decision",
    "ExpiryAction",
    "Expired",
    "FailureAction",
    "Failed",
    "Outcome",
    "Poison",
    "Reject",
    "Requeue",
    "Retry",
    "RetryPolicy",
    "Stop",
    "Succeeded",
    "decide",
    "terminal_status",
]


class FailureAction(enum.Enum):
    """What happens to a failed task when there is no :class:`RetryPolicy`."""

    REJECT = "reject"
    REQUEUE = "requeue"


class ExpiryAction(enum.Enum):
    """What happens to a task whose deadline passed (before or while it ran)."""

    #: status ``expired``, acked: nothing is kept (default).
    EXPIRE = "expire"
    #: a copy in ``<queue>.dlq`` (reason ``deadline_exceeded``) and status ``failed``.
    DEAD_LETTER = "dead_letter"


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if type(value) is not int or value < 0:
        raise ValueError(f"{attribute.name} must be an integer >= 0, got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"{attribute.name} must be an integer >= 1, got {value!r}")


def _optional_non_negative(
    _inst: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None:
        _non_negative(_inst, attribute, value)


def _suffix(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if type(value) is not str or not value or any(c.isspace() for c in value):
        raise ValueError(f"{attribute.name} must be a non-empty suffix without spaces")


@attrs.frozen
class RetryPolicy:
    """Broker-delayed retries through ``<queue><retry_queue_suffix>``.

    Attributes:
        max_retries: retries after the first attempt (``2`` = three attempts).
        delay_ms: time a retry copy waits in the retry queue (queue-level TTL).
        retry_priority_step: when set, retry copies get AMQP priority
            ``attempt * step`` (capped at 255).
    """

    max_retries: int = attrs.field(default=3, validator=_non_negative)
    delay_ms: int = attrs.field(default=30_000, validator=_positive)
    retry_queue_suffix: str = attrs.field(default=".retry", validator=_suffix)
    dead_letter_queue_suffix: str = attrs.field(default=".dlq", validator=_suffix)
    retry_priority_step: int | None = attrs.field(default=None, validator=_optional_non_negative)

    def retry_queue(self, source_queue: str) -> str:
        return source_queue + self.retry_queue_suffix

    def dead_letter_queue(self, source_queue: str) -> str:
        return source_queue + self.dead_letter_queue_suffix

    def retry_priority(self, attempt: int) -> int | None:
        if self.retry_priority_step is None:
            return None
        return min(255, attempt * self.retry_priority_step)


# -- outcomes -----------------------------------------------------------------


@attrs.frozen
class Succeeded:
    """The handler returned (or asked for a manual retry that was published).

    ``result`` is what the handler returned, as a JSON object (a non-dict
    value ``v`` is carried as ``{"value": v}``); it becomes the ``result`` of
    the ``completed`` lifecycle status (``None``: no result).
    """

    result: Any = None


@attrs.frozen
class Failed:
    """The handler raised (or its hand-off could not be published).

    ``exception``: what it raised, for the log's traceback (and
    ``meta.traceback`` when the statuses ask for it). ``never_drop``: without
    a retry policy, dead-letter instead of rejecting or requeueing.
    """

    exception_type: str
    exception_message: str
    reason: str = "handler_error"
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)
    never_drop: bool = False


@attrs.frozen
class Poison:
    """The message cannot be handled at all (bad body, envelope or headers)."""

    reason: str
    detail: str = ""


@attrs.frozen
class Cancelled:
    """The task was cancelled (before it started, or its handler's scope was)."""

    reason: str
    #: ``before_start`` or ``running``.
    phase: str = "running"


@attrs.frozen
class Expired:
    """The task's deadline passed (``phase``: ``before_start`` or ``running``)."""

    phase: str = "running"


Outcome: TypeAlias = Succeeded | Failed | Poison | Cancelled | Expired


# -- decisions ----------------------------------------------------------------


@attrs.frozen
class Ack:
    pass


@attrs.frozen
class Retry:
    attempt: int
    delay_ms: int
    reason: str
    exception_type: str
    exception_message: str


@attrs.frozen
class DeadLetter:
    reason: str
    attempt: int
    exception_type: str | None = None
    exception_message: str | None = None


@attrs.frozen
class Reject:
    reason: str
    exception_message: str | None = None
    exception_type: str | None = None


@attrs.frozen
class Requeue:
    reason: str
    exception_message: str | None = None
    exception_type: str | None = None


@attrs.frozen
class Stop:
    """End the task without running (more of) it: publish ``status``, then ack.

    ``status`` ``None``: ack only (another delivery already reported the end).
    """

    status: str | None
    reason: str
    message: str | None = None
    phase: str = "running"


Decision: TypeAlias = Ack | Retry | DeadLetter | Reject | Requeue | Stop


def terminal_status(decision: Decision) -> str:
    """The terminal status a decision claims in the store (``""``: it ends nothing).

    A retry or a requeue leaves the task alive; every other decision ends it.
    """
    if isinstance(decision, Ack):
        return "completed"
    if isinstance(decision, Stop):
        return decision.status or ""
    if isinstance(decision, Retry | Requeue):
        return ""
    return "failed"


def decide(
    outcome: Outcome,
    policy: RetryPolicy | None,
    attempt: int,
    *,
    failure_action: FailureAction = FailureAction.REJECT,
    on_expiry: ExpiryAction = ExpiryAction.EXPIRE,
    remaining_ms: float | None = None,
) -> Decision:
    """Decide how to settle a delivery.

    Args:
        outcome: what happened to the message.
        policy: the retry policy, or None for "no broker retries".
        attempt: the attempt this delivery was (0 = first delivery), read from
            the attempt header; must be >= 0 (invalid headers are Poison).
        failure_action: without a policy, reject or requeue a failed task.
        on_expiry: what an :class:`Expired` outcome becomes.
        remaining_ms: time left until the task's deadline (``None``: no
            deadline); a retry whose delay is not shorter expires instead.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if isinstance(outcome, Succeeded):
        return Ack()
    if isinstance(outcome, Cancelled):
        return Stop("cancelled", "cancelled", outcome.reason, outcome.phase)
    if isinstance(outcome, Expired):
        if on_expiry is ExpiryAction.DEAD_LETTER:
            return DeadLetter(reason="deadline_exceeded", attempt=attempt)
        return Stop("expired", "deadline_exceeded", "The task's deadline passed.", outcome.phase)
    if isinstance(outcome, Poison):
        return DeadLetter(
            reason=outcome.reason, attempt=attempt, exception_message=outcome.detail or None
        )
    if policy is None and not outcome.never_drop:
        if failure_action is FailureAction.REQUEUE:
            return Requeue(
                reason=outcome.reason,
                exception_message=outcome.exception_message,
                exception_type=outcome.exception_type,
            )
        return Reject(
            reason=outcome.reason,
            exception_message=outcome.exception_message,
            exception_type=outcome.exception_type,
        )
    if policy is not None and attempt < policy.max_retries:
        if remaining_ms is not None and remaining_ms <= policy.delay_ms:
            return Stop(
                "expired",
                "deadline_before_retry",
                "The task's deadline comes before its next retry.",
            )
        return Retry(
            attempt=attempt + 1,
            delay_ms=policy.delay_ms,
            reason=outcome.reason,
            exception_type=outcome.exception_type,
            exception_message=outcome.exception_message,
        )
    return DeadLetter(
        reason=outcome.reason,
        attempt=attempt,
        exception_type=outcome.exception_type,
        exception_message=outcome.exception_message,
    )

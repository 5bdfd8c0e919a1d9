"""Re-run a component after transport failures, with exponential backoff + jitter.

Reconnection is not hidden inside the clients: a component (a consumer loop, a
status bridge ...) opens its connection inside ``run`` and :func:`supervise`
re-runs it when it fails with a retryable error::

    async with anyio.create_task_group() as tg:
        await tg.start(supervise, run_consumer)

The backoff computation is the pure function :func:`backoff_delay`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import anyio
import attrs
from anyio.abc import TaskStatus

from relayna.errors import AuthenticationError, BrokerConnectionError, ConnectionLost

__all__ = ["Backoff", "backoff_delay", "supervise"]

logger = logging.getLogger("relayna.supervise")


@attrs.frozen
class Backoff:
    """Exponential backoff: ``initial * multiplier**attempt`` capped at ``maximum``,
    then spread by ``±jitter`` (a fraction of the delay)."""

    initial: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    maximum: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1))
    jitter: float = attrs.field(
        default=0.2, validator=[attrs.validators.ge(0), attrs.validators.le(1)]
    )


def backoff_delay(policy: Backoff, attempt: int, rand: float = 0.5) -> float:
    """Delay before retry number ``attempt`` (0-based).

    ``rand`` in [0, 1) selects the point in the jitter band (0.5 = no jitter),
    so the function stays pure and testable. The result is never negative and
    never above ``maximum * (1 + jitter)``.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    try:
        base = policy.initial * policy.multiplier ** min(attempt, 1000)
    except OverflowError:
        base = policy.maximum
    base = min(base, policy.maximum)
    spread = base * policy.jitter * (2 * rand - 1)
    return max(0.0, base + spread)


async def supervise(
    run: Callable[[], Awaitable[None]],
    *,
    backoff: Backoff = Backoff(),
    retry_on: tuple[type[BaseException], ...] = (ConnectionLost, BrokerConnectionError),
    give_up_on: tuple[type[BaseException], ...] = (AuthenticationError,),
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    reset_after: float = 30.0,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``run()`` until it returns; re-run it after a retryable failure.

    Args:
        run: the component; a fresh connection should be opened inside it.
        backoff: the delay policy between attempts.
        retry_on: exception types that trigger a retry (others propagate).
        give_up_on: exception types that always propagate (checked first),
            e.g. wrong credentials: retrying would only hammer the broker.
        on_retry: called with (error, attempt, delay) before sleeping; log or count.
        reset_after: a run that lasted this long resets the attempt counter.

    Cancellation: cancelling the caller stops the current run and the backoff sleep.
    ``task_status.started()`` is called immediately (the supervisor is running).
    """
    task_status.started()
    attempt = 0
    while True:
        started = anyio.current_time()
        try:
            await run()
            return
        except give_up_on:
            raise
        except retry_on as exc:
            if anyio.current_time() - started >= reset_after:
                attempt = 0
            delay = backoff_delay(backoff, attempt, random.random())
            if on_retry is not None:
                on_retry(exc, attempt, delay)
            else:
                logger.warning("retrying in %.2fs after %r (attempt %d)", delay, exc, attempt + 1)
            attempt += 1
        await anyio.sleep(delay)

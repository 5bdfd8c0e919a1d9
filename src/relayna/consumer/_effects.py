"""What happens to a delivery whose processing failed outside the user's handler
(publishing a status or a retry, settling): a transport failure requeues it
(unless the broker already did, at its consumer timeout),
a deterministic error (e.g. an invalid status the handler built) dead-letters
it, since a requeue would loop, and publishes its ``failed`` status when the
message names a task. Each failure is counted and logged once.
"""

from __future__ import annotations

import logging

from relayna.errors import ConsumerTimedOut, RelaynaError, TransportError
from relayna.transport import Delivery

from ._decide import DeadLetter
from ._runtime import requeue_quietly
from ._settle import ConsumerStats, Settler, poison_info

__all__ = ["settle_failed_effect"]

logger = logging.getLogger("relayna.consumer")


async def settle_failed_effect(
    exc: Exception,
    settler: Settler,
    delivery: Delivery,
    *,
    stats: ConsumerStats,
    consumer_name: str,
) -> None:
    """Requeue (``TransportError``) or dead-letter (any other error) ``delivery``.

    If dead-lettering fails too, the delivery is requeued.
    """
    if isinstance(exc, ConsumerTimedOut):
        # Nothing to undo or requeue: the broker took the delivery back when it
        # closed the channel; the consumer logs why when it reconnects.
        stats.effect_errors += 1
        logger.info(
            "%s: delivery %s was not acked: the broker requeued it at its consumer timeout",
            consumer_name,
            delivery.delivery_tag,
        )
        return
    if isinstance(exc, TransportError):
        stats.effect_errors += 1
        logger.warning(
            "%s: effect failed for delivery %s (%r); requeueing",
            consumer_name,
            delivery.delivery_tag,
            exc,
        )
        await requeue_quietly(delivery, stats)
        return
    stats.effect_errors += 1
    logger.error(
        "%s: processing failed for delivery %s: %r; dead-lettering",
        consumer_name,
        delivery.delivery_tag,
        exc,
    )
    if delivery.settled:
        return
    info = poison_info(delivery, limits=settler.client.limits)
    decision = DeadLetter(
        reason="internal_error",
        attempt=0,
        exception_type=type(exc).__name__,
        exception_message=str(exc)[:1024],
    )
    try:
        await settler.settle(delivery, decision, info)
    except RelaynaError as second:
        logger.error("%s: dead-lettering failed too (%r); requeueing", consumer_name, second)
        await requeue_quietly(delivery, stats)

"""Routing in the in-memory broker (pure, synchronous): from the exchange a
message is published to, through the default exchange's queue-name rule and
alternate exchanges, to the queues it goes to. Matching one exchange's
bindings is :meth:`~._exchanges.Exchange.match`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from relayna.transport.memory_broker._exchanges import Exchange

__all__ = ["route"]

Q = TypeVar("Q")


def route(
    exchanges: Mapping[str, Exchange],
    queues: Mapping[str, Q],
    exchange: str,
    keys: list[str],
    headers: Mapping[str, Any],
) -> list[Q]:
    """The queues a message with ``keys``/``headers`` published to ``exchange`` reaches.

    No duplicates, in match order. An exchange with no match hands the message
    to its ``alternate-exchange`` (cycles end the chain); a missing exchange
    routes nowhere.
    """
    names: dict[str, None] = {}
    seen: set[str] = set()
    current: str | None = exchange
    while current is not None and current not in seen:
        seen.add(current)
        if current == "":
            names.update((key, None) for key in keys if key in queues)
            break
        record = exchanges.get(current)
        if record is None:
            break
        names.update((name, None) for name in record.match(keys, headers))
        if names:
            break
        alternate = record.spec.arguments.get("alternate-exchange")
        current = str(alternate) if alternate is not None else None
    return [queues[name] for name in names if name in queues]

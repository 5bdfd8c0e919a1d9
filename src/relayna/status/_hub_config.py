"""``StatusHubConfig`` and ``HubStatistics``: how a :class:`~relayna.status.StatusHub`
consumes, and what it counts."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import attrs

from relayna.contracts import ContractAliasConfig
from relayna.transport import StreamOffset

__all__ = ["HubStatistics", "StatusHubConfig"]


def _frozen_strs(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _not_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _at_least_one(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value!r}")


@attrs.frozen
class StatusHubConfig:
    """How a :class:`StatusHub` consumes.

    Attributes:
        queue: the status queue (``topology.status_queue``).
        offset: stream offset to start from (``"last"`` as the original: a
            (re)started hub re-reads the last chunk; markers drop the
            duplicates). ``None`` for a classic/quorum status queue.
        prefetch: unsettled deliveries (bounds what the shards hold).
        sanitize_meta_keys: ``meta`` keys removed before storing.
        requeue_on_store_failure: nack-requeue instead of retrying in place
            (only meaningful for non-stream queues).
        retry_initial / retry_max: backoff bounds (seconds) for store retries
            and consumer re-opens.
        start_attempts: consume attempts before ``started`` (stream_not_found).
        aliases: payload alias config for decoding (``documentId`` always works).
        write_batch / write_concurrency: store writes go out as up to
            ``write_batch`` script calls per round trip, from
            ``write_concurrency`` shards (round trips in flight at once).
        ack_delay: seconds a lone stored event's ack waits (0: at once).
            On a stream an ack only returns prefetch credit; sending it a
            moment later lets this process's live SSE path run before
            RabbitMQ is woken (docs/status.md). Acks that pile up (a busy
            hub) go at once: a delay there cost 7-19% throughput. Unsent
            acks are harmless if the hub stops: the stream resumes after the
            stored offsets, and a classic queue's redelivery is dropped as a
            duplicate.
    """

    queue: str
    offset: StreamOffset | None = "last"
    prefetch: int = attrs.field(default=200, validator=_at_least_one)
    sanitize_meta_keys: frozenset[str] = attrs.field(
        default=frozenset({"auth_token"}), converter=_frozen_strs
    )
    requeue_on_store_failure: bool = False
    retry_initial: float = 0.1
    retry_max: float = 5.0
    start_attempts: int = attrs.field(default=20, validator=_at_least_one)
    aliases: ContractAliasConfig | None = None
    write_batch: int = attrs.field(default=128, validator=_at_least_one)
    write_concurrency: int = attrs.field(default=1, validator=_at_least_one)
    ack_delay: float = attrs.field(default=0.001, validator=_not_negative)


@attrs.define
class HubStatistics:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: Counter[str] = attrs.field(factory=Counter)
    store_failures: int = 0
    settle_failures: int = 0
    consumer_restarts: int = 0

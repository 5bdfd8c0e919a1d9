"""``StatusHubConfig`` and ``HubStatistics``: how a :class:`~relayna.status.StatusHub`
consumes, and what it counts."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import attrs

from relayna.contracts import ContractAliasConfig, is_valid_identifier
from relayna.transport import StreamOffset

__all__ = ["HubStatistics", "StatusHubConfig"]


def _frozen_strs(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _not_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def _optional_positive(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        _positive(_inst, attribute, value)


def _optional_name(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not is_valid_identifier(value):
        raise ValueError(f"{attribute.name} must be an identifier (A-Z a-z 0-9 . _ : @ / + = -)")


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
        name: the hub's name for its offset record (default: the queue
            name). Hubs of one name share the record: give replicas of one
            service the same name.
        persist_offset: keep the committed stream offset in the store
            (``{prefix}:hub:{name}:offset``) and resume from it on start, so
            events published while no hub ran are not skipped. ``offset``
            is then only the start of a hub that has no record yet. (A
            ``memory://`` broker's streams end with the process: its offsets
            are kept only in a ``memory://`` store.)
        offset_commit_interval: seconds between offset commits (one store
            round trip each, only when the offset moved). A stopping hub
            commits once more; a killed one re-reads at most this much.
        max_catch_up: seconds; a hub without a record whose ``offset`` is
            ``"first"`` or an older timestamp starts this far back instead
            (``None``: no bound).
        ack_delay: seconds a lone stored event's ack waits (0: at once).
            On a stream an ack only returns prefetch credit; sending it a
            moment later lets this process's live SSE path run before
            RabbitMQ is woken (docs/status.md). Acks that pile up (a busy
            hub) go at once: a delay there cost 7-19% throughput. Unsent
            acks are harmless if the hub stops: the stream resumes after the
            stored offsets, and a classic queue's redelivery is dropped as a
            duplicate.
        replica_acks: replicas that must hold a batch's writes before its
            deliveries are acked (``WAIT`` after the batch, on the nodes it
            wrote to). ``None``: 1 on a store that can wait (a Redis Cluster
            store, ``redis+cluster://``), 0 elsewhere. Redis replicates
            asynchronously: without it a primary's death can lose events
            already acked. A batch not replicated in time is retried (its
            deliveries stay unacked). Cost: one more round trip per batch.
        replica_wait: seconds a ``WAIT`` may take before the batch is retried.
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
    name: str | None = attrs.field(default=None, validator=_optional_name)
    persist_offset: bool = True
    offset_commit_interval: float = attrs.field(default=1.0, validator=_positive)
    max_catch_up: float | None = attrs.field(default=None, validator=_optional_positive)
    replica_acks: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    replica_wait: float = attrs.field(default=1.0, validator=_positive)

    @property
    def hub_name(self) -> str:
        """``name``, or the queue's name."""
        return self.name if self.name is not None else self.queue


@attrs.define
class HubStatistics:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: Counter[str] = attrs.field(factory=Counter)
    store_failures: int = 0
    settle_failures: int = 0
    consumer_restarts: int = 0
    resumed_from: int | None = None  # the stored offset the hub started at
    offset_commits: int = 0
    offset_commit_failures: int = 0

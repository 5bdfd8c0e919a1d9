"""The DLQ store's key layout and configuration.

::

    {prefix}:dlq:record:{dlq_id}          hash: the record (facts JSON, raw body, state)
    {prefix}:dlq:records                  zset: every record, scored by dead-letter time (ms)
    {prefix}:dlq:index:{field}:{value}    zset: the records with that field value, same scores
    {prefix}:dlq:queues                   hash: DLQ queue name -> its index key (/dlq/queues)
    {prefix}:dlq:replay-lock:{dlq_id}     string: the replay / manual-retry lock (PX)

Indexed fields: ``source`` (source queue), ``queue`` (DLQ), ``reason``,
``task``, ``service``, ``error_type``, ``worker``, ``status`` (set once), and
``state`` and ``investigation`` (moved atomically when they change). A value
that is not a plain identifier of at most 200 characters is replaced in the
key by ``~`` and a hash of it, so no value can forge another key.

With ``cluster=True`` (Redis Cluster, opt-in: it renames keys) the prefix is
the hash tag of every key (``{relayna}:dlq:records``, ...): adding a record
updates the global index and several field indexes atomically, and a listing
intersects indexes, so all of one DLQ prefix lives in **one slot**, on one
primary. That caps a DLQ prefix's memory and write rate at one node's; the DLQ
is a low-rate store (one record per dead letter), and deployments that need
more spread the load over several prefixes (one per service or team).
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

from relayna._validators import cluster_layout
from relayna.contracts import is_valid_identifier
from relayna.transport import tag_prefix

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DLQKeys", "DLQStoreConfig", "INDEXED_FIELDS", "key_value"]

#: Bodies larger than this are not kept in the record (``body_omitted="too_large"``).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

#: Record attribute -> index field name, for the fields that never change.
INDEXED_FIELDS: dict[str, str] = {
    "source_queue_name": "source",
    "queue_name": "queue",
    "reason": "reason",
    "task_id": "task",
    "service_name": "service",
    "exception_type": "error_type",
    "worker_id": "worker",
    "status": "status",
}

_MAX_RAW_VALUE = 200


def key_value(value: str) -> str:
    """``value`` as it appears in a key (see the module docstring)."""
    if len(value) <= _MAX_RAW_VALUE and is_valid_identifier(value):
        return value
    return "~" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _prefix(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value or any(ch in value for ch in " \r\n\t*?[]"):
        raise ValueError(f"{attribute.name} must be a non-empty key prefix, got {value!r}")


def _optional_positive(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or value <= 0):
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class DLQStoreConfig:
    """Where DLQ records live and for how long.

    Attributes:
        prefix: key prefix (the original's default ``relayna``).
        ttl_seconds: records (and their index entries) expire this long after
            they were dead-lettered; ``None`` keeps them until deleted.
        max_records: keep at most this many records; each ``add`` beyond it
            deletes the oldest ones (with their index entries). ``None``: no cap.
        max_body_bytes: bodies up to this size are kept (replayable); larger
            ones are recorded without the body (``payload_available=false``,
            ``body_omitted="too_large"``); the copy stays in the DLQ queue.
        lock_seconds: how long a replay or manual retry holds the record's
            lock; a process that dies mid-replay leaves it for this long.
        publish_timeout: longest wait for a replay publish's confirm; must be
            shorter than ``lock_seconds``.
        cluster: the Redis Cluster key layout (the prefix as every key's hash
            tag; module docstring).
    """

    prefix: str = attrs.field(default="relayna", validator=_prefix)
    ttl_seconds: float | None = attrs.field(default=None, validator=_optional_positive)
    max_records: int | None = attrs.field(default=None, validator=_optional_positive)
    max_body_bytes: int = attrs.field(default=DEFAULT_MAX_BODY_BYTES, validator=_positive)
    lock_seconds: float = attrs.field(default=30.0, validator=_positive)
    publish_timeout: float = attrs.field(default=10.0, validator=_positive)
    cluster: bool = attrs.field(default=False, validator=cluster_layout, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.publish_timeout >= self.lock_seconds:
            raise ValueError("publish_timeout must be shorter than lock_seconds")


@attrs.frozen
class DLQKeys:
    """Key names for one prefix (``{prefix}`` in the cluster layout: :meth:`of`)."""

    prefix: str

    @classmethod
    def of(cls, config: DLQStoreConfig) -> DLQKeys:
        """The keys of ``config``'s prefix and layout."""
        return cls(tag_prefix(config.prefix, config.cluster))

    @property
    def base(self) -> str:
        """What every key name starts with (the scripts build theirs from it)."""
        return f"{self.prefix}:dlq:"

    @property
    def records(self) -> str:
        return f"{self.prefix}:dlq:records"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:dlq:queues"

    @property
    def index_base(self) -> str:
        """Index keys are ``index_base + field + ":" + key_value(value)``."""
        return f"{self.prefix}:dlq:index:"

    @property
    def record_base(self) -> str:
        return f"{self.prefix}:dlq:record:"

    def record(self, dlq_id: str) -> str:
        return f"{self.prefix}:dlq:record:{dlq_id}"

    def lock(self, dlq_id: str) -> str:
        return f"{self.prefix}:dlq:replay-lock:{dlq_id}"

    def index(self, field: str, value: str) -> str:
        return f"{self.index_base}{field}:{key_value(value)}"

"""Key names of the Studio event store (seed 002, "Event Store"), in one place.

``{p}`` = ``RELAYNA_STUDIO_EVENT_STORE_PREFIX`` (default ``studio:events``)::

    {p}:event:{dedupe_key}                                  the event JSON
    {p}:service:{sid}:history                               dedupe keys, newest first
    {p}:task:{sid}:{tid}:history                            dedupe keys, newest first
    {p}:task:{sid}:{tid}:latest-timestamp
    {p}:service:{sid}:latest-status-timestamp
    {p}:service:{sid}:latest-observation-timestamp
    {p}:service:{sid}:latest-ingested-timestamp
    {p}:pull-cursor:{sid}                                   last pulled feed cursor
    {p}:channel:service:{sid}                               pubsub
    {p}:channel:task:{sid}:{tid}                            pubsub

Added by this Studio: ``{p}:service:{sid}:events-skipped`` (counter of feed
events a pull sync found trimmed away: reported in health, never silent).

**Cluster layout** (``cluster=True``): the service id is a hash tag wherever
it occurs, so every key and channel of one service (its events, its tasks'
histories, its latest times, its cursor) shares the service's slot and one
insert script touches one slot: ``{p}:service:{sid}:history`` becomes
``studio:events:service:{payments}:history``, ``{p}:task:{sid}:{tid}:history``
becomes ``studio:events:task:{payments}:t1:history``; an event key
``{p}:event:{dedupe_key}`` (the dedupe key starts with ``{sid}:``) becomes
``studio:events:event:{payments}:status:e1``. The tag comes before the task
id, so a task id cannot change the slot. Service ids with braces are refused
(:class:`~relayna.errors.ContractError`), as is a prefix with braces.
"""

from __future__ import annotations

import attrs

from relayna.transport import check_cluster_prefix, hash_tag

__all__ = ["EventKeys"]


@attrs.frozen
class EventKeys:
    prefix: str = "studio:events"
    cluster: bool = False

    def __attrs_post_init__(self) -> None:
        if self.cluster:
            check_cluster_prefix(self.prefix)

    def sid(self, sid: str) -> str:
        """The service id as it appears in key names: ``{sid}`` in the cluster layout.

        Raises:
            ContractError: cluster layout and ``sid`` is empty or has braces.
        """
        return hash_tag(sid) if self.cluster else sid

    def event(self, sid: str, dedupe_key: str) -> str:
        """The event's key; ``dedupe_key`` starts with ``sid + ':'`` (see ``dedupe_key``)."""
        return f"{self.prefix}:event:{self.sid(sid)}{dedupe_key[len(sid) :]}"

    def service_history(self, sid: str) -> str:
        return f"{self.prefix}:service:{self.sid(sid)}:history"

    def task_history(self, sid: str, tid: str) -> str:
        return f"{self.prefix}:task:{self.sid(sid)}:{tid}:history"

    def task_latest(self, sid: str, tid: str) -> str:
        return f"{self.prefix}:task:{self.sid(sid)}:{tid}:latest-timestamp"

    def latest_status(self, sid: str) -> str:
        return f"{self.prefix}:service:{self.sid(sid)}:latest-status-timestamp"

    def latest_observation(self, sid: str) -> str:
        return f"{self.prefix}:service:{self.sid(sid)}:latest-observation-timestamp"

    def latest_ingested(self, sid: str) -> str:
        return f"{self.prefix}:service:{self.sid(sid)}:latest-ingested-timestamp"

    def events_skipped(self, sid: str) -> str:
        return f"{self.prefix}:service:{self.sid(sid)}:events-skipped"

    def pull_cursor(self, sid: str) -> str:
        return f"{self.prefix}:pull-cursor:{self.sid(sid)}"

    def service_channel(self, sid: str) -> str:
        return f"{self.prefix}:channel:service:{self.sid(sid)}"

    def task_channel(self, sid: str, tid: str) -> str:
        return f"{self.prefix}:channel:task:{self.sid(sid)}:{tid}"

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
"""

from __future__ import annotations

import attrs

__all__ = ["EventKeys"]


@attrs.frozen
class EventKeys:
    prefix: str = "studio:events"

    def event(self, dedupe_key: str) -> str:
        return f"{self.prefix}:event:{dedupe_key}"

    def service_history(self, sid: str) -> str:
        return f"{self.prefix}:service:{sid}:history"

    def task_history(self, sid: str, tid: str) -> str:
        return f"{self.prefix}:task:{sid}:{tid}:history"

    def task_latest(self, sid: str, tid: str) -> str:
        return f"{self.prefix}:task:{sid}:{tid}:latest-timestamp"

    def latest_status(self, sid: str) -> str:
        return f"{self.prefix}:service:{sid}:latest-status-timestamp"

    def latest_observation(self, sid: str) -> str:
        return f"{self.prefix}:service:{sid}:latest-observation-timestamp"

    def latest_ingested(self, sid: str) -> str:
        return f"{self.prefix}:service:{sid}:latest-ingested-timestamp"

    def events_skipped(self, sid: str) -> str:
        return f"{self.prefix}:service:{sid}:events-skipped"

    def pull_cursor(self, sid: str) -> str:
        return f"{self.prefix}:pull-cursor:{sid}"

    def service_channel(self, sid: str) -> str:
        return f"{self.prefix}:channel:service:{sid}"

    def task_channel(self, sid: str, tid: str) -> str:
        return f"{self.prefix}:channel:task:{sid}:{tid}"

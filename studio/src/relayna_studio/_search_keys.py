"""Key names of the search index (seed 002 "Search Index"), plus this Studio's additions.

``{p}`` = ``RELAYNA_STUDIO_TASK_SEARCH_INDEX_PREFIX`` (default ``studio:search``)::

    {p}:task:doc:{document_id}          task search document (JSON)
    {p}:task:all                        set of document ids
    {p}:task:filter:{field}:{value}     set (service_id, task_id, correlation_id, status, stage)
    {p}:task:service:{service_id}       set

Added: ``{p}:task:by-last-seen`` (sorted set, score = last_seen_at in ms:
the order of results and the time range, without loading documents),
``{p}:task:filter-by-time:{field}:{value}`` (the same, per filter value: a
filtered query walks the smallest of them newest first) and
``{p}:task:expiry`` (sorted set, score = expires_at in ms: retention finds
expired documents without a scan).
"""

from __future__ import annotations

import base64

import attrs

from relayna.contracts import dumps

__all__ = ["FILTER_FIELDS", "SearchKeys", "document_id"]

FILTER_FIELDS = ("service_id", "task_id", "correlation_id", "status", "stage")


def document_id(service_id: str, task_id: str) -> str:
    """URL-safe base64 of ``{"service_id","task_id"}`` (no collision on ``:``)."""
    raw = dumps({"service_id": service_id, "task_id": task_id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@attrs.frozen
class SearchKeys:
    prefix: str = "studio:search"

    def doc(self, docid: str) -> str:
        return f"{self.prefix}:task:doc:{docid}"

    @property
    def all(self) -> str:
        return f"{self.prefix}:task:all"

    def filter(self, field: str, value: str) -> str:
        return f"{self.prefix}:task:filter:{field}:{value}"

    def service(self, service_id: str) -> str:
        return f"{self.prefix}:task:service:{service_id}"

    def filter_by_time(self, field: str, value: str) -> str:
        return f"{self.prefix}:task:filter-by-time:{field}:{value}"

    @property
    def by_last_seen(self) -> str:
        return f"{self.prefix}:task:by-last-seen"

    @property
    def expiry(self) -> str:
        return f"{self.prefix}:task:expiry"

"""Route ids: the names the route factories give their routes.

The capability document lists the ids of the routes that are *mounted* in
the app (found by walking the app's routes at request time), so it can never
advertise a route the service does not serve. Ids are the original's wire
names (``execution.graph``, ``status.history`` ...), which a control plane
gates its calls on.
"""

from __future__ import annotations

__all__ = [
    "EVENTS_FEED",
    "EXECUTION_GRAPH",
    "HEALTH_WORKERS",
    "KNOWN_ROUTE_IDS",
    "METRICS",
    "STATUS_EVENTS",
    "STATUS_HISTORY",
    "STATUS_LATEST",
]

STATUS_LATEST = "status.latest"
STATUS_EVENTS = "status.events"
STATUS_HISTORY = "status.history"
EXECUTION_GRAPH = "execution.graph"
EVENTS_FEED = "events.feed"
HEALTH_WORKERS = "health.workers"
METRICS = "metrics"

#: Every route id relayna's factories use (other packages add theirs, e.g. ``dlq.*``).
KNOWN_ROUTE_IDS: frozenset[str] = frozenset(
    {
        STATUS_LATEST,
        STATUS_EVENTS,
        STATUS_HISTORY,
        EXECUTION_GRAPH,
        EVENTS_FEED,
        HEALTH_WORKERS,
        METRICS,
    }
)

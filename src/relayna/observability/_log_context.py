"""Structured logging helpers: the task a log line belongs to.

The worker runtimes wrap each delivery in :func:`log_context`, so that
:class:`LogContextFilter` can add ``task_id``, ``correlation_id``,
``trace_id`` and ``span_id`` to every log record made while handling it
(including the user's handler's own log calls), for JSON log formatters and
log pipelines (Loki) to index. Outside a delivery the fields are ``None``.

::

    handler = logging.StreamHandler()
    handler.addFilter(LogContextFilter())
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from relayna.observability._tracing import active_trace_ids, tracing_enabled

__all__ = ["LOG_CONTEXT_FIELDS", "LogContextFilter", "current_log_context", "log_context"]

#: The attributes :class:`LogContextFilter` sets on every record.
LOG_CONTEXT_FIELDS = ("task_id", "correlation_id", "trace_id", "span_id")

_CONTEXT: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "relayna_log_context", default=(None, None)
)


@contextmanager
def log_context(*, task_id: str | None, correlation_id: str | None = None) -> Iterator[None]:
    """Log records made inside the block (in this task) belong to ``task_id``."""
    token = _CONTEXT.set((task_id, correlation_id))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_log_context() -> dict[str, str | None]:
    """The fields :class:`LogContextFilter` would add right now."""
    task_id, correlation_id = _CONTEXT.get()
    trace_id, span_id = active_trace_ids() if tracing_enabled() else (None, None)
    return {
        "task_id": task_id,
        "correlation_id": correlation_id,
        "trace_id": trace_id,
        "span_id": span_id,
    }


class LogContextFilter(logging.Filter):
    """Adds :data:`LOG_CONTEXT_FIELDS` to each record (never drops a record).

    A field the record already has (passed with ``extra=``) is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_log_context().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True

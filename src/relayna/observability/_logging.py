"""Process logging for relayna's commands: one text format, or JSON lines.

``relayna dev``, ``relayna worker`` and ``relayna serve`` all call
:func:`configure_logging` once at start, so their logs look alike and
``--log-format json`` gives one JSON object per line for a log shipper.
Library code only ever calls ``logging.getLogger("relayna.…")``; it never
configures handlers itself.
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "configure_logging"]

LogFormat = Literal["text", "json"]

#: The choices of ``--log-format``.
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

#: The text format of every relayna command.
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_TEXT_DATEFMT = "%H:%M:%S"

# Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


def _json_default(value: Any) -> str:
    return repr(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record.

    Fields: ``ts`` (UTC, ISO 8601 with microseconds), ``level``, ``logger``,
    ``message``, then every ``extra=`` attribute of the record (values that
    are not JSON become their ``repr``), and ``exc_type`` / ``exc`` (the
    formatted traceback) when the record carries an exception.
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in data:
                data[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            data["exc_type"] = record.exc_info[0].__name__
            data["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return orjson.dumps(data, default=_json_default).decode()


class _RelaynaHandler(logging.StreamHandler[IO[str]]):
    """Marks the handler :func:`configure_logging` installed (so a second call replaces it)."""


def configure_logging(
    level: str | int = "INFO",
    format: LogFormat = "text",
    *,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send the root logger's records to ``stream`` (default stderr) in ``format``.

    Calling it again replaces the handler it installed before (handlers that
    others added stay). ``httpx`` and ``hypercorn.error`` are kept at WARNING
    or above: an INFO line per request would drown a worker's log, and the
    commands say themselves once when they listen.

    Raises:
        ValueError: an unknown ``format`` or ``level``.
    """
    if format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {format!r}; choose one of {', '.join(LOG_FORMATS)}")
    if isinstance(level, str):
        name = level.upper()
        resolved = logging.getLevelName(name)
        if not isinstance(resolved, int):
            raise ValueError(f"unknown log level {level!r}")
        level = resolved
    handler = _RelaynaHandler(stream if stream is not None else sys.stderr)
    if format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, _TEXT_DATEFMT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RelaynaHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for chatty in ("httpx", "hypercorn.error"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, level))
    return handler

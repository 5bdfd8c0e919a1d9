"""``configure_logging``: the one text format of the commands, and JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from relayna.observability import JsonFormatter, configure_logging


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "hypercorn.error")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in chatty.items():
        logging.getLogger(name).setLevel(old)


def test_json_lines_carry_level_logger_message_and_extras() -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "json", stream=out)
    log = logging.getLogger("relayna.test")
    log.info("task %s done", "t-1", extra={"task_id": "t-1", "attempt": 2, "obj": object()})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("handler failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "INFO"
    assert first["logger"] == "relayna.test"
    assert first["message"] == "task t-1 done"
    assert first["task_id"] == "t-1"
    assert first["attempt"] == 2
    assert first["obj"].startswith("<object object")  # not JSON: its repr
    assert first["ts"].endswith("+00:00")
    assert second["exc_type"] == "ValueError"
    assert "Traceback" in second["exc"]
    assert "boom" in second["exc"]


def test_text_format_and_a_second_call_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", "text", stream=first)
    configure_logging("WARNING", "text", stream=second)
    log = logging.getLogger("relayna.test")
    log.info("hidden")
    log.warning("shown %d", 1)
    assert first.getvalue() == ""  # the first handler is gone, not doubled
    line = second.getvalue().strip()
    assert line.endswith("WARNING relayna.test: shown 1")
    assert len(second.getvalue().splitlines()) == 1


def test_httpx_and_hypercorn_stay_quiet_at_info() -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", stream=out)
    logging.getLogger("httpx").info("HTTP Request: GET /")
    logging.getLogger("hypercorn.error").info("Running on http://127.0.0.1:8000")
    assert out.getvalue() == ""
    logging.getLogger("hypercorn.error").warning("a real problem")
    assert "a real problem" in out.getvalue()


@pytest.mark.parametrize(("level", "fmt"), [("INFO", "xml"), ("LOUD", "text")])
def test_unknown_level_or_format_is_refused(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="unknown log"):
        configure_logging(level, fmt)  # type: ignore[arg-type]


def test_formatter_keeps_a_preformatted_exception_text() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "m", (), None)
    record.exc_text = "Traceback: earlier"
    assert json.loads(JsonFormatter().format(record))["exc"] == "Traceback: earlier"

"""Loki queries for a service's or a task's logs (pure: config + request → LogQL, answer → page).

**Query** (ANCHOR §3.7): a stream selector, labels sorted by name, every
value a Go string literal (:func:`~relayna_studio._querylang.quote`):

* every ``service_selector_labels`` pair (``=``);
* ``source_label="<source>"`` when a source is asked for (422 without a
  ``source_label``); ``level_label`` likewise for a level;
* the pod label with ``=`` or ``=~`` and the rendered ``pod_value_template``
  (in regex mode the substituted values are escaped, so only the operator's
  template is a pattern);
* the task label (``task_match_mode: label`` with a ``task_id_label``) and
  the correlation label when configured.

Then the pipeline: ``|= "<rendered task_match_template>"`` (``contains``),
``|~ "<template with the task id regex-escaped>"`` (``regex``),
``| <label>="<task id>"`` (``structured_metadata``, default label
``task_id``); a correlation id without a label and the free-text ``query``
are each a further ``|=`` filter. A value can never leave its literal, so a
task id cannot change what the query means.

**Paging without gaps or repeats.** Loki answers the newest ``limit``
entries of ``[start, end)`` (``direction=backward``); which entries of one
nanosecond it keeps when ``limit`` cuts through them follows its tie order
across streams, which is undocumented and version-dependent (label string
in 2.x, stream hash in 3.x). Studio does not depend on it: it orders
entries itself (time descending, label set, order within the stream) and
pages only through *complete* nanoseconds. ``loki:<ns>:<k>`` means "the
next entries at or before ``<ns>``, after the first ``k`` at exactly
``<ns>``"; the next request asks for ``[start, ns + 1)`` with ``limit + k +
1`` entries, and when a full answer's oldest nanosecond is reached by the
page, that nanosecond is read alone (:func:`boundary_to_complete`,
:func:`group_params`). A bare ``<ns>`` cursor (the original's) means
"strictly before ``<ns>``".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from relayna.errors import ContractError
from relayna_studio._querylang import format_ns, quote, re2_escape

__all__ = [
    "MAX_BOUNDARY_SKIP",
    "MAX_LIMIT",
    "LogCursor",
    "LogRequest",
    "build_logql",
    "loki_page",
    "loki_params",
    "parse_cursor",
    "boundary_to_complete",
    "group_params",
    "GROUP_LIMIT",
]

MAX_LIMIT = 200
#: Entries at one nanosecond a cursor may step over (Loki's own per-query
#: ceiling is 5,000 entries by default).
MAX_BOUNDARY_SKIP = 4000
#: Entries read for one nanosecond that a page boundary falls in; a
#: nanosecond with more lines than this cannot be paged exactly.
GROUP_LIMIT = MAX_BOUNDARY_SKIP + MAX_LIMIT + 1
_JSON_LINE_MAX = 65536
_TEMPLATE_VAR = re.compile(r"{([^{}]*)}")


@attrs.frozen
class LogCursor:
    """Ask for entries before ``end_ns`` (exclusive), after the first ``skip``
    entries at ``end_ns - 1`` (shown already)."""

    end_ns: int
    skip: int = 0


@attrs.frozen
class LogRequest:
    """One page request. ``start_ns``/``end_ns``: ``[start, end)``."""

    start_ns: int
    end_ns: int
    limit: int = 100
    task_id: str | None = None
    correlation_id: str | None = None
    level: str | None = None
    source: str | None = None
    pod: str | None = None
    text: str | None = None
    cursor: LogCursor | None = None


def parse_cursor(text: str) -> LogCursor:
    """``loki:<ns>:<k>`` or the original's bare ``<ns>``.

    Raises:
        ContractError: anything else, or a ``k`` above :data:`MAX_BOUNDARY_SKIP`.
    """
    problem = ContractError("invalid cursor", errors=[("before", "not a cursor of this route")])
    parts = text.split(":")
    if len(parts) == 1 and text.isdigit() and text.isascii() and len(text) <= 20:
        return LogCursor(end_ns=int(text))
    if (
        len(parts) != 3
        or parts[0] != "loki"
        or not all(p.isascii() and p.isdigit() and len(p) <= 20 for p in parts[1:])
    ):
        raise problem
    skip = int(parts[2])
    if skip > MAX_BOUNDARY_SKIP:
        raise ContractError(
            "too many log lines share one timestamp",
            errors=[("before", f"more than {MAX_BOUNDARY_SKIP} lines at one nanosecond")],
        )
    return LogCursor(end_ns=int(parts[1]) + 1, skip=skip)


def _render(template: str, values: Mapping[str, str], field: str) -> str:
    """Substitute ``{name}`` (nothing else: braces are not a format language)."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ContractError(
                f"unknown variable {{{name}}} in {field}",
                errors=[(field, f"variables are {', '.join('{' + v + '}' for v in values)}")],
            )
        return values[name]

    return _TEMPLATE_VAR.sub(sub, template)


def _missing(param: str, label: str) -> ContractError:
    return ContractError(
        f"filtering by {param} needs log_config.{label}",
        errors=[(param, f"this service's log_config has no {label}")],
    )


def build_logql(
    config: Mapping[str, Any], service_id: str, request: LogRequest, *, namespace: str = ""
) -> str:
    """The LogQL of one request (see the module docs).

    Raises:
        ContractError: a filter the config cannot express (``source`` or
            ``level`` without their label), or a template with an unknown
            variable.
    """
    matchers: list[tuple[str, str, str]] = [
        (name, "=", value) for name, value in config["service_selector_labels"].items()
    ]
    if request.source is not None:
        if not config.get("source_label"):
            raise _missing("source", "source_label")
        matchers.append((config["source_label"], "=", request.source))
    if request.level is not None:
        if not config.get("level_label"):
            raise _missing("level", "level_label")
        matchers.append((config["level_label"], "=", request.level))
    if request.pod is not None:
        regex = config.get("pod_match_mode") == "regex"
        lit = re2_escape if regex else str
        variables = {
            "pod": lit(request.pod),
            "namespace": lit(namespace),
            "service_id": lit(service_id),
        }
        value = _render(
            config.get("pod_value_template") or "{pod}", variables, "pod_value_template"
        )
        matchers.append((config.get("pod_label") or "pod", "=~" if regex else "=", value))
    mode = config.get("task_match_mode") or "label"
    pipeline: list[str] = []
    if request.task_id is not None:
        template = config.get("task_match_template") or "{task_id}"
        if mode == "label" and config.get("task_id_label"):
            matchers.append((config["task_id_label"], "=", request.task_id))
        elif mode == "regex":
            pattern = _render(
                template, {"task_id": re2_escape(request.task_id)}, "task_match_template"
            )
            pipeline.append(f"|~ {quote(pattern)}")
        elif mode == "structured_metadata":
            pipeline.append(
                f"| {config.get('task_id_label') or 'task_id'}={quote(request.task_id)}"
            )
        else:  # contains, or label mode without a label: the id as text
            text = _render(template, {"task_id": request.task_id}, "task_match_template")
            pipeline.append(f"|= {quote(text)}")
    if request.correlation_id is not None:
        if config.get("correlation_id_label"):
            matchers.append((config["correlation_id_label"], "=", request.correlation_id))
        else:
            pipeline.append(f"|= {quote(request.correlation_id)}")
    if request.text is not None:
        pipeline.append(f"|= {quote(request.text)}")
    matchers.sort(key=lambda m: (m[0], m[1], m[2]))
    selector = "{" + ", ".join(f"{n}{op}{quote(v)}" for n, op, v in matchers) + "}"
    return " ".join([selector, *pipeline])


def loki_params(logql: str, request: LogRequest) -> dict[str, str]:
    """The ``query_range`` parameters: the cursor narrows ``end`` and widens ``limit``."""
    end = request.end_ns
    skip = 0
    if request.cursor is not None:
        end = min(end, request.cursor.end_ns)
        skip = request.cursor.skip
    return {
        "query": logql,
        "limit": str(request.limit + skip + 1),
        "direction": "backward",
        "start": str(request.start_ns),
        "end": str(max(end, request.start_ns)),
    }


def _labels_key(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={quote(v)}" for k, v in sorted(labels.items())) + "}"


def _json_body(line: str) -> dict[str, Any]:
    if not line.startswith("{") or len(line) > _JSON_LINE_MAX:
        return {}
    try:
        body = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _entries(body: object) -> list[tuple[int, str, dict[str, str], str, dict[str, str]]]:
    """(ns, label key, labels, line, structured metadata) in Loki's order.

    Raises:
        ContractError: the answer is not a Loki ``streams`` result.
    """
    shape = ContractError(
        "Loki answered with an unexpected shape", errors=[("loki", "not a streams result")]
    )
    data = body.get("data") if isinstance(body, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        raise shape
    out = []
    for stream in result:
        if not isinstance(stream, dict) or not isinstance(stream.get("values"), list):
            raise shape
        raw_labels = stream.get("stream")
        labels = (
            {str(k): str(v) for k, v in raw_labels.items()} if isinstance(raw_labels, dict) else {}
        )
        key = _labels_key(labels)
        for value in stream["values"]:
            if (
                not isinstance(value, list)
                or len(value) < 2
                or not isinstance(value[0], str)
                or not value[0].isdigit()
                or not isinstance(value[1], str)
            ):
                raise shape
            meta = value[2] if len(value) > 2 and isinstance(value[2], dict) else {}
            out.append(
                (int(value[0]), key, labels, value[1], {str(k): str(v) for k, v in meta.items()})
            )
    out.sort(key=lambda e: (-e[0], e[1]))  # stable: order within a stream is kept
    return out


def _requested(request: LogRequest) -> int:
    return request.limit + (request.cursor.skip if request.cursor else 0) + 1


def _skip(request: LogRequest, entries: list[Any]) -> int:
    """How many entries at the cursor's nanosecond the page steps over."""
    skipped = 0
    if request.cursor is not None:
        boundary = request.cursor.end_ns - 1
        while (
            skipped < request.cursor.skip
            and skipped < len(entries)
            and entries[skipped][0] == boundary
        ):
            skipped += 1
    return skipped


def boundary_to_complete(request: LogRequest, body: object) -> int | None:
    """The nanosecond to read completely before :func:`loki_page` can page exactly:
    the oldest one of a full answer, when the page reaches it (Loki may have
    cut it, keeping the entries its own tie order prefers); else ``None``.

    Raises:
        ContractError: the answer is not a Loki ``streams`` result.
    """
    entries = _entries(body)
    if len(entries) < _requested(request):
        return None
    oldest = entries[-1][0]
    skipped = _skip(request, entries)
    shown = entries[skipped : skipped + request.limit]
    reached = shown[-1][0] if shown else entries[skipped - 1][0] if skipped else None
    return oldest if reached == oldest else None


def group_params(logql: str, ns: int) -> dict[str, str]:
    """The ``query_range`` parameters that read every entry of nanosecond ``ns``."""
    return {"query": logql, "limit": str(GROUP_LIMIT), "direction": "backward",
            "start": str(ns), "end": str(ns + 1)}  # fmt: skip


def loki_page(
    config: Mapping[str, Any],
    service_id: str,
    request: LogRequest,
    body: object,
    group: object = None,
) -> dict[str, Any]:
    """``{count, items[StudioLogEntry], next_cursor}`` from Loki's answer to
    :func:`loki_params` of the same request, and, when
    :func:`boundary_to_complete` named a nanosecond, Loki's answer to its
    :func:`group_params` (``group``), which replaces that nanosecond's entries.

    Raises:
        ContractError: an answer is not a Loki ``streams`` result.
    """
    entries = _entries(body)
    full = len(entries) >= _requested(request)
    if group is not None:
        whole = _entries(group)
        if whole:
            ns = whole[0][0]
            entries = [e for e in entries if e[0] != ns] + [e for e in whole if e[0] == ns]
            entries.sort(key=lambda e: -e[0])  # stable: Studio's order within ``ns`` is kept
    skipped = _skip(request, entries)
    rest = entries[skipped:]
    shown = rest[: request.limit]
    more = len(rest) > request.limit or full
    items = [_entry(config, service_id, request, *e) for e in shown]
    next_cursor = None
    if more and shown:
        last = shown[-1][0]
        at_last = sum(1 for e in shown if e[0] == last)
        if request.cursor is not None and last == request.cursor.end_ns - 1:
            at_last += skipped
        next_cursor = f"loki:{last}:{at_last}"
    return {"count": len(items), "items": items, "next_cursor": next_cursor}


def _entry(
    config: Mapping[str, Any],
    service_id: str,
    request: LogRequest,
    ns: int,
    _key: str,
    labels: dict[str, str],
    line: str,
    meta: dict[str, str],
) -> dict[str, Any]:
    body = _json_body(line)

    def pick(label_field: str, *body_keys: str) -> str | None:
        label = config.get(label_field)
        if label and labels.get(label):
            return labels[label]
        if label and meta.get(label):
            return meta[label]
        for key in body_keys:
            found = _text(body.get(key)) or _text(meta.get(key))
            if found:
                return found
        return None

    fields: dict[str, Any] = {"labels": labels, "loki_cursor": str(ns)}
    if meta:
        fields["structured_metadata"] = meta
    source_label = config.get("source_label")
    return {
        "service_id": service_id,
        "task_id": pick("task_id_label", "task_id") or request.task_id,
        "correlation_id": pick("correlation_id_label", "correlation_id"),
        "timestamp": format_ns(ns),
        "level": pick("level_label", "level", "severity", "lvl"),
        "source": (labels.get(source_label) if source_label else None) or "unknown",
        "message": line,
        "fields": fields,
    }

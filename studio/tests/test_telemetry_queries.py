"""Query construction (pure): escaping properties, every match mode, paging, OTLP shapes.

The LogQL and Go-string reader used to check the queries is the local Loki's
(``telemetry_servers``), written from Loki's grammar, not Studio's builder.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayna.errors import ContractError
from relayna_studio._loki import (
    GROUP_LIMIT,
    LogCursor,
    LogRequest,
    boundary_to_complete,
    build_logql,
    group_params,
    loki_page,
    loki_params,
    parse_cursor,
)
from relayna_studio._promql import (
    GROUPS,
    KUBERNETES_GROUPS,
    RUNTIME_GROUPS,
    MetricsRequest,
    group_query,
    ownership_filter,
    parse_matrix,
    pod_queries,
)
from relayna_studio._querylang import format_ns, parse_time_ns, quote, re2_escape
from relayna_studio._tempo import discover_trace_ids, normalize_trace, trace_url, validate_trace_id
from telemetry_servers import LocalLoki, LogQLError, _Lexer, parse_logql

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
NASTY = [
    'a"b',
    "back\\slash",
    "new\nline",
    "tab\tcr\r",
    "ünï©ødé 🚀",
    '"}|= "x',
    "`raw`",
    "\\x41",
    "",
]
TASK_LIKE = ['t"} or vector(1) #', '{task_id="x"}', "a|~.*", "x\\", "${task_id}", "}{"]


def unquote(literal: str) -> str:
    lexer = _Lexer(literal)
    value = lexer.string()
    assert lexer.pos == len(literal), "the literal must end where quote() ended it"
    return value


@given(TEXT)
def test_quote_round_trips_through_a_go_string_reader(value: str) -> None:
    assert unquote(quote(value)) == value
    assert "\n" not in quote(value)


@pytest.mark.parametrize("value", NASTY + TASK_LIKE)
def test_quote_handles_every_nasty_value(value: str) -> None:
    assert unquote(quote(value)) == value


def test_a_lone_surrogate_is_a_contract_error() -> None:
    with pytest.raises(ContractError):
        quote("a\ud800b")


@given(TEXT)
def test_re2_escape_matches_exactly_the_value(value: str) -> None:
    pattern = re.compile(re2_escape(value))
    assert pattern.fullmatch(value)
    if value:
        assert not pattern.fullmatch(value + "x")


def config(**overrides: Any) -> dict[str, Any]:
    base = {
        "provider": "loki",
        "base_url": "http://loki.test",
        "tenant_id": None,
        "service_selector_labels": {"service": "checkout", "team": "shop"},
        "source_label": "app",
        "pod_label": "pod",
        "pod_match_mode": "exact",
        "pod_value_template": "{pod}",
        "task_id_label": None,
        "correlation_id_label": None,
        "level_label": "level",
        "task_match_mode": "contains",
        "task_match_template": None,
    }
    base.update(overrides)
    return base


def req(**kw: Any) -> LogRequest:
    return LogRequest(start_ns=0, end_ns=10**19, **kw)


def selector_accepts(query: str, labels: dict[str, str]) -> bool:
    selector, _ = parse_logql(query)
    return all(fn(labels.get(name, "")) for name, fn in selector)


def lines_kept(query: str, line: str, labels: dict[str, str] | None = None) -> bool:
    _, stages = parse_logql(query)
    for stage in stages:
        if stage[0] == "line" and not stage[1](line):
            return False
        if stage[0] == "label" and not stage[2]((labels or {}).get(stage[1], "")):
            return False
    return True


def test_the_seed_examples() -> None:
    c = config(
        service_selector_labels={"service": "checker-service"}, task_match_template="{task_id}"
    )
    assert build_logql(c, "s", req()) == '{service="checker-service"}'
    assert (
        build_logql(c, "s", req(source="checker-service-api"))
        == '{app="checker-service-api", service="checker-service"}'
    )
    assert (
        build_logql(c, "s", req(task_id="checker_endjdbdgsjmaksdhdsdsdd"))
        == '{service="checker-service"} |= "checker_endjdbdgsjmaksdhdsdsdd"'
    )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(task_id=TEXT, correlation=TEXT, text=TEXT, source=TEXT, level=TEXT, pod=TEXT)
def test_no_value_can_change_the_meaning_of_a_logql_query(
    task_id: str, correlation: str, text: str, source: str, level: str, pod: str
) -> None:
    for mode in ("label", "contains", "regex", "structured_metadata"):
        c = config(task_match_mode=mode, task_id_label="task_id" if mode == "label" else None,
                   correlation_id_label="corr")  # fmt: skip
        query = build_logql(
            c, "svc", req(task_id=task_id, correlation_id=correlation, text=text, source=source,
                          level=level, pod=pod),
        )  # fmt: skip
        _selector, stages = parse_logql(query)  # always one valid query
        labels = {"service": "checkout", "team": "shop", "app": source, "level": level, "pod": pod,
                  "corr": correlation}  # fmt: skip
        if mode == "label":
            labels["task_id"] = task_id
        assert selector_accepts(query, labels)
        for key in ("app", "level", "pod", "corr"):
            assert not selector_accepts(query, {**labels, key: labels[key] + "\x01"})
        line = f"{task_id} {text}"
        meta = {"task_id": task_id}
        assert lines_kept(query, line, {**labels, **meta})
        if mode == "label":
            assert not selector_accepts(query, {**labels, "task_id": task_id + "\x01"})
        elif mode == "structured_metadata":
            assert not lines_kept(query, line, {**labels, "task_id": task_id + "\x01"})
        elif task_id and task_id not in text:
            # a near miss: the id with its last character changed (never to itself)
            other = "\x02" if task_id[-1] == "\x01" else "\x01"
            near_miss = text + " " + task_id[:-1] + other
            if task_id not in near_miss:  # e.g. text "ab", id "b": the miss can still hold it
                assert not lines_kept(query, near_miss, labels)
        assert len(stages) == (0 if mode == "label" else 1) + 1  # the task stage and the text


@pytest.mark.parametrize("task_id", TASK_LIKE + NASTY[:-1])
def test_task_ids_that_look_like_logql(task_id: str) -> None:
    for mode in ("contains", "regex", "label", "structured_metadata"):
        c = config(task_match_mode=mode, task_id_label="tid" if mode != "contains" else None)
        query = build_logql(c, "svc", req(task_id=task_id))
        selector, _stages = parse_logql(query)
        assert sorted(n for n, _ in selector) == sorted(
            ["service", "team"] + (["tid"] if mode == "label" else [])
        )


def test_templates_and_regex_pods() -> None:
    c = config(task_match_mode="regex", task_match_template='"task_id":"{task_id}"',
               pod_match_mode="regex", pod_value_template="{service_id}-{pod}-.*")  # fmt: skip
    query = build_logql(c, "svc.x", req(task_id="a.b", pod="p+1"))
    assert lines_kept(query, '{"task_id":"a.b","x":1}')
    assert not lines_kept(query, '{"task_id":"aXb"}')
    assert selector_accepts(query, {"service": "checkout", "team": "shop", "pod": "svc.x-p+1-7f9c"})
    assert not selector_accepts(
        query, {"service": "checkout", "team": "shop", "pod": "svcXx-p+1-7f9c"}
    )
    with pytest.raises(ContractError):
        build_logql(config(pod_value_template="{node}"), "s", req(pod="p"))
    with pytest.raises(ContractError):
        build_logql(config(source_label=None), "s", req(source="api"))
    with pytest.raises(ContractError):
        build_logql(config(level_label=None), "s", req(level="error"))


def test_structured_metadata_and_label_modes() -> None:
    sm = build_logql(config(task_match_mode="structured_metadata"), "s", req(task_id="t-1"))
    assert sm == '{service="checkout", team="shop"} | task_id="t-1"'
    label = build_logql(
        config(task_match_mode="label", task_id_label="task"), "s", req(task_id="t-1")
    )
    assert label == '{service="checkout", task="t-1", team="shop"}'
    no_label = build_logql(config(task_match_mode="label"), "s", req(task_id="t-1"))
    assert no_label.endswith('|= "t-1"')  # label mode without a label: the id as text


def test_cursors() -> None:
    assert parse_cursor("1700000000000000000") == LogCursor(end_ns=1700000000000000000)
    assert parse_cursor("loki:17:3") == LogCursor(end_ns=18, skip=3)
    for bad in ("loki:1", "loki:a:1", "x:1:2", "-5", "loki:1:99999999", "loki:1:2:3", "1" * 30):
        with pytest.raises(ContractError):
            parse_cursor(bad)
    params = loki_params("{a=\"b\"}", LogRequest(start_ns=5, end_ns=100, limit=10,
                                                 cursor=LogCursor(end_ns=50, skip=2)))  # fmt: skip
    assert params == {"query": '{a="b"}', "limit": "13", "direction": "backward", "start": "5",
                      "end": "50"}  # fmt: skip


@pytest.mark.parametrize("tie_order", ["labels", "hash"])
@settings(max_examples=120, deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.integers(1, 6), st.sampled_from(["a", "b", "c", "d"]), st.booleans()),
        max_size=60,
    ),
    limits=st.lists(st.integers(1, 7), min_size=1, max_size=5),
)
def test_paging_never_skips_or_repeats_equal_timestamps(
    tie_order: str, entries: list[tuple[int, str, bool]], limits: list[int]
) -> None:
    """Whatever order Loki gives entries of one nanosecond across streams (the label
    string, or a hash unrelated to it), every line comes once, in Studio's order."""
    loki = LocalLoki()
    loki.tie_order = tie_order
    c = config(task_match_mode="contains")
    for i, (ts, stream, noise) in enumerate(entries):
        line = f"line-{i}" + (" noise" if noise else "")
        loki.push({"service": "checkout", "team": "shop", "stream": stream}, ts, line)
    expected = loki.select('{service="checkout"}', 0, 100, 10_000, "backward", "")
    want = sorted(
        ((int(v[0]), s["stream"]["stream"], v[1]) for s in expected for v in s["values"]),
        key=lambda e: (-e[0], e[1], -int(e[2].split("-")[1].split()[0])),
    )

    def ask(params: dict[str, str]) -> dict[str, Any]:  # what fetch_logs does over HTTP
        answer = loki.select(params["query"], int(params["start"]), int(params["end"]),
                             int(params["limit"]), "backward", "")  # fmt: skip
        return {"data": {"resultType": "streams", "result": answer}}

    seen: list[tuple[int, str, str]] = []
    cursor = None
    for page_number in range(200):
        limit = limits[page_number % len(limits)]
        request = LogRequest(start_ns=0, end_ns=100, limit=limit,
                             cursor=parse_cursor(cursor) if cursor else None)  # fmt: skip
        params = loki_params('{service="checkout"}', request)
        body = ask(params)
        ns = boundary_to_complete(request, body)
        group = None if ns is None else ask(group_params(params["query"], ns))
        page = loki_page(c, "svc", request, body, group)
        seen += [(parse_time_ns(i["timestamp"], "t"), i["fields"]["labels"]["stream"], i["message"])
                 for i in page["items"]]  # fmt: skip
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == want


def test_a_nanosecond_is_read_whole_only_when_a_full_answer_cuts_it() -> None:
    def body(*stamps: int) -> dict[str, Any]:
        values = [[str(ns), f"l{i}"] for i, ns in enumerate(stamps)]
        return {"data": {"result": [{"stream": {"s": "a"}, "values": values}]}}

    request = LogRequest(start_ns=0, end_ns=100, limit=2)  # asks for 3
    assert boundary_to_complete(request, body(9, 8)) is None  # not full: nothing was cut
    assert boundary_to_complete(request, body(9, 8, 7)) is None  # the page ends before 7
    assert boundary_to_complete(request, body(9, 7, 7)) == 7  # the page ends inside 7
    after = LogRequest(start_ns=0, end_ns=100, limit=2, cursor=LogCursor(end_ns=8, skip=3))
    assert boundary_to_complete(after, body(7, 7, 7, 7, 7, 7)) == 7  # all one nanosecond
    assert group_params("{s=\"a\"}", 7) == {"query": "{s=\"a\"}", "limit": str(GROUP_LIMIT),
                                             "direction": "backward", "start": "7", "end": "8"}  # fmt: skip


def test_log_entries_keep_ansi_and_read_json_bodies() -> None:
    body = {"data": {"resultType": "streams", "result": [
        {"stream": {"service": "checkout", "app": "worker", "level": "warn"},
         "values": [["1714550400123456789", '{"task_id":"t-9","correlation_id":"c-1","msg":"x"}'],
                    ["1714550400000000000", "\x1b[31mred\x1b[0m plain", {"trace_id": "ab" * 16}]]},
    ]}}  # fmt: skip
    page = loki_page(config(), "svc", req(limit=10), body)
    first, second = page["items"]
    assert first["timestamp"] == "2024-05-01T08:00:00.123456789Z"
    assert (first["task_id"], first["correlation_id"], first["level"], first["source"]) == (
        "t-9", "c-1", "warn", "worker",
    )  # fmt: skip
    assert second["message"] == "\x1b[31mred\x1b[0m plain"
    assert second["fields"]["structured_metadata"] == {"trace_id": "ab" * 16}
    assert page["next_cursor"] is None
    unknown = loki_page(config(source_label=None), "svc", req(limit=10), body)
    assert {i["source"] for i in unknown["items"]} == {"unknown"}
    for garbage in (
        {},
        {"data": {"result": [{"values": [["x", "y"]]}]}},
        [1],
        {"data": {"result": 5}},
    ):
        with pytest.raises(ContractError):
            loki_page(config(), "svc", req(), garbage)


# -- PromQL --------------------------------------------------------------------------------


def metrics_config(**overrides: Any) -> dict[str, Any]:
    base = {
        "provider": "prometheus",
        "base_url": "http://prom.test",
        "namespace": "shop",
        "service_selector_labels": {"service": "checkout", "app.kubernetes.io/part-of": "shop"},
        "runtime_service_label_value": None,
        "namespace_label": "namespace",
        "pod_label": "pod",
        "container_label": "container",
        "step_seconds": 30,
        "task_window_padding_seconds": 120,
    }
    base.update(overrides)
    return base


def literals(promql: str) -> list[str]:
    """Every string literal of a PromQL text, in order (a Go-string reader)."""
    out = []
    lexer = _Lexer(promql)
    while True:
        nxt = promql.find('"', lexer.pos)
        if nxt < 0:
            return out
        lexer.pos = nxt
        out.append(lexer.string())


def test_there_are_22_groups_with_units() -> None:
    assert len(GROUPS) == 22
    assert len(KUBERNETES_GROUPS) == 12
    assert len(RUNTIME_GROUPS) == 10
    units = {g.unit for g in GROUPS.values()}
    assert units <= {"cores", "bytes", "bytes_per_second", "count", "per_second", "seconds",
                     "unix_seconds", "state"}  # fmt: skip


def test_the_ownership_join() -> None:
    owned = ownership_filter(metrics_config())
    assert owned.count("kube_pod_labels{") == 20
    assert 'label_app_kubernetes_io_part_of_conflict9="shop"' in owned
    assert 'label_service="checkout"' in owned
    assert 'label_service_conflict1="checkout"' in owned
    query = group_query(metrics_config(), "svc", "memory_usage", MetricsRequest(0, 60, 30, ()))
    assert query.startswith("sum (container_memory_working_set_bytes{")
    assert "* on(namespace, pod) group_left() max by (namespace, pod) (" in query
    split = group_query(
        metrics_config(), "svc", "pod_phase", MetricsRequest(0, 60, 30, (), split_by_pod=True)
    )
    assert split.startswith("sum by (phase, pod) (kube_pod_status_phase{")
    labels, phase = pod_queries(metrics_config())
    assert labels.startswith("topk by (namespace, pod) (1, ")
    assert phase.startswith('kube_pod_status_phase{namespace="shop"} == 1 and on(namespace, pod)')


def test_runtime_groups_select_the_runtime_service() -> None:
    r = MetricsRequest(0, 60, 30, ())
    assert 'service="checkout"' in group_query(metrics_config(), "svc", "tasks_started_rate", r)
    cfg = metrics_config(runtime_service_label_value="relayna")
    assert literals(group_query(cfg, "svc", "active_tasks", r)) == ["relayna"]
    p95 = group_query(cfg, "svc", "task_duration_p95", r)
    assert p95.startswith(
        "histogram_quantile(0.95, sum by (le) (rate(relayna_handler_duration_seconds_bucket"
    )
    no_service = metrics_config(service_selector_labels={"team": "x"})
    assert literals(group_query(no_service, "svc-id", "active_tasks", r)) == ["svc-id"]
    with pytest.raises(ContractError):
        group_query(cfg, "svc", "nope", r)


def skeleton(query: str) -> str:
    """The query with every string literal replaced by ``""`` (its structure)."""
    out, lexer, last = [], _Lexer(query), 0
    while True:
        nxt = query.find('"', lexer.pos)
        if nxt < 0:
            return "".join(out) + query[last:]
        out.append(query[last:nxt] + '""')
        lexer.pos = nxt
        lexer.string()
        last = lexer.pos


@settings(max_examples=150)
@given(value=TEXT.filter(bool), pod=TEXT, namespace=TEXT.filter(bool))
def test_no_value_can_change_the_meaning_of_a_promql_query(
    value: str, pod: str, namespace: str
) -> None:
    def build(v: str, p: str, ns: str, group: str) -> str:
        cfg = metrics_config(namespace=ns, service_selector_labels={"service": v},
                             runtime_service_label_value=v)  # fmt: skip
        return group_query(cfg, "svc", group, MetricsRequest(0, 60, 30, (), pod=p))

    for group in GROUPS:
        query = build(value, pod, namespace, group)
        assert skeleton(query) == skeleton(build("v", "p", "ns", group))
        structural = {"", "POD", "cpu", "memory", "OOMKilled", "true"}
        assert set(literals(query)) - structural <= {value, pod, namespace}
        if GROUPS[group].kind == "k8s":
            assert literals(query).count(value) >= 10  # the label and its nine conflict names


@settings(max_examples=100)
@given(task_id=TEXT, text=TEXT, pod=TEXT)
def test_logql_structure_does_not_depend_on_values(task_id: str, text: str, pod: str) -> None:
    for mode in ("label", "contains", "regex", "structured_metadata"):
        c = config(task_match_mode=mode, task_id_label="tid")
        assert skeleton(build_logql(c, "s", req(task_id=task_id, text=text, pod=pod))) == skeleton(
            build_logql(c, "s", req(task_id="t", text="x", pod="p"))
        )


def test_matrix_answers() -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"pod": "b"}, "values": [[1714550400, "1.5"], [1714550430.5, "NaN"]]},
        {"metric": {"pod": "a"}, "values": [[1714550400, "+Inf"]]},
    ]}}  # fmt: skip
    series = parse_matrix(body, "memory_usage")
    assert [s["labels"]["pod"] for s in series] == ["a", "b"]
    assert series[1]["points"] == [
        {"timestamp": "2024-05-01T08:00:00Z", "value": 1.5},
        {"timestamp": "2024-05-01T08:00:30.5Z", "value": None},
    ]
    assert series[0]["points"][0]["value"] is None
    assert series[0]["unit"] == "bytes"
    for garbage in ({}, {"data": {"resultType": "vector", "result": []}},
                    {"data": {"resultType": "matrix", "result": [{"metric": {}, "values": [["x", "1"]]}]}}):  # fmt: skip
        with pytest.raises(ContractError):
            parse_matrix(garbage, "memory_usage")


# -- Tempo ---------------------------------------------------------------------------------

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def otlp(shape: str) -> dict[str, Any]:
    hex_ids = shape == "resourceSpans"
    span = {
        "traceId": TRACE if hex_ids else _b64(TRACE),
        "spanId": SPAN if hex_ids else _b64(SPAN),
        "parentSpanId": "",
        "name": "relayna.consumer.task_message",
        "kind": "SPAN_KIND_CONSUMER" if shape != "batches" else 5,
        "startTimeUnixNano": "1714550400000000000",
        "endTimeUnixNano": 1714550400250000000,
        "attributes": [{"key": "relayna.task_id", "value": {"stringValue": "t-1"}},
                       {"key": "relayna.retry_attempt", "value": {"intValue": "2"}},
                       {"key": "list", "value": {"arrayValue": {"values": [{"boolValue": True}]}}}],
        "status": {"code": 2 if shape == "batches" else "STATUS_CODE_ERROR", "message": "boom"},
    }  # fmt: skip
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]}
    if shape == "batches":
        return {
            "batches": [{"resource": resource, "instrumentationLibrarySpans": [{"spans": [span]}]}]
        }
    if shape == "resourceSpans":
        return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}
    snake = {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): v for k, v in span.items()}
    return {"resource_spans": [{"resource": resource, "scope_spans": [{"spans": [snake]}]}]}


def test_all_three_otlp_shapes_normalise_alike() -> None:
    results = [
        normalize_trace(otlp(shape)) for shape in ("batches", "resourceSpans", "resource_spans")
    ]
    assert results[0] == results[1] == results[2]
    (span,), warnings = results[0]
    assert warnings == []
    assert span["trace_id"] == TRACE
    assert span["span_id"] == SPAN
    assert span["parent_span_id"] is None
    assert span["kind"] == "consumer"
    assert span["status"] == "error"
    assert span["status_message"] == "boom"
    assert span["duration_ms"] == 250.0
    assert span["start_time"] == "2024-05-01T08:00:00Z"
    assert span["service_name"] == "billing"
    assert span["attributes"] == {
        "relayna.task_id": "t-1",
        "relayna.retry_attempt": 2,
        "list": [True],
    }
    broken = otlp("resourceSpans")
    broken["resourceSpans"][0]["scopeSpans"][0]["spans"].append({"traceId": "zz", "spanId": "1"})
    spans, warnings = normalize_trace(broken)
    assert len(spans) == 1
    assert warnings == ["1 span(s) without valid trace/span ids were left out"]
    for garbage in ([], {}, {"batches": 5}, "x"):
        with pytest.raises(ContractError):
            normalize_trace(garbage)


def test_trace_ids_are_validated_and_discovered() -> None:
    for bad in ("", "0" * 32, TRACE.upper(), TRACE[:-1], TRACE + "0", "g" * 32, "../../etc/passwd"):
        with pytest.raises(ContractError):
            validate_trace_id(bad)
    cfg = {"base_url": "http://tempo.test", "query_path": "/api/traces/{trace_id}"}
    assert trace_url(cfg, TRACE) == f"http://tempo.test/api/traces/{TRACE}"
    other = "a" * 32
    detail = {
        "history": [{"meta": {"trace_id": TRACE}}, {"payload": '{"traceId": "' + other + '"}'}],
        "graph": {"nodes": [{"annotations": {"traceparent": f"00-{TRACE}-{SPAN}-01"}}]},
        "noise": {"trace_id": "0" * 32, "traceId": "not-hex", "trace": TRACE[::-1]},
        "b64": {"traceId": _b64("b" * 32)},
    }
    assert discover_trace_ids(detail, None, [{"trace_id": TRACE}]) == [TRACE, other, "b" * 32]


def test_times() -> None:
    assert parse_time_ns("2024-05-01T08:00:00.123456789Z", "f") == 1714550400123456789
    assert parse_time_ns("2024-05-01T10:00:00+02:00", "f") == 1714550400 * 10**9
    assert parse_time_ns("2024-05-01 08:00", "f") == 1714550400 * 10**9
    assert parse_time_ns("1714550400", "f") == 1714550400 * 10**9
    assert parse_time_ns("1714550400123456789", "f") == 1714550400123456789
    assert format_ns(1714550400123456789) == "2024-05-01T08:00:00.123456789Z"
    for bad in ("", "yesterday", "2024-13-01T00:00:00Z", "2024-05-01T08:00:00.1234567890Z",
                "99999999999", "2024-05-01T25:00Z"):  # fmt: skip
        with pytest.raises(ContractError):
            parse_time_ns(bad, "from")


def test_a_raw_newline_breaks_a_naive_query() -> None:
    """Why quote() escapes control characters: Loki's grammar rejects them raw."""
    with pytest.raises(LogQLError):
        parse_logql('{service="a\nb"}')
    assert selector_accepts("{service=" + quote("a\nb") + "}", {"service": "a\nb"})

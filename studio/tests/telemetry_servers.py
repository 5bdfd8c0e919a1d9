"""Local Loki and Tempo servers for the telemetry tests, and a Kubernetes-shaped exporter.

Loki and Tempo cannot be installed here (no Debian package), so these
servers implement the parts of their documented HTTP APIs Studio uses,
written from the public API documentation, independently of Studio's query
construction:

* **Loki** (``/loki/api/v1/query_range``, ``/loki/api/v1/push``): a LogQL
  parser for stream selectors (``=``, ``!=``, ``=~``, ``!~``; Go string
  literals with Go's escape rules — a raw newline in a string is a parse
  error, as in Loki; backtick raw strings), line filters (``|=``, ``!=``,
  ``|~``, ``!~``) and label filter stages (``| name op "value"`` over stream
  labels and structured metadata). ``start`` is inclusive and ``end``
  exclusive; ``direction=backward`` returns the newest ``limit`` entries,
  ordered by time, then by the stream's label set, then by the order within
  the stream (Loki's heap iterator). ``X-Scope-OrgID`` selects a tenant.
* **Tempo** (``/api/traces/{id}``, and the OTLP/HTTP receiver
  ``POST /v1/traces`` with protobuf or JSON bodies): answers one of the
  three OTLP JSON shapes (``batches`` with base64 ids and
  ``instrumentationLibrarySpans``; ``resourceSpans`` with hex ids;
  ``resource_spans`` snake case with base64 ids), 404 for an unknown trace,
  400 for a malformed id.

The exporter serves Kubernetes-shaped series (cAdvisor and
kube-state-metrics names) from a table the test controls, in the Prometheus
text format written by ``prometheus-client``; a real Prometheus scrapes it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from relayna.api import serving

# -- LogQL (the subset Studio writes, parsed as Loki's grammar reads it) ---------------

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", '"': '"'}  # fmt: skip


class LogQLError(ValueError):
    pass


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.ws()
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> None:
        if not self.peek(token):
            raise LogQLError(
                f"expected {token!r} at {self.pos}: {self.text[self.pos : self.pos + 20]!r}"
            )
        self.pos += len(token)

    def name(self) -> str:
        self.ws()
        match = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.text, self.pos)
        if match is None:
            raise LogQLError(f"expected a label name at {self.pos}")
        self.pos = match.end()
        return match.group(0)

    def op(self, ops: tuple[str, ...]) -> str:
        self.ws()
        for op in ops:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        raise LogQLError(f"expected one of {ops} at {self.pos}")

    def string(self) -> str:
        """A Go string literal: "..." with escapes, or `...` raw."""
        self.ws()
        if self.pos >= len(self.text):
            raise LogQLError("expected a string")
        quote = self.text[self.pos]
        if quote == "`":
            end = self.text.find("`", self.pos + 1)
            if end < 0:
                raise LogQLError("unterminated raw string")
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return value
        if quote != '"':
            raise LogQLError(f"expected a string at {self.pos}")
        i = self.pos + 1
        out: list[str] = []
        while True:
            if i >= len(self.text):
                raise LogQLError("unterminated string")
            ch = self.text[i]
            if ch == '"':
                self.pos = i + 1
                return "".join(out)
            if ch == "\n":
                raise LogQLError("newline in string")
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            i += 1
            if i >= len(self.text):
                raise LogQLError("unterminated escape")
            esc = self.text[i]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                i += 1
            elif esc in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[esc]
                digits = self.text[i + 1 : i + 1 + width]
                if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                    raise LogQLError("bad hex escape")
                code = int(digits, 16)
                if esc != "x" and (0xD800 <= code <= 0xDFFF or code > 0x10FFFF):
                    raise LogQLError("invalid Unicode code point")
                out.append(chr(code))
                i += 1 + width
            elif esc in "01234567":
                digits = self.text[i : i + 3]
                if not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                    raise LogQLError("bad octal escape")
                out.append(chr(int(digits, 8)))
                i += 3
            else:
                raise LogQLError(f"unknown escape sequence \\{esc}")


def _matcher(op: str, want: str) -> Callable[[str], bool]:
    if op == "=":
        return lambda v: v == want
    if op == "!=":
        return lambda v: v != want
    pattern = re.compile(want)
    if op == "=~":
        return lambda v: pattern.fullmatch(v) is not None
    return lambda v: pattern.fullmatch(v) is None


def parse_logql(text: str) -> tuple[list[tuple[str, Callable[[str], bool]]], list[Any]]:
    """(selector matchers, pipeline stages); a stage is ("line", fn) or ("label", name, fn)."""
    lex = _Lexer(text)
    lex.take("{")
    selector: list[tuple[str, Callable[[str], bool]]] = []
    while True:
        name = lex.name()
        op = lex.op(("=~", "!~", "!=", "="))
        selector.append((name, _matcher(op, lex.string())))
        if lex.peek(","):
            lex.take(",")
            continue
        lex.take("}")
        break
    stages: list[Any] = []
    while True:
        lex.ws()
        if lex.pos >= len(text):
            return selector, stages
        op = lex.op(("|=", "|~", "!=", "!~", "|"))
        if op == "|":
            name = lex.name()
            label_op = lex.op(("=~", "!~", "!=", "==", "="))
            label_op = "=" if label_op == "==" else label_op
            stages.append(("label", name, _matcher(label_op, lex.string())))
            continue
        value = lex.string()
        if op == "|=":
            stages.append(("line", lambda line, v=value: v in line))
        elif op == "!=":
            stages.append(("line", lambda line, v=value: v not in line))
        else:
            pattern = re.compile(value)
            if op == "|~":
                stages.append(("line", lambda line, p=pattern: p.search(line) is not None))
            else:
                stages.append(("line", lambda line, p=pattern: p.search(line) is None))


def _label_string(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _stream_hash(labels: str) -> int:
    """A stand-in for Loki 3's stream hash: stable, unrelated to the label order."""
    return int.from_bytes(hashlib.sha256(labels.encode()).digest()[:8], "big")


class LocalLoki:
    """Streams per tenant: ``{tenant: {label key: (labels, [(ns, line, metadata)])}}``."""

    def __init__(self) -> None:
        self.tenants: dict[
            str, dict[str, tuple[dict[str, str], list[tuple[int, str, dict[str, str]]]]]
        ] = {}
        self.queries: list[dict[str, str]] = []
        self.delay = 0.0
        self.fail_with: tuple[int, bytes] | None = None
        #: How entries of one nanosecond are ordered across streams before
        #: ``limit`` cuts: ``"labels"`` (the label set's string: Loki 2.x, and
        #: 3.x without stream hashes) or ``"hash"`` (3.x's stream hash: an
        #: order unrelated to the labels). Loki does not document either.
        self.tie_order = "labels"

    def push(self, labels: dict[str, str], ns: int, line: str, meta: dict[str, str] | None = None,
             tenant: str = "") -> None:  # fmt: skip
        streams = self.tenants.setdefault(tenant, {})
        key = _label_string(labels)
        streams.setdefault(key, (dict(labels), []))[1].append((ns, line, dict(meta or {})))

    def select(self, query: str, start: int, end: int, limit: int, direction: str,
               tenant: str) -> list[dict[str, Any]]:  # fmt: skip
        selector, stages = parse_logql(query)
        hits: list[tuple[int, str, int, dict[str, str], str, dict[str, str]]] = []
        for key, (labels, entries) in self.tenants.get(tenant, {}).items():
            if not all(fn(labels.get(name, "")) for name, fn in selector):
                continue
            for position, (ns, line, meta) in enumerate(entries):
                if not start <= ns < end:
                    continue
                ok = True
                for stage in stages:
                    if stage[0] == "line":
                        ok = stage[1](line)
                    else:
                        value = labels.get(stage[1], meta.get(stage[1], ""))
                        ok = stage[2](value)
                    if not ok:
                        break
                if ok:
                    hits.append((ns, key, position, labels, line, meta))
        backward = direction == "backward"
        tie = _stream_hash if self.tie_order == "hash" else str
        hits.sort(key=lambda h: (-h[0] if backward else h[0], tie(h[1]),
                                 -h[2] if backward else h[2]))  # fmt: skip
        hits = hits[:limit]
        grouped: dict[str, dict[str, Any]] = {}
        for ns, key, _position, labels, line, meta in hits:
            stream = grouped.setdefault(key, {"stream": labels, "values": []})
            stream["values"].append([str(ns), line, meta] if meta else [str(ns), line])
        return list(grouped.values())

    def app(self) -> Starlette:
        async def query_range(request: Request) -> Response:
            self.queries.append(dict(request.query_params))
            if self.delay:
                import anyio

                await anyio.sleep(self.delay)
            if self.fail_with is not None:
                return Response(self.fail_with[1], status_code=self.fail_with[0])
            p = request.query_params
            try:
                result = self.select(
                    p["query"], int(p.get("start", "0")), int(p.get("end", str(time.time_ns()))),
                    int(p.get("limit", "100")), p.get("direction", "backward"),
                    request.headers.get("x-scope-orgid", ""),
                )  # fmt: skip
            except (LogQLError, re.error, KeyError, ValueError) as exc:
                return PlainTextResponse(f"parse error : {exc}", status_code=400)
            return JSONResponse(
                {
                    "status": "success",
                    "data": {"resultType": "streams", "result": result, "stats": {}},
                }
            )

        async def push(request: Request) -> Response:
            body = orjson.loads(await request.body())
            for stream in body["streams"]:
                for value in stream["values"]:
                    self.push(stream["stream"], int(value[0]), value[1],
                              value[2] if len(value) > 2 else None,
                              request.headers.get("x-scope-orgid", ""))  # fmt: skip
            return Response(status_code=204)

        return Starlette(routes=[
            Route("/loki/api/v1/query_range", query_range),
            Route("/loki/api/v1/push", push, methods=["POST"]),
        ])  # fmt: skip


# -- Tempo ------------------------------------------------------------------------------


def _hex_ids(value: Any) -> Any:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping as base64."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str) and v:
                out[k] = base64.b64decode(v).hex()
            else:
                out[k] = _hex_ids(v)
        return out
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    return value


class LocalTempo:
    """Resource spans as protobuf-JSON dicts (base64 ids), grouped by trace id."""

    def __init__(self, shape: str = "batches") -> None:
        self.shape = shape
        self.traces: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[str] = []
        self.tenants: list[str | None] = []
        self.delay = 0.0
        self.raw_answer: tuple[int, bytes] | None = None

    def add_resource_spans(self, resource_spans: list[dict[str, Any]]) -> None:
        """Split each resource's spans by trace id (base64 ids, protobuf JSON mapping)."""
        for resource in resource_spans:
            scopes = resource.get("scopeSpans") or resource.get("scope_spans") or []
            for scope in scopes:
                for span in scope.get("spans", []):
                    trace = base64.b64decode(span["traceId"]).hex()
                    self.traces.setdefault(trace, []).append(
                        {"resource": resource.get("resource", {}),
                         "scopeSpans": [{"scope": scope.get("scope", {}), "spans": [span]}]}
                    )  # fmt: skip

    def answer(self, trace_id: str) -> dict[str, Any]:
        resources = self.traces[trace_id]
        if self.shape == "batches":
            return {"batches": [
                {"resource": r["resource"],
                 "instrumentationLibrarySpans": [
                     {"instrumentationLibrary": s["scope"], "spans": s["spans"]}
                     for s in r["scopeSpans"]]}
                for r in resources]}  # fmt: skip
        if self.shape == "resourceSpans":
            return {"resourceSpans": _hex_ids(resources)}
        return {"resource_spans": [
            {"resource": r["resource"],
             "scope_spans": [{"scope": s["scope"], "spans": [_snake(sp) for sp in s["spans"]]}
                             for s in r["scopeSpans"]]}
            for r in resources]}  # fmt: skip

    def app(self) -> Starlette:
        async def get_trace(request: Request) -> Response:
            trace_id = request.path_params["trace_id"]
            self.requests.append(trace_id)
            self.tenants.append(request.headers.get("x-scope-orgid"))
            if self.delay:
                import anyio

                await anyio.sleep(self.delay)
            if self.raw_answer is not None:
                return Response(self.raw_answer[1], status_code=self.raw_answer[0],
                                media_type="application/json")  # fmt: skip
            if not re.fullmatch(r"[0-9a-fA-F]{1,32}", trace_id):
                return PlainTextResponse("invalid trace id", status_code=400)
            key = trace_id.lower().rjust(32, "0")
            if key not in self.traces:
                return PlainTextResponse("trace not found", status_code=404)
            return JSONResponse(self.answer(key))

        async def receive(request: Request) -> Response:
            body = await request.body()
            if request.headers.get("content-type", "").startswith("application/json"):
                self.add_resource_spans(orjson.loads(body)["resourceSpans"])
            else:
                from google.protobuf.json_format import MessageToDict
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                    ExportTraceServiceRequest,
                )

                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                self.add_resource_spans(MessageToDict(message).get("resourceSpans", []))
            return Response(b"", media_type="application/x-protobuf")

        return Starlette(routes=[
            Route("/api/traces/{trace_id}", get_trace),
            Route("/v1/traces", receive, methods=["POST"]),
        ])  # fmt: skip


def _snake(span: dict[str, Any]) -> dict[str, Any]:
    def snake(name: str) -> str:
        return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()

    out: dict[str, Any] = {}
    for key, value in span.items():
        if isinstance(value, dict):
            value = _snake(value)
        elif isinstance(value, list):
            value = [_snake(v) if isinstance(v, dict) else v for v in value]
        out[snake(key)] = value
    return out


# -- the Kubernetes-shaped exporter ------------------------------------------------------


class KubeExporter:
    """Gauges and linear counters per series; ``rates`` counters grow by ``rate``/s."""

    def __init__(self) -> None:
        self.gauges: dict[str, list[tuple[dict[str, str], float]]] = {}
        self.counters: dict[str, list[tuple[dict[str, str], float]]] = {}
        self.t0 = time.time()

    def gauge(self, name: str, labels: dict[str, str], value: float) -> None:
        self.gauges.setdefault(name, []).append((labels, value))

    def counter(self, name: str, labels: dict[str, str], per_second: float) -> None:
        self.counters.setdefault(name, []).append((labels, per_second))

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        for name, series in self.gauges.items():
            names = sorted({k for labels, _ in series for k in labels})
            family = GaugeMetricFamily(name, name, labels=names)
            for labels, value in series:
                family.add_metric([labels.get(n, "") for n in names], value)
            yield family
        for name, series in self.counters.items():
            names = sorted({k for labels, _ in series for k in labels})
            counter = CounterMetricFamily(name.removesuffix("_total"), name, labels=names)
            for labels, rate in series:
                counter.add_metric([labels.get(n, "") for n in names], rate * (now - self.t0))
            yield counter

    def app(self) -> Starlette:
        registry = CollectorRegistry()
        exporter = self

        class _C(Collector):
            def collect(self) -> Iterator[Metric]:
                return exporter.collect()

        registry.register(_C())

        async def metrics(request: Request) -> Response:
            return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

        return Starlette(routes=[Route("/metrics", metrics)])


@asynccontextmanager
async def serve_on(app: Starlette, host: str = "127.0.0.2") -> AsyncIterator[int]:
    """Serve ``app`` on a free port of ``host``; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    port = int(sock.getsockname()[1])
    async with serving(app, sock=sock, graceful_timeout=0.2):
        yield port

"""schemathesis against a live ``relayna dev``: no 500, no schema violation (issue 26).

The server runs in this process on a real event loop of each backend (an
anyio blocking portal), on the memory transports and on real RabbitMQ +
Redis. Its ``GET /openapi.json`` is generated from the route declarations;
schemathesis generates cases for every operation in it, positive and
negative, calls the server and applies all of its checks (no server error,
status code, content type and headers documented, body matches the response
schema, negative data rejected). Two bounds keep a run finite, both on the
client side: ``/events`` is asked for its JSON snapshot (the SSE stream of a
task nobody published stays open by design; SSE framing is tested
elsewhere) with a ``wait`` of at most 0.1 s, and ``/history`` gets
``max_seconds`` of at most 0.1 s.

One check is left out: ``positive_data_acceptance``. JSON Schema counts
``73.0`` as an integer; relayna's codec does not (no float for an integer
field, as no ``"5"`` for one), so a schema-valid ``"priority": 73.0`` gets a
documented 422. Every other check of schemathesis runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import orjson
import pytest
import schemathesis
from anyio.from_thread import start_blocking_portal
from schemathesis import GenerationMode
from services import free_port

from _schemathesis_run import (
    EXCLUDED,
    documented_operations,
    fuzz_operation,
    has_invalid_inputs,
    run_state_machine,
)
from relayna.devserver import DevConfig, run_dev

# Tens of seconds per test: the slow tier (its own step of .ci/run; see tests/conftest.py).
# A fuzz run's work is fixed (examples x documented operations) and grows with the
# API, not a wait for an event: its ceiling is 400 s rather than the default 120 s,
# which the negative-mode run passed under load once Studio had three more routes.
pytestmark = [pytest.mark.slow_tier, pytest.mark.timeout(400)]

#: Cases per operation and generation mode, by transports (the closing note
#: quotes the totals; real servers cost more per case, the contract is the same).
EXAMPLES = {"memory": 30, "real": 15}
CALLS: Counter[str] = Counter()


@pytest.fixture(
    scope="module",
    params=[("asyncio", "memory"), ("trio", "memory"), ("asyncio", "real"), ("trio", "real")],
    ids=lambda p: "-".join(p),
)
def dev_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    backend, transports = request.param
    CALLS.clear()
    urls: dict[str, str] = {}
    if transports == "real":
        urls = {
            "broker_url": request.getfixturevalue("amqp_url"),
            "store_url": request.getfixturevalue("redis_url"),
        }
    config = DevConfig(
        port=free_port(),
        step_seconds=0.001,
        retry_delay_ms=50,
        drain_timeout=2,
        prefix=f"relayna.st.{backend}.{free_port()}",
        **urls,
    )
    with start_blocking_portal(backend=backend) as portal:
        shutdown = portal.call(anyio.Event)
        future, url = portal.start_task(run_dev, config, shutdown)
        try:
            yield url.rstrip("/"), EXAMPLES[transports]
        finally:
            portal.call(shutdown.set)
            future.result(timeout=60)
    print(f"schemathesis against relayna dev ({backend}, {transports}): {dict(CALLS)}")


def _short_wait(value: Any) -> Any:
    """``value`` with every number in it (also as text, also in a list) above 0.1
    replaced by 0.1: a valid ``wait`` may be up to 300 s, longer than a case may take."""
    if isinstance(value, list):
        return [_short_wait(item) for item in value]
    if isinstance(value, bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value  # not a number: the route answers 422 at once
    return 0.1 if number > 0.1 else value


def _bounded(case: schemathesis.Case) -> None:
    path = case.operation.path
    if path.startswith("/events/"):
        case.headers = {**(case.headers or {}), "Accept": "application/json"}
        query = dict(case.query or {})
        if "wait" in query:  # a task nobody published is waited for at most 0.1 s
            query["wait"] = _short_wait(query["wait"])
        case.query = query
    elif path == "/history":
        query = dict(case.query or {})
        seconds = query.get("max_seconds")
        if not isinstance(seconds, int | float) or not 0 < seconds <= 0.1:
            query["max_seconds"] = 0.1
        case.query = query


@pytest.mark.rabbitmq
@pytest.mark.redis
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_documented_operation_conforms(
    dev_server: tuple[str, int], mode: GenerationMode
) -> None:
    dev_url, examples = dev_server
    _schema, operations = documented_operations(dev_url)
    assert {op.label for op in operations} >= {
        "GET /", "POST /tasks", "GET /status/{task_id}", "GET /events/{task_id}",
        "GET /history", "GET /dlq/messages", "POST /dlq/messages/{dlq_id}/replay",
        "GET /broker/dlq/messages", "GET /failed-tasks", "POST /failed-tasks/{failure_id}/retry",
    }  # fmt: skip
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not has_invalid_inputs(operation):
            continue  # nothing to make invalid (GET /)
        fuzz_operation(operation, mode, dev_url, examples, CALLS, _bounded)


# -- stateful: the document's links ---------------------------------------------------

#: Scenarios and steps per scenario, by transports (printed for the closing note).
SCENARIOS = {"memory": (25, 8), "real": (10, 6)}
TERMINAL = {"completed", "failed", "cancelled"}
SSE_FIELDS = {"event", "data", "id", "retry"}


def sse_framing(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """An event stream is framed as SSE: ``field: value`` lines and comments,
    frames separated by a blank line; every status event has an id and JSON
    data naming that id; nothing follows a terminal status."""
    media = (response.headers.get("content-type") or [""])[0].split(";")[0].strip().lower()
    if media != "text/event-stream":
        return None
    text = response.content.decode("utf-8")
    assert response.status_code == 200, "an event stream with a status other than 200"
    assert text.endswith("\n\n") or getattr(response, "stream_cut_short", False), (
        f"the stream does not end at a frame boundary: {text[-80:]!r}"
    )
    frames = [f for f in text.split("\n\n") if f.strip()]
    statuses: list[str] = []
    for frame in frames:
        fields: dict[str, str] = {}
        for line in frame.split("\n"):
            if line.startswith(":"):
                continue  # a comment (keepalive)
            name, sep, value = line.partition(":")
            assert sep, f"not an SSE field line: {line!r}"
            assert name in SSE_FIELDS, f"not an SSE field: {line!r}"
            fields[name] = value.removeprefix(" ")
        if not fields:
            continue
        if fields.get("event", "message") in ("message", "status"):
            assert "id" in fields, f"a status event without an id: {frame!r}"
            data = orjson.loads(fields["data"])
            assert data["event_id"] == fields["id"], frame
            statuses.append(data["status"])
    if statuses and statuses[-1] in TERMINAL:
        assert all(s not in TERMINAL for s in statuses[:-1]), statuses
    return True


@pytest.mark.rabbitmq
@pytest.mark.redis
def test_linked_operations_conform(dev_server: tuple[str, int]) -> None:
    dev_url, examples = dev_server
    transports = "memory" if examples == EXAMPLES["memory"] else "real"
    scenarios, steps = SCENARIOS[transports]
    schema = schemathesis.openapi.from_url(f"{dev_url}/openapi.json")

    def prepare(case: schemathesis.Case) -> None:
        _bounded(case)
        if case.operation.path.startswith("/events/"):
            case.headers = {**(case.headers or {}), "Accept": "text/event-stream"}

    run = run_state_machine(
        schema, dev_url, scenarios=scenarios, steps=steps, calls=CALLS, prepare=prepare,
        additional_checks=[sse_framing],
    )  # fmt: skip
    print(
        f"stateful ({transports}): {run.scenarios} scenarios ({run.restarts} restarts), "
        f"links followed {dict(run.followed)}, event streams {dict(run.streams)}"
    )
    assert not run.failures, "\n\n".join(run.failures[:5])
    assert run.scenarios >= scenarios
    assert sum(run.followed.values()) > 0  # the links were really followed


@pytest.mark.rabbitmq
@pytest.mark.redis
@pytest.mark.parametrize("mode", ["ok", "fail_always"])
def test_the_event_stream_of_a_task_conforms(dev_server: tuple[str, int], mode: str) -> None:
    """Every run, whatever the stateful scenarios drew: a task's stream, read to its
    end (``completed``, or ``failed`` once dead-lettered), against the document
    and the SSE framing check; the JSON snapshot of the same task after it."""
    dev_url, _ = dev_server
    schema = schemathesis.openapi.from_url(f"{dev_url}/openapi.json")
    submit = schema["/tasks"]["POST"].Case(body={"payload": {"mode": mode, "steps": 2}})
    accepted = submit.call_and_validate(base_url=dev_url, timeout=10)
    assert accepted.status_code == 202
    task_id = accepted.json()["task_id"]
    events = schema["/events/{task_id}"]["GET"]
    stream = events.Case(path_parameters={"task_id": task_id},
                         headers={"Accept": "text/event-stream"})  # fmt: skip
    response = stream.call_and_validate(
        base_url=dev_url, timeout=20, additional_checks=[sse_framing],
        excluded_checks=EXCLUDED,
    )  # fmt: skip
    assert response.headers["content-type"][0].startswith("text/event-stream")
    assert not response.stream_cut_short  # ended by the terminal event, not the timeout
    frames = response.content.decode().strip().split("\n\n")
    assert frames[0].startswith("event: ready") or "event: ready" in frames[0]
    assert f'"status":"{"completed" if mode == "ok" else "failed"}"' in frames[-1]
    snapshot = events.Case(path_parameters={"task_id": task_id},
                           headers={"Accept": "application/json"})  # fmt: skip
    answer = snapshot.call_and_validate(base_url=dev_url, timeout=10, excluded_checks=EXCLUDED)
    assert answer.json()["terminal"] is True

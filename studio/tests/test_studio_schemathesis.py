"""schemathesis against a live relayna-studio: no 500, no schema violation (issue 26).

Studio is served by hypercorn on a loopback socket, on a real event loop of
each backend (an anyio blocking portal), over the memory store and the real
Redis. Its ``GET /openapi.json`` is generated from the route declarations;
schemathesis generates positive and negative cases for every operation in
it, calls the server and applies its checks (no server error, status code,
content type and headers documented, body matches the response schema,
negative data rejected), then runs schemathesis' state machine: sequences of
operations on one server (tokens created then listed and revoked, services
searched, ...). Studio's document declares no links yet, so the sequences
follow none: registering a service needs an egress target the SSRF policy
allows, which a generated URL never is.

Studio's egress goes through its SSRF policy with a resolver that knows no
name: a generated service URL is refused or unreachable, never a request to
the internet. The one check left out is ``positive_data_acceptance``, as for
relayna's routes: JSON Schema counts ``73.0`` as an integer, relayna's codec
does not, so a schema-valid ``73.0`` gets a documented 422.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import schemathesis
from anyio.abc import TaskStatus
from anyio.from_thread import start_blocking_portal
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from relayna.api import serving
from relayna_studio import open_studio, studio_app
from studio_support import TableResolver, settings_for

# Tens of seconds per test: the slow tier (its own step of .ci/run; see tests/conftest.py).
# A fuzz run's work is fixed (examples x documented operations) and grows with the
# API, not a wait for an event: its ceiling is 400 s rather than the default 120 s,
# which the negative-mode run passed under load once Studio had three more routes.
pytestmark = [pytest.mark.slow_tier, pytest.mark.timeout(400)]

# The runner relayna's own schemathesis test uses (tests/ is not on this suite's path).
_RUNNER = Path(__file__).resolve().parents[2] / "tests/_schemathesis_run.py"
_spec = importlib.util.spec_from_file_location("_schemathesis_run", _RUNNER)
assert _spec is not None
assert _spec.loader is not None
_runner = sys.modules.setdefault("_schemathesis_run", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_runner)
fuzz_operation, run_state_machine = _runner.fuzz_operation, _runner.run_state_machine
documented_operations, has_invalid_inputs = (
    _runner.documented_operations,
    _runner.has_invalid_inputs,
)

#: Cases per operation and generation mode, by store (the closing note quotes the totals).
EXAMPLES = {"memory": 12, "redis": 6}
CALLS: Counter[str] = Counter()


async def _serve(store_url: str, shutdown: anyio.Event, *, task_status: TaskStatus[str]) -> None:
    prefix = f"studio-st:{uuid.uuid4().hex[:10]}"
    async with (
        open_studio(settings_for(store_url, prefix), resolver=TableResolver()) as runtime,
        serving(studio_app(runtime), graceful_timeout=1.0) as base,
    ):
        task_status.started(base)
        await shutdown.wait()


@pytest.fixture(
    scope="module",
    params=[("asyncio", "memory"), ("trio", "memory"), ("asyncio", "redis"), ("trio", "redis")],
    ids=lambda p: "-".join(p),
)
def studio_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    backend, store = request.param
    CALLS.clear()
    url = "memory://" if store == "memory" else str(request.getfixturevalue("redis_url"))
    with start_blocking_portal(backend=backend) as portal:
        shutdown = portal.call(anyio.Event)
        future, base = portal.start_task(_serve, url, shutdown)
        try:
            yield base, store
        finally:
            portal.call(shutdown.set)
            future.result(timeout=60)
    print(f"schemathesis against relayna-studio ({backend}, {store}): {dict(CALLS)}")


@pytest.mark.redis
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_documented_studio_operation_conforms(
    studio_server: tuple[str, str], mode: GenerationMode
) -> None:
    base, store = studio_server
    _schema, operations = documented_operations(base)
    assert {op.label for op in operations} >= {
        "GET /studio/services", "POST /studio/services", "GET /studio/services/{service_id}",
        "GET /studio/tasks/search", "GET /metrics",
    }  # fmt: skip
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not has_invalid_inputs(operation):
            continue  # only an Authorization header: nothing to make invalid
        try:
            fuzz_operation(operation, mode, base, EXAMPLES[store], CALLS)
        except Unsatisfiable:
            # Only in negative mode: every input is a string the route accepts
            # (DELETE /studio/auth/tokens/{token_id}: a malformed id is 404).
            if mode is not GenerationMode.NEGATIVE:
                raise
            CALLS[f"{operation.label} negative: no invalid input exists"] += 1


@pytest.mark.redis
def test_studio_operation_sequences_conform(studio_server: tuple[str, str]) -> None:
    base, store = studio_server
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    scenarios = {"memory": 15, "redis": 8}[store]
    run = run_state_machine(schema, base, scenarios=scenarios, steps=6, calls=CALLS)
    print(f"stateful studio ({store}): {run.scenarios} scenarios ({run.restarts} restarts)")
    assert not run.failures, "\n\n".join(run.failures[:5])
    assert run.scenarios >= scenarios

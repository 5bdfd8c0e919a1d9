"""Running schemathesis against a live server: one operation's cases, and the state machine.

Shared by the relayna dev and the relayna-studio runs. Every check runs but
``positive_data_acceptance``: JSON Schema counts ``73.0`` as an integer,
relayna's codec does not, so a schema-valid ``73.0`` gets a documented 422.

The state machine runs in ``Phase.generate`` only, as schemathesis' own
stateful runner does: a scenario's draws depend on what the live server
answered (a bundle of ids is empty or not), so Hypothesis may call a later
scenario flaky when the same choices draw differently; schemathesis then
starts a new run, and so does :func:`run_state_machine`. Failures are
collected and returned, not raised: Hypothesis would replay a failing
scenario to report it, and against a live server (tasks ran on, ids are
taken) the replay cannot draw the same steps, so it would report "flaky"
instead of the failure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import GenerationMode, checks

__all__ = [
    "EXCLUDED",
    "StatefulRun",
    "documented_operations",
    "fuzz_operation",
    "has_invalid_inputs",
    "run_state_machine",
]

EXCLUDED = [checks.positive_data_acceptance]
Prepare = Callable[[schemathesis.Case], None]


def documented_operations(base_url: str) -> tuple[Any, list[Any]]:
    """The schema served at ``{base_url}/openapi.json`` and its operations."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    return schema, [result.ok() for result in schema.get_all_operations()]


def has_invalid_inputs(operation: Any) -> bool:
    """Whether a negative case can exist: a body, or a parameter other than a
    header (any string is a valid header value, e.g. ``Authorization``)."""
    return any(p.location != "header" for p in operation.iter_parameters()) or bool(
        operation.get_request_payload_content_types()
    )


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    examples: int,
    calls: Counter[str],
    prepare: Prepare | None = None,
) -> None:
    """``examples`` cases of ``operation`` in ``mode``, each called and validated."""
    label = f"{operation.label} {mode.value}"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        if prepare is not None:
            prepare(case)
        case.call_and_validate(base_url=base_url, timeout=10, excluded_checks=EXCLUDED)
        calls[label] += 1

    check()


@attrs.define
class StatefulRun:
    scenarios: int = 0
    restarts: int = 0
    followed: Counter[str] = attrs.Factory(Counter)  # link id -> times followed
    streams: Counter[str] = attrs.Factory(Counter)  # event-stream answers by status
    failures: list[str] = attrs.Factory(list)


def run_state_machine(
    schema: Any,
    base_url: str,
    *,
    scenarios: int,
    steps: int,
    calls: Counter[str],
    prepare: Prepare | None = None,
    additional_checks: Sequence[Any] = (),
) -> StatefulRun:
    """At least ``scenarios`` scenarios of up to ``steps`` calls over the document's links."""
    run = StatefulRun()
    completed: Counter[str] = Counter()

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def teardown(self) -> None:
            completed["scenarios"] += 1

        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                run.followed[input.transition.id] += 1
            return super().step(input)

        def before_call(self, case: schemathesis.Case) -> None:
            if prepare is not None:
                prepare(case)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": base_url, "timeout": 10}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            calls[f"{case.operation.label} stateful"] += 1
            if "text/event-stream" in (response.headers.get("content-type") or [""])[0]:
                run.streams[str(response.status_code)] += 1

        def validate_response(
            self, response: Any, case: schemathesis.Case, additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:  # fmt: skip
            try:
                case.validate_response(
                    response,
                    additional_checks=list(extra),
                    excluded_checks=EXCLUDED,
                    transport_kwargs=kwargs,
                )
            except Exception as exc:  # noqa: BLE001 - collected, asserted by the caller
                run.failures.append(f"{case.operation.label}: {exc}")

    extra = additional_checks
    for _attempt in range(20):
        try:
            Machine.run(
                settings=settings(
                    max_examples=scenarios - run.scenarios,
                    stateful_step_count=steps,
                    phases=[Phase.generate],
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
            )
        except FlakyStrategyDefinition:
            run.restarts += 1
        run.scenarios += completed.pop("scenarios", 0)
        if run.scenarios >= scenarios:
            break
    return run

"""Pure parts of relayna.workflow: diagnosis, lineage, dedup signatures, run-state parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.consumer import Poison, RetryPolicy
from relayna.contracts import WorkflowEnvelope
from relayna.topology import FanIn, SharedStatusWorkflowTopology, WorkflowStage
from relayna.workflow import (
    WorkflowRunState,
    branch_of,
    build_lineage,
    dedup_signature,
    derive_message_id,
    effective_retry_policy,
    explain_stall,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)


def stage(name: str, *nexts: str, **kw: Any) -> WorkflowStage:
    return WorkflowStage(
        name, f"q.{name}", (f"{name}.in",), f"{name}.in", allowed_next_stages=nexts, **kw
    )


TOPOLOGY = SharedStatusWorkflowTopology(
    workflow_exchange="wf",
    status_exchange="st",
    status_queue="st.q",
    stages=(
        stage("split", "a", "b", "c", sla_ms=1000),
        stage("a", "join", sla_ms=1000),
        stage("b", "join", sla_ms=1000),
        stage("c", "join", sla_ms=1000),
        stage("join", terminal=True, join=FanIn(expected=("a", "b", "c")), sla_ms=1000),
    ),
)


def run(stages: dict[str, dict[str, Any]], **run_fields: Any) -> WorkflowRunState:
    raw: dict[bytes, bytes] = {
        b"run": orjson.dumps({"created_at": MS0, "updated_at": MS0, **run_fields})
    }
    for i, (name, record) in enumerate(stages.items()):
        record = {"first_at": MS0 + i, "updated_at": MS0 + i, **record}
        raw[f"s:{name}".encode()] = orjson.dumps(record)
    state = WorkflowRunState.from_hash("t1", raw)
    assert state is not None
    return state


def codes(state: WorkflowRunState | None, **kw: Any) -> list[tuple[str, str | None]]:
    diagnosis = explain_stall(state, task_id="t1", topology=TOPOLOGY, now=T0, **kw)
    return [(r.code, r.stage) for r in diagnosis.reasons]


def test_no_run_state_never_started() -> None:
    diagnosis = explain_stall(None, task_id="t9")
    assert diagnosis.stalled
    assert (diagnosis.task_id, diagnosis.status) == ("t9", "unknown")
    assert [r.code for r in diagnosis.reasons] == ["never_started"]


def test_queued_but_never_run() -> None:
    state = run({"split": {"status": "queued", "attempts": 0}})
    assert codes(state) == [("never_started", "split")]
    assert explain_stall(state, now=T0).stalled


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("failed", "stage_failed"),
        ("dead_lettered", "stage_dead_lettered"),
        ("retrying", "stage_retrying"),
    ],
)
def test_stage_failures(status: str, code: str) -> None:
    error = {"reason": "handler_error", "exception_type": "RuntimeError", "at": MS0}
    state = run({"split": {"status": status, "attempts": 2, "last_error": error}})
    found = codes(state)
    assert found[0] == (code, "split")
    reason = explain_stall(state, now=T0).reasons[0]
    assert "handler_error" in reason.message
    assert reason.details["attempts"] == 2


def test_a_retrying_stage_is_not_stalled_within_the_expected_time() -> None:
    state = run({"split": {"status": "retrying", "attempts": 1}})
    diagnosis = explain_stall(state, now=T0 + timedelta(seconds=1))
    assert [r.code for r in diagnosis.reasons] == ["stage_retrying"]
    assert not diagnosis.stalled


def test_fan_in_waiting_names_the_missing_branch() -> None:
    fan = {"arrived": 2, "expected": 3, "branches": ["a", "c"], "expires_at": MS0 + 60_000}
    state = run(
        {
            "split": {"status": "completed", "attempts": 1},
            "a": {"status": "completed", "attempts": 1},
            "c": {"status": "completed", "attempts": 1},
            "join": {"status": "waiting", "attempts": 0, "fan_in": fan},
        }
    )
    diagnosis = explain_stall(state, topology=TOPOLOGY, now=T0)
    waiting = diagnosis.reasons[0]
    assert (waiting.code, waiting.stage) == ("fan_in_waiting", "join")
    assert waiting.details["missing"] == ["b"]
    assert "waiting for b" in waiting.message
    assert state.current_stages == ("join",)


def test_fan_in_expired() -> None:
    fan = {"arrived": 1, "expected": 3, "branches": ["a"], "expires_at": MS0 - 1}
    state = run({"join": {"status": "waiting", "fan_in": fan}})
    assert ("fan_in_expired", "join") in codes(state)
    assert explain_stall(state, now=T0).stalled


def test_no_terminal_stage_within_the_expected_time() -> None:
    state = run({"split": {"status": "running", "attempts": 1}})
    late = T0 + timedelta(seconds=6)  # the stages' sla_ms add up to 5 s
    diagnosis = explain_stall(state, topology=TOPOLOGY, now=late)
    assert [r.code for r in diagnosis.reasons] == ["no_terminal_stage"]
    assert diagnosis.reasons[0].details["expected_within_seconds"] == 5.0
    assert diagnosis.stalled
    assert not explain_stall(state, topology=TOPOLOGY, now=T0).stalled
    assert not explain_stall(state, now=late).reasons  # no SLA, no limit given
    within = explain_stall(state, now=late, expected_within=timedelta(seconds=2))
    assert [r.code for r in within.reasons] == ["no_terminal_stage"]


def test_nothing_left_to_run_and_no_terminal_stage() -> None:
    state = run({"split": {"status": "completed", "attempts": 1}})
    assert codes(state) == [("no_terminal_stage", None)]
    assert state.status == "stalled"


def test_a_completed_run_is_not_stalled() -> None:
    state = run({"split": {"status": "completed", "attempts": 1}}, terminal=True)
    diagnosis = explain_stall(state, now=T0)
    assert (diagnosis.stalled, diagnosis.reasons, diagnosis.status) == (False, (), "completed")


def test_run_state_parsing_skips_garbage() -> None:
    raw = {
        b"run": b"not json",
        b"s:a": b'{"status": "running", "attempts": "three", "fan_in": 7}',
        b"s:b": b"[1, 2]",
        b"l:m1": b'{"stage": "a", "parent_message_id": 5}',
        b"m:a": b"\xff\xfe",
        b"x:unknown": b"1",
    }
    state = WorkflowRunState.from_hash("t", raw)
    assert state is not None
    assert list(state.stages) == ["a"]
    assert state.stages["a"].attempts == 0
    assert state.stages["a"].fan_in is None
    assert state.messages[0].parent_message_id is None
    assert state.last_messages == {"a": b"\xff\xfe"}
    assert WorkflowRunState.from_hash("t", {}) is None
    body = state.to_dict()
    assert body["status"] == "running"
    assert body["current_stage"] == "a"


def test_lineage_uses_the_real_parent_not_the_correlation_id() -> None:
    root = WorkflowEnvelope(task_id="t", stage="a", correlation_id="corr")
    child = WorkflowEnvelope(
        task_id="t",
        stage="b",
        correlation_id="corr",
        origin_stage="a",
        parent_message_id=root.message_id,
    )
    edges = build_lineage([root, child, child, {"stage": "x"}])
    assert [(e.parent_message_id, e.message_id, e.source_stage, e.target_stage) for e in edges] == [
        (None, root.message_id, None, "a"),
        (root.message_id, child.message_id, "a", "b"),
    ]
    assert edges[1].correlation_id == "corr"


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=5),
    st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3, unique=True),
)
def test_dedup_signature_depends_only_on_action_and_key_fields(
    payload: dict[str, Any], fields: list[str]
) -> None:
    a = WorkflowEnvelope(task_id="t", stage="s", action="go", payload=payload)
    noise = {**payload, "\x00noise": 1}
    b = WorkflowEnvelope(task_id="t", stage="s", action="go", payload=dict(reversed(noise.items())))
    assert dedup_signature(a, fields) == dedup_signature(b, fields)
    other = WorkflowEnvelope(task_id="t", stage="s", action="stop", payload=payload)
    assert dedup_signature(a, fields) != dedup_signature(other, fields)
    changed = {**payload, fields[0]: ["changed"]}
    c = WorkflowEnvelope(task_id="t", stage="s", action="go", payload=changed)
    assert dedup_signature(a, fields) != dedup_signature(c, fields)


def test_derived_message_ids_are_stable_and_distinct() -> None:
    assert derive_message_id("m1", "b", 0) == derive_message_id("m1", "b", 0)
    ids = {derive_message_id(p, t, i) for p in ("m1", "m2") for t in ("b", "c") for i in (0, 1)}
    assert len(ids) == 8


def test_branch_keys() -> None:
    join = FanIn(expected=("a", "b"))
    assert branch_of(join, WorkflowEnvelope(task_id="t", stage="j", origin_stage="a")) == "a"
    assert branch_of(join, WorkflowEnvelope(task_id="t", stage="j", origin_stage="z")) == Poison(
        "unexpected_branch", "stage 'z' is not a branch of this join (expected: a, b)"
    )
    missing = branch_of(join, WorkflowEnvelope(task_id="t", stage="j"))
    assert isinstance(missing, Poison)
    assert missing.reason == "fan_in_key_missing"
    by_field = FanIn(expected=2, key="payload.shard")
    assert (
        branch_of(by_field, WorkflowEnvelope(task_id="t", stage="j", payload={"shard": 3})) == "3"
    )
    too_long = WorkflowEnvelope(task_id="t", stage="j", payload={"shard": "x" * 300})
    long_branch = branch_of(by_field, too_long)
    assert isinstance(long_branch, Poison)
    assert long_branch.reason == "fan_in_key_invalid"
    huge = WorkflowEnvelope(task_id="t", stage="j", payload={"shard": 2**70})
    assert branch_of(by_field, huge) == str(2**70)
    by_meta = FanIn(expected=2, key="meta.part")
    assert branch_of(by_meta, WorkflowEnvelope(task_id="t", stage="j", meta={"part": "p"})) == "p"
    message = WorkflowEnvelope(task_id="t", stage="j")
    assert branch_of(FanIn(expected=2), message) == message.message_id


def test_the_stage_retry_settings_override_the_consumers() -> None:
    base = RetryPolicy(max_retries=5, delay_ms=1000)
    assert effective_retry_policy(stage("x"), None) is None
    assert effective_retry_policy(stage("x"), base) is base
    assert effective_retry_policy(stage("x", max_retries=1), base) == RetryPolicy(1, 1000)
    assert effective_retry_policy(stage("x", retry_delay_ms=7), None) == RetryPolicy(3, 7)

"""Bad input at a stage's door, generated: any body either reaches the handler as a
message the stage's inbound contract accepts, or is refused with a reason (a
dead letter); nothing raises. The same for a join's branch key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from relayna.consumer import Poison, parse_workflow
from relayna.contracts import DEFAULT_LIMITS
from relayna.errors import WorkflowContractError
from relayna.topology import (
    ActionSchema,
    FanIn,
    PayloadSchema,
    SharedStatusWorkflowTopology,
    WorkflowStage,
    validate_workflow_inbound,
)
from relayna.transport import Properties
from relayna.workflow import WorkflowConsumer, branch_of

QUERY = PayloadSchema(name="query", required_fields=("q",), optional_fields=("lang",))
TOPOLOGY = SharedStatusWorkflowTopology(
    workflow_exchange="wf",
    status_exchange="st",
    status_queue="st.q",
    stages=(
        WorkflowStage("planner", "q.planner", ("planner.in",), "planner.in",
                      allowed_next_stages=("docsearch",)),
        WorkflowStage("docsearch", "q.docsearch", ("docsearch.in",), "docsearch.in",
                      accepted_actions=(ActionSchema(action="search", payload=QUERY),),
                      terminal=True),
    ),
)  # fmt: skip
CONSUMER = WorkflowConsumer(
    topology=TOPOLOGY, broker="memory://", stage="docsearch", handler=lambda m, c: None
)
CONTRACT_REASONS = {"unknown_stage", "stage_mismatch", "unsupported_action",
                    "payload_schema_violation"}  # fmt: skip

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
payloads = st.dictionaries(st.sampled_from(["q", "lang", "x", "Q", ""]), values, max_size=4)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "task_id": st.one_of(st.sampled_from(["t1", "", "a b", "x" * 300]), values),
        "stage": st.one_of(st.sampled_from(["docsearch", "planner", "ghost", ""]), values),
        "action": st.one_of(st.sampled_from(["search", "index", ""]), values),
        "payload": st.one_of(payloads, values),
        "message_id": st.one_of(st.text(max_size=40), values),
        "origin_stage": st.one_of(st.sampled_from(["planner", "docsearch"]), values),
        "meta": st.one_of(st.dictionaries(st.text(max_size=8), values, max_size=3), values),
        "priority": st.one_of(st.integers(-5, 300), values),
    },
)


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()  # the stdlib encoder: integers of any size


@settings(max_examples=400, deadline=None)
@given(st.one_of(envelopes.map(_body), st.binary(max_size=200), values.map(_body)))
@example(b'{"task_id": "t1", "stage": "docsearch", "action": "search", "payload": {"q": "x"}}')
def test_any_body_is_accepted_by_the_contract_or_refused_with_a_reason(body: bytes) -> None:
    parsed = parse_workflow(body, Properties(), limits=DEFAULT_LIMITS)
    if isinstance(parsed, Poison):
        assert parsed.reason
        return
    refused = CONSUMER._refuse(parsed.message)
    if refused is not None:
        assert refused.reason in CONTRACT_REASONS, refused
        return
    message = parsed.message
    assert message.stage == "docsearch"
    assert message.action == "search"
    validate_workflow_inbound(CONSUMER.workflow_stage, message.action, message.payload)
    assert "q" in message.payload
    assert set(message.payload) <= {"q", "lang"}


@settings(max_examples=300, deadline=None)
@given(
    envelopes.map(_body),
    st.sampled_from(["origin_stage", "message_id", "payload.q", "meta.k"]),
)
def test_a_branch_key_is_a_bounded_string_or_a_refusal(body: bytes, key: str) -> None:
    parsed = parse_workflow(body, Properties(), limits=DEFAULT_LIMITS)
    if isinstance(parsed, Poison):
        return
    join = FanIn(expected=("planner", "docsearch")) if key == "origin_stage" else FanIn(2, key=key)
    branch = branch_of(join, parsed.message)
    if isinstance(branch, Poison):
        assert branch.reason in {"fan_in_key_missing", "fan_in_key_invalid", "unexpected_branch"}
    else:
        assert 1 <= len(branch) <= 256


def test_the_contract_reasons_are_the_topologys() -> None:
    with pytest.raises(WorkflowContractError) as info:
        validate_workflow_inbound(CONSUMER.workflow_stage, "index", {})
    assert info.value.reason in CONTRACT_REASONS

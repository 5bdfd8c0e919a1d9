"""The MCP server's pure parts: argument checks, the token, resource URIs, explain()."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna.contracts import is_valid_identifier
from relayna.errors import ContractError, EnvelopeTooLarge
from relayna.mcp import (
    OPERATION_TOOLS,
    READ_TOOLS,
    WORKFLOW_TOOLS,
    MCPConfig,
    bearer_token,
    check_arguments,
    explain,
    parse_uri,
    token_matches,
)
from relayna.mcp._catalog import tool_spec

STATUS = tool_spec("get_task_status")
assert STATUS is not None


@given(st.text(max_size=300))
def test_the_task_id_rule_is_the_identifier_rule(task_id: str) -> None:
    if is_valid_identifier(task_id):
        check_arguments(STATUS, {"task_id": task_id}, 1 << 20)
    else:
        with pytest.raises(ContractError):
            check_arguments(STATUS, {"task_id": task_id}, 1 << 20)


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4))
def test_arguments_beside_the_schema_are_refused(extra: dict[str, object]) -> None:
    arguments = {"task_id": "t1", **{f"x{k}": v for k, v in extra.items()}}
    if len(arguments) == 1:
        check_arguments(STATUS, arguments, 1 << 20)
    else:
        with pytest.raises(ContractError):
            check_arguments(STATUS, arguments, 1 << 20)


def test_integers_beyond_64_bits_are_contract_errors() -> None:
    with pytest.raises(ContractError):
        check_arguments(STATUS, {"task_id": "t1", "n": 1 << 70}, 1 << 20)


def test_size_is_checked_before_the_schema() -> None:
    with pytest.raises(EnvelopeTooLarge):
        check_arguments(STATUS, {"nonsense": "x" * 100}, 64)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_token_matches() -> None:
    assert token_matches("s" * 16, "s" * 16)
    assert not token_matches("s" * 16, "t" * 16)
    assert not token_matches(None, "s" * 16)
    assert not token_matches("s" * 16, None)
    with pytest.raises(Exception, match="16 characters"):
        MCPConfig(token="short")


def test_annotations_tell_the_truth() -> None:
    assert all(t.read_only and not t.destructive and not t.operational for t in READ_TOOLS)
    operational = (*OPERATION_TOOLS, *WORKFLOW_TOOLS)
    assert all(not t.read_only and t.operational and t.open_world for t in operational)
    assert {t.name for t in operational if t.destructive} == {
        "replay_dlq_message", "retry_failed_task", "replay_workflow_stage", "cancel_task",
    }  # fmt: skip
    # a second cancel changes nothing; a second publish or replay publishes again
    assert {t.name for t in operational if t.idempotent} == {"cancel_task"}


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("relayna://topology", ("topology", None)),
        ("relayna://dlq/queues", ("dlq.queues", None)),
        ("relayna://tasks/t-1/graph.mermaid", ("task.graph.mermaid", "t-1")),
        ("relayna://dlq/messages/abc", ("dlq.message", "abc")),
        ("relayna://workflow/runs/r1", ("workflow.run", "r1")),
    ],
)
def test_parse_uri(uri: str, parsed: tuple[str, str | None]) -> None:
    assert parse_uri(uri) == parsed


@pytest.mark.parametrize("uri", ["relayna://tasks/a..b/status", "http://x/topology",
                                 "relayna://tasks/%2F/status", "relayna://tasks/" + "x" * 300 + "/status"])  # fmt: skip
def test_bad_uris_are_contract_errors(uri: str) -> None:
    with pytest.raises(ContractError):
        parse_uri(uri)


def test_unknown_uris_are_lookup_errors() -> None:
    with pytest.raises(LookupError):
        parse_uri("relayna://tasks/t1/secrets")


def _event(status: str) -> dict[str, object]:
    return {"task_id": "t1", "status": status}


LETTER = {
    "dlq_id": "d1", "task_id": "t1", "queue_name": "q.dlq", "reason": "handler_error",
    "exception_type": "RuntimeError", "retry_attempt": 1, "max_retries": 1,
    "dead_lettered_at": "2026-12-07T10:00:00+00:00", "state": "dead_lettered",
    "payload_available": True,
}  # fmt: skip


def test_explain_a_dead_lettered_task() -> None:
    history = [_event(s) for s in ("processing", "retrying", "processing", "failed")]
    out = explain("t1", history, [LETTER], None)
    assert (out["state"], out["attempts"], out["retries"], out["found"]) == (
        "dead_lettered", 2, 1, True,
    )  # fmt: skip
    assert "RuntimeError" in out["summary"]
    assert "retry 1 of 1" in out["summary"]
    assert "replay_dlq_message(dlq_id='d1')" in out["next_steps"][0]


def test_explain_without_payload_says_publish_again() -> None:
    out = explain("t1", [_event("failed")], [{**LETTER, "payload_available": False}], None)
    assert "publish_task" in out["next_steps"][0]


def test_explain_an_unknown_and_a_running_task() -> None:
    unknown = explain("t1", [], [], None)
    assert (unknown["found"], unknown["state"]) == (False, "unknown")
    running = explain("t1", [_event("processing")], [], None)
    assert running["state"] == "processing"
    assert "wait_for_task" in running["next_steps"][0]
    replayed = explain("t1", [_event("failed")], [{**LETTER, "state": "replayed"}], None)
    assert replayed["state"] == "failed"
    assert replayed["next_steps"] == []

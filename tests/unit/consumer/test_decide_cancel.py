"""Cancelled and expired outcomes in the pure settle decision (issue 27)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relayna.consumer import (
    Ack,
    Cancelled,
    DeadLetter,
    Expired,
    ExpiryAction,
    Failed,
    FailureAction,
    Reject,
    Requeue,
    Retry,
    RetryPolicy,
    Stop,
    Succeeded,
    decide,
    terminal_status,
)

FAILED = Failed(exception_type="RuntimeError", exception_message="boom")
policies = st.one_of(
    st.none(),
    st.builds(RetryPolicy, max_retries=st.integers(0, 20), delay_ms=st.integers(1, 10**6)),
)
attempts = st.integers(0, 25)
remaining = st.one_of(st.none(), st.floats(-1e7, 1e7, allow_nan=False))


@given(policy=policies, attempt=attempts, reason=st.text(max_size=20), left=remaining,
       action=st.sampled_from(list(FailureAction)))  # fmt: skip
def test_a_cancelled_task_stops_and_is_never_retried_or_dead_lettered(
    policy: RetryPolicy | None, attempt: int, reason: str, left: float | None,
    action: FailureAction,
) -> None:  # fmt: skip
    decision = decide(
        Cancelled(reason, "running"), policy, attempt, failure_action=action, remaining_ms=left
    )
    assert decision == Stop("cancelled", "cancelled", reason, "running")
    assert terminal_status(decision) == "cancelled"


@given(policy=policies, attempt=attempts, phase=st.sampled_from(["before_start", "running"]))
def test_an_expired_task_stops_by_default_and_dead_letters_when_asked(
    policy: RetryPolicy | None, attempt: int, phase: str
) -> None:
    stopped = decide(Expired(phase), policy, attempt)
    assert isinstance(stopped, Stop)
    assert (stopped.status, stopped.reason, stopped.phase) == (
        "expired",
        "deadline_exceeded",
        phase,
    )
    kept = decide(Expired(phase), policy, attempt, on_expiry=ExpiryAction.DEAD_LETTER)
    assert kept == DeadLetter(reason="deadline_exceeded", attempt=attempt)
    assert terminal_status(kept) == "failed"


@given(
    policy=st.builds(RetryPolicy, max_retries=st.integers(1, 20), delay_ms=st.integers(1, 10**6)),
    attempt=attempts,
    left=st.floats(-1e7, 2e6, allow_nan=False),
)
def test_a_retry_never_outlives_the_deadline(
    policy: RetryPolicy, attempt: int, left: float
) -> None:
    decision = decide(FAILED, policy, attempt, remaining_ms=left)
    if attempt >= policy.max_retries:
        assert isinstance(decision, DeadLetter)  # out of retries: the deadline changes nothing
    elif left <= policy.delay_ms:
        assert decision == Stop(
            "expired", "deadline_before_retry", "The task's deadline comes before its next retry."
        )
    else:
        assert isinstance(decision, Retry)
        assert decision.delay_ms < left


@given(policy=policies, attempt=attempts)
def test_without_a_deadline_decisions_are_unchanged(
    policy: RetryPolicy | None, attempt: int
) -> None:
    for outcome in (Succeeded(), FAILED):
        assert decide(outcome, policy, attempt) == decide(
            outcome, policy, attempt, remaining_ms=None
        )


def test_terminal_status_names_what_each_decision_claims() -> None:
    assert terminal_status(Ack()) == "completed"
    assert terminal_status(Retry(1, 10, "r", "E", "m")) == ""
    assert terminal_status(Requeue("r")) == ""
    assert terminal_status(Reject("r")) == "failed"
    assert terminal_status(DeadLetter("r", 0)) == "failed"
    assert terminal_status(Stop(None, "already_ended")) == ""
    assert terminal_status(Stop("expired", "deadline_exceeded")) == "expired"

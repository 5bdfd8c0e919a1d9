"""The settle decision is a pure function: properties over attempts and outcomes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna.consumer import (
    Ack,
    DeadLetter,
    Failed,
    FailureAction,
    Poison,
    Reject,
    Requeue,
    Retry,
    RetryPolicy,
    Succeeded,
    decide,
)

FAILED = Failed(exception_type="RuntimeError", exception_message="boom")
policies = st.builds(RetryPolicy, max_retries=st.integers(0, 20), delay_ms=st.integers(1, 10**6))
outcomes = st.one_of(
    st.just(Succeeded()),
    st.builds(
        Failed,
        exception_type=st.text(max_size=5),
        exception_message=st.text(max_size=5),
        never_drop=st.booleans(),
    ),
    st.builds(Poison, reason=st.sampled_from(["invalid_json", "schema", "invalid_header"])),
)


def _settlements(decision: object) -> list[str]:
    """The broker operations the runtime performs for a decision (see _settle)."""
    if isinstance(decision, Ack | Retry | DeadLetter):
        return ["ack"]
    if isinstance(decision, Reject):
        return ["reject"]
    if isinstance(decision, Requeue):
        return ["nack-requeue"]
    raise AssertionError(decision)


@given(policy=policies)
def test_always_failing_task_runs_max_retries_plus_one_times_then_dead_letters(
    policy: RetryPolicy,
) -> None:
    attempt, attempts_seen = 0, []
    while True:
        attempts_seen.append(attempt)
        decision = decide(FAILED, policy, attempt)
        if isinstance(decision, Retry):
            assert decision.attempt == attempt + 1  # never goes down, never skips
            assert decision.delay_ms == policy.delay_ms
            attempt = decision.attempt
            continue
        assert isinstance(decision, DeadLetter)
        break
    assert attempts_seen == list(range(policy.max_retries + 1))


@given(
    outcome=outcomes,
    policy=st.one_of(st.none(), policies),
    attempt=st.integers(0, 50),
    action=st.sampled_from(FailureAction),
)
def test_each_decision_settles_exactly_once(outcome, policy, attempt, action) -> None:  # type: ignore[no-untyped-def]
    decision = decide(outcome, policy, attempt, failure_action=action)
    assert len(_settlements(decision)) == 1
    if isinstance(decision, Retry):
        assert decision.attempt > attempt


@given(policy=policies, attempt=st.integers(0, 50))
def test_dead_letter_iff_attempts_exhausted(policy: RetryPolicy, attempt: int) -> None:
    decision = decide(FAILED, policy, attempt)
    assert isinstance(decision, DeadLetter) == (attempt >= policy.max_retries)
    assert isinstance(decision, Retry) == (attempt < policy.max_retries)


@given(
    outcome=st.builds(Poison, reason=st.text(min_size=1, max_size=10)),
    policy=st.one_of(st.none(), policies),
)
def test_poison_always_dead_letters_with_its_reason(
    outcome: Poison, policy: RetryPolicy | None
) -> None:
    decision = decide(outcome, policy, 0)
    assert isinstance(decision, DeadLetter)
    assert decision.reason == outcome.reason


def test_success_acks_and_no_policy_follows_failure_action() -> None:
    assert decide(Succeeded(), None, 0) == Ack()
    assert isinstance(decide(FAILED, None, 0), Reject)
    assert isinstance(decide(FAILED, None, 0, failure_action=FailureAction.REQUEUE), Requeue)


@given(
    policy=st.one_of(st.none(), policies),
    attempt=st.integers(0, 50),
    action=st.sampled_from(FailureAction),
)
def test_a_never_drop_failure_is_never_rejected_nor_requeued(
    policy: RetryPolicy | None, attempt: int, action: FailureAction
) -> None:
    failed = Failed("UnroutableError", "no route", "manual_retry_unroutable", never_drop=True)
    decision = decide(failed, policy, attempt, failure_action=action)
    assert isinstance(decision, Retry | DeadLetter)
    assert isinstance(decision, Retry) == (policy is not None and attempt < policy.max_retries)
    if isinstance(decision, DeadLetter):
        assert (decision.reason, decision.exception_type) == (
            "manual_retry_unroutable",
            "UnroutableError",
        )


def test_max_retries_one_means_two_attempts() -> None:
    policy = RetryPolicy(max_retries=1, delay_ms=10)
    assert isinstance(decide(FAILED, policy, 0), Retry)
    assert isinstance(decide(FAILED, policy, 1), DeadLetter)


def test_bad_policy_and_attempt_are_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="delay_ms"):
        RetryPolicy(delay_ms=0)
    with pytest.raises(ValueError, match="attempt"):
        decide(FAILED, RetryPolicy(), -1)


def test_retry_priority_step_is_capped() -> None:
    policy = RetryPolicy(retry_priority_step=100)
    assert policy.retry_priority(1) == 100
    assert policy.retry_priority(5) == 255
    assert RetryPolicy().retry_priority(3) is None

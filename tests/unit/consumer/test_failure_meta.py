"""``failure_meta``: what a ``retrying`` / ``failed`` status says about the failure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relayna.consumer import DeadLetter, Reject, Requeue, Retry
from relayna.consumer._settle import failure_meta

texts = st.text(max_size=3000)
decisions = st.one_of(
    st.builds(
        Retry,
        attempt=st.integers(1, 100),
        delay_ms=st.integers(1, 10**6),
        reason=st.just("handler_error"),
        exception_type=st.text(min_size=1, max_size=400),
        exception_message=texts,
    ),
    st.builds(
        DeadLetter,
        reason=st.sampled_from(["handler_error", "invalid_json", "manual_retry_unroutable"]),
        attempt=st.integers(0, 100),
        exception_type=st.one_of(st.none(), st.text(max_size=400)),
        exception_message=st.one_of(st.none(), texts),
    ),
    st.builds(Reject, reason=st.just("handler_error"), exception_message=texts),
    st.builds(Requeue, reason=st.just("handler_error"), exception_message=texts),
)


@given(
    decision=decisions,
    attempt=st.integers(0, 100),
    max_retries=st.one_of(st.none(), st.integers(0, 100)),
    include=st.booleans(),
    traceback=st.one_of(st.none(), st.text(max_size=9000)),
)
def test_meta_is_bounded_and_says_where_the_message_went(
    decision: Retry | DeadLetter | Reject | Requeue,
    attempt: int,
    max_retries: int | None,
    include: bool,
    traceback: str | None,
) -> None:
    meta = failure_meta(
        decision,
        attempt=attempt,
        max_retries=max_retries,
        dead_letter_queue="jobs.dlq",
        include_message=include,
        traceback=traceback,
    )
    assert meta["attempt"] == attempt + 1  # counted as a person counts
    assert meta["max_retries"] == (max_retries or 0)
    assert meta["reason"] == decision.reason
    assert len(meta.get("exception_message", "")) <= 1024
    assert len(meta.get("exception_type", "")) <= 255
    assert len(meta.get("traceback", "")) <= 4000
    assert ("exception_message" in meta) == bool(include and decision.exception_message)
    if isinstance(decision, Retry):
        assert "dead_lettered" not in meta
        assert meta["retry_delay_ms"] == decision.delay_ms
    else:
        assert meta["dead_lettered"] is isinstance(decision, DeadLetter)
        assert ("dead_letter_queue" in meta) is isinstance(decision, DeadLetter)
        assert meta.get("requeued", False) is isinstance(decision, Requeue)

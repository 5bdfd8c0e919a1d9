"""The SSE resume cursor: examples for each rule (sans-IO, no event loop)."""

from __future__ import annotations

from relayna.contracts import TerminalStatusSet
from relayna.status import (
    LAST_EVENT_ID_MAX_LENGTH,
    Emit,
    ResumeCursor,
    Resync,
    clean_last_event_id,
)

TERMINAL = TerminalStatusSet()


def ev(n: int, status: str = "running", task: str = "t1") -> dict[str, object]:
    return {"task_id": task, "event_id": f"e{n}", "status": status}


def ids(actions: list[Emit | Resync]) -> list[str]:
    return [a.event_id if isinstance(a, Emit) else f"resync:{a.reason}" for a in actions]


def test_fresh_stream_replays_everything_then_goes_live() -> None:
    cursor = ResumeCursor(None, TERMINAL)
    assert cursor.state == "AWAIT_HISTORY"  # (a property: re-read below)
    assert ids(cursor.on_history([ev(1), ev(2)])) == ["e1", "e2"]
    assert cursor.state == "LIVE"  # type: ignore[comparison-overlap]
    assert ids(cursor.on_live(ev(2))) == []  # already sent through the history
    assert ids(cursor.on_live(ev(3))) == ["e3"]
    assert cursor.last_sent_id == "e3"
    assert cursor.sent_count == 3


def test_resume_after_last_event_id() -> None:
    cursor = ResumeCursor("e2", TERMINAL)
    assert ids(cursor.on_history([ev(1), ev(2), ev(3)])) == ["e3"]
    assert ids(cursor.on_live(ev(1))) == []  # older than the anchor: known


def test_unknown_or_evicted_id_resyncs_once() -> None:
    cursor = ResumeCursor("e0", TERMINAL)
    assert ids(cursor.on_history([ev(1), ev(2)])) == [
        "resync:unknown_last_event_id",
        "e1",
        "e2",
    ]
    assert cursor.resync_count == 1


def test_id_of_another_task_is_unknown() -> None:
    cursor = ResumeCursor("e1", TERMINAL)
    # the history is only this task's: "e9" of task t2 was never in it
    assert ids(cursor.on_history([ev(5), ev(6)]))[0] == "resync:unknown_last_event_id"


def test_garbage_last_event_id_is_absent_but_announced() -> None:
    for raw in ["x" * (LAST_EVENT_ID_MAX_LENGTH + 1), "a\x00b", "a\nb", "\x7f"]:
        assert clean_last_event_id(raw) == (None, True)
        cursor = ResumeCursor(raw, TERMINAL)
        assert ids(cursor.on_history([ev(1)])) == ["resync:invalid_last_event_id", "e1"]
    assert clean_last_event_id("") == (None, False)
    assert clean_last_event_id("x" * LAST_EVENT_ID_MAX_LENGTH) == ("x" * 256, False)


def test_the_latest_terminal_in_history_ends_the_stream() -> None:
    cursor = ResumeCursor(None, TERMINAL)
    actions = cursor.on_history([ev(1), ev(2, "Completed")])
    assert ids(actions) == ["e1", "e2"]
    assert cursor.done
    assert cursor.state == "DONE"
    assert cursor.terminal_status == "Completed"
    assert cursor.on_live(ev(4)) == []
    assert cursor.on_history([ev(5)]) == []


def test_a_terminal_the_task_went_on_from_does_not_end_the_stream() -> None:
    """A failed task replayed from the DLQ: failed, then a new attempt, live to its end."""
    cursor = ResumeCursor(None, TERMINAL)
    actions = cursor.on_history([ev(1, "processing"), ev(2, "failed"), ev(3, "processing")])
    assert ids(actions) == ["e1", "e2", "e3"]
    assert not cursor.done
    assert ids(cursor.on_live(ev(4, "completed"))) == ["e4"]
    assert (cursor.done, cursor.terminal_status) == (True, "completed")
    # A client that had the superseded terminal event resumes after it.
    resumed = ResumeCursor("e2", TERMINAL)
    history = [ev(1, "processing"), ev(2, "failed"), ev(3, "processing"), ev(4, "completed")]
    assert ids(resumed.on_history(history)) == ["e3", "e4"]
    assert not resumed.resumed_after_terminal
    at_end = ResumeCursor("e4", TERMINAL)
    assert at_end.on_history(history) == []
    assert at_end.resumed_after_terminal


def test_terminal_live_ends_the_stream() -> None:
    cursor = ResumeCursor(None, TerminalStatusSet(frozenset({"done"})))
    cursor.on_history([])
    assert ids(cursor.on_live(ev(1, "failed"))) == ["e1"]  # not terminal in this set
    assert ids(cursor.on_live(ev(2, "DONE"))) == ["e2"]
    assert cursor.done


def test_resume_after_the_terminal_event_sends_nothing() -> None:
    cursor = ResumeCursor("e2", TERMINAL)
    assert cursor.on_history([ev(1), ev(2, "failed")]) == []
    assert cursor.done
    assert cursor.resumed_after_terminal
    assert cursor.terminal_status == "failed"


def test_gap_fill_after_reconnect() -> None:
    cursor = ResumeCursor(None, TERMINAL, history_capacity=3)
    cursor.on_history([ev(1)])
    cursor.on_live(ev(2))
    # pubsub reconnected; e3, e4 were published meanwhile and lost on pubsub
    assert ids(cursor.on_history([ev(2), ev(3), ev(4)])) == ["e3", "e4"]
    # late pubsub copies are skipped
    assert cursor.on_live(ev(4)) == []


def test_gap_fill_when_last_sent_was_trimmed() -> None:
    cursor = ResumeCursor(None, TERMINAL, history_capacity=2)
    cursor.on_history([ev(1)])
    assert ids(cursor.on_history([ev(4), ev(5)])) == ["resync:history_gap", "e4", "e5"]


def test_gap_fill_with_nothing_sent_and_a_full_history() -> None:
    cursor = ResumeCursor(None, TERMINAL, history_capacity=2)
    assert cursor.on_history([]) == []
    assert ids(cursor.on_history([ev(7), ev(8)])) == ["resync:history_gap", "e7", "e8"]
    cursor2 = ResumeCursor(None, TERMINAL, history_capacity=5)
    cursor2.on_history([])
    assert ids(cursor2.on_history([ev(1), ev(2)])) == ["e1", "e2"]


def test_remembered_ids_are_bounded() -> None:
    cursor = ResumeCursor(None, TERMINAL, remember=2)
    cursor.on_history([])
    for n in range(5):
        cursor.on_live(ev(n))
    assert ids(cursor.on_live(ev(4))) == []
    assert ids(cursor.on_live(ev(0))) == ["e0"]  # forgotten: bounded memory


def test_gap_fill_after_a_resume_that_sent_nothing_finds_the_resume_position() -> None:
    """Resumed at e0 with nothing newer; the pubsub drops, e1 and e2 are
    published and the history is trimmed to [e2]: e1 is gone, so the gap
    fill must announce it instead of silently sending e2."""
    cursor = ResumeCursor("e0", TERMINAL, history_capacity=5)
    assert cursor.on_history([ev(0)]) == []
    actions = cursor.on_history([ev(2)])
    assert actions == [Resync("history_gap"), Emit("e2", ev(2))]


def test_gap_fill_finding_no_history_announces_a_possible_gap() -> None:
    """A stream without a position whose task's history vanished (expired)
    while the pubsub was down cannot prove it missed nothing."""
    cursor = ResumeCursor(None, TERMINAL, history_capacity=5)
    assert cursor.on_history([]) == []
    assert cursor.on_history([]) == [Resync("history_gap")]

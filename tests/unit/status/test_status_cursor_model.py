"""T17: a Hypothesis state machine of SSE resume against a model.

Operations: publish, terminal publish, connect (subscribe, racing publishes,
history read), deliver live messages, pubsub reset (messages lost, then the
gap fill), disconnect, trim. The client behaves like EventSource (it keeps
the last ``id:`` it saw and sends it on reconnect).

Invariants: the client never sees an id twice, sees ids in publish order,
never skips an id without a ``resync`` announced since its previous event,
gets at most one ``resync`` per history read, stops after the terminal
status, and, once the connection is quiet, is caught up.
"""

from __future__ import annotations

import os

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from relayna.contracts import TerminalStatusSet
from relayna.status import Emit, ResumeCursor, Resync

CAPACITY = 5
TERMINAL = TerminalStatusSet()


class ResumeModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[dict[str, object]] = []
        self.index: dict[str, int] = {}
        self.history: list[dict[str, object]] = []  # oldest first, bounded
        self.finished = False
        # client (EventSource)
        self.seen: list[str] = []
        self.last_id: str | None = None
        self.gap_announced = False
        # connection
        self.cursor: ResumeCursor | None = None
        self.pending: list[dict[str, object]] = []
        self.pubsub_up = True
        self.connected_at = 0

    # -- server ------------------------------------------------------------

    def _publish(self, status: str) -> None:
        event: dict[str, object] = {
            "task_id": "t",
            "event_id": f"e{len(self.published)}",
            "status": status,
        }
        self.index[str(event["event_id"])] = len(self.published)
        self.published.append(event)
        self.history = ([*self.history, event])[-CAPACITY:]
        if self.cursor is not None and self.pubsub_up:
            self.pending.append(event)

    @precondition(lambda self: not self.finished)
    @rule(n=st.integers(1, 8))
    def publish(self, n: int) -> None:
        for _ in range(n):
            self._publish("running")

    @precondition(lambda self: not self.finished)
    @rule()
    def publish_terminal(self) -> None:
        self._publish("completed")
        self.finished = True

    @rule(keep=st.integers(0, CAPACITY))
    def trim(self, keep: int) -> None:
        self.history = self.history[len(self.history) - keep :] if keep else []

    # -- client side -------------------------------------------------------

    def _apply(self, actions: list[Emit | Resync]) -> None:
        resyncs = sum(isinstance(a, Resync) for a in actions)
        assert resyncs <= 1
        if actions and isinstance(actions[0], Resync):
            pass
        else:
            assert resyncs == 0, "a resync must come before the events it covers"
        for action in actions:
            if isinstance(action, Resync):
                self.gap_announced = True
                continue
            event_id = action.event_id
            assert event_id not in self.seen, f"duplicate {event_id}"
            position = self.index[event_id]
            previous = -1 if self.last_id is None else self.index[self.last_id]
            assert position > previous, "out of order"
            if position != previous + 1 and previous != -1:
                assert self.gap_announced, f"silent gap {self.last_id} -> {event_id}"
            self.seen.append(event_id)
            self.last_id = event_id
            self.gap_announced = False

    @precondition(lambda self: self.cursor is None)
    @rule(racing=st.integers(0, 3))
    def connect(self, racing: int) -> None:
        self.cursor = ResumeCursor(self.last_id, TERMINAL, history_capacity=CAPACITY)
        self.connected_at = len(self.published)
        self.pending = []
        self.pubsub_up = True
        for _ in range(racing):  # published after subscribe, before the history read
            if not self.finished:
                self._publish("running")
        self.gap_announced = False
        terminal_known = self.last_id is not None and any(
            e["event_id"] == self.last_id and e["status"] == "completed" for e in self.history
        )
        actions = self.cursor.on_history(list(self.history))
        assert self.cursor.resumed_after_terminal == terminal_known
        if self.cursor.resumed_after_terminal:
            assert self.last_id is not None
            assert TERMINAL.is_terminal(str(self.published[self.index[self.last_id]]["status"]))
        self._apply(actions)

    @precondition(lambda self: self.cursor is not None and bool(self.pending))
    @rule(n=st.integers(1, 10))
    def deliver(self, n: int) -> None:
        assert self.cursor is not None
        for event in self.pending[:n]:
            self._apply(self.cursor.on_live(event))
        self.pending = self.pending[n:]

    @precondition(lambda self: self.cursor is not None and self.pubsub_up)
    @rule()
    def pubsub_down(self) -> None:
        self.pending = []
        self.pubsub_up = False

    @precondition(lambda self: self.cursor is not None and not self.pubsub_up)
    @rule()
    def pubsub_reconnected(self) -> None:
        assert self.cursor is not None
        self.pubsub_up = True
        self._apply(self.cursor.on_history(list(self.history)))

    @precondition(lambda self: self.cursor is not None)
    @rule()
    def disconnect(self) -> None:
        self.cursor = None
        self.pending = []

    @precondition(lambda self: self.cursor is not None and self.pubsub_up)
    @rule()
    def quiet_connection_is_caught_up(self) -> None:
        assert self.cursor is not None
        for event in self.pending:
            self._apply(self.cursor.on_live(event))
        self.pending = []
        if self.cursor.resumed_after_terminal or not self.published:
            return
        newest = str(self.published[-1]["event_id"])
        if self.index[newest] >= self.connected_at:
            # published while this stream was open: delivered, or announced as lost
            assert self.last_id == newest or self.gap_announced

    @invariant()
    def stops_after_terminal(self) -> None:
        if self.cursor is not None and self.cursor.last_sent_id is not None:
            status = str(self.published[self.index[self.cursor.last_sent_id]]["status"])
            assert self.cursor.done == TERMINAL.is_terminal(status)


#: 500 x 50 as in RELIABILITY T17 with RELAYNA_T17_EXAMPLES=500; fewer by default to keep CI fast.
ResumeModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("RELAYNA_T17_EXAMPLES", "150")),
    stateful_step_count=50,
    deadline=None,
)
test_resume_model = ResumeModel.TestCase

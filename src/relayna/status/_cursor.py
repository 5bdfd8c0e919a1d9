"""The SSE resume cursor (sans-IO): what a status stream sends, and when it ends.

Theory of operation. A stream subscribes to the task's pubsub channel, then
reads the durable history; live messages that arrive meanwhile wait in the
subscription. The cursor turns those inputs into actions:

* :meth:`ResumeCursor.on_history` (chronological history) is called once at
  the start and again after every pubsub reconnect (the gap fill). The
  *anchor* is the client's ``Last-Event-ID`` on the first call and the last id
  this stream sent on later calls. Events after the anchor are emitted; an
  anchor that is not in the history (unknown, evicted by trimming, or an id
  of another task, since only this task's history is searched) yields one
  :class:`Resync` first and then the whole available history (as does a gap
  fill for a stream without a position that finds no history at all: the
  task's events may have expired while it could not hear). A garbage
  ``Last-Event-ID`` (over 256 characters or with control characters) is
  treated as absent, but announced with a :class:`Resync` because the client
  asked for a position it cannot get.
* :meth:`ResumeCursor.on_live` emits a live event unless its id was already
  sent (history and live overlap by design).
* The first terminal status emitted ends the stream (``done``), unless the
  history shows the task went on after it (a failed task replayed from the
  DLQ or retried by hand: ``failed``, then ``processing`` ... ``completed``);
  such a superseded terminal event is sent and the stream goes on. A resume
  whose anchor *is* the task's latest terminal event ends before sending
  anything (``resumed_after_terminal``; HTTP answers 204 so EventSource stops).

States: ``AWAIT_HISTORY`` → ``LIVE`` → ``DONE``. Ids sent are remembered in a
bounded insertion-ordered set (duplicates can only come from the history
window, which is bounded too).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal, TypeAlias

import attrs

from relayna.status._event import EventDict, TerminalStatusSet, status_of

__all__ = [
    "LAST_EVENT_ID_MAX_LENGTH",
    "CursorAction",
    "Emit",
    "ResumeCursor",
    "Resync",
    "clean_last_event_id",
]

LAST_EVENT_ID_MAX_LENGTH = 256

ResyncReason: TypeAlias = Literal["invalid_last_event_id", "unknown_last_event_id", "history_gap"]


@attrs.frozen
class Emit:
    """Send this event (``id:`` = ``event_id``)."""

    event_id: str
    event: EventDict


@attrs.frozen
class Resync:
    """Tell the client it may have missed events; what follows is the available history."""

    reason: ResyncReason


CursorAction: TypeAlias = Emit | Resync


def clean_last_event_id(raw: str | None) -> tuple[str | None, bool]:
    """``(usable_id, was_garbage)`` for a ``Last-Event-ID`` header or query value.

    Empty means absent. Longer than 256 characters, or containing a control
    character (C0, DEL), means garbage: treated as absent.
    """
    if raw is None or raw == "":
        return None, False
    if len(raw) > LAST_EVENT_ID_MAX_LENGTH or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        return None, True
    return raw, False


class ResumeCursor:
    """Decides, for one SSE stream of one task, which events to send.

    Args:
        last_event_id: the client's ``Last-Event-ID`` (raw; cleaned here).
        terminal: statuses that end the stream.
        history_capacity: the store's ``max_history``; lets a gap fill detect
            that events may have been trimmed away even when this stream had
            sent nothing yet.
        remember: how many sent ids to remember for live/history dedupe.
    """

    def __init__(
        self,
        last_event_id: str | None,
        terminal: TerminalStatusSet,
        *,
        history_capacity: int | None = None,
        remember: int = 4096,
    ) -> None:
        self._resume_from, self._garbage = clean_last_event_id(last_event_id)
        self._terminal = terminal
        self._capacity = history_capacity
        self._remember = max(remember, 1)
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._last_sent: str | None = None
        self.started = False
        self.done = False
        self.resumed_after_terminal = False
        self.terminal_status: str | None = None
        self.sent_count = 0
        self.resync_count = 0

    @property
    def state(self) -> Literal["AWAIT_HISTORY", "LIVE", "DONE"]:
        if self.done:
            return "DONE"
        return "LIVE" if self.started else "AWAIT_HISTORY"

    @property
    def last_sent_id(self) -> str | None:
        """The newest id the client has: sent here, or its resume position."""
        return self._last_sent

    def _know(self, event_id: str) -> None:
        self._sent[event_id] = None
        self._sent.move_to_end(event_id)
        while len(self._sent) > self._remember:
            self._sent.popitem(last=False)

    def _emit(self, event: EventDict, out: list[CursorAction], *, superseded: bool) -> None:
        event_id = str(event["event_id"])
        self._know(event_id)
        self._last_sent = event_id
        self.sent_count += 1
        out.append(Emit(event_id, event))
        status = status_of(event)
        if not superseded and self._terminal.is_terminal(status):
            self.done = True
            self.terminal_status = status

    def _resync(self, reason: ResyncReason, out: list[CursorAction]) -> None:
        self.resync_count += 1
        out.append(Resync(reason))

    def on_history(self, chronological: Sequence[EventDict]) -> list[CursorAction]:
        """Actions for a (re-)read of the history, oldest first."""
        out: list[CursorAction] = []
        if self.done:
            return out
        ids = [str(e["event_id"]) for e in chronological]
        first = not self.started
        self.started = True
        anchor = self._resume_from if first else self._last_sent
        start = 0
        if anchor is None:
            if first and self._garbage:
                self._resync("invalid_last_event_id", out)
            elif not first and (
                not ids  # expired or deleted while the stream could not hear it
                or (
                    self._capacity is not None
                    and len(ids) >= self._capacity
                    and ids[0] not in self._sent
                )
            ):
                self._resync("history_gap", out)
        else:
            try:
                index = len(ids) - 1 - ids[::-1].index(anchor)
            except ValueError:
                self._resync("unknown_last_event_id" if first else "history_gap", out)
            else:
                start = index + 1
                if first:
                    # The client's position is this stream's position: a
                    # later gap fill must find it, or announce the gap.
                    self._last_sent = anchor
                    for event_id in ids[:start]:
                        self._know(event_id)
                    if index == len(ids) - 1 and self._terminal.is_terminal(
                        status_of(chronological[index])
                    ):
                        self.done = True
                        self.resumed_after_terminal = True
                        self.terminal_status = status_of(chronological[index])
                        return out
        last = len(chronological) - 1
        for index, event in enumerate(chronological[start:], start):
            if str(event["event_id"]) in self._sent:
                continue
            self._emit(event, out, superseded=index < last)
            if self.done:
                break
        return out

    def on_live(self, event: EventDict) -> list[CursorAction]:
        """Actions for one live (pubsub) event of this task."""
        out: list[CursorAction] = []
        if self.done or str(event["event_id"]) in self._sent:
            return out
        self._emit(event, out, superseded=False)
        return out

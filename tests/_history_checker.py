"""A Jepsen-style history checker for message delivery (the rabbitmq/jepsen taxonomy).

Producers record each publish with its outcome: ``ok`` (the broker
confirmed it), ``failed`` (a typed error said it was not taken) or
``unknown`` (the connection died before the answer). Consumers record each
delivery. :meth:`History.verdict` sorts every id:

* **lost**: confirmed, never consumed (must be 0);
* **unexpected**: consumed, never published (must be 0);
* **recovered**: not confirmed (failed/unknown), consumed anyway (allowed);
* **duplicated**: consumed more than once (allowed at delivery level:
  at-least-once; effects are deduplicated by idempotency keys).
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import attrs

__all__ = ["History", "Verdict"]

Outcome = Literal["ok", "failed", "unknown"]


@attrs.frozen
class Verdict:
    ok: int
    lost: frozenset[str]
    unexpected: frozenset[str]
    recovered: frozenset[str]
    duplicated: frozenset[str]

    def summary(self) -> str:
        return (
            f"ok={self.ok} lost={len(self.lost)} unexpected={len(self.unexpected)} "
            f"recovered={len(self.recovered)} duplicated={len(self.duplicated)}"
        )


@attrs.define
class History:
    published: dict[str, Outcome] = attrs.field(factory=dict)
    consumed: Counter[str] = attrs.field(factory=Counter)

    def publish(self, message_id: str, outcome: Outcome) -> None:
        # A retried publish keeps its best outcome: ok > unknown > failed.
        rank = {"failed": 0, "unknown": 1, "ok": 2}
        old = self.published.get(message_id)
        if old is None or rank[outcome] > rank[old]:
            self.published[message_id] = outcome

    def consume(self, message_id: str) -> None:
        self.consumed[message_id] += 1

    def confirmed(self) -> set[str]:
        return {m for m, outcome in self.published.items() if outcome == "ok"}

    def verdict(self) -> Verdict:
        confirmed = self.confirmed()
        seen = set(self.consumed)
        return Verdict(
            ok=len(confirmed & seen),
            lost=frozenset(confirmed - seen),
            unexpected=frozenset(seen - set(self.published)),
            recovered=frozenset((seen & set(self.published)) - confirmed),
            duplicated=frozenset(m for m, n in self.consumed.items() if n > 1),
        )

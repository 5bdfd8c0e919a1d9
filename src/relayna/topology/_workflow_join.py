"""Fan-in joins and the transition-graph checks of a workflow topology (pure data).

A stage that declares ``join=FanIn(...)`` is a barrier: the workflow runtime
records each branch message that reaches it and runs the stage's handler
once, with every branch payload, when the expected branches are all there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = ["FAN_IN_KEYS", "FanIn", "transition_cycle"]

#: What identifies one branch of a fan-in (``FanIn.key``): the sending stage,
#: the message id, or a top-level field of the message's ``payload``/``meta``.
FAN_IN_KEYS = ("origin_stage", "message_id")
_FIELD_PREFIXES = ("payload.", "meta.")


def _expected(value: int | str | Iterable[str]) -> int | tuple[str, ...]:
    if isinstance(value, bool):
        raise TypeError("expected must be a count or stage names, not a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@attrs.frozen
class FanIn:
    """A join: wait for ``expected`` branches, then run the stage once.

    Args:
        expected: the stages whose hand-offs are joined (each one branch), or
            the number of branches to wait for.
        key: what tells branches apart. ``"origin_stage"`` (the default with a
            list of stages), ``"message_id"`` (the default with a count), or a
            top-level field ``"payload.<name>"`` / ``"meta.<name>"``. A second
            message with a key already recorded is a duplicate: it is
            acknowledged and never counted twice.
        ttl_seconds: how long a partial join is kept (refreshed by each
            arrival); a join still waiting after that is dropped from the
            store and reported by the diagnostics as expired.
    """

    expected: int | tuple[str, ...] = attrs.field(converter=_expected)
    key: str | None = None
    ttl_seconds: float = 86_400.0

    @property
    def branch_key(self) -> str:
        """The effective ``key``."""
        if self.key is not None:
            return self.key
        return "message_id" if isinstance(self.expected, int) else "origin_stage"

    @property
    def expected_count(self) -> int:
        return self.expected if isinstance(self.expected, int) else len(self.expected)

    @property
    def expected_stages(self) -> tuple[str, ...]:
        return () if isinstance(self.expected, int) else self.expected

    def problems(self, stage: str, stages: Mapping[str, Sequence[str]]) -> list[str]:
        """Problems of this join on ``stage``; ``stages`` maps each stage to its
        ``allowed_next_stages`` (the declared transitions)."""
        label = f"workflow stage {stage!r} join"
        out: list[str] = []
        key = self.branch_key
        if key not in FAN_IN_KEYS and not (
            key.startswith(_FIELD_PREFIXES) and key.split(".", 1)[1].strip()
        ):
            out.append(
                f"{label}: key must be origin_stage, message_id, payload.<field> or "
                f"meta.<field>, got {key!r}"
            )
        if not self.ttl_seconds > 0:
            out.append(f"{label}: ttl_seconds must be > 0")
        feeders = sorted(s for s, nexts in stages.items() if stage in nexts)
        if isinstance(self.expected, int):
            if self.expected < 1:
                out.append(f"{label}: expected must be >= 1 branch, got {self.expected}")
            if not feeders:
                out.append(f"{label}: no stage declares a transition to {stage!r}")
            return out
        if not self.expected:
            out.append(f"{label}: expected must name at least one stage")
        if len(set(self.expected)) != len(self.expected):
            out.append(f"{label}: expected stages must be unique")
        for name in self.expected:
            if name not in stages:
                out.append(f"{label} names unknown stage {name!r}")
            elif stage not in stages[name]:
                out.append(
                    f"{label} names stage {name!r}, but no edge leads from {name!r} to "
                    f"{stage!r} (add {stage!r} to its allowed_next_stages)"
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "expected": self.expected if isinstance(self.expected, int) else list(self.expected),
            "expected_count": self.expected_count,
            "key": self.branch_key,
            "ttl_seconds": self.ttl_seconds,
        }


def transition_cycle(stages: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle of the transition graph (``stage -> allowed_next_stages``) as
    ``[a, b, ..., a]``, or None when the graph is acyclic. Unknown targets are
    ignored (reported elsewhere)."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(stages, white)
    for root in stages:
        if color[root] != white:
            continue
        path: list[str] = [root]
        color[root] = grey
        iters = [iter(stages[root])]
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                iters.pop()
                color[path.pop()] = black
                continue
            if nxt not in color:
                continue
            if color[nxt] == grey:
                return [*path[path.index(nxt) :], nxt]
            if color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                iters.append(iter(stages[nxt]))
    return None

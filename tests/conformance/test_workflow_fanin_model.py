"""The join script against a model: random arrival orders, duplicates, guard expiries,
join expiries, completions and failures, on the memory store and on the real Redis.

Each step runs the production script (``FANIN_ARRIVE_SCRIPT`` /
``STAGE_SETTLE_SCRIPT``) with a model clock and compares its reply with what
the model says: the verdict, the branch count, whether the branch was new,
and, on a release, every branch with its *first* body in arrival order.
Safety follows from the model: a release needs every expected branch, and no
second release while a live (unexpired) claim exists or after the join
completed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from relayna.transport import Store, open_store
from relayna.workflow import WorkflowKeys
from relayna.workflow._scripts import FANIN_ARRIVE_SCRIPT, STAGE_SETTLE_SCRIPT

GUARD_TTL = 1000
FANIN_TTL = 60_000
BRANCHES = ("a", "b", "c")
OWNERS = ("w1", "w2", "w3")


class JoinModel(RuleBasedStateMachine):
    portal: BlockingPortal
    store: Store
    counter = 0

    def __init__(self) -> None:
        super().__init__()
        JoinModel.counter += 1
        keys = WorkflowKeys(f"wfmodel:{id(self)}:{JoinModel.counter}")
        self.fanin = keys.fanin("t", "j")
        self.run_key = keys.run("t")
        self.inflight = keys.inflight("j", "t")
        self.marker = keys.dedup("j", "t", "-")
        self.expected = 3
        self.now = 1_000_000
        self.arrived: dict[str, bytes] = {}
        self.order: list[str] = []
        self.done = False
        self.claim: tuple[str, int] | None = None
        self.running: set[str] = set()
        self.releases = 0
        self.completions = 0

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        return self.portal.call(self.store.run_script, script, keys, args)

    def teardown(self) -> None:
        self.portal.call(self.store.delete, self.fanin, self.run_key, self.inflight, self.marker)

    @initialize(expected=st.integers(1, 3))
    def setup(self, expected: int) -> None:
        self.expected = expected

    # -- rules -----------------------------------------------------------------

    @rule(
        branch=st.sampled_from(BRANCHES), variant=st.integers(0, 2), owner=st.sampled_from(OWNERS)
    )
    def arrive(self, branch: str, variant: int, owner: str) -> None:
        body = b'{"branch":"%s","v":%d}' % (branch.encode(), variant)
        reply = self._call(
            FANIN_ARRIVE_SCRIPT,
            [self.fanin, self.run_key, self.inflight],
            ["j", branch, f"m-{branch}-{variant}", body, self.expected, FANIN_TTL, owner,
             self.now, GUARD_TTL, 600_000, "{}"],
        )  # fmt: skip
        verdict, n, new = reply[0].decode(), int(reply[1]), reply[2] == b"1"
        if self.done:
            assert (verdict, n, new) == ("done", len(self.arrived), False)
            return
        is_new = branch not in self.arrived
        if is_new:
            self.arrived[branch] = body
            self.order.append(branch)
        assert (n, new) == (len(self.arrived), is_new)
        if len(self.arrived) < self.expected:
            assert verdict == "waiting"
            return
        if self.claim is not None and self.claim[0] != owner and self.claim[1] > self.now:
            assert verdict == "busy"
            return
        assert verdict == "release"
        assert self.claim is None or self.claim[0] == owner or self.claim[1] <= self.now
        self.claim = (owner, self.now + GUARD_TTL)
        self.running.add(owner)
        self.releases += 1
        got = [(reply[i].decode(), reply[i + 1]) for i in range(3, len(reply), 2)]
        assert got == [(b, self.arrived[b]) for b in self.order]

    def _settle(self, verb: str, owner: str) -> int:
        reply = self._call(
            STAGE_SETTLE_SCRIPT,
            [self.run_key, self.inflight, self.marker, self.fanin],
            [verb, "j", "join-id", "join", owner, self.now, 600_000, 0, "retrying",
             '{"reason":"handler_error"}', "[]", "0", "1" if verb == "complete" else "0"],
        )  # fmt: skip
        return int(reply)

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        owner = data.draw(st.sampled_from(sorted(self.running)))
        held = self._settle("complete", owner)
        assert held == (self.claim is not None and self.claim[0] == owner)
        if held:
            self.claim = None
        self.running.discard(owner)
        self.done = True
        self.completions += 1

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        owner = data.draw(st.sampled_from(sorted(self.running)))
        held = self._settle("fail", owner)
        assert held == (self.claim is not None and self.claim[0] == owner)
        if held:
            self.claim = None
        self.running.discard(owner)

    @rule(ms=st.integers(1, 1500))
    def time_passes(self, ms: int) -> None:
        self.now += ms

    @rule()
    def join_expires(self) -> None:
        """The partial join's TTL ran out: its hash is gone (done flag included)."""
        self.portal.call(self.store.delete, self.fanin)
        self.arrived.clear()
        self.order.clear()
        self.done = False

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def at_most_one_live_claim(self) -> None:
        live = [o for o in self.running if self.claim is not None and self.claim[0] == o]
        assert len(live) <= 1


@pytest.fixture
def portal_store(store_url: str, anyio_backend: str) -> Iterator[tuple[BlockingPortal, Store]]:
    with (
        start_blocking_portal(backend=anyio_backend) as portal,
        portal.wrap_async_context_manager(open_store(store_url)) as store,
    ):
        yield portal, store


def test_the_join_script_matches_the_model(portal_store: tuple[BlockingPortal, Store]) -> None:
    JoinModel.portal, JoinModel.store = portal_store
    run_state_machine_as_test(
        JoinModel,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

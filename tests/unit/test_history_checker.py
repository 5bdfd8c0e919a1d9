"""The Jepsen-style history checker used by the fault tests sorts ids correctly."""

from __future__ import annotations

from _history_checker import History  # tests/ is on sys.path


def test_the_taxonomy() -> None:
    history = History()
    for message_id, outcome in [("a", "ok"), ("b", "ok"), ("c", "unknown"), ("d", "failed"),
                                ("e", "unknown"), ("e", "ok")]:  # fmt: skip
        history.publish(message_id, outcome)  # type: ignore[arg-type]
    for message_id in ["a", "a", "c", "x", "e"]:
        history.consume(message_id)
    verdict = history.verdict()
    assert verdict.ok == 2  # a, e (retried until confirmed)
    assert verdict.lost == {"b"}
    assert verdict.recovered == {"c"}
    assert verdict.unexpected == {"x"}
    assert verdict.duplicated == {"a"}
    assert verdict.summary() == "ok=2 lost=1 unexpected=1 recovered=1 duplicated=1"


def test_a_retry_never_downgrades_an_outcome() -> None:
    history = History()
    history.publish("a", "ok")
    history.publish("a", "failed")
    assert history.confirmed() == {"a"}

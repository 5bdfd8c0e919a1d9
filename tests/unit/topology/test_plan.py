from __future__ import annotations

import pytest

from relayna.errors import TopologyError
from relayna.topology import DeclarationPlan, retry_plan
from relayna.transport import BindingSpec, ExchangeSpec, QueueSpec


def test_retry_plan_wire_contract() -> None:
    plan = retry_plan("orders", 5000)
    assert plan.exchanges == ()
    assert plan.bindings == ()
    retry, dlq = plan.queues
    assert retry == QueueSpec(
        "orders.retry",
        durable=True,
        arguments={
            "x-message-ttl": 5000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "orders",
        },
    )
    assert dlq == QueueSpec("orders.dlq", durable=True, arguments={})


def test_retry_plan_custom_suffixes() -> None:
    plan = retry_plan("q", 1, retry_suffix=".later", dlq_suffix=".dead")
    assert plan.queue_names == ("q.later", "q.dead")


@pytest.mark.parametrize(
    ("source", "delay", "kwargs"),
    [
        ("", 10, {}),
        ("  ", 10, {}),
        ("q", 0, {}),
        ("q", -5, {}),
        ("q", 10, {"retry_suffix": ".x", "dlq_suffix": ".x"}),
        ("q", 10, {"retry_suffix": ""}),
    ],
)
def test_retry_plan_rejects_bad_input(source: str, delay: int, kwargs: dict[str, str]) -> None:
    with pytest.raises(TopologyError):
        retry_plan(source, delay, **kwargs)


def test_identical_repeats_are_dropped_and_conflicts_raise() -> None:
    x = ExchangeSpec("x", "topic")
    q = QueueSpec("q")
    b = BindingSpec("q", "x", "#")
    plan = DeclarationPlan(exchanges=(x, x), queues=(q, q), bindings=(b, b))
    assert plan == DeclarationPlan(exchanges=(x,), queues=(q,), bindings=(b,))
    with pytest.raises(TopologyError, match="declared twice"):
        DeclarationPlan(queues=(q, QueueSpec("q", arguments={"x-max-priority": 2})))
    with pytest.raises(TopologyError, match="declared twice"):
        DeclarationPlan(exchanges=(x, ExchangeSpec("x", "direct")))


def test_bindings_must_reference_declared_objects() -> None:
    with pytest.raises(TopologyError) as info:
        DeclarationPlan(bindings=(BindingSpec("q", "x", "k"),))
    assert len(info.value.problems) == 2
    with pytest.raises(TopologyError, match="default exchange"):
        DeclarationPlan(queues=(QueueSpec("q"),), bindings=(BindingSpec("q", "", "k"),))
    with pytest.raises(TopologyError, match="default exchange"):
        DeclarationPlan(exchanges=(ExchangeSpec(""),))


def test_merge_concatenates_in_order() -> None:
    a = DeclarationPlan(exchanges=(ExchangeSpec("a"),), queues=(QueueSpec("qa"),))
    b = DeclarationPlan(exchanges=(ExchangeSpec("b"), ExchangeSpec("a")), queues=(QueueSpec("qb"),))
    merged = a + b
    assert merged.exchange_names == ("a", "b")
    assert merged.queue_names == ("qa", "qb")
    assert merged.queue("qb") == QueueSpec("qb")
    assert merged.queue("nope") is None

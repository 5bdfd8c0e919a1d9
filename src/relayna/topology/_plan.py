"""Declaration plans: the ordered list of broker declarations a topology needs.

A :class:`DeclarationPlan` is plain data: exchanges (the dead-letter exchange
first), then queues, then bindings. Computing it does no I/O;
:meth:`DeclarationPlan.apply` performs the declarations on any
:class:`~relayna.transport.Broker`, in order, one at a time. Declarations are
idempotent on a broker (same name, same arguments), so applying a plan twice
is harmless; a redeclare with *other* arguments is refused by the broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs

from relayna.errors import PreconditionFailed, TopologyError
from relayna.transport import BindingSpec, Broker, ExchangeSpec, QueueInfo, QueueSpec

__all__ = ["DeclarationPlan", "retry_plan"]


def _tuple_of_exchanges(value: Iterable[ExchangeSpec]) -> tuple[ExchangeSpec, ...]:
    return tuple(value)


def _tuple_of_queues(value: Iterable[QueueSpec]) -> tuple[QueueSpec, ...]:
    return tuple(value)


def _tuple_of_bindings(value: Iterable[BindingSpec]) -> tuple[BindingSpec, ...]:
    return tuple(value)


@attrs.frozen
class DeclarationPlan:
    """Exchanges, queues and bindings to declare, in this order.

    Construction checks that the plan is self-consistent: names are unique
    (an identical repeated declaration is dropped, a conflicting one raises),
    the default exchange ``""`` is never declared or bound, and every binding
    names an exchange and a queue declared in the same plan.

    Raises:
        TopologyError: listing every problem found.
    """

    exchanges: tuple[ExchangeSpec, ...] = attrs.field(default=(), converter=_tuple_of_exchanges)
    queues: tuple[QueueSpec, ...] = attrs.field(default=(), converter=_tuple_of_queues)
    bindings: tuple[BindingSpec, ...] = attrs.field(default=(), converter=_tuple_of_bindings)

    def __attrs_post_init__(self) -> None:
        problems: list[str] = []
        exchanges = _dedupe("exchange", self.exchanges, problems)
        queues = _dedupe("queue", self.queues, problems)
        bindings = _dedupe_bindings(self.bindings)
        exchange_names = {e.name for e in exchanges}
        queue_names = {q.name for q in queues}
        for exchange in exchanges:
            if not exchange.name:
                problems.append("the default exchange '' cannot be declared")
        for queue in queues:
            if not queue.name:
                problems.append(
                    "queue names must not be empty (server-named queues are not planned)"
                )
        for binding in bindings:
            if not binding.exchange:
                problems.append(f"queue {binding.queue!r} cannot be bound to the default exchange")
            elif binding.exchange not in exchange_names:
                problems.append(
                    f"binding of queue {binding.queue!r} names exchange {binding.exchange!r}, "
                    "which the plan does not declare"
                )
            if binding.queue not in queue_names:
                problems.append(
                    f"binding on exchange {binding.exchange!r} names queue {binding.queue!r}, "
                    "which the plan does not declare"
                )
        if problems:
            raise TopologyError(problems[0], problems=problems)
        object.__setattr__(self, "exchanges", exchanges)
        object.__setattr__(self, "queues", queues)
        object.__setattr__(self, "bindings", bindings)

    @property
    def exchange_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.exchanges)

    @property
    def queue_names(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.queues)

    def queue(self, name: str) -> QueueSpec | None:
        """The declaration of queue ``name`` in this plan, if any."""
        for spec in self.queues:
            if spec.name == name:
                return spec
        return None

    def merge(self, other: DeclarationPlan) -> DeclarationPlan:
        """This plan followed by ``other``; identical repeats are dropped.

        Raises:
            TopologyError: the two plans declare one name differently.
        """
        return DeclarationPlan(
            exchanges=self.exchanges + other.exchanges,
            queues=self.queues + other.queues,
            bindings=self.bindings + other.bindings,
        )

    def __add__(self, other: DeclarationPlan) -> DeclarationPlan:
        return self.merge(other)

    async def apply(self, broker: Broker) -> tuple[QueueInfo, ...]:
        """Declare everything on ``broker`` in plan order.

        Returns:
            The :class:`QueueInfo` of each declared queue, in plan order.

        Raises:
            BrokerError: as raised by the adapter; ``PreconditionFailed`` when a
                queue already exists with other arguments, its message saying
                that a queue's type cannot change in place.

        Cancellation: declarations already sent stay declared; the plan can
        simply be applied again.
        """
        for exchange in self.exchanges:
            await broker.declare_exchange(exchange)
        infos = [await _declare_queue(broker, queue) for queue in self.queues]
        for binding in self.bindings:
            await broker.bind_queue(binding)
        return tuple(infos)


async def _declare_queue(broker: Broker, queue: QueueSpec) -> QueueInfo:
    try:
        return await broker.declare_queue(queue)
    except PreconditionFailed as exc:
        wanted = queue.arguments.get("x-queue-type", "classic")
        raise PreconditionFailed(
            f"queue {queue.name!r} already exists with other arguments "
            f"({exc.reply_text or exc}); this plan declares it as a {wanted} queue. "
            "A queue's type (x-queue-type: classic, quorum, stream) and its other "
            "x-arguments cannot change in place: declare the new queue under a new name, "
            "or drain and delete the old one first (see docs/cluster.md)",
            url=exc.url,
            reply_code=exc.reply_code,
            reply_text=exc.reply_text,
        ) from exc


_Spec = TypeVar("_Spec", ExchangeSpec, QueueSpec)


def _dedupe(kind: str, specs: tuple[_Spec, ...], problems: list[str]) -> tuple[_Spec, ...]:
    seen: dict[str, _Spec] = {}
    kept: list[_Spec] = []
    for spec in specs:
        previous = seen.get(spec.name)
        if previous is None:
            seen[spec.name] = spec
            kept.append(spec)
        elif previous != spec:
            problems.append(f"{kind} {spec.name!r} is declared twice with different settings")
    return tuple(kept)


def _dedupe_bindings(bindings: tuple[BindingSpec, ...]) -> tuple[BindingSpec, ...]:
    kept: list[BindingSpec] = []
    for binding in bindings:
        if binding not in kept:
            kept.append(binding)
    return tuple(kept)


def retry_plan(
    source_queue: str,
    delay_ms: int,
    *,
    retry_suffix: str = ".retry",
    dlq_suffix: str = ".dlq",
    retry_arguments: Mapping[str, Any] | None = None,
    dlq_arguments: Mapping[str, Any] | None = None,
) -> DeclarationPlan:
    """Retry and dead-letter queues for ``source_queue`` (wire contract of the original).

    Declares ``<source><retry_suffix>``, durable, with ``x-message-ttl=delay_ms``,
    ``x-dead-letter-exchange=""`` and ``x-dead-letter-routing-key=<source>``: a
    message parked there waits ``delay_ms`` and is then dead-lettered through
    the default exchange back to the source queue. Also declares a plain
    durable ``<source><dlq_suffix>`` with no arguments. Both are reached
    through the default exchange, so the plan has no exchanges or bindings.
    ``retry_arguments`` / ``dlq_arguments`` are added to each (a topology's
    ``work_queue_type`` arguments, e.g. quorum with at-least-once dead-lettering).

    Raises:
        TopologyError: empty source name or suffix, equal suffixes, or
            ``delay_ms <= 0``.
    """
    problems: list[str] = []
    if not source_queue or not source_queue.strip():
        problems.append("retry infrastructure needs a non-empty source queue name")
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or delay_ms <= 0:
        problems.append(f"retry delay must be a positive number of milliseconds, got {delay_ms!r}")
    if not retry_suffix or not dlq_suffix:
        problems.append("retry and dead-letter queue suffixes must not be empty")
    elif retry_suffix == dlq_suffix:
        problems.append(
            f"retry and dead-letter queue suffixes must differ, both are {retry_suffix!r}"
        )
    if problems:
        raise TopologyError(problems[0], problems=problems)
    retry_queue = QueueSpec(
        name=f"{source_queue}{retry_suffix}",
        durable=True,
        arguments={
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": source_queue,
            **(retry_arguments or {}),
        },
    )
    dead_letter_queue = QueueSpec(
        name=f"{source_queue}{dlq_suffix}", durable=True, arguments=dict(dlq_arguments or {})
    )
    return DeclarationPlan(queues=(retry_queue, dead_letter_queue))

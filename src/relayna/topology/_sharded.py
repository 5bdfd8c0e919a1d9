"""Sharded aggregation: aggregation events on the status exchange under ``agg.<shard>``.

The shard of an aggregation event is a stable hash of ``meta.parent_task_id``
(see :func:`~relayna.topology._routing.shard_for_key`) **[WIRE]**. Aggregation
queues are declared lazily by the consumer owning the shards, through
:meth:`aggregation_queue_plan`; they are not part of :meth:`plan`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from relayna.errors import TopologyError
from relayna.topology._arguments import merge_queue_arguments, queue_builtin_arguments
from relayna.topology._plan import DeclarationPlan
from relayna.topology._routing import normalize_shards, shard_for_key
from relayna.topology._status import StatusTopologyBase, copy_table
from relayna.topology._tasks import RoutedTasksSharedStatusTopology, SharedTasksSharedStatusTopology
from relayna.transport import BindingSpec, QueueSpec

__all__ = [
    "RoutedTasksSharedStatusShardedAggregationTopology",
    "ShardedAggregationMixin",
    "SharedTasksSharedStatusShardedAggregationTopology",
]

# Past this many shards, name collisions are checked on a sample only.
_NAME_CHECK_LIMIT = 4096


@attrs.frozen(kw_only=True, slots=False)
class ShardedAggregationMixin(StatusTopologyBase):
    """Aggregation fields and routing shared by both sharded topologies."""

    shard_count: int = 1
    aggregation_routing_prefix: str = "agg"
    aggregation_queue_template: str = "aggregation.queue.{shard}"
    aggregation_queue_name_prefix: str = "aggregation.queue.shards"
    aggregation_consumer_timeout_ms: int | None = None
    aggregation_single_active_consumer: bool | None = None
    aggregation_max_priority: int | None = None
    aggregation_queue_type: str | None = None
    aggregation_queue_arguments_overrides: dict[str, Any] = attrs.field(
        factory=dict, converter=copy_table
    )
    aggregation_queue_kwargs: dict[str, Any] = attrs.field(factory=dict, converter=copy_table)

    def _field_problems(self) -> list[str]:
        problems = super()._field_problems()
        if (
            isinstance(self.shard_count, bool)
            or not isinstance(self.shard_count, int)
            or self.shard_count < 1
        ):
            problems.append(f"shard_count must be an integer >= 1, got {self.shard_count!r}")
            return problems
        prefix = self.aggregation_routing_prefix
        if not prefix.strip() or "*" in prefix or "#" in prefix:
            problems.append(
                f"aggregation_routing_prefix must be a plain topic word, got {prefix!r}"
            )
        if not self.aggregation_queue_name_prefix.strip():
            problems.append("aggregation_queue_name_prefix must not be empty")
        try:
            names = {
                self.aggregation_queue_template.format(shard=s)
                for s in range(min(self.shard_count, _NAME_CHECK_LIMIT))
            }
        except (KeyError, IndexError, ValueError):
            problems.append(
                "aggregation_queue_template must use only the '{shard}' placeholder, "
                f"got {self.aggregation_queue_template!r}"
            )
        else:
            if "{shard}" not in self.aggregation_queue_template and self.shard_count > 1:
                problems.append(
                    "aggregation_queue_template must contain '{shard}' when shard_count > 1"
                )
            static = set(self._static_queue_names())
            clashes = sorted(names & static)
            if clashes:
                problems.append(f"aggregation queue names clash with other queues: {clashes}")
        try:
            self.aggregation_queue_arguments()
        except TopologyError as exc:
            problems.extend(exc.problems)
        return problems

    def aggregation_queue_arguments(self) -> dict[str, Any]:
        """Arguments of every aggregation queue (no DLX: aggregation is status traffic)."""
        builtins = queue_builtin_arguments(
            "aggregation",
            consumer_timeout_ms=self.aggregation_consumer_timeout_ms,
            single_active_consumer=self.aggregation_single_active_consumer,
            max_priority=self.aggregation_max_priority,
            queue_type=self.aggregation_queue_type,
        )
        return merge_queue_arguments(
            "aggregation",
            ("built-in fields", builtins),
            ("aggregation_queue_arguments_overrides", self.aggregation_queue_arguments_overrides),
            ("aggregation_queue_kwargs", self.aggregation_queue_kwargs),
        )

    def shard_for(self, parent_task_id: str | None) -> int:
        """``int(sha256(parent_task_id).hexdigest(), 16) % shard_count`` **[WIRE]**.

        Raises:
            ContractError: ``parent_task_id`` missing or empty.
        """
        return shard_for_key(parent_task_id or "", self.shard_count)

    def aggregation_routing_key(self, parent_task_id: str | None) -> str:
        """``"<aggregation_routing_prefix>.<shard>"``, published on the status exchange."""
        return f"{self.aggregation_routing_prefix}.{self.shard_for(parent_task_id)}"

    def aggregation_binding_keys(self, shards: Iterable[int]) -> tuple[str, ...]:
        """One ``agg.N`` key per (sorted, unique) shard."""
        prefix = self.aggregation_routing_prefix
        return tuple(f"{prefix}.{s}" for s in normalize_shards(shards, self.shard_count))

    def aggregation_queue_name(
        self, shards: Iterable[int], *, queue_name: str | None = None
    ) -> str:
        """The queue owning ``shards``.

        One shard: ``aggregation_queue_template.format(shard=s)``; several:
        ``"<aggregation_queue_name_prefix>.<s1>-<s2>-…"`` (sorted, unique).
        ``queue_name`` overrides the computed name (shards are still checked).

        Raises:
            TopologyError: no shard, or a shard outside ``0..shard_count-1``.
        """
        normalized = normalize_shards(shards, self.shard_count)
        if queue_name is not None:
            if not queue_name.strip():
                raise TopologyError("an explicit aggregation queue_name must not be empty")
            return queue_name
        if len(normalized) == 1:
            return self.aggregation_queue_template.format(shard=normalized[0])
        return f"{self.aggregation_queue_name_prefix}.{'-'.join(str(s) for s in normalized)}"

    def aggregation_queue_plan(
        self, shards: Iterable[int], *, queue_name: str | None = None
    ) -> DeclarationPlan:
        """Declarations for a consumer owning ``shards``: the status exchange,
        the durable aggregation queue, and one ``agg.N`` binding per shard.

        Raises:
            TopologyError: bad shards, or a name equal to a static queue.
        """
        normalized = normalize_shards(shards, self.shard_count)
        name = self.aggregation_queue_name(normalized, queue_name=queue_name)
        if name in self._static_queue_names():
            raise TopologyError(f"aggregation queue {name!r} clashes with a static queue name")
        return DeclarationPlan(
            exchanges=(self._status_exchange_spec(),),
            queues=(QueueSpec(name, durable=True, arguments=self.aggregation_queue_arguments()),),
            bindings=tuple(
                BindingSpec(name, self.status_exchange, key)
                for key in self.aggregation_binding_keys(normalized)
            ),
        )

    def max_priority_for(self, queue: str) -> int | None:
        """As for every topology; aggregation queues get the aggregation max priority."""
        if queue not in self._static_queue_names() and self._is_aggregation_queue(queue):
            value = self.aggregation_queue_arguments().get("x-max-priority")
            return value if isinstance(value, int) else None
        return super().max_priority_for(queue)

    def _is_aggregation_queue(self, queue: str) -> bool:
        if queue.startswith(f"{self.aggregation_queue_name_prefix}."):
            return True
        template = self.aggregation_queue_template
        head, _, tail = template.partition("{shard}")
        if not (queue.startswith(head) and queue.endswith(tail)):
            return False
        middle = queue[len(head) : len(queue) - len(tail)] if tail else queue[len(head) :]
        return middle.isdigit() and int(middle) < self.shard_count


@attrs.frozen(kw_only=True, slots=False)
class SharedTasksSharedStatusShardedAggregationTopology(
    ShardedAggregationMixin, SharedTasksSharedStatusTopology
):
    """:class:`SharedTasksSharedStatusTopology` plus sharded aggregation routing."""


@attrs.frozen(kw_only=True, slots=False)
class RoutedTasksSharedStatusShardedAggregationTopology(
    ShardedAggregationMixin, RoutedTasksSharedStatusTopology
):
    """:class:`RoutedTasksSharedStatusTopology` plus sharded aggregation routing."""

"""Transport contracts (broker, store) and their adapters, selected by URL.

The adapters' own classes and openers are importable from here too
(``MemoryStore``, ``open_coredis_store``, ...); each is imported on first use,
so an optional dependency (aiormq, redis-py) is needed only by the code that
names its adapter. The native AMQP and RESP clients and the memory broker are
subpackages with their own facades (:mod:`relayna.transport.amqp`,
:mod:`relayna.transport.resp`, :mod:`relayna.transport.memory_broker`).
"""

import importlib
from typing import TYPE_CHECKING

from relayna._supervise import Backoff, supervise
from relayna.transport._broker import (
    MAX_STREAM_OFFSET,
    BindingSpec,
    Broker,
    Consumer,
    Delivery,
    ExchangeSpec,
    ExchangeType,
    FieldTable,
    FieldValue,
    PeekedMessage,
    Properties,
    QueueInfo,
    QueueSpec,
    StreamOffset,
    SupportsPeek,
    check_stream_offset,
)
from relayna.transport._failover import (
    FailoverBroker,
    Opener,
    OperationKind,
    after_connection_lost,
)
from relayna.transport._failover_open import (
    PeekingFailoverBroker,
    broker_opener,
    open_failover_broker,
    publish_idempotent,
)
from relayna.transport._keyslot import (
    CLUSTER_SLOTS,
    check_cluster_prefix,
    hash_tag,
    key_slot,
    tag_prefix,
)
from relayna.transport._open import (
    BROKER_SCHEMES,
    STORE_SCHEMES,
    is_cluster_store_url,
    open_broker,
    open_store,
)
from relayna.transport._pubsub import (
    DEFAULT_SUBSCRIBER_BUFFER,
    PubSubMultiplexer,
    RawEvent,
    RawMessage,
    RawPubSub,
    RawPubSubConnector,
    RawSubscribed,
)
from relayna.transport._replicas import ReplicaBarrier, can_wait_for_replicas
from relayna.transport._store import (
    DirectDelivery,
    PubSubEvent,
    PubSubMessage,
    PubSubReconnected,
    Script,
    ScriptOps,
    ShardedPubSub,
    Store,
    Subscription,
    Value,
)
from relayna.transport._store_util import run_script_calls

__all__ = [
    "Backoff",
    "ReplicaBarrier",
    "can_wait_for_replicas",
    "supervise",
    "FailoverBroker",
    "Opener",
    "OperationKind",
    "PeekingFailoverBroker",
    "after_connection_lost",
    "broker_opener",
    "open_failover_broker",
    "publish_idempotent",
    "CLUSTER_SLOTS",
    "check_cluster_prefix",
    "hash_tag",
    "key_slot",
    "tag_prefix",
    "BROKER_SCHEMES",
    "STORE_SCHEMES",
    "is_cluster_store_url",
    "open_broker",
    "open_store",
    "BindingSpec",
    "Broker",
    "Consumer",
    "Delivery",
    "ExchangeSpec",
    "ExchangeType",
    "FieldTable",
    "FieldValue",
    "PeekedMessage",
    "Properties",
    "QueueInfo",
    "QueueSpec",
    "StreamOffset",
    "MAX_STREAM_OFFSET",
    "check_stream_offset",
    "SupportsPeek",
    "DirectDelivery",
    "PubSubEvent",
    "PubSubMessage",
    "PubSubReconnected",
    "Script",
    "ScriptOps",
    "ShardedPubSub",
    "Store",
    "Subscription",
    "Value",
    "run_script_calls",
    "DEFAULT_SUBSCRIBER_BUFFER",
    "PubSubMultiplexer",
    "RawEvent",
    "RawMessage",
    "RawPubSub",
    "RawPubSubConnector",
    "RawSubscribed",
    "CoredisStore",
    "MemoryStore",
    "open_coredis_store",
    "open_memory_store",
]

if TYPE_CHECKING:
    from relayna.transport._broker_aiormq import AiormqBroker as AiormqBroker
    from relayna.transport._broker_aiormq import open_aiormq_broker as open_aiormq_broker
    from relayna.transport._store_coredis import CoredisStore as CoredisStore
    from relayna.transport._store_coredis import open_coredis_store as open_coredis_store
    from relayna.transport._store_memory import MemoryStore as MemoryStore
    from relayna.transport._store_memory import open_memory_store as open_memory_store
    from relayna.transport._store_redispy import RedisPyStore as RedisPyStore
    from relayna.transport._store_redispy import open_redispy_store as open_redispy_store

#: Adapter names imported on first use. The aiormq and redis-py ones need
#: their optional dependency, so they stay out of ``__all__`` (a star import
#: must not fail without it).
_LAZY = {
    "AiormqBroker": "_broker_aiormq",
    "open_aiormq_broker": "_broker_aiormq",
    "CoredisStore": "_store_coredis",
    "open_coredis_store": "_store_coredis",
    "MemoryStore": "_store_memory",
    "open_memory_store": "_store_memory",
    "RedisPyStore": "_store_redispy",
    "open_redispy_store": "_store_redispy",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

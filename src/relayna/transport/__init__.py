"""Transport contracts (broker, store) and their adapters, selected by URL."""

from relayna.transport._broker import (
    BindingSpec,
    Broker,
    Consumer,
    Delivery,
    ExchangeSpec,
    ExchangeType,
    FieldTable,
    FieldValue,
    Properties,
    QueueInfo,
    QueueSpec,
    StreamOffset,
)
from relayna.transport._open import BROKER_SCHEMES, STORE_SCHEMES, open_broker, open_store
from relayna.transport._store import (
    DirectDelivery,
    PubSubEvent,
    PubSubMessage,
    PubSubReconnected,
    Script,
    ScriptOps,
    Store,
    Subscription,
)

__all__ = [
    "BROKER_SCHEMES",
    "STORE_SCHEMES",
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
    "Properties",
    "QueueInfo",
    "QueueSpec",
    "StreamOffset",
    "DirectDelivery",
    "PubSubEvent",
    "PubSubMessage",
    "PubSubReconnected",
    "Script",
    "ScriptOps",
    "Store",
    "Subscription",
]

"""Deprecated module name. The pubsub multiplexer is imported from :mod:`relayna.transport`;
``from relayna.transport.pubsub import ...`` still works, with a DeprecationWarning."""

from relayna._deprecated import moved_names

_NAMES = (
    "DEFAULT_SUBSCRIBER_BUFFER",
    "PubSubMultiplexer",
    "RawEvent",
    "RawMessage",
    "RawPubSub",
    "RawPubSubConnector",
    "RawSubscribed",
)
__getattr__ = moved_names(
    __name__,
    {n: (f"relayna.transport._pubsub:{n}", "import it from relayna.transport") for n in _NAMES},
)

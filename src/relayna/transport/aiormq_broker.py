"""Deprecated module name. The aiormq broker adapter is imported from :mod:`relayna.transport`;
``from relayna.transport.aiormq_broker import ...`` still works, with a DeprecationWarning."""

from relayna._deprecated import moved_names

_NAMES = ("AiormqBroker", "open_aiormq_broker")
__getattr__ = moved_names(
    __name__,
    {
        n: (f"relayna.transport._broker_aiormq:{n}", "import it from relayna.transport")
        for n in _NAMES
    },
)

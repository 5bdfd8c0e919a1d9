"""Deprecated module name. The redis-py store adapter is imported from :mod:`relayna.transport`;
``from relayna.transport.redispy_store import ...`` still works, with a DeprecationWarning."""

from relayna._deprecated import moved_names

_NAMES = ("RedisPyStore", "open_redispy_store")
__getattr__ = moved_names(
    __name__,
    {
        n: (f"relayna.transport._store_redispy:{n}", "import it from relayna.transport")
        for n in _NAMES
    },
)

"""Deprecated module name. The coredis store adapter is imported from :mod:`relayna.transport`;
``from relayna.transport.coredis_store import ...`` still works, with a DeprecationWarning."""

from relayna._deprecated import moved_names

_NAMES = ("CoredisStore", "open_coredis_store")
__getattr__ = moved_names(
    __name__,
    {
        n: (f"relayna.transport._store_coredis:{n}", "import it from relayna.transport")
        for n in _NAMES
    },
)

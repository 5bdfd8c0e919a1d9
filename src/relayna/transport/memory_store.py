"""Deprecated module name. The in-memory store is imported from :mod:`relayna.transport`;
``from relayna.transport.memory_store import ...`` still works, with a DeprecationWarning."""

from relayna._deprecated import moved_names

_NAMES = ("MemoryStore", "open_memory_store")
__getattr__ = moved_names(
    __name__,
    {
        n: (f"relayna.transport._store_memory:{n}", "import it from relayna.transport")
        for n in _NAMES
    },
)

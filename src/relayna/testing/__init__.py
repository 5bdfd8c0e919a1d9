"""Public conformance suites for broker and store adapters.

Run them against your own adapter the way relayna runs them against its own
(``tests/conformance``)::

    from relayna.testing import check_broker, check_store

    async with open_my_broker() as broker:
        await check_broker(broker, prefix="conformance-1")
"""

from relayna.testing._broker_conformance import (
    BROKER_CHECKS,
    BrokerCapabilities,
    BrokerCheck,
    check_broker,
)
from relayna.testing._store_conformance import STORE_CHECKS, StoreCheck, check_store

__all__ = [
    "BROKER_CHECKS",
    "STORE_CHECKS",
    "BrokerCapabilities",
    "BrokerCheck",
    "StoreCheck",
    "check_broker",
    "check_store",
]


def __getattr__(name: str) -> object:
    if name == "STATUS_WRITE_SCRIPT":  # deprecated; see _store_conformance
        from relayna.testing import _store_conformance

        return _store_conformance.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

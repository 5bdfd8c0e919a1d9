"""Turn a failure into the one line a user of the command line needs.

A command that cannot start (a queue declared elsewhere with other
arguments, a broker that is down, a wrong password, a bad URL, a
``module:object`` that does not import) ends with one line on stderr and exit
code 2, never an exception-group traceback. :func:`explain` is a pure
function from the exception to ``(message, exit code)``.
"""

from __future__ import annotations

import re

import attrs

from relayna.errors import (
    AuthenticationError,
    BrokerConnectionError,
    ConfigurationError,
    ConnectionLost,
    PreconditionFailed,
    RelaynaError,
    StoreAuthenticationError,
    StoreConnectionError,
    StoreConnectionLost,
    sole_exception,
)

__all__ = ["EXIT_CONFIG", "EXIT_RUNTIME", "Explained", "explain", "parse_inequivalent"]

EXIT_RUNTIME = 1
EXIT_CONFIG = 2

# RabbitMQ 3.10: "inequivalent arg 'x-message-ttl' for queue 'q.retry' in vhost '/':
# received '1000' but current is '30000'"; later versions say "received the value '1000'
# of type 'signedint' but current is the value '30000' of type 'long'"; "none" stands for
# a side without the argument.
_VALUE = r"(?:none|(?:the value )?'(?P<{0}>.*?)'(?: of type '[^']*')?)"
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for (?P<kind>queue|exchange) '(?P<name>[^']*)'"
    r"(?: in vhost '(?P<vhost>[^']*)')?"
    r"(?:: received " + _VALUE.format("requested") + r" but current is "
    r"" + _VALUE.format("current") + r")?"
)


@attrs.frozen
class Inequivalent:
    """A refused redeclare: which object, which argument, both values (``None`` = absent)."""

    kind: str
    name: str
    argument: str
    requested: str | None
    current: str | None


@attrs.frozen
class Explained:
    message: str
    exit_code: int


def parse_inequivalent(reply_text: str) -> Inequivalent | None:
    """The parts of RabbitMQ's (and the memory broker's) PRECONDITION_FAILED text."""
    match = _INEQUIVALENT.search(reply_text)
    if match is None:
        return None
    return Inequivalent(
        kind=match["kind"],
        name=match["name"],
        argument=match["arg"],
        requested=match["requested"],
        current=match["current"],
    )


def _show(value: str | None) -> str:
    return "(not set)" if value is None else value


def _explain_inequivalent(found: Inequivalent) -> str:
    head = (
        f"{found.kind} {found.name!r} already exists with {found.argument}="
        f"{_show(found.current)}, but this process declares {found.argument}="
        f"{_show(found.requested)}"
    )
    if found.argument == "x-message-ttl" and found.name.endswith(".retry"):
        fix = (
            f"the retry delay differs: use --retry-delay-ms {found.current} "
            f"(RetryPolicy(delay_ms={found.current})) to match it"
            if found.current is not None
            else "the retry queue was declared without a delay"
        )
        return (
            f"{head}; {fix}, or delete the queue (rabbitmqctl delete_queue {found.name}) "
            "so that it is declared again"
        )
    if found.kind == "queue":
        return (
            f"{head}; declare it with the same arguments as the process that created it, "
            f"or delete it (rabbitmqctl delete_queue {found.name}; its messages are lost) "
            "so that it is declared again"
        )
    return (
        f"{head}; declare it like the process that created it, or delete it "
        f"(rabbitmqctl delete_exchange {found.name}) so that it is declared again"
    )


def explain(exc: BaseException) -> Explained | None:
    """The one-line message and exit code for ``exc``; ``None`` for a non-relayna error.

    Exit code 2: configuration (bad URL, import, refused redeclare, wrong
    credentials, unreachable broker or store). Exit code 1: any other relayna
    failure. An exception group holding one real error is explained as that
    error.
    """
    if isinstance(exc, BaseExceptionGroup):
        # Runs after the event loop ended: cancellations are the non-Exception leaves.
        sole = sole_exception(exc, lambda leaf: isinstance(leaf, Exception))
        if sole is None:
            return None
        exc = sole
    if isinstance(exc, PreconditionFailed):
        found = parse_inequivalent(exc.reply_text or str(exc))
        if found is not None:
            return Explained(_explain_inequivalent(found), EXIT_CONFIG)
        return Explained(f"the broker refused a declaration: {exc}", EXIT_CONFIG)
    if isinstance(exc, AuthenticationError | StoreAuthenticationError):
        what = "broker" if isinstance(exc, AuthenticationError) else "store"
        return Explained(
            f"the {what} refused the credentials: {exc}; check the user and password in the URL",
            EXIT_CONFIG,
        )
    if isinstance(exc, BrokerConnectionError) and not isinstance(exc, ConnectionLost):
        return Explained(
            f"cannot reach the broker: {exc}; is it running, and is --broker-url "
            "(or RELAYNA_BROKER_URL) right?",
            EXIT_CONFIG,
        )
    if isinstance(exc, StoreConnectionError) and not isinstance(exc, StoreConnectionLost):
        return Explained(
            f"cannot reach the store: {exc}; is it running, and is --store-url "
            "(or RELAYNA_STORE_URL) right?",
            EXIT_CONFIG,
        )
    if isinstance(exc, ConfigurationError):
        return Explained(str(exc), EXIT_CONFIG)
    if isinstance(exc, RelaynaError):
        return Explained(str(exc), EXIT_RUNTIME)
    return None

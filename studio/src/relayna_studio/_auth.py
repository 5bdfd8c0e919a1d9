"""API tokens and roles (the original Studio had no authentication, ANCHOR §3.9).

Roles, each including the ones before it: ``reader`` (every read),
``operator`` (replay, retry, investigate, refresh), ``admin`` (registry
writes, token management, the audit log). A fourth kind, ``ingest``, is
bound to one service and may only push that service's events.

Token text: ``rst_<16 hex token id>_<43 url-safe characters of secret>``
(32 random bytes). Only ``sha256(secret)`` is stored: the secret is random
with 256 bits of entropy, so a slow password hash would add nothing; the
comparison is constant-time (:func:`hmac.compare_digest`), and an unknown
token id is compared against a dummy digest so both paths cost the same.
Token text is never logged nor stored, and is shown once, at creation.

Keys (``{p}`` = ``RELAYNA_STUDIO_AUTH_PREFIX``, default ``studio:auth``)::

    {p}:token:{token_id}    string, the token record JSON (with the digest)
    {p}:tokens              set of token ids
    {p}:ticket:{digest}     string, a stream ticket (60 s, single use)

Stream tickets exist because a browser's ``EventSource`` cannot send an
``Authorization`` header: a holder of a token asks for a ticket and opens
the stream with ``?ticket=...``; the ticket works once, within 60 seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any

import attrs

from relayna.contracts import dumps
from relayna.errors import ContractError
from relayna.transport import Script, Store
from relayna_studio._timefmt import load_object

__all__ = [
    "ROLES",
    "TOKEN_KINDS",
    "Principal",
    "TokenStore",
    "role_allows",
]

ROLES = ("reader", "operator", "admin")
TOKEN_KINDS = (*ROLES, "ingest")
_RANK = {"reader": 1, "operator": 2, "admin": 3}
_TOKEN = re.compile(r"rst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_TICKET = re.compile(r"[A-Za-z0-9_-]{43}")
_DUMMY_DIGEST = hashlib.sha256(b"relayna-studio-no-such-token").hexdigest()
TICKET_TTL_SECONDS = 60.0


def role_allows(role: str, needed: str) -> bool:
    """True when ``role`` may do what ``needed`` may (``ingest`` tokens may only ingest)."""
    if needed == "ingest":
        return role in ("ingest", "admin")
    return _RANK.get(role, 0) >= _RANK[needed]


@attrs.frozen
class Principal:
    """Who is calling: the token's name (``actor``), id, role and bound service."""

    actor: str
    role: str
    token_id: str | None = None
    service_id: str | None = None

    def allows(self, needed: str) -> bool:
        return role_allows(self.role, needed)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_CREATE_LUA = """
-- KEYS: token, tokens   ARGV: record, token_id
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SADD', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


_REVOKE_LUA = """
-- KEYS: token, tokens   ARGV: token_id
local n = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return n
"""


_REDEEM_LUA = """
-- KEYS: ticket
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
"""


CREATE_TOKEN_SCRIPT = Script(name="relayna_studio.auth.create", lua=_CREATE_LUA)
REVOKE_TOKEN_SCRIPT = Script(name="relayna_studio.auth.revoke", lua=_REVOKE_LUA)
REDEEM_TICKET_SCRIPT = Script(name="relayna_studio.auth.redeem", lua=_REDEEM_LUA)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "secret_sha256"}


class TokenStore:
    """Token records, verification and stream tickets (see the module docs)."""

    def __init__(self, store: Store, prefix: str = "studio:auth") -> None:
        self.store = store
        self.prefix = prefix

    def _token_key(self, token_id: str) -> str:
        return f"{self.prefix}:token:{token_id}"

    @property
    def _tokens_key(self) -> str:
        return f"{self.prefix}:tokens"

    async def create(
        self,
        *,
        name: str,
        role: str,
        service_id: str | None = None,
        created_by: str = "cli",
    ) -> tuple[str, dict[str, Any]]:
        """A new token; returns ``(token text, public record)``. The text is not kept.

        Raises:
            ContractError: unknown role, or ``ingest`` without a service id.
        """
        if role not in TOKEN_KINDS:
            raise ContractError("invalid role", errors=[("role", f"one of {TOKEN_KINDS}")])
        if (role == "ingest") != (service_id is not None):
            raise ContractError(
                "invalid token", errors=[("service_id", "required for, and only for, ingest")]
            )
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise ContractError("invalid token", errors=[("name", "1..100 characters")])
        while True:
            token_id = secrets.token_hex(8)
            secret = secrets.token_urlsafe(32)
            record = {
                "token_id": token_id,
                "name": name.strip(),
                "role": role,
                "service_id": service_id,
                "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "created_by": created_by,
                "secret_sha256": _digest(secret),
            }
            created = await self.store.run_script(
                CREATE_TOKEN_SCRIPT,
                [self._token_key(token_id), self._tokens_key],
                [dumps(record), token_id],
            )
            if int(created):
                return f"rst_{token_id}_{secret}", _public(record)

    async def list(self) -> list[dict[str, Any]]:
        ids = sorted(m.decode() for m in await self.store.smembers(self._tokens_key))
        if not ids:
            return []
        raws = await self.store.mget([self._token_key(i) for i in ids])
        out = []
        for raw in raws:
            record = self._decode(raw)
            if record is not None:
                out.append(_public(record))
        return out

    async def revoke(self, token_id: str) -> bool:
        if not re.fullmatch(r"[0-9a-f]{16}", token_id):
            return False
        removed = await self.store.run_script(
            REVOKE_TOKEN_SCRIPT, [self._token_key(token_id), self._tokens_key], [token_id]
        )
        return bool(int(removed))

    @staticmethod
    def _decode(raw: bytes | None) -> dict[str, Any] | None:
        return load_object(raw)

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of a token text, or ``None`` (unknown, revoked, malformed)."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        record = self._decode(await self.store.get(self._token_key(token_id)))
        stored = record.get("secret_sha256") if record else None
        ok = hmac.compare_digest(
            _digest(secret), stored if isinstance(stored, str) else _DUMMY_DIGEST
        )
        if not ok or record is None or record.get("role") not in TOKEN_KINDS:
            return None
        return Principal(
            actor=str(record.get("name")),
            role=str(record["role"]),
            token_id=token_id,
            service_id=record.get("service_id"),
        )

    async def issue_ticket(self, principal: Principal) -> tuple[str, float]:
        """A single-use stream ticket for ``principal``; returns ``(ticket, ttl seconds)``."""
        ticket = secrets.token_urlsafe(32)
        value = dumps(
            {
                "actor": principal.actor,
                "role": principal.role,
                "token_id": principal.token_id,
                "service_id": principal.service_id,
            }
        )
        await self.store.set(
            f"{self.prefix}:ticket:{_digest(ticket)}", value, ttl=TICKET_TTL_SECONDS
        )
        return ticket, TICKET_TTL_SECONDS

    async def redeem_ticket(self, ticket: str) -> Principal | None:
        if _TICKET.fullmatch(ticket) is None:
            return None
        raw = await self.store.run_script(
            REDEEM_TICKET_SCRIPT, [f"{self.prefix}:ticket:{_digest(ticket)}"], []
        )
        record = self._decode(raw)
        if record is None or record.get("role") not in TOKEN_KINDS:
            return None
        return Principal(
            actor=str(record.get("actor")),
            role=str(record["role"]),
            token_id=record.get("token_id"),
            service_id=record.get("service_id"),
        )

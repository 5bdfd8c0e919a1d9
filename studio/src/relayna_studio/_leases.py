"""Job leases: several Studio replicas share one store, each job runs once per service per interval.

``{p}:{job}:{service_id}`` (``{p}`` = ``RELAYNA_STUDIO_LEASE_PREFIX``, default
``studio:leases``) is taken with ``SET NX PX interval`` by the replica that
runs the job for that service in this interval, and is **not** released
after the run: the key's lifetime *is* the interval, so another replica that
wakes up later in the same interval finds it taken. A run that outlasts the
interval extends its own lease (compare-and-extend script), so two replicas
never run the same job for the same service at once.
"""

from __future__ import annotations

import uuid

from relayna.transport import Script, Store

__all__ = ["EXTEND_SCRIPT", "Leases"]

_EXTEND_LUA = """
-- KEYS: lease   ARGV: owner, ttl_ms
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


EXTEND_SCRIPT = Script(name="relayna_studio.lease.extend", lua=_EXTEND_LUA)


class Leases:
    def __init__(self, store: Store, prefix: str = "studio:leases", owner: str | None = None):
        self.store = store
        self.prefix = prefix
        self.owner = owner or uuid.uuid4().hex

    def key(self, job: str, service_id: str) -> str:
        return f"{self.prefix}:{job}:{service_id}"

    async def acquire(self, job: str, service_id: str, ttl: float) -> bool:
        """Take this interval's lease; False when another run already has it."""
        return await self.store.set(self.key(job, service_id), self.owner, ttl=ttl, nx=True)

    async def extend(self, job: str, service_id: str, ttl: float) -> bool:
        result = await self.store.run_script(
            EXTEND_SCRIPT, [self.key(job, service_id)], [self.owner, max(1, round(ttl * 1000))]
        )
        return bool(int(result))

"""Opaque handles that let a background job call the API on a user's behalf.

A job queue must not hold the session id: that is the browser's cookie credential, and whoever
holds it holds the session. A job handle is a random value of its own format
(``spark-job.<43 characters>``, which the session interface never accepts as a cookie) that maps,
in Redis, to the session it was issued for. It gives API calls for that session and nothing
else; it ends with the session and can be revoked on its own.

Keys: ``<prefix>job:<digest(handle)>`` (the session id, with the session's remaining lifetime
as TTL) and ``<prefix>jobs:{<sid>}``, the sorted set of a session's handle digests (at most
:data:`MAX_HANDLES`, the oldest ended first), hash-tagged into
the session's cluster slot so that ending the session finds them. Every command touches one key.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from .redis_client import as_text, key_digest

#: Live handles one session may have; issuing another ends the oldest. A view that issues a
#: handle per request cannot grow Redis without bound.
MAX_HANDLES = 32
#: What every handle starts with: never a valid session id, recognisable in a job's arguments.
HANDLE_PREFIX = "spark-job."
_HANDLE = re.compile(re.escape(HANDLE_PREFIX) + r"[A-Za-z0-9_-]{43}")


class JobHandles:
    """Job handles in Redis: issue one for a session, resolve it, revoke it or all of them."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, digest: str) -> str:
        """The key of one handle (named by its digest: a key name is no handle)."""
        return f"{self.prefix}job:{digest}"

    def index_key(self, sid: str) -> str:
        """The session's handles by issue time (a sorted set), in the session's cluster slot."""
        return f"{self.prefix}jobs:{{{sid}}}"

    def issue(self, sid: str, ttl: int) -> str:
        """A new handle for session ``sid``, valid ``ttl`` seconds (the session's remaining
        absolute lifetime) at most, or until revoked or the session ends."""
        handle = HANDLE_PREFIX + secrets.token_urlsafe(32)
        digest = key_digest(handle)
        ttl = max(int(ttl), 1)
        index = self.index_key(sid)
        self.redis.set(self.key(digest), sid, ex=ttl)
        self.redis.zadd(index, {digest: time.time()})
        # Handles live until the session's absolute end, so the set's TTL only ever shrinks.
        self.redis.expire(index, ttl)
        excess = self.redis.zcard(index) - MAX_HANDLES
        if excess > 0:
            for oldest, _ in self.redis.zpopmin(index, excess):
                self.redis.delete(self.key(as_text(oldest)))
        return handle

    def session_of(self, handle: str) -> str | None:
        """The session id ``handle`` acts for; None when unknown, revoked or ended."""
        if not isinstance(handle, str) or not _HANDLE.fullmatch(handle):
            return None
        sid = self.redis.get(self.key(key_digest(handle)))
        return as_text(sid) if sid else None

    def revoke(self, handle: str) -> bool:
        """End one handle; True when it was still valid."""
        sid = self.session_of(handle)
        if sid is None:
            return False
        digest = key_digest(handle)
        self.redis.delete(self.key(digest))
        self.redis.zrem(self.index_key(sid), digest)
        return True

    def revoke_all(self, sid: str) -> None:
        """End every handle of session ``sid`` (the session is ending)."""
        for digest in self.redis.zrange(self.index_key(sid), 0, -1):
            self.redis.delete(self.key(as_text(digest)))
        self.redis.delete(self.index_key(sid))

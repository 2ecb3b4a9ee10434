"""Handles that let a background job call the API for a user without the session id (the
browser's credential): ``<prefix>job:<digest>`` → sid, by age in ``<prefix>jobs:{<sid>}``."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from .redis_client import as_text, key_digest

#: Live handles per session; issuing another ends the oldest (Redis cannot grow without bound).
MAX_HANDLES = 32
HANDLE_PREFIX = "spark-job."
_HANDLE = re.compile(re.escape(HANDLE_PREFIX) + r"[A-Za-z0-9_-]{43}")


class JobHandles:
    """Job handles in Redis: issue one for a session, resolve it, revoke it or all of them."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, digest: str) -> str:
        return f"{self.prefix}job:{digest}"  # named by a digest: a key name is no handle

    def _index(self, sid: str) -> str:
        return f"{self.prefix}jobs:{{{sid}}}"

    def issue(self, sid: str, ttl: int) -> str:
        """A new handle for session ``sid``, valid ``ttl`` seconds at most, or until revoked or
        the session ends."""
        handle = HANDLE_PREFIX + secrets.token_urlsafe(32)
        digest = key_digest(handle)
        ttl = max(int(ttl), 1)
        index = self._index(sid)
        self.redis.set(self._key(digest), sid, ex=ttl)
        self.redis.zadd(index, {digest: time.time()})
        # Handles live until the session's absolute end: the index's TTL only ever shrinks.
        self.redis.expire(index, ttl)
        excess = self.redis.zcard(index) - MAX_HANDLES
        if excess > 0:
            for oldest, _ in self.redis.zpopmin(index, excess):
                self.redis.delete(self._key(as_text(oldest)))
        return handle

    def session_of(self, handle: str) -> str | None:
        """The session id ``handle`` acts for; None when unknown, revoked or ended."""
        if not isinstance(handle, str) or not _HANDLE.fullmatch(handle):
            return None
        sid = self.redis.get(self._key(key_digest(handle)))
        return as_text(sid) if sid else None

    def revoke(self, handle: str) -> bool:
        """End one handle; True when it was still valid."""
        sid = self.session_of(handle)
        if sid is None:
            return False
        digest = key_digest(handle)
        self.redis.delete(self._key(digest))
        self.redis.zrem(self._index(sid), digest)
        return True

    def revoke_all(self, sid: str) -> None:
        """End every handle of session ``sid`` (the session is ending)."""
        for digest in self.redis.zrange(self._index(sid), 0, -1):
            self.redis.delete(self._key(as_text(digest)))
        self.redis.delete(self._index(sid))

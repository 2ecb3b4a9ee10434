"""Whose sessions are whose, for a logout without the browser, and the job handles acting for
them. Keys: ``user:<digest(sub)>`` (sid → ``<sign-in time>:<provider sid>``),
``psid:<digest(psid)>`` (→ sub), ``job:<digest(handle)>`` (→ sid), ``jobs:{<sid>}`` (by age)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from .redis_client import as_text, key_digest
from .tokens import TokenStore

#: Live handles per session; issuing another ends the oldest (Redis cannot grow without bound).
MAX_HANDLES = 32
HANDLE_PREFIX = "spark-job."
_HANDLE = re.compile(re.escape(HANDLE_PREFIX) + r"[A-Za-z0-9_-]{43}")


class JobHandles:
    """Handles that let a background job call the API for a session without its id (the
    browser's credential): never accepted as a cookie, they end with their session."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, digest: str) -> str:
        return f"{self.prefix}job:{digest}"  # named by a digest: a key name is no handle

    def _index(self, sid: str) -> str:
        return f"{self.prefix}jobs:{{{sid}}}"

    def issue(self, sid: str, ttl: int) -> str:
        """A new handle for session ``sid``, valid ``ttl`` seconds at most (or until it ends)."""
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


def _entry(value: Any) -> tuple[int, str]:
    when, _, provider_sid = as_text(value).partition(":")
    return (int(when) if when.isdigit() and len(when) < 16 else 0), provider_sid


class SessionRegistry:
    """Index of signed-in sessions by user (``sub``) and by provider session (``sid`` claim)."""

    def __init__(
        self,
        redis: Any,
        prefix: str,
        tokens: TokenStore,
        session_key: Callable[[str], str],
        session_redis: Any,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.tokens = tokens
        self.session_key = session_key
        #: Flask-Session's client, where the sessions themselves live
        self.session_redis = session_redis
        self.jobs = JobHandles(redis, prefix)

    def user_key(self, sub: str) -> str:
        return f"{self.prefix}user:{key_digest(sub)}"

    def provider_key(self, provider_sid: str) -> str:
        return f"{self.prefix}psid:{key_digest(provider_sid)}"

    def register(
        self, sid: str, sub: str, provider_sid: str | None, ttl: int, *, login_at: float
    ) -> None:
        """Remember session ``sid`` of user ``sub``, opened with ``provider_sid`` at login_at."""
        ttl = max(int(ttl), 1)
        self.redis.hset(self.user_key(sub), sid, f"{int(login_at)}:{provider_sid or ''}")
        self.redis.expire(self.user_key(sub), ttl)
        if provider_sid:
            self.redis.set(self.provider_key(provider_sid), sub, ex=ttl)

    def _entries(
        self, sub: str | None, provider_sid: str | None, issued_at: float | None = None
    ) -> tuple[str | None, dict[str, str]]:
        """The owner and ``{our sid: provider sid}`` of the sessions a logout names."""
        owner = sub
        if provider_sid:  # its owner, who must be ``sub`` when given
            found = self.redis.get(self.provider_key(provider_sid))
            owner = as_text(found) if found and sub in (None, as_text(found)) else None
        if not owner:
            return None, {}
        entries: dict[str, str] = {}
        for sid, value in self.redis.hgetall(self.user_key(owner)).items():
            login_at, psid = _entry(value)
            if (issued_at is None or login_at <= issued_at) and psid == (provider_sid or psid):
                entries[as_text(sid)] = psid
        return owner, entries

    def sessions_of(
        self,
        *,
        sub: str | None = None,
        provider_sid: str | None = None,
        signed_in_before: float | None = None,
    ) -> set[str]:
        """The sessions of a provider session (of ``sub`` if given), else of ``sub`` (BCL §2.7);
        only those signed in by ``signed_in_before`` if given."""
        return set(self._entries(sub, provider_sid, signed_in_before)[1])

    def destroy(self, sid: str, sub: str | None = None, provider_sid: str | None = None) -> bool:
        """End one session server-side (data, tokens, job handles, index); True if it existed."""
        existed = bool(self.session_redis.delete(self.session_key(sid)))
        existed = bool(self.redis.delete(self.tokens.key(sid))) or existed  # one key per command
        self.jobs.revoke_all(sid)
        if sub:
            if provider_sid is None:  # e.g. a refused refresh: find it in the index
                found = self.redis.hget(self.user_key(sub), sid)
                provider_sid = _entry(found)[1] if found else None
            self.redis.hdel(self.user_key(sub), sid)
            if provider_sid and not self.sessions_of(sub=sub, provider_sid=provider_sid):
                self.redis.delete(self.provider_key(provider_sid))
        return existed

    def destroy_all(
        self,
        *,
        sub: str | None = None,
        provider_sid: str | None = None,
        issued_at: float | None = None,
    ) -> list[str]:
        """End the sessions a logout names (signed in by ``issued_at`` if given); one ``sub`` for
        each that was still alive."""
        owner, entries = self._entries(sub, provider_sid, issued_at)
        ended: list[str] = []
        for sid, psid in sorted(entries.items()):
            if self.destroy(sid, owner, psid or None) and owner:
                ended.append(owner)
        return ended

    def first_use_of_logout_token(self, jti: str, ttl: int) -> bool:
        """True the first time a logout token's ``jti`` is seen (kept ``ttl`` seconds)."""
        key = f"{self.prefix}jti:{key_digest(jti)}"
        return bool(self.redis.set(key, b"1", nx=True, ex=max(ttl, 1)))

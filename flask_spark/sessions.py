"""Which sessions belong to whom, so that a logout can end them all without the browser.

A per-user index ``<prefix>user:<sub>`` and a per-provider-session index ``<prefix>psid:<sid>``
hold our session ids; destroying a session deletes its Flask-Session key and its token record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from .tokens import TokenStore


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class SessionRegistry:
    """Index of signed-in sessions by user (``sub``) and by provider session (``sid`` claim)."""

    def __init__(
        self,
        redis: Any,
        prefix: str,
        tokens: TokenStore,
        session_key: Callable[[str], str],
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.tokens = tokens
        self.session_key = session_key

    def user_key(self, sub: str) -> str:
        """The set of our session ids of user ``sub``."""
        return f"{self.prefix}user:{_digest(sub)}"

    def provider_key(self, provider_sid: str) -> str:
        """The set of our session ids for one provider-side session."""
        return f"{self.prefix}psid:{_digest(provider_sid)}"

    def register(self, sid: str, sub: str, provider_sid: str | None, ttl: int) -> None:
        """Remember that session ``sid`` is user ``sub``'s (and provider session's)."""
        for key in (self.user_key(sub), provider_sid and self.provider_key(provider_sid)):
            if key:
                self.redis.sadd(key, sid)
                self.redis.expire(key, ttl)

    def sessions_of(self, *, sub: str | None = None, provider_sid: str | None = None) -> set[str]:
        """Our session ids for a user and/or a provider session."""
        found: set[str] = set()
        for key in (sub and self.user_key(sub), provider_sid and self.provider_key(provider_sid)):
            if key:
                found |= {
                    m.decode() if isinstance(m, bytes) else m for m in self.redis.smembers(key)
                }
        return found

    def destroy(self, sid: str, sub: str | None = None, provider_sid: str | None = None) -> None:
        """End one session server-side: its session data, its tokens and its index entries."""
        self.redis.delete(self.session_key(sid))
        self.tokens.delete(sid)
        if sub:
            self.redis.srem(self.user_key(sub), sid)
        if provider_sid:
            self.redis.srem(self.provider_key(provider_sid), sid)

    def destroy_all(self, *, sub: str | None = None, provider_sid: str | None = None) -> int:
        """End every session of a user (or a provider session); returns how many."""
        sids = self.sessions_of(sub=sub, provider_sid=provider_sid)
        for sid in sids:
            self.destroy(sid, sub, provider_sid)
        if sub:
            self.redis.delete(self.user_key(sub))
        if provider_sid:
            self.redis.delete(self.provider_key(provider_sid))
        return len(sids)

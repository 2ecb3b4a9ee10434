"""Which sessions belong to whom, so that a logout can end them all without the browser.

A per-user index ``<prefix>user:<sub>`` and a per-provider-session index ``<prefix>psid:<sid>``
hold our session ids (both names are digests, so a key name gives no identity away). Each
session also has a small record ``<prefix>reg:{<sid>}`` naming its user and provider session,
so that ending a session by any route (logout, front- or back-channel, a refused refresh)
removes it from every index. Destroying a session deletes its Flask-Session key, its token
record, its registry record and its index entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from .tokens import TokenStore


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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

    def record_key(self, sid: str) -> str:
        """Our session's registry record (its ``sub`` and provider ``psid``)."""
        return f"{self.prefix}reg:{{{sid}}}"

    def logout_token_key(self, jti: str) -> str:
        """The marker of a back-channel logout token already used."""
        return f"{self.prefix}jti:{_digest(jti)}"

    def register(self, sid: str, sub: str, provider_sid: str | None, ttl: int) -> None:
        """Remember that session ``sid`` is user ``sub``'s (and provider session's)."""
        ttl = max(int(ttl), 1)
        record = {"sub": sub, "psid": provider_sid or ""}
        self.redis.hset(self.record_key(sid), mapping=record)
        self.redis.expire(self.record_key(sid), ttl)
        for key in (self.user_key(sub), provider_sid and self.provider_key(provider_sid)):
            if key:
                self.redis.sadd(key, sid)
                self.redis.expire(key, ttl)

    def owner(self, sid: str) -> tuple[str | None, str | None]:
        """The ``(sub, provider sid)`` recorded for session ``sid`` (Nones when unknown)."""
        raw = self.redis.hmget(self.record_key(sid), ["sub", "psid"])
        sub, psid = (_text(v) if v else None for v in raw)
        return sub, psid

    def _members(self, key: str) -> set[str]:
        return {_text(m) for m in self.redis.smembers(key)}

    def sessions_of(self, *, sub: str | None = None, provider_sid: str | None = None) -> set[str]:
        """Our session ids for a provider session (of user ``sub`` when given too), else a user's.

        As Back-Channel Logout 1.0 §2.7 asks: a ``sid`` names exactly the sessions opened with
        that provider session; ``sub`` alone names every session of the user.
        """
        if provider_sid:
            found = self._members(self.provider_key(provider_sid))
            if sub:
                found &= self._members(self.user_key(sub))
            return found
        if sub:
            return self._members(self.user_key(sub))
        return set()

    def destroy(self, sid: str, sub: str | None = None, provider_sid: str | None = None) -> bool:
        """End one session server-side: its data, its tokens, its record and its index entries.

        ``sub`` and ``provider_sid`` are found in the session's record when not given. Returns
        True when the session still existed.
        """
        known_sub, known_psid = self.owner(sid)
        # One key per call: the keys live in different Redis Cluster slots.
        existed = False
        for key in (self.session_key(sid), self.tokens.key(sid), self.record_key(sid)):
            existed = bool(self.redis.delete(key)) or existed
        self.redis.delete(self.tokens.lock_key(sid))
        for owner in {sub, known_sub} - {None}:
            self.redis.srem(self.user_key(str(owner)), sid)
        for psid in {provider_sid, known_psid} - {None}:
            self.redis.srem(self.provider_key(str(psid)), sid)
        return existed

    def destroy_all(self, *, sub: str | None = None, provider_sid: str | None = None) -> list[str]:
        """End every session a logout names (see :meth:`sessions_of`).

        Returns the ``sub`` of each session that was still alive (one entry per session).
        """
        ended: list[str] = []
        for sid in sorted(self.sessions_of(sub=sub, provider_sid=provider_sid)):
            owner, _ = self.owner(sid)
            if self.destroy(sid, sub, provider_sid):
                ended.append(owner or sub or "")
        if provider_sid and not self.redis.scard(self.provider_key(provider_sid)):
            self.redis.delete(self.provider_key(provider_sid))
        if sub and not provider_sid:
            self.redis.delete(self.user_key(sub))
        return ended

    def first_use_of_logout_token(self, jti: str, ttl: int) -> bool:
        """True the first time a logout token's ``jti`` is seen (kept ``ttl`` seconds)."""
        return bool(self.redis.set(self.logout_token_key(jti), b"1", nx=True, ex=max(ttl, 1)))

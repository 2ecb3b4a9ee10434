"""Refresh exactly once (refresh tokens are single use): under the session's Redis lock, re-read
the record, write back only if its version is unchanged. Revocations the provider could not take
wait, sealed, for ``flask spark retry-revocations`` (RFC 7009 §2.2.1)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from redis.exceptions import LockError

from .errors import APIUnavailable, IdTokenError, ProviderError, SessionExpired, SparkError
from .oidc import OIDCClient
from .redis_client import REDIS_DOWN
from .tokens import TokenSet, TokenStore, TokenVault

log = logging.getLogger("flask_spark")

PENDING_SID = "revoke:pending"  # the "session id" a sealed pending token is bound to
MAX_AGE = 7 * 24 * 3600  # the provider has expired a week-old token: no use trying again
BATCH = 1000  # entries looked at per run at most


@dataclass
class RetryReport:
    """What one retry run did."""

    revoked: int = 0
    dropped: int = 0
    unreadable: int = 0


class RevocationQueue:
    """Sealed tokens whose revocation failed, in ``<prefix>revoke:pending``."""

    def __init__(self, redis: Any, prefix: str, vault: TokenVault) -> None:
        self.redis = redis
        self.vault = vault
        self.key = f"{prefix}revoke:pending"

    def revoke(self, oidc: OIDCClient, token: str, hint: str) -> bool:
        """Revoke ``token`` at the provider, else queue it; True when the provider confirmed."""
        if _revoked(oidc, token, hint):
            return True
        log.warning("The %s revocation failed; queued for `flask spark retry-revocations`.", hint)
        refresh = hint == "refresh_token"
        record = TokenSet(
            access_token="" if refresh else token,
            refresh_token=token if refresh else None,
            subject=None,
            expires_at=0,
            sid=PENDING_SID,
        )
        try:
            self.redis.zadd(self.key, {self.vault.seal(record): time.time()})
        except REDIS_DOWN as exc:
            log.error("Could not queue the failed revocation: %s", type(exc).__name__)
        return False

    def size(self) -> int:
        return int(self.redis.zcard(self.key))

    def retry(self, oidc: OIDCClient) -> RetryReport:
        """Try each pending revocation once; revoked, week-old and unreadable entries leave."""
        now = time.time()
        report = RetryReport()
        for blob, queued_at in self.redis.zrange(self.key, 0, BATCH - 1, withscores=True):
            record = self.vault.open(blob, PENDING_SID)
            if queued_at < now - MAX_AGE:
                report.dropped += self.redis.zrem(self.key, blob)
            elif record is None:  # sealed with a key no longer configured
                report.unreadable += self.redis.zrem(self.key, blob)
            elif (
                _revoked(oidc, record.refresh_token, "refresh_token")
                if record.refresh_token
                else _revoked(oidc, record.access_token, "access_token")
            ):
                report.revoked += self.redis.zrem(self.key, blob)
        return report


def _revoked(oidc: OIDCClient, token: str, hint: str) -> bool:
    try:
        return oidc.revoke(token, hint)
    except SparkError as exc:
        log.warning("Revocation of the %s at the provider failed: %s", hint, exc.message)
        return False


@dataclass
class TokenManager:
    """Valid access tokens for session ids, with hooks after a refresh and a session's end."""

    store: TokenStore
    oidc: OIDCClient
    skew: float
    lock_timeout: float
    lock_wait: float
    on_refresh: Callable[[str, TokenSet], None] | None = None
    on_session_end: Callable[[str, str | None], None] | None = None

    @property
    def revocations(self) -> RevocationQueue:
        """Where the grants of tokens not stored are revoked (or queued)."""
        return RevocationQueue(self.store.redis, self.store.prefix, self.store.vault)

    def current(self, sid: str, blob: bytes | None = None) -> TokenSet:
        """The session's tokens, refreshed first if about to expire; ``blob`` is the sealed
        record when the session's round trip read it already."""
        tokens = self._stored(sid, blob)
        if tokens.unverified_id_token:
            self._check_identity(sid, tokens, tokens.unverified_id_token)
            checked = replace(tokens, unverified_id_token=None)
            # Same version: a racing refresh bumps it, and then its record wins.
            tokens = checked if self.store.replace(checked, tokens.version) else self._stored(sid)
        if tokens.expires_within(self.skew):
            tokens = self.refresh(sid, stale=tokens)
        return tokens

    def _stored(self, sid: str, blob: bytes | None = None) -> TokenSet:
        tokens = self.store.vault.open(blob, sid) if blob is not None else self.store.load(sid)
        if tokens is None:
            raise SessionExpired("Your session has ended; please sign in again.")
        return tokens

    def refresh(self, sid: str, *, stale: TokenSet) -> TokenSet:
        """Replace ``stale`` (expired, or refused with 1020) by fresh tokens, exactly once."""
        latest = self.store.load(sid)
        if latest is not None and latest.version != stale.version:
            return latest  # refreshed elsewhere already: no need to wait for the lock
        lock = self.store.lock(sid, self.lock_timeout, self.lock_wait)
        if not lock.acquire():
            raise APIUnavailable(
                "Another request is refreshing this session's token and did not finish in time."
            )
        try:
            current = self._stored(sid)
            if current.version != stale.version:
                return current  # another thread, worker or host refreshed it
            if not current.refresh_token:
                self._end(sid, current.subject)
                raise SessionExpired("Your session's token expired and cannot be refreshed.")
            return self._do_refresh(sid, current)
        finally:
            try:
                lock.release()
            except LockError:
                log.warning("The refresh lock expired before release; raise SPARK_HTTP_TIMEOUT.")

    def _do_refresh(self, sid: str, current: TokenSet) -> TokenSet:
        try:
            response = self.oidc.refresh(current.refresh_token or "")
        except ProviderError as exc:
            if exc.error not in ("invalid_grant", "invalid_token", "unauthorized_client"):
                if exc.status < 500:  # e.g. temporarily_unavailable: the provider's trouble
                    exc.status = 502
                raise
            # Re-read once: a worker without the lock (lock expiry) may have refreshed already.
            again = self.store.load(sid)
            if again is not None and again.version != current.version:
                return again
            log.info("Refresh refused by the provider (%s); ending the session.", exc.error)
            self._end(sid, current.subject)
            raise SessionExpired("Your sign-in has expired; please sign in again.") from None
        fresh = current.rotated(response)
        id_token = response.get("id_token")
        if isinstance(id_token, str):
            try:
                self._check_identity(sid, fresh, id_token)
            except ProviderError as exc:
                # Keys out of reach: store the tokens (the old refresh token is spent), unused.
                log.warning("Refreshed id_token not checked yet: %s", exc.message)
                fresh = replace(fresh, unverified_id_token=id_token)
        if not self.store.replace(fresh, current.version):
            # The session ended meanwhile (or, past a lock expiry, another refresh won): give
            # back the grant of tokens stored nowhere.
            winner = self.store.load(sid)
            kept = (winner.refresh_token, winner.access_token) if winner else ()
            if fresh.refresh_token and fresh.refresh_token not in kept:
                self.revocations.revoke(self.oidc, fresh.refresh_token, "refresh_token")
            if fresh.access_token not in kept:
                self.revocations.revoke(self.oidc, fresh.access_token, "access_token")
            return self._stored(sid)
        if self.on_refresh is not None:
            self.on_refresh(sid, fresh)
        if fresh.unverified_id_token:
            raise APIUnavailable(
                "The identity provider's keys are unreachable; please retry in a moment."
            )
        return fresh

    def _check_identity(self, sid: str, tokens: TokenSet, id_token: str) -> None:
        """A refreshed id_token must be valid and name the same user (Core §12.2); a refused
        one ends the session and revokes its grant."""
        try:
            self.oidc.validate_id_token(
                id_token, nonce=None, previous={"sub": tokens.subject} if tokens.subject else None
            )
        except IdTokenError as exc:
            log.warning("Refreshed id_token refused: %s", exc.message)
            if tokens.refresh_token:
                self.revocations.revoke(self.oidc, tokens.refresh_token, "refresh_token")
            self._end(sid, tokens.subject)
            raise SessionExpired("The provider changed the signed-in identity.") from None

    def _end(self, sid: str, subject: str | None) -> None:
        self.store.delete(sid)
        if self.on_session_end is not None:
            self.on_session_end(sid, subject)

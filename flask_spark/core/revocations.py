"""Revoking tokens at the provider (RFC 7009); those it could not take wait, sealed, in a sorted
set scored by queue time for ``flask spark retry-revocations`` (RFC 7009 §2.2.1: retry later)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import SparkError
from .oidc import OIDCClient
from .redis_client import REDIS_DOWN
from .tokens import TokenSet, TokenVault

log = logging.getLogger("flask_spark")

#: The "session id" a sealed pending token is bound to.
PENDING_SID = "revoke:pending"
#: Entries looked at per run at most.
BATCH = 1000


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
        try:
            if oidc.revoke(token, hint):
                return True
        except SparkError as exc:
            log.warning("Revocation of the %s at the provider failed: %s", hint, exc.message)
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
        """How many revocations are pending."""
        return int(self.redis.zcard(self.key))

    def retry(self, revoke: Callable[[str, str], bool], *, max_age: float) -> RetryReport:
        """Try each pending revocation once with ``revoke(token, hint)``; revoked, older than
        ``max_age`` and unreadable entries leave."""
        now = time.time()
        report = RetryReport()
        for blob, queued_at in self.redis.zrange(self.key, 0, BATCH - 1, withscores=True):
            record = self.vault.open(blob, PENDING_SID)
            if queued_at < now - max_age:
                report.dropped += self.redis.zrem(self.key, blob)
            elif record is None:  # sealed with a key no longer configured
                report.unreadable += self.redis.zrem(self.key, blob)
            elif (
                revoke(record.refresh_token, "refresh_token")
                if record.refresh_token
                else revoke(record.access_token, "access_token")
            ):
                report.revoked += self.redis.zrem(self.key, blob)
        return report

"""Tokens at rest: a hash ``<prefix>tok:{<session key>}`` (the session's Cluster slot) of a
plaintext version and the Fernet ciphertext, written compare-and-set on the version so that a
slower worker never puts back a refresh token that was rotated meanwhile."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from redis.lock import Lock

from .errors import SparkConfigError, SparkError
from .redis_client import as_text


@dataclass(frozen=True)
class TokenSet:
    """The tokens of one signed-in session: never rendered, logged, put in a cookie or a repr."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    #: the sign-in's ``sub``, which a refreshed id_token must name
    subject: str | None = field(repr=False)
    expires_at: float
    sid: str = field(repr=False)
    version: int = 1
    #: a refreshed id_token not checked yet (keys out of reach): the tokens wait for it
    unverified_id_token: str | None = field(default=None, repr=False)

    def expires_within(self, seconds: float) -> bool:
        return self.expires_at - seconds <= time.time()

    def rotated(self, response: dict[str, Any]) -> TokenSet:
        """The record after a refresh (the old refresh token stays unless a new one is sent)."""
        return replace(
            self,
            access_token=response["access_token"],
            refresh_token=response.get("refresh_token") or self.refresh_token,
            expires_at=expires_at(response),
            version=self.version + 1,
            unverified_id_token=None,
        )


def expires_at(response: dict[str, Any], now: float | None = None) -> float:
    """The absolute expiry of a token response (24 h when ``expires_in`` is missing, as Spark's)."""
    try:
        lifetime = float(response.get("expires_in", 86400))
    except (TypeError, ValueError):
        lifetime = 86400.0
    return (time.time() if now is None else now) + lifetime


class TokenVault:
    """Fernet encryption of token records (the first key encrypts, all decrypt), as bytes."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(keys)
        self._fernet = MultiFernet([Fernet(k) for k in self.keys])

    def seal(self, tokens: TokenSet) -> bytes:
        """Encrypt a record; the session id inside binds it to its session."""
        plain = json.dumps(asdict(tokens), separators=(",", ":")).encode()
        return base64.urlsafe_b64decode(self._fernet.encrypt(plain))

    def open(self, blob: bytes | None, sid: str) -> TokenSet | None:
        """Decrypt a record for ``sid``; absent, tampered, foreign or undecryptable gives None."""
        if not blob:
            return None
        try:
            tokens = TokenSet(**json.loads(self._fernet.decrypt(base64.urlsafe_b64encode(blob))))
        except (InvalidToken, ValueError, TypeError):
            return None
        return tokens if tokens.sid == sid else None

    def rotate(self, blob: bytes) -> bytes | None:
        """``blob`` re-encrypted with the first key; None when it already is."""
        token = base64.urlsafe_b64encode(blob)
        try:
            Fernet(self.keys[0]).decrypt(token)
        except InvalidToken:
            return base64.urlsafe_b64decode(self._fernet.rotate(token))
        return None


# ARGV: expected version ("" = no record), new version, ciphertext, TTL (0 = keep the current TTL).
_CAS_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'v')
if (current or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""


class TokenStore:
    """Token records in Redis, with a per-session refresh lock and versioned writes."""

    def __init__(
        self, redis: Any, vault: TokenVault, prefix: str = "spark:", session_prefix: str = ""
    ) -> None:
        if redis.get_encoder().decode_responses:
            raise SparkConfigError(
                "The Redis client decodes responses (decode_responses=True): flask-spark "
                "stores binary records. Give it a client made with decode_responses=False."
            )
        self.redis = redis
        self.vault = vault
        self.prefix = prefix
        self.session_prefix = session_prefix
        self._cas = redis.register_script(_CAS_SCRIPT)

    def key(self, sid: str) -> str:
        """The record's key, in the Cluster slot of the session's key."""
        return f"{self.prefix}tok:{{{self.session_prefix}{sid}}}"

    def lock_key(self, sid: str) -> str:
        return f"{self.prefix}lock:{{{self.session_prefix}{sid}}}"

    def load(self, sid: str) -> TokenSet | None:
        return self.vault.open(self.redis.hget(self.key(sid), "d"), sid)

    def queue_load(self, pipeline: Any, sid: str) -> None:
        """Queue the read of ``sid``'s sealed record, in the session's round trip."""
        pipeline.hget(self.key(sid), "d")

    def create(self, tokens: TokenSet, ttl: int) -> None:
        """Store the first record of a new session, for the absolute session lifetime."""
        args = ["", tokens.version, self.vault.seal(tokens), max(int(ttl), 1)]
        if not self._cas(keys=[self.key(tokens.sid)], args=args):
            raise SparkError("A token record already exists for this session id.")

    def replace(self, tokens: TokenSet, expected_version: int) -> bool:
        """Write ``tokens`` only if the stored version is still ``expected_version``."""
        args = [expected_version, tokens.version, self.vault.seal(tokens), 0]
        return bool(self._cas(keys=[self.key(tokens.sid)], args=args))

    def delete(self, sid: str) -> None:
        """Forget the record of ``sid`` (a refresh lock is left to its owner)."""
        self.redis.delete(self.key(sid))

    def lock(self, sid: str, timeout: float, wait: float) -> Lock:
        """redis-py's lock for refreshing ``sid``, polled every 20 ms: a refresh storm is quick."""
        lock: Lock = self.redis.lock(
            self.lock_key(sid),
            timeout=timeout,
            blocking_timeout=wait,
            sleep=0.02,
            thread_local=False,
        )
        return lock

    def scan_keys(self) -> Iterator[str]:
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "tok:*"
        for key in self.redis.scan_iter(match=pattern, count=500):
            yield as_text(key)

    def rotate_key(self, key: str) -> str:
        """Re-encrypt one record with the primary key: 'rotated', 'skipped' or 'unreadable'."""
        while True:
            version, blob = self.redis.hmget(key, ["v", "d"])
            try:
                new_blob = None if blob is None else self.vault.rotate(blob)
            except InvalidToken:
                return "unreadable"
            if new_blob is None:
                return "skipped"
            # Same version: a racing refresh bumps it, our write fails, and we retry.
            if self._cas(keys=[key], args=[version, version, new_blob, 0]):
                return "rotated"

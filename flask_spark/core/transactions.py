"""Login transactions: the sign-ins a browser started, single use, in one capped Redis list per
browser (``<prefix>txn:{<binding>}``, the binding a random cookie value). A callback takes its
own with ``LREM``, so a replayed callback finds nothing."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from authlib.common.security import generate_token

#: Sign-ins one browser may have pending at once.
MAX_PENDING = 5


def same_secret(expected: Any, given: Any) -> bool:
    """``given`` equals the secret ``expected``, both non-empty text, in constant time as UTF-8
    bytes (:func:`secrets.compare_digest` raises on non-ASCII ``str``: a refusal, not a 500)."""
    if not isinstance(expected, str) or not isinstance(given, str) or not expected:
        return False
    return secrets.compare_digest(
        expected.encode(errors="surrogatepass"), given.encode(errors="surrogatepass")
    )


@dataclass(frozen=True)
class LoginTransaction:
    """What /login remembers for /callback: never sent to the browser except ``state``."""

    next_url: str
    binding: str
    redirect_uri: str
    state: str = field(default_factory=lambda: generate_token(43))
    nonce: str = field(default_factory=lambda: generate_token(43))
    code_verifier: str = field(default_factory=lambda: generate_token(64))
    started: float = field(default_factory=time.time)

    @classmethod
    def begin(cls, *, next_url: str, binding: str, redirect_uri: str) -> LoginTransaction:
        """A fresh transaction: unguessable state and nonce, a 64-character PKCE verifier."""
        return cls(next_url=next_url, binding=binding, redirect_uri=redirect_uri)


class TransactionStore:
    """Login transactions in Redis, with a TTL."""

    def __init__(self, redis: Any, prefix: str, ttl: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl

    def save(self, txn: LoginTransaction) -> None:
        """Add ``txn`` to its browser's list (dropping the oldest beyond the cap); TTL renewed."""
        key = f"{self.prefix}txn:{{{txn.binding}}}"
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, json.dumps(asdict(txn)))
            pipe.ltrim(key, 0, MAX_PENDING - 1)
            pipe.expire(key, max(int(self.ttl), 1))
            pipe.execute()

    def pending(self, binding: str) -> int:
        """How many sign-ins the browser of ``binding`` has pending."""
        return int(self.redis.llen(f"{self.prefix}txn:{{{binding}}}"))

    def pop(self, binding: str, state: str) -> LoginTransaction | None:
        """Take the transaction of ``state`` from this browser's list (None if unknown, expired,
        used, or started in another browser)."""
        key = f"{self.prefix}txn:{{{binding}}}"
        for raw in self.redis.lrange(key, 0, MAX_PENDING - 1):
            try:
                txn = LoginTransaction(**json.loads(raw))
            except (ValueError, TypeError):
                continue
            if same_secret(txn.state, state):
                # LREM finds nothing when a concurrent callback took it first.
                used = self.redis.lrem(key, 1, raw)
                return txn if used and txn.started + self.ttl >= time.time() else None
        return None

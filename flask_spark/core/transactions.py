"""Login transactions: one short-lived, single-use Redis record per ``state``.

Keeping one record per state (not one slot in the session) lets several tabs sign in at once;
reading it with GETDEL makes a replayed callback find nothing.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from authlib.common.security import generate_token


@dataclass(frozen=True)
class LoginTransaction:
    """What /login remembers for /callback: never sent to the browser except ``state``."""

    state: str
    nonce: str
    code_verifier: str
    next_url: str
    binding: str
    redirect_uri: str

    @classmethod
    def begin(cls, *, next_url: str, binding: str, redirect_uri: str) -> LoginTransaction:
        """A fresh transaction: unguessable state and nonce, a 64-character PKCE verifier."""
        return cls(
            state=generate_token(43),
            nonce=generate_token(43),
            code_verifier=generate_token(64),
            next_url=next_url,
            binding=binding,
            redirect_uri=redirect_uri,
        )

    def bound_to(self, binding: str | None) -> bool:
        """True when the callback comes from the browser session that started the sign-in."""
        return binding is not None and secrets.compare_digest(self.binding, binding)


class TransactionStore:
    """Login transactions in Redis under ``<prefix>txn:<state>`` with a TTL."""

    def __init__(self, redis: Any, prefix: str, ttl: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl

    def _key(self, state: str) -> str:
        return f"{self.prefix}txn:{state}"

    def save(self, txn: LoginTransaction) -> None:
        """Store ``txn`` until its TTL."""
        self.redis.set(self._key(txn.state), json.dumps(asdict(txn)), ex=self.ttl)

    def pop(self, state: str) -> LoginTransaction | None:
        """Read and delete the transaction of ``state`` (None if unknown, expired or used)."""
        raw = self.redis.getdel(self._key(state))
        if raw is None:
            return None
        try:
            return LoginTransaction(**json.loads(raw))
        except (ValueError, TypeError):
            return None

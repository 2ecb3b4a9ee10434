"""The provider's signing keys: an RS256 key ring published as the JWKS, rotatable on demand."""

from __future__ import annotations

import secrets
import threading
from typing import Any

from joserfc.jwk import KeySet, RSAKey

#: The kid of the first key, like the real Spark Platform's single published key.
DEFAULT_KID = "default"


def generate_rsa_key(kid: str) -> RSAKey:
    """Generate a fresh 2048-bit RSA private key carrying ``kid``."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


class KeyRing:
    """The published signing keys; the newest one signs, older ones stay published until dropped."""

    def __init__(self, lock: threading.RLock | None = None) -> None:
        self._lock = lock or threading.RLock()
        self._keys: list[RSAKey] = [generate_rsa_key(DEFAULT_KID)]
        self._attacker: RSAKey | None = None

    @property
    def current(self) -> RSAKey:
        """The key that signs new tokens."""
        with self._lock:
            return self._keys[-1]

    @property
    def kids(self) -> list[str]:
        """The kids of every published key, oldest first."""
        with self._lock:
            return [str(key.kid) for key in self._keys]

    def rotate(self, *, drop_old: bool = False) -> str:
        """Add a new signing key (returning its kid); with ``drop_old`` unpublish the others."""
        key = generate_rsa_key(f"key-{secrets.token_hex(6)}")
        with self._lock:
            if drop_old:
                self._keys = [key]
            else:
                self._keys.append(key)
        return str(key.kid)

    def find(self, kid: str | None) -> RSAKey | None:
        """Return the published key with that kid (any key when ``kid`` is None and only one)."""
        with self._lock:
            if kid is None:
                return self._keys[0] if len(self._keys) == 1 else None
            for key in self._keys:
                if key.kid == kid:
                    return key
            return None

    def published(self) -> list[RSAKey]:
        """A snapshot of the published keys."""
        with self._lock:
            return list(self._keys)

    def key_set(self) -> KeySet:
        """The published keys as a joserfc ``KeySet`` (for verifying our own tokens)."""
        return KeySet([*self.published()])

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set served at ``jwks_uri``."""
        return {"keys": [dict(key.as_dict(private=False)) for key in self.published()]}

    def attacker_key(self) -> RSAKey:
        """A key that is never published: what a forger would sign with (made once, lazily)."""
        with self._lock:
            if self._attacker is None:
                self._attacker = generate_rsa_key("attacker")
            return self._attacker

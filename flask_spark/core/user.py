"""The signed-in user as the app sees it: id_token claims, never a token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SparkUser:
    """A signed-in Flexmls user; claims read as items: ``user["MemberMlsId"]``."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, claims: Mapping[str, Any]) -> None:
        self.claims: dict[str, Any] = dict(claims)

    @property
    def id(self) -> str:
        """The user's stable subject identifier (``sub``)."""
        return str(self.claims["sub"])

    sub = id

    @property
    def name(self) -> str | None:
        """The display name, when the provider sent one."""
        value = self.claims.get("name")
        if value:
            return str(value)
        parts = [self.claims.get("given_name"), self.claims.get("family_name")]
        return " ".join(str(p) for p in parts if p) or None

    @property
    def email(self) -> str | None:
        """The e-mail address, when the provider sent one."""
        value = self.claims.get("email")
        return str(value) if value else None

    def get(self, claim: str, default: Any = None) -> Any:
        """One claim, or ``default``."""
        return self.claims.get(claim, default)

    def __getitem__(self, claim: str) -> Any:
        return self.claims[claim]

    def __contains__(self, claim: object) -> bool:
        return claim in self.claims

    def __repr__(self) -> str:
        return f"<SparkUser {self.claims.get('sub')!r}>"


class AnonymousUser:
    """Nobody is signed in."""

    is_authenticated = False
    is_anonymous = True
    id = sub = name = email = None
    claims: dict[str, Any] = {}

    def get(self, claim: str, default: Any = None) -> Any:
        return default

    def __contains__(self, claim: object) -> bool:
        return False

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<AnonymousUser>"

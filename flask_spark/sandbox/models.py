"""In-memory records of the provider: clients, authorization codes, tokens and login sessions.

They implement Authlib's model interfaces (``ClientMixin``, ``AuthorizationCodeMixin``,
``TokenMixin``) so the Authlib grants and endpoints can work with them directly.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped,unused-ignore]
    ClientMixin,
    TokenMixin,
)
from authlib.oidc.core.models import (  # type: ignore[import-untyped,unused-ignore]
    AuthorizationCodeMixin,
)

from .members import Member, get_member

#: Scopes the sandbox understands (the same list as the real Spark Platform's discovery).
SUPPORTED_SCOPES = ("openid", "profile", "email", "address", "phone", "RESO", "FBS")
#: Client authentication methods accepted at the token and revocation endpoints.
CLIENT_AUTH_METHODS = ("client_secret_post", "client_secret_basic")
#: Grant types every sandbox client may use.
GRANT_TYPES = ("authorization_code", "refresh_token")
#: Lifetime of an authorization code, seconds.
CODE_LIFETIME = 600


def is_loopback_uri(uri: str) -> bool:
    """True for ``http://`` URIs on a loopback host (any port), as RFC 8252 §7.3 allows."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return False
    if parts.scheme != "http" or not host or parts.fragment or parts.username is not None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class SandboxClient(ClientMixin):  # type: ignore[misc,unused-ignore]
    """A registered relying party (an API key's OAuth credentials and its registered URIs).

    With no registered ``redirect_uris`` (or ``post_logout_redirect_uris``) any loopback URI is
    accepted, which is what a local development sandbox needs.
    """

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    frontchannel_logout_uri: str | None = None
    backchannel_logout_uri: str | None = None
    #: Redirect URIs this client has used at ``/openid/authorize`` (when none are registered,
    #: these stand for "the redirect_uri for the client_id" at single logout).
    used_redirect_uris: set[str] = field(default_factory=set)

    def get_client_id(self) -> str:
        """The client's id (Spark's "OAuth Key")."""
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        """The first registered redirect URI, if any."""
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client may have (unknown scopes dropped)."""
        if not scope:
            return ""
        return " ".join(s for s in scope.split() if s in SUPPORTED_SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """An exact registered redirect URI, or any loopback one when none is registered."""
        if self.redirect_uris:
            return redirect_uri in self.redirect_uris
        return is_loopback_uri(redirect_uri)

    def check_post_logout_redirect_uri(self, uri: str, *, generic: bool = False) -> bool:
        """Whether single logout may return to ``uri``.

        As Spark documents it, the URI "must match the redirect_uri for the client_id": exactly a
        registered redirect URI (or, with none registered, one this client signed in with).
        As a generic provider: a registered post-logout URI, or any loopback one.
        """
        if not generic:
            return uri in (self.redirect_uris or self.used_redirect_uris)
        if self.post_logout_redirect_uris:
            return uri in self.post_logout_redirect_uris
        return is_loopback_uri(uri)

    def check_client_secret(self, client_secret: str) -> bool:
        """Constant-time comparison with the registered secret."""
        return secrets.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """``client_secret_post`` and ``client_secret_basic`` everywhere."""
        return method in CLIENT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        """Only the authorization code flow."""
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        """Authorization code and refresh token grants."""
        return grant_type in GRANT_TYPES

    @property
    def client_metadata(self) -> dict[str, Any]:
        """No optional RFC 7591 metadata (so userinfo answers plain JSON)."""
        return {}


@dataclass
class ProviderSession:
    """One sign-in at the provider (its ``sid``); every token of that login belongs to it."""

    sid: str
    member_id: str
    client_id: str
    auth_time: int
    ended: bool = False


@dataclass
class AuthCode(AuthorizationCodeMixin):  # type: ignore[misc,unused-ignore]
    """An issued authorization code and everything the token request must match."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    member_id: str
    sid: str
    auth_time: int
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float = field(default_factory=lambda: time.time() + CODE_LIFETIME)

    def get_redirect_uri(self) -> str:
        """The redirect URI the code was issued for."""
        return self.redirect_uri

    def get_scope(self) -> str:
        """The granted scope."""
        return self.scope

    def get_nonce(self) -> str | None:
        """The authorize request's nonce."""
        return self.nonce

    def get_auth_time(self) -> int:
        """When the member signed in."""
        return self.auth_time

    def get_acr(self) -> str | None:
        """No authentication context classes in the sandbox."""
        return None

    def get_amr(self) -> list[str] | None:
        """No authentication method references in the sandbox."""
        return None

    def is_expired(self) -> bool:
        """Codes live ten minutes."""
        return time.time() >= self.expires_at


class _TokenBase(TokenMixin):  # type: ignore[misc,unused-ignore]
    """The parts of Authlib's ``TokenMixin`` shared by access and refresh tokens."""

    token: str
    client_id: str
    member_id: str
    scope: str
    sid: str
    issued_at: float
    revoked: bool
    client: SandboxClient | None

    def check_client(self, client: Any) -> bool:
        """True when the token was issued to ``client``."""
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        """The token's scope."""
        return self.scope

    def is_revoked(self) -> bool:
        """Whether the token was revoked (directly or with its family)."""
        return self.revoked

    def get_user(self) -> Member | None:
        """The member the token acts for."""
        return get_member(self.member_id)

    def get_client(self) -> SandboxClient | None:
        """The client the token was issued to (as registered at that moment)."""
        return self.client


@dataclass
class AccessToken(_TokenBase):
    """An opaque bearer access token."""

    token: str
    client_id: str
    member_id: str
    scope: str
    sid: str
    issued_at: float
    expires_at: float
    refresh_token: str | None = None
    revoked: bool = False
    client: SandboxClient | None = field(default=None, repr=False, compare=False)

    def get_expires_in(self) -> int:
        """Seconds of life the token was issued with."""
        return int(self.expires_at - self.issued_at)

    def is_expired(self) -> bool:
        """True once ``expires_at`` has passed (or the sandbox forced it)."""
        return time.time() >= self.expires_at


@dataclass
class RefreshToken(_TokenBase):
    """A single-use refresh token; ``rotated`` once exchanged (presenting it again is reuse)."""

    token: str
    client_id: str
    member_id: str
    scope: str
    sid: str
    issued_at: float
    auth_time: int
    rotated: bool = False
    revoked: bool = False
    client: SandboxClient | None = field(default=None, repr=False, compare=False)

    def get_expires_in(self) -> int:
        """Refresh tokens do not expire in the sandbox (only rotation and revocation end them)."""
        return 0

    def is_expired(self) -> bool:
        """Never: see :meth:`get_expires_in`."""
        return False

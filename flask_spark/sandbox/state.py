"""The sandbox's whole in-memory state, guarded by one re-entrant lock.

Every read-modify-write of codes, tokens, sessions, counters and faults happens under
``SandboxState.lock`` so the threaded server can take many concurrent requests.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from .faults import Faults
from .keys import KeyRing
from .listings_data import reset as reset_listing_store
from .models import AccessToken, AuthCode, ProviderSession, RefreshToken, SandboxClient

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"
DEFAULT_ACCESS_TOKEN_LIFETIME = 86400

#: Counters always reported (zero when nothing happened yet).
COUNTER_NAMES = (
    "authorize_requests",
    "logins",
    "consents_denied",
    "token_calls",
    "token_errors",
    "authorization_code_grants",
    "code_reuse",
    "refreshes",
    "refresh_reuse",
    "refresh_failures",
    "userinfo_calls",
    "revocations",
    "token_deletions",
    "api_calls",
    "reso_calls",
    "rate_limited",
    "forced_errors",
    "logouts",
    "logout_refusals",
    "frontchannel_logouts",
    "backchannel_logouts",
    "backchannel_failures",
    "key_rotations",
)

TokenStatus = Literal["ok", "invalid", "expired"]

_CLIENT_FIELDS: dict[str, type] = {
    "redirect_uris": list,
    "post_logout_redirect_uris": list,
    "frontchannel_logout_uri": str,
    "backchannel_logout_uri": str,
}


class ConfigError(ValueError):
    """A sandbox setting the sandbox cannot apply (answered with 400)."""


@dataclass
class ClientDefaults:
    """What the default client looks like after a reset."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    frontchannel_logout_uri: str | None = None
    backchannel_logout_uri: str | None = None

    def build(self) -> SandboxClient:
        """A fresh client from these defaults."""
        return SandboxClient(
            client_id=self.client_id,
            client_secret=self.client_secret,
            redirect_uris=list(self.redirect_uris),
            post_logout_redirect_uris=list(self.post_logout_redirect_uris),
            frontchannel_logout_uri=self.frontchannel_logout_uri,
            backchannel_logout_uri=self.backchannel_logout_uri,
        )


class SandboxState:
    """Clients, codes, tokens, provider sessions, counters, faults and keys of one sandbox."""

    def __init__(
        self,
        issuer: str,
        *,
        access_token_lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME,
        client: ClientDefaults | None = None,
        generic: bool = False,
    ) -> None:
        self.lock = threading.RLock()
        self.issuer = issuer.rstrip("/")
        #: False: behave as sparkplatform.com publishes (the default). True: a generic OpenID
        #: provider with the extras Spark does not advertise (logout channels, ``sid``, ``iss``).
        self.generic = generic
        self.keys = KeyRing(self.lock)
        self._defaults = client or ClientDefaults()
        self._default_lifetime = access_token_lifetime
        self.access_token_lifetime = access_token_lifetime
        self.clients: dict[str, SandboxClient] = {}
        self.codes: dict[str, AuthCode] = {}
        self.used_codes: dict[str, str] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.sessions: dict[str, ProviderSession] = {}
        self.faults = Faults()
        self._counters: Counter[str] = Counter()
        self.reset()

    # -- housekeeping -------------------------------------------------------------------------

    @property
    def default_client(self) -> SandboxClient:
        """The client every sandbox user gets (``sandbox-client`` unless configured)."""
        with self.lock:
            return self.clients[self._defaults.client_id]

    def reset(self) -> None:
        """Forget counters, codes, tokens, sessions and faults; restore config (keys are kept)."""
        with self.lock:
            self.access_token_lifetime = self._default_lifetime
            self.clients = {self._defaults.client_id: self._defaults.build()}
            self.codes.clear()
            self.used_codes.clear()
            self.access_tokens.clear()
            self.refresh_tokens.clear()
            self.sessions.clear()
            self.faults = Faults()
            self._counters.clear()
        reset_listing_store()  # contacts and saved searches written by earlier tests

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a counter."""
        with self.lock:
            self._counters[name] += amount

    def counters(self) -> dict[str, int]:
        """All counters, the known ones zero-filled."""
        with self.lock:
            result = dict.fromkeys(COUNTER_NAMES, 0)
            result.update(self._counters)
            return result

    def query_client(self, client_id: str | None) -> SandboxClient | None:
        """The registered client with that id."""
        if not client_id:
            return None
        with self.lock:
            return self.clients.get(client_id)

    # -- logins and codes ---------------------------------------------------------------------

    def start_session(self, member_id: str, client_id: str) -> ProviderSession:
        """Record a new sign-in at the provider and return it (with a fresh ``sid``)."""
        session = ProviderSession(
            sid=secrets.token_urlsafe(16),
            member_id=member_id,
            client_id=client_id,
            auth_time=int(time.time()),
        )
        with self.lock:
            self.sessions[session.sid] = session
        return session

    def end_session(self, sid: str) -> ProviderSession | None:
        """Mark a provider session ended; return it if it was active."""
        with self.lock:
            session = self.sessions.get(sid)
            if session is None or session.ended:
                return None
            session.ended = True
            return session

    def active_sessions(self, member_id: str) -> list[ProviderSession]:
        """The member's provider sessions that have not ended."""
        with self.lock:
            return [s for s in self.sessions.values() if s.member_id == member_id and not s.ended]

    def save_code(self, code: AuthCode) -> None:
        """Store an issued authorization code."""
        with self.lock:
            self.codes[code.code] = code

    def claim_code(self, code: str, client_id: str) -> AuthCode | None:
        """Take a code for exchange, atomically: a second presentation is reuse.

        Reuse revokes every token issued from the first exchange (RFC 6749 §4.1.2).
        """
        with self.lock:
            record = self.codes.pop(code, None)
            if record is None:
                sid = self.used_codes.get(code)
                if sid is not None:
                    self.count("code_reuse")
                    self.revoke_family(sid)
                return None
            self.used_codes[code] = record.sid
            if record.client_id != client_id or record.is_expired():
                return None
            return record

    # -- tokens ------------------------------------------------------------------------------

    def save_tokens(self, access: AccessToken, refresh: RefreshToken | None) -> None:
        """Store a freshly issued access token (and its refresh token)."""
        with self.lock:
            self.access_tokens[access.token] = access
            if refresh is not None:
                self.refresh_tokens[refresh.token] = refresh

    def claim_refresh_token(self, token: str, client_id: str) -> RefreshToken | None:
        """Take a refresh token for rotation, atomically.

        A token that was already rotated is a replay: count it and revoke its whole family
        (every access and refresh token of that login), as RFC 9700 §4.14.2 recommends.
        """
        with self.lock:
            record = self.refresh_tokens.get(token)
            if record is None or record.client_id != client_id or record.revoked:
                return None
            if record.rotated:
                self.count("refresh_reuse")
                self.revoke_family(record.sid)
                return None
            record.rotated = True
            return record

    def revoke_family(self, sid: str) -> None:
        """Revoke every access and refresh token descended from the login ``sid``."""
        with self.lock:
            for access in self.access_tokens.values():
                if access.sid == sid:
                    access.revoked = True
            for refresh in self.refresh_tokens.values():
                if refresh.sid == sid:
                    refresh.revoked = True

    def revoke_access_token(self, token: str) -> bool:
        """Revoke one access token; False when it was unknown."""
        with self.lock:
            record = self.access_tokens.get(token)
            if record is None:
                return False
            record.revoked = True
            return True

    def revoke_refresh_token(self, token: str) -> bool:
        """Revoke a refresh token and the access tokens issued with it."""
        with self.lock:
            record = self.refresh_tokens.get(token)
            if record is None:
                return False
            record.revoked = True
            for access in self.access_tokens.values():
                if access.refresh_token == token:
                    access.revoked = True
            return True

    def check_access_token(self, token: str) -> tuple[TokenStatus, AccessToken | None]:
        """Classify a bearer token: ``ok``, ``expired`` or ``invalid`` (unknown or revoked)."""
        with self.lock:
            record = self.access_tokens.get(token)
            if record is None or record.revoked:
                return "invalid", None
            if record.is_expired():
                return "expired", record
            return "ok", record

    def expire_tokens(self, member_id: str | None = None) -> int:
        """Force the current access tokens (of one member, or all) to be expired."""
        now = time.time()
        expired = 0
        with self.lock:
            for record in self.access_tokens.values():
                if member_id is None or record.member_id == member_id:
                    if not record.is_expired():
                        expired += 1
                    record.expires_at = min(record.expires_at, now - 1)
        return expired

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Change ``access_token_lifetime`` and the default client's registered URIs.

        Raises :class:`ConfigError` (changing nothing) for unknown names or bad values.
        """
        unknown = set(settings) - set(_CLIENT_FIELDS) - {"access_token_lifetime"}
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        staged: dict[str, Any] = {}
        if "access_token_lifetime" in settings:
            try:
                lifetime = int(settings["access_token_lifetime"])
            except (TypeError, ValueError) as exc:
                raise ConfigError("access_token_lifetime must be an integer") from exc
            if lifetime < 1:
                raise ConfigError("access_token_lifetime must be >= 1")
            staged["access_token_lifetime"] = lifetime
        for name, kind in _CLIENT_FIELDS.items():
            if name not in settings:
                continue
            value = settings[name]
            if kind is list:
                if value is not None and not isinstance(value, list | tuple):
                    raise ConfigError(f"{name} must be a list of URIs")
                staged[name] = [str(v) for v in value or []]
            else:
                if value is not None and not isinstance(value, str):
                    raise ConfigError(f"{name} must be a URI or null")
                staged[name] = value or None
        with self.lock:
            client = self.default_client
            for name, value in staged.items():
                if name == "access_token_lifetime":
                    self.access_token_lifetime = value
                else:
                    setattr(client, name, value)
            return self.config()

    def config(self) -> dict[str, Any]:
        """The current settings (issuer, token lifetime, default client registration, kids)."""
        with self.lock:
            client = self.default_client
            return {
                "issuer": self.issuer,
                "generic": self.generic,
                "access_token_lifetime": self.access_token_lifetime,
                "client_id": client.client_id,
                "redirect_uris": list(client.redirect_uris),
                "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
                "frontchannel_logout_uri": client.frontchannel_logout_uri,
                "backchannel_logout_uri": client.backchannel_logout_uri,
                "kids": self.keys.kids,
            }

    # -- faults ------------------------------------------------------------------------------

    def update_faults(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Arm faults from a JSON object (see :class:`~.faults.Faults`)."""
        with self.lock:
            self.faults.update(spec)
            return self.faults.as_dict()

    def take_api_fault(self) -> tuple[str, dict[str, Any]] | None:
        """Consume one armed per-call API fault: rate limit, forced error or non-JSON answer."""
        with self.lock:
            faults = self.faults
            if faults.rate_limit_next > 0:
                faults.rate_limit_next -= 1
                self.count("rate_limited")
                return "rate_limit", {
                    "status": faults.rate_limit_status,
                    "retry_after": faults.retry_after,
                }
            if faults.force_error_next > 0:
                faults.force_error_next -= 1
                self.count("forced_errors")
                return "force_error", dict(faults.force_error)
            if faults.non_json_next > 0:
                faults.non_json_next -= 1
                return "non_json", {}
            return None

"""Injectable faults: the ways a test can make the sandbox misbehave, and their parsing."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

#: How the next id_tokens may be forged (sticky until cleared or reset).
ID_TOKEN_FAULTS = frozenset(
    {
        "bad-sig",
        "alg-none",
        "hs256-confusion",
        "wrong-iss",
        "wrong-aud",
        "multi-aud-no-azp",
        "multi-aud-azp",
        "multi-aud-wrong-azp",
        "no-iat",
        "future-iat",
        "expired",
        "no-sub",
        "wrong-nonce",
        "no-nonce",
        "kid-absent",
        "unknown-kid",
        "jku-header",
        "x5u-header",
        "jwk-header",
        "refresh-sub-changed",
    }
)

#: How ``/_sandbox/logout-token`` may forge a back-channel logout token.
LOGOUT_TOKEN_FAULTS = frozenset(
    {
        "bad-sig",
        "alg-none",
        "wrong-iss",
        "wrong-aud",
        "no-events",
        "nonce",
        "expired",
        "no-sub-no-sid",
    }
)

_COUNTED = ("rate_limit_next", "force_error_next", "non_json_next")


class FaultError(ValueError):
    """A fault specification the sandbox does not understand (answered with 400)."""


@dataclass
class Faults:
    """The currently armed faults. ``*_next`` counters are consumed one API call at a time."""

    rate_limit_next: int = 0
    rate_limit_status: int = 429
    retry_after: str = "0"
    force_error_next: int = 0
    force_error: dict[str, Any] = field(default_factory=dict)
    non_json_next: int = 0
    api_delay: float = 0.0
    token_delay: float = 0.0
    token_endpoint_status: int | None = None
    id_token_fault: str | None = None
    userinfo_sub: str | None = None
    discovery_issuer: str | None = None
    #: RESO auth failures also carry ``WWW-Authenticate`` (whether production sends it is
    #: unpublished; by default they do not, the harder case for a client).
    reso_www_authenticate: bool = False

    def update(self, spec: dict[str, Any]) -> None:
        """Apply a JSON fault specification; ``null`` resets a field to its default.

        Raises :class:`FaultError` for unknown names or values of the wrong kind, leaving the
        faults untouched.
        """
        known = {f.name: f for f in fields(self)}
        defaults = Faults()
        staged: dict[str, Any] = {}
        for name, value in spec.items():
            if name not in known:
                raise FaultError(f"unknown fault {name!r}")
            staged[name] = getattr(defaults, name) if value is None else _coerce(name, value)
        for name, value in staged.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        """The armed faults, for the admin API."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _coerce(name: str, value: Any) -> Any:
    """Validate and normalise one fault value."""
    try:
        if name in _COUNTED:
            count = int(value)
            if count < 0:
                raise FaultError(f"{name} must be >= 0")
            return count
        if name == "rate_limit_status":
            status = int(value)
            if status not in (429, 503):
                raise FaultError("rate_limit_status must be 429 or 503")
            return status
        if name == "retry_after":
            return str(value)
        if name in ("api_delay", "token_delay"):
            delay = float(value)
            if not 0 <= delay <= 120:
                raise FaultError(f"{name} must be between 0 and 120 seconds")
            return delay
        if name == "token_endpoint_status":
            status = int(value)
            if not 100 <= status <= 599:
                raise FaultError("token_endpoint_status must be an HTTP status")
            return status
        if name == "reso_www_authenticate":
            if not isinstance(value, bool):
                raise FaultError("reso_www_authenticate must be true or false")
            return value
        if name == "force_error":
            return _force_error(value)
        if name == "id_token_fault":
            if value not in ID_TOKEN_FAULTS:
                raise FaultError(f"unknown id_token_fault {value!r}")
            return str(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FaultError):
            raise
        raise FaultError(f"bad value for {name}: {value!r}") from exc


def _force_error(value: Any) -> dict[str, Any]:
    """Check a ``force_error`` object: status, code, message, optional errors / envelope."""
    if not isinstance(value, dict):
        raise FaultError("force_error must be an object")
    spec = dict(value)
    spec["status"] = int(spec.get("status", 400))
    spec.setdefault("code", 1053)
    spec["message"] = str(spec.get("message", "Forced error"))
    for key in ("errors", "sparkql_errors"):
        if key in spec and not isinstance(spec[key], list):
            raise FaultError(f"force_error.{key} must be a list")
    if spec.get("envelope", "OData") not in ("D", "OData"):
        raise FaultError("force_error.envelope must be 'D' or 'OData'")
    return spec

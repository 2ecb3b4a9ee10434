"""Signing the provider's JWTs (id_tokens and back-channel logout tokens), honest or forged.

The forgeries are the attacks listed in the security model (``docs/security.rst``), so the
relying party's validation can be tested against a provider that misbehaves on request.
"""

from __future__ import annotations

import datetime
import secrets
import time
import warnings
from dataclasses import dataclass
from typing import Any

from authlib.oidc.core.util import (  # type: ignore[import-untyped,unused-ignore]
    create_half_hash,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import OctKey, RSAKey

from .keys import KeyRing
from .members import MEMBERS, Member

ID_TOKEN_LIFETIME = 3600
LOGOUT_TOKEN_LIFETIME = 120
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: Where the sandbox serves the attacker's key for the ``jku`` / ``x5u`` forgeries.
ATTACKER_JWKS_PATH = "/_sandbox/attacker/jwks.json"
ATTACKER_CERT_PATH = "/_sandbox/attacker/cert.pem"


@dataclass(frozen=True)
class IdTokenRequest:
    """What an id_token is about: who, for which client, from which login."""

    client_id: str
    member: Member
    sid: str | None
    auth_time: int
    nonce: str | None
    access_token: str | None
    refresh: bool


def _half_hash(value: str) -> str:
    """OIDC ``at_hash``: left half of SHA-256, base64url (Authlib's helper)."""
    digest: bytes = create_half_hash(value, "RS256")
    return digest.decode("ascii")


def _sign(header: dict[str, Any], claims: dict[str, Any], key: Any, alg: str) -> str:
    """Encode a compact JWS with joserfc (``alg=none`` warnings silenced: it is on purpose)."""
    if alg == "none":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            return jwt.encode(header, claims, key, algorithms=["none"], default_type=None)
    return jwt.encode(header, claims, key, algorithms=[alg], default_type=None)


_EMBEDDED_KEY: list[RSAKey] = []


def _embedded_attacker_key() -> RSAKey:
    """A 1024-bit forger's key (made once) for the ``jwk-header`` forgery; never published."""
    if not _EMBEDDED_KEY:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            key = RSAKey.generate_key(1024, parameters={"kid": "attacker-jwk", "use": "sig"})
        _EMBEDDED_KEY.append(key)
    return _EMBEDDED_KEY[0]


def _forged_sign(
    keys: KeyRing, issuer: str, header: dict[str, Any], claims: dict[str, Any], fault: str | None
) -> str:
    """Sign ``claims`` honestly, or the way the named header/signature fault says."""
    current = keys.current
    attacker = keys.attacker_key()
    if fault == "bad-sig":
        return _sign({**header, "alg": "RS256", "kid": current.kid}, claims, attacker, "RS256")
    if fault == "alg-none":
        return _sign({**header, "alg": "none"}, claims, None, "none")
    if fault == "hs256-confusion":
        pem = current.as_pem(private=False)
        # Deliberately bypass joserfc's guard against using a public key as an HMAC secret.
        secret = OctKey(pem, pem)
        return _sign({**header, "alg": "HS256", "kid": current.kid}, claims, secret, "HS256")
    if fault == "kid-absent":
        return _sign({**header, "alg": "RS256"}, claims, current, "RS256")
    if fault == "unknown-kid":
        kid = f"unknown-{secrets.token_hex(4)}"
        return _sign({**header, "alg": "RS256", "kid": kid}, claims, attacker, "RS256")
    if fault == "jwk-header":
        # The embedded-key attack (CVE-2018-0114): a key small enough that the header passes
        # JOSE libraries' header-size limits, so the relying party sees the ``jwk`` itself.
        small = _embedded_attacker_key()
        offered: dict[str, Any] = {
            "alg": "RS256",
            "kid": small.kid,
            "jwk": dict(small.as_dict(private=False)),
        }
        return _sign({**header, **offered}, claims, small, "RS256")
    if fault in ("jku-header", "x5u-header"):
        offered = {"alg": "RS256", "kid": attacker.kid}
        if fault == "jku-header":
            offered["jku"] = issuer + ATTACKER_JWKS_PATH
        else:
            offered["x5u"] = issuer + ATTACKER_CERT_PATH
        return _sign({**header, **offered}, claims, attacker, "RS256")
    return _sign({**header, "alg": "RS256", "kid": current.kid}, claims, current, "RS256")


def mint_id_token(
    keys: KeyRing,
    issuer: str,
    request: IdTokenRequest,
    fault: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Mint the id_token for a token response; ``fault`` names a forgery from the security model,
    ``extra`` claims are added (``None`` removes one)."""
    now = int(time.time())
    member = request.member
    claims: dict[str, Any] = {k: v for k, v in member.claims().items() if k != "sub"}
    claims.update(
        {
            "iss": issuer,
            "sub": member.id,
            "aud": request.client_id,
            "exp": now + ID_TOKEN_LIFETIME,
            "iat": now,
            "auth_time": request.auth_time,
        }
    )
    if request.sid:  # generic provider only: Spark's claims_supported has no sid
        claims["sid"] = request.sid
    if request.nonce and not request.refresh:
        claims["nonce"] = request.nonce
    if request.access_token:
        claims["at_hash"] = _half_hash(request.access_token)
    for name, value in (extra or {}).items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    _apply_claim_fault(claims, request, fault, now)
    return _forged_sign(keys, issuer, {}, claims, fault)


def _apply_claim_fault(
    claims: dict[str, Any], request: IdTokenRequest, fault: str | None, now: int
) -> None:
    """Tamper with the id_token claims for the claim-level faults."""
    if fault == "wrong-iss":
        claims["iss"] = "https://evil.example.com"
    elif fault == "wrong-aud":
        claims["aud"] = "some-other-client"
    elif fault in ("multi-aud-no-azp", "multi-aud-azp", "multi-aud-wrong-azp"):
        claims["aud"] = [request.client_id, "other-client"]
        if fault == "multi-aud-azp":
            claims["azp"] = request.client_id
        elif fault == "multi-aud-wrong-azp":
            claims["azp"] = "other-client"
    elif fault == "no-iat":
        del claims["iat"]
    elif fault == "future-iat":
        claims["iat"] = now + 3600
        claims["exp"] = now + 3600 + ID_TOKEN_LIFETIME
    elif fault == "expired":
        claims["iat"] = now - ID_TOKEN_LIFETIME - 600
        claims["exp"] = now - 600
    elif fault == "no-sub":
        del claims["sub"]
    elif fault == "wrong-nonce" and not request.refresh:
        claims["nonce"] = f"wrong-{secrets.token_urlsafe(8)}"
    elif fault == "no-nonce":
        claims.pop("nonce", None)
    elif fault == "refresh-sub-changed" and request.refresh:
        other = next(m for m in MEMBERS if m.id != request.member.id)
        claims["sub"] = other.id


def mint_logout_token(
    keys: KeyRing,
    issuer: str,
    client_id: str,
    *,
    sub: str | None,
    sid: str | None,
    fault: str | None = None,
    claims: dict[str, Any] | None = None,
) -> str:
    """Mint a back-channel ``logout_token`` (OpenID Back-Channel Logout 1.0 §2.4).

    ``claims`` replace or add claims (``None`` removes one): hostile but validly signed tokens.
    """
    now = int(time.time())
    overrides = claims or {}
    claims = {
        "iss": issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(16),
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    if sub:
        claims["sub"] = sub
    if sid:
        claims["sid"] = sid
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    if fault == "wrong-iss":
        claims["iss"] = "https://evil.example.com"
    elif fault == "wrong-aud":
        claims["aud"] = "some-other-client"
    elif fault == "no-events":
        del claims["events"]
    elif fault == "nonce":
        claims["nonce"] = secrets.token_urlsafe(8)
    elif fault == "expired":
        claims["iat"] = now - 600
        claims["exp"] = now - 300
    elif fault == "no-sub-no-sid":
        claims.pop("sub", None)
        claims.pop("sid", None)
    header = {"typ": "logout+jwt"}
    sign_fault = fault if fault in ("bad-sig", "alg-none") else None
    return _forged_sign(keys, issuer, header, claims, sign_fault)


def attacker_certificate_pem(key: RSAKey) -> bytes:
    """A self-signed certificate for the attacker key (served for the ``x5u`` forgery)."""
    private = key.private_key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.invalid")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())  # type: ignore[arg-type,unused-ignore]
    )
    return cert.public_bytes(serialization.Encoding.PEM)

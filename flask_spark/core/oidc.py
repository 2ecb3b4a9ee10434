"""The OpenID Connect relying party, free of Flask, on Authlib's ``OAuth2Session`` and joserfc:
discovery and JWKS (cached), token calls, revocation, userinfo, id_token/logout_token checks."""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import quote

import requests
from authlib.common.urls import add_params_to_uri, url_decode
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.auth import encode_client_secret_post
from joserfc import jws, jwt
from joserfc.errors import InvalidClaimError, JoseError
from joserfc.jwk import JWKRegistry, Key, KeySet

from .config import SparkConfig, check_transport
from .errors import IdTokenError, ProviderError, SparkConfigError
from .http import ProcessLocal, pooled_adapter, pooled_session
from .transactions import LoginTransaction

log = logging.getLogger("flask_spark")

#: JOSE headers that offer a key or a key location; a token is verified with the JWKS only.
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")
_BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: Refetch the JWKS for an unknown ``kid`` at most this often (seconds).
JWKS_REFETCH_INTERVAL = 30.0
METADATA_TTL = 3600.0
#: How old a back-channel logout token may be (from its ``iat``, in seconds).
LOGOUT_TOKEN_MAX_AGE = 300.0


def encode_client_secret_basic(
    client: Any, method: str, uri: str, headers: dict[str, str], body: str
) -> tuple[str, dict[str, str], str]:
    """HTTP Basic client authentication per RFC 6749 §2.3.1: id and secret form-urlencoded
    before Base64 (Authlib sends them raw, misread once they hold ``%``, ``+``, ``:`` or ``/``)."""
    user = quote(str(client.client_id), safe="")
    password = quote(str(client.client_secret or ""), safe="")
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    headers["Authorization"] = f"Basic {credentials}"
    return uri, headers, body


def _json_body(
    encode: Callable[..., Any], client: Any, method: str, uri: str, headers: Any, body: str
) -> tuple[str, dict[str, str], str]:
    """``encode``'s client authentication, with the token request's body sent as JSON."""
    uri, headers, body = encode(client, method, uri, headers, body)
    text = json.dumps(dict(url_decode(body or "")))
    headers.update({"Content-Type": "application/json", "Content-Length": str(len(text.encode()))})
    return uri, headers, text


def import_jwks(data: dict[str, Any]) -> KeySet:
    """The keys of a JWK Set this client can use; unreadable ones are skipped (RFC 7517 §5)."""
    entries = data.get("keys")
    if not isinstance(entries, list):
        raise ProviderError("The provider's JWKS could not be read (no 'keys' list).")
    keys: list[Key] = []
    for entry in entries:
        try:
            keys.append(JWKRegistry.import_key(entry))
        except (JoseError, ValueError, TypeError, KeyError, AttributeError):
            log.info("Skipped a JWKS key this client cannot use.")
    if not keys:
        raise ProviderError("The provider's JWKS holds no key this client can use.")
    return KeySet(keys)


def _short_text(value: Any) -> bool:
    """1 to 255 printable ASCII characters (Core §2): no forged lines in the app's logs."""
    return (
        isinstance(value, str) and 0 < len(value) <= 255 and value.isascii() and value.isprintable()
    )


class OIDCClient:
    """The relying party of one app, for the provider :class:`SparkConfig` names."""

    def __init__(self, config: SparkConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: KeySet | None = None
        self._jwks_at = self._jwks_refetched_at = float("-inf")
        self._adapter = ProcessLocal(pooled_adapter)
        self._http = ProcessLocal(lambda: pooled_session(self._adapter.get()))

    def oauth(self) -> OAuth2Session:
        """An Authlib session for one call (it keeps the last token as state), on the pool."""
        cfg = self.config
        method = cfg.token_endpoint_auth_method
        session = OAuth2Session(
            cfg.client_id,
            cfg.client_secret,
            token_endpoint_auth_method=method,
            revocation_endpoint_auth_method=method,
            code_challenge_method="S256",
            default_timeout=cfg.http_timeout,
        )
        session.register_client_auth_method(("client_secret_basic", encode_client_secret_basic))
        if cfg.token_request_format == "json":  # noqa: S105 - a format name
            post = method == "client_secret_post"
            base = encode_client_secret_post if post else encode_client_secret_basic
            session.register_client_auth_method((method + "+json", partial(_json_body, base)))
            session.token_endpoint_auth_method = method + "+json"
        return pooled_session(self._adapter.get(), session=session)

    def _get_json(self, url: str, what: str, token: str | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self._call(
            lambda: self._http.get().get(url, timeout=self.config.http_timeout, headers=headers),
            what,
            url,
        )

    def _call(self, call: Callable[[], Any], what: str, url: str) -> dict[str, Any]:
        """The JSON object the provider answers to ``call``; ProviderError for anything else."""
        try:
            answer = call()
            if isinstance(answer, requests.Response):
                if answer.status_code != 200:
                    raise requests.HTTPError(response=answer)
                answer = answer.json()
        except OAuthError as exc:
            hint = ""
            if exc.error == "invalid_client":
                hint = ": check SPARK_CLIENT_ID and SPARK_CLIENT_SECRET (the API key's OAuth pair)"
            raise ProviderError(
                f"The identity provider refused the {what}: {exc.error}{hint}.",
                status=400,
                error=exc.error,
                description=exc.description,
            ) from None
        except requests.Timeout:
            raise ProviderError(
                f"The identity provider did not answer in time ({what} at {url}).", status=504
            ) from None
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            raise ProviderError(f"The identity provider answered HTTP {status} ({what}).") from None
        except (requests.RequestException, ValueError) as exc:
            raise ProviderError(
                f"The identity provider could not be reached at {url} ({what}): "
                f"{type(exc).__name__}."
            ) from None
        if not isinstance(answer, dict):
            raise ProviderError(f"The identity provider sent something other than JSON ({what}).")
        return dict(answer)

    def metadata(self) -> dict[str, Any]:
        """The provider's metadata: discovery (issuer checked), overridden by configuration."""
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < METADATA_TTL:
                return self._metadata
        cfg = self.config
        overrides = {
            "authorization_endpoint": cfg.authorization_endpoint,
            "token_endpoint": cfg.token_endpoint,
            "userinfo_endpoint": cfg.userinfo_endpoint,
            "revocation_endpoint": cfg.revocation_endpoint,
            "jwks_uri": cfg.jwks_uri,
        }
        needed = ("authorization_endpoint", "token_endpoint", "jwks_uri")
        data: dict[str, Any] = {"issuer": cfg.issuer}
        if not all(overrides[k] for k in needed):
            try:
                data = self._get_json(cfg.discovery_url, "discovery")
            except ProviderError:
                with self._lock:
                    if self._metadata is None:
                        raise
                    # Keep what we knew; try again in a minute, not on every call.
                    self._metadata_at = time.monotonic() - METADATA_TTL + 60
                log.warning("The discovery document could not be refreshed; using the cached one.")
                return self._metadata
            if data.get("issuer") != cfg.issuer:
                raise ProviderError(
                    "The discovery document's issuer does not match SPARK_ISSUER "
                    f"({data.get('issuer')!r} != {cfg.issuer!r}); refusing to trust it.",
                    error="discovery_issuer_mismatch",
                )
        data.update({k: v for k, v in overrides.items() if v})
        data["end_session_endpoint"] = (
            cfg.logout_endpoint
            or data.get("end_session_endpoint")
            or cfg.issuer.rstrip("/") + "/openid/logout"
        )
        for key in needed:
            if not data.get(key):
                raise ProviderError(f"The provider's discovery document has no {key}.")
        # What is called or shown to the browser: HTTPS outside loopback.
        for key in (*overrides, "end_session_endpoint"):
            if isinstance(data.get(key), str):
                try:
                    check_transport(data[key], f"The provider's {key}", cfg.require_https)
                except SparkConfigError as exc:
                    raise ProviderError(str(exc)) from None
        with self._lock:
            self._metadata, self._metadata_at = data, time.monotonic()
        return data

    def published_metadata(self) -> dict[str, Any]:
        """The discovery document exactly as the provider publishes it (for ``doctor``)."""
        return self._get_json(self.config.discovery_url, "discovery")

    def jwks(self, *, refresh: bool = False, limited: bool = True) -> KeySet:
        """The provider's keys; ``refresh`` refetches, once per interval if ``limited`` (anyone
        may post a logout token with a made-up ``kid``; the token endpoint's own tokens may not)."""
        with self._lock:
            cached, now = self._jwks, time.monotonic()
            if cached is not None:
                if not refresh and now - self._jwks_at < METADATA_TTL:
                    return cached
                if limited and now - self._jwks_refetched_at < JWKS_REFETCH_INTERVAL:
                    return cached
                self._jwks_refetched_at = now  # claimed: concurrent callers keep the cache
        try:
            keys = import_jwks(self._get_json(self.metadata()["jwks_uri"], "JWKS"))
        except ProviderError:
            if cached is None:
                raise
            log.warning("The provider's JWKS could not be refreshed; using the cached keys.")
            return cached
        with self._lock:
            self._jwks, self._jwks_at = keys, time.monotonic()
        return keys

    def _verify_jwt(self, token: str, what: str, *, from_provider: bool = False) -> dict[str, Any]:
        """The claims of ``token`` once its signature checks out with a JWKS key."""
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError):
            raise IdTokenError(f"The {what} is not a well-formed JWT.") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.config.id_token_algorithms:
            raise IdTokenError(f"The {what} is signed with a refused algorithm ({alg!r}).")
        offered = [h for h in _FORBIDDEN_HEADERS if h in header]
        if offered:
            raise IdTokenError(
                f"The {what} offers its own key ({', '.join(offered)}); only the JWKS is trusted."
            )
        if kid is not None and not isinstance(kid, str):
            raise IdTokenError(f"The {what} has an invalid kid.")
        kty = getattr(jws.JWSRegistry.algorithms.get(alg), "key_type", None)  # None: no key
        keyset = None
        for refresh in (False, True):
            # A rotated key (new kid or the same one): refetch once, rate-limited.
            fetched = self.jwks(refresh=refresh, limited=not from_provider)
            if fetched is keyset:
                break
            keyset = fetched
            candidates = [
                k
                for k in keyset
                if k.key_type == kty
                and k.get("use", "sig") == "sig"
                and (kid is None or k.kid == kid)
            ]
            for key in candidates:
                try:
                    claims: Any = jwt.decode(token, key, algorithms=[alg]).claims
                except JoseError:
                    continue
                if not isinstance(claims, dict):
                    raise IdTokenError(f"The {what}'s payload is not a JSON object.")
                return claims
        if not candidates:
            raise IdTokenError(f"The {what} is signed with a key the provider does not publish.")
        raise IdTokenError(f"The {what}'s signature is invalid.")

    def _check_claims(self, claims: dict[str, Any], what: str, *essential: str) -> None:
        """The claims every token must pass (``iss``, ``aud``/``azp``, ``iat``, ``exp``)."""
        cfg = self.config
        options: dict[str, Any] = {name: {"essential": True} for name in ("iat", *essential)}
        options["iss"] = {"essential": True, "value": cfg.issuer}
        options["aud"] = {"essential": True, "value": cfg.client_id}
        registry = jwt.JWTClaimsRegistry(leeway=cfg.clock_skew, **options)
        try:
            registry.validate(claims)
            for name in ("iat", "exp", "nbf"):  # joserfc 1.6 lets a NaN time through
                if isinstance(claims.get(name), float) and not math.isfinite(claims[name]):
                    raise InvalidClaimError(name)
        except JoseError as exc:
            name = getattr(exc, "claim", None) or str(exc)
            raise IdTokenError(
                f"The {what} was refused: claim {name} is missing or invalid."
            ) from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != cfg.client_id:
            raise IdTokenError(
                f"The {what} names several audiences but its azp is not this client."
            )

    def validate_id_token(
        self, id_token: str, *, nonce: str | None, previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Validate an id_token (Core §3.1.3.7); with ``previous``, a refreshed one (§12.2)."""
        # id_tokens only come from our own token request to the provider.
        claims = self._verify_jwt(id_token, "id_token", from_provider=True)
        self._check_claims(claims, "id_token", "sub", "exp")
        if not _short_text(claims["sub"]):
            raise IdTokenError(
                "The id_token's sub is not 1 to 255 printable ASCII characters (Core §2)."
            )
        if nonce is not None and claims.get("nonce") != nonce:
            raise IdTokenError("The id_token's nonce does not match this sign-in.", reason="nonce")
        for name, value in (previous or {}).items():  # iss and aud are checked above
            if claims.get(name) != value:
                raise IdTokenError(f"The refreshed id_token changed its {name}.")
        return claims

    def validate_logout_token(self, token: str) -> dict[str, Any]:
        """Validate a ``logout_token`` (Back-Channel Logout 1.0 §2.6): the event, no ``nonce``,
        ``sub`` or ``sid``, a ``jti``, ``iat`` within :data:`LOGOUT_TOKEN_MAX_AGE`."""
        claims = self._verify_jwt(token, "logout_token")
        self._check_claims(claims, "logout_token")
        events = claims.get("events")
        if not isinstance(events, dict) or _BACKCHANNEL_EVENT not in events:
            raise IdTokenError("The logout_token has no back-channel logout event.")
        if "nonce" in claims:
            raise IdTokenError("The logout_token must not carry a nonce.")
        named = [name for name in ("sub", "sid") if name in claims]
        if not named or not all(_short_text(claims[name]) for name in named):
            raise IdTokenError("The logout_token names no sub or sid, or not as a short string.")
        if not _short_text(claims.get("jti")):
            raise IdTokenError("The logout_token has no jti (Back-Channel Logout 1.0 §2.4).")
        if claims["iat"] < time.time() - LOGOUT_TOKEN_MAX_AGE - self.config.clock_skew:
            raise IdTokenError("The logout_token is too old.")
        return claims

    def authorization_url(self, txn: LoginTransaction) -> str:
        """The provider's authorize URL for ``txn``: state, nonce and (``use_pkce``) S256."""
        url, _ = self.oauth().create_authorization_url(
            self.metadata()["authorization_endpoint"],
            state=txn.state,
            code_verifier=txn.code_verifier if self.config.use_pkce else None,
            redirect_uri=txn.redirect_uri,
            scope=self.config.scope,
            nonce=txn.nonce,
        )
        return str(url)

    def _token_call(self, what: str, **params: Any) -> dict[str, Any]:
        """The token endpoint's answer (empty ``params`` are left out), with an access token."""
        url = self.metadata()["token_endpoint"]
        token = self._call(lambda: self.oauth().fetch_token(url, **params), what, url)
        if not isinstance(token.get("access_token"), str):
            raise ProviderError(f"The identity provider's {what} answer has no access_token.")
        return token

    def exchange_code(self, code: str, txn: LoginTransaction) -> dict[str, Any]:
        """Trade the authorization code of ``txn`` for tokens."""
        return self._token_call(
            "code exchange",
            grant_type="authorization_code",
            code=code,
            redirect_uri=txn.redirect_uri,
            code_verifier=txn.code_verifier if self.config.use_pkce else None,
        )

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """Use a refresh token; the answer's new refresh token replaces it."""
        return self._token_call("refresh", grant_type="refresh_token", refresh_token=refresh_token)

    def revoke(self, token: str, token_type_hint: str) -> bool:
        """Revoke a token (RFC 7009); False only when a retry may help."""
        url = self.metadata().get("revocation_endpoint")
        if not url:
            log.info("No revocation endpoint: the %s expires on its own.", token_type_hint)
            return True
        try:
            response = self.oauth().revoke_token(url, token=token, token_type_hint=token_type_hint)
        except requests.RequestException as exc:
            log.warning("Token revocation failed: %s", type(exc).__name__)
            return False
        if response.status_code == 200:
            return True
        try:
            error = response.json().get("error") if 400 <= response.status_code < 500 else None
        except (ValueError, AttributeError):
            error = None
        if error == "unsupported_token_type":
            # RFC 7009 §2.2.1, with 400 (RFC 6749 §5.2) or 401 (Authlib's server among others).
            log.info("The provider does not revoke a %s; it expires on its own.", token_type_hint)
            return True
        log.warning("Token revocation answered HTTP %s", response.status_code)
        return False

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The userinfo claims for ``access_token``."""
        url = self.metadata().get("userinfo_endpoint")
        if not url:
            raise ProviderError("The provider has no userinfo endpoint.")
        return self._get_json(url, "userinfo", token=access_token)

    def logout_url(self, post_logout_redirect_uri: str, state: str) -> str:
        """The provider's single-logout URL; no ``id_token_hint``: the id_token is not kept."""
        params = {
            "client_id": self.config.client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
            "state": state,
        }
        return str(add_params_to_uri(self.metadata()["end_session_endpoint"], params))

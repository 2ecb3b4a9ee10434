"""A second OpenID provider for interop tests, deliberately unlike the sandbox.

Small, independent of :mod:`flask_spark.sandbox`, and built from Authlib's authorization-server
parts plus joserfc. It behaves the way other real providers do, all within OpenID Connect
Core / Discovery / RP-Initiated Logout and RFC 6749 / 7009 / 7636 / 9207:

- the issuer ends with a slash (``http://127.0.0.1:PORT/``) or has a path (``issuer_path``);
  endpoints live under ``/oauth2/``, and the authorize and token endpoints carry their own
  query (RFC 6749 §3.1, §3.2); discovery advertises an ``end_session_endpoint`` and members
  the RP never calls (``http://`` ``op_policy_uri``, ``mtls_endpoint_aliases``, extensions)
  but no ``authorization_response_iss_parameter_supported``; callbacks carry no ``iss`` but an
  extra ``session_state``; codes look like Google's (``4/0A...+x=``);
- the client id and secret hold characters that RFC 6749 §2.3.1 requires to be form-encoded
  in HTTP Basic (``:``, ``%``, ``+``, ``/``), and the server decodes them as the RFC says;
  ``token_endpoint_auth_methods_supported`` lists ``client_secret_basic`` only (configurable);
- optionally the token endpoint accepts JSON bodies only;
- id_tokens are ES256 (or RS256 with ``alg``/``use`` in the JWKS, an encryption key listed
  first, and no ``kid`` header; or ES384, Ed25519, PS256), ``aud`` is a one-element list,
  ``at_hash`` is present, extra claims nobody asked for are included, there is no ``sid``;
  the JWKS is served as ``application/jwk-set+json`` and can hold keys no RP can use;
- refresh does not rotate (no new refresh token, the old one stays valid) and returns no
  id_token; ``expires_in`` is a string and ``token_type`` is lowercase ``bearer``; refresh
  tokens can be withheld altogether;
- the revocation endpoint can be switched off (and is then absent from discovery), or revoke
  refresh tokens only (``unsupported_token_type`` for access tokens, RFC 7009 §2.2.1);
- RP-initiated logout is Authlib's ``EndSessionEndpoint``: without an ``id_token_hint`` it
  redirects back only when the client is named and the URI is registered exactly (the "other
  means" of §3), or, in ``strict_logout`` mode, never; back-channel logout tokens are typed
  ``logout+jwt`` with a list ``aud`` and ``sub`` only.

Also a tiny Spark-API stand-in under ``/api/v2/`` (``my/account`` in the ``D`` envelope,
401 + code 1020 for expired tokens, ``DELETE oauth2/token/<token>``).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import unquote_plus, urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo, UserInfoEndpoint
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import Flask, Response, jsonify, request
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

CLIENT_ID = "alt:rp"
#: Every character here must be form-encoded in HTTP Basic (RFC 6749 §2.3.1).
CLIENT_SECRET = "alt/s3cret+%41:key="
REDIRECT_URI = "http://localhost/spark/callback"
POST_LOGOUT_URI = "http://localhost/spark/logged-out"

USER: dict[str, Any] = {
    "sub": "00u1a2b3c4d5e6f7g8h9",
    "name": "Alex Alt",
    "email": "alex@alt.example",
    "email_verified": True,
    "preferred_username": "alex",
    # Claims the RP never asked for.
    "locale": "en-CA",
    "https://alt.example/claims/groups": ["agents", "admins"],
    "tenant": {"id": "t-42", "region": "ca-central"},
}

#: Keys an RP must skip, not choke on (RFC 7517 §5: ignore JWKs whose "kty" is not understood,
#: that miss required members, or whose values are out of the supported ranges).
EXOTIC_JWKS: list[dict[str, Any]] = [
    # A post-quantum key (the JOSE "AKP" key type draft).
    {"kty": "AKP", "alg": "ML-DSA-44", "kid": "pq-1", "use": "sig", "pub": "AAAA"},
    # An EC key on a curve the RP's JOSE library does not implement.
    {"kty": "EC", "crv": "brainpoolP256r1", "kid": "bp-1", "use": "sig", "x": "AA", "y": "AA"},
    # A certificate-only RSA entry ("n" and "e" missing).
    {"kty": "RSA", "kid": "x5c-only", "use": "sig", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOC"]},
]


@dataclass(frozen=True)
class AltOptions:
    """How this provider behaves; :meth:`AltProvider.configure` changes it per test."""

    #: ``ES256`` (P-256 key) or ``RS256`` (RSA key with ``alg``/``use`` + an ``enc`` key first);
    #: also ``ES384``, ``Ed25519`` (RFC 9864), ``PS256``.
    alg: str = "ES256"
    #: The issuer's path: ``/`` (a trailing slash), or e.g. ``/realms/alt`` (Keycloak-style).
    issuer_path: str = "/"
    #: Put ``kid`` in the id_token header (the RS256 variant leaves it out by default).
    kid_header: bool | None = None
    #: Client authentication the client may use at the token and revocation endpoints.
    auth_methods: tuple[str, ...] = ("client_secret_basic",)
    #: The token endpoint refuses form bodies (415) and reads JSON objects only.
    json_token_requests: bool = False
    #: Publish and serve a revocation endpoint.
    revocation: bool = True
    #: Without ``id_token_hint``, never redirect after logout (RP-Initiated Logout §3).
    strict_logout: bool = False
    #: Access-token lifetime in seconds (sent as a string).
    access_token_lifetime: int = 3600
    #: Publish keys the RP cannot use (unknown ``kty``, unsupported curve) beside the real one.
    exotic_jwks: bool = False
    #: Issue refresh tokens (some providers do only for ``offline_access``).
    refresh_tokens: bool = True
    #: Token types the revocation endpoint handles; others get ``unsupported_token_type``.
    revocable: tuple[str, ...] = ("access_token", "refresh_token")
    #: Scopes the client may be granted.
    scope: str = "openid profile email"


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    provider: AltProvider
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": [POST_LOGOUT_URI]}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return REDIRECT_URI

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.provider.options.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == REDIRECT_URI

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.provider.options.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd", "mfa"]


@dataclass
class _Token:
    """An access or refresh token record (Authlib's TokenMixin surface)."""

    value: str
    kind: str
    client: _Client
    scope: str
    expires_at: float
    revoked: bool = False

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - time.time())

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> dict[str, Any]:
        return USER

    def get_client(self) -> _Client:
        return self.client


def _basic_auth_rfc6749(query_client: Any, req: Any) -> Any:
    """``client_secret_basic`` exactly as RFC 6749 §2.3.1: split, then form-decode each part."""
    header = req.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    raw_id, sep, raw_secret = decoded.partition(":")
    if not sep:
        return None
    client_id, client_secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    client = query_client(client_id)
    if client is None:
        raise InvalidClientError(status_code=401, description="Unknown client.")
    return client if client.check_client_secret(client_secret) else None


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def generate_authorization_code(self) -> str:
        return "4/0A" + secrets.token_urlsafe(24) + "+x="  # "/", "+", "=" as some OPs send

    def save_authorization_code(self, code: str, req: Any) -> None:
        data = req.payload.data
        provider: AltProvider = self.server.provider
        with provider.lock:
            provider.codes[code] = _Code(
                code=code,
                client_id=req.client.client_id,
                redirect_uri=str(req.payload.redirect_uri),
                scope=req.scope,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=int(time.time()),
            )
            provider.authorize_params.append(dict(data))

    def query_authorization_code(self, code: str, client: Any) -> _Code | None:
        provider: AltProvider = self.server.provider
        with provider.lock:
            found = provider.codes.pop(code, None)  # single use
        return found if found is not None and found.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        """Already removed when queried."""

    def authenticate_user(self, authorization_code: _Code) -> dict[str, Any]:
        return USER


class _RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    """Non-rotating refresh: no new refresh token, the old one stays valid, no id_token."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = False

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        provider: AltProvider = self.server.provider
        with provider.lock:
            token = provider.tokens.get(refresh_token)
        if token is None or token.kind != "refresh" or token.revoked:
            return None
        return token

    def authenticate_user(self, refresh_token: _Token) -> dict[str, Any]:
        return USER

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        """Nothing: this provider's refresh tokens are reusable until revoked."""


class _OpenIDCode(OpenIDCode):  # type: ignore[misc]
    def __init__(self, provider: AltProvider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce: str, req: Any) -> bool:
        with self.provider.lock:
            return nonce in self.provider.used_nonces

    def resolve_client_private_key(self, client: Any) -> Any:
        return self.provider.signing_key

    def get_client_algorithm(self, client: Any) -> str:
        return self.provider.options.alg

    def get_encode_header(self, client: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": self.provider.options.alg, "typ": "JWT"}
        if self.provider.kid_header:
            header["kid"] = self.provider.signing_key.kid
        return header

    def get_client_claims(self, client: Any) -> dict[str, Any]:
        # aud: Authlib's default is already the one-element list [client_id].
        return {"iss": self.provider.issuer, "exp": int(time.time()) + 300}

    def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
        return UserInfo(user)


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def check_params(self, req: Any, client: Any) -> None:
        provider: AltProvider = self.server.provider
        self.SUPPORTED_TOKEN_TYPES = provider.options.revocable
        super().check_params(req, client)

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        provider: AltProvider = self.server.provider
        with provider.lock:
            return provider.tokens.get(token_string)

    def revoke_token(self, token: _Token, req: Any) -> None:
        provider: AltProvider = self.server.provider
        with provider.lock:
            token.revoked = True
            if token.kind == "refresh":  # its access tokens go with it
                for other in provider.tokens.values():
                    if other.kind == "access" and other.scope == token.scope:
                        other.revoked = True
            provider.counters["revocations"] += 1


class _EndSession(EndSessionEndpoint):  # type: ignore[misc]
    def get_server_jwks(self) -> KeySet:
        provider: AltProvider = self.server.provider
        return KeySet([provider.signing_key])

    def is_post_logout_redirect_uri_legitimate(
        self, req: Any, post_logout_redirect_uri: str, client: Any, logout_hint: str | None
    ) -> bool:
        # §3's "other means": the client named itself and the URI is registered exactly.
        provider: AltProvider = self.server.provider
        return not provider.options.strict_logout

    def end_session(self, end_session_request: Any) -> None:
        provider: AltProvider = self.server.provider
        with provider.lock:
            provider.counters["logouts"] += 1


class _Bearer(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, provider: AltProvider) -> None:
        super().__init__()
        self.provider = provider

    def authenticate_token(self, token_string: str) -> _Token | None:
        with self.provider.lock:
            token = self.provider.tokens.get(token_string)
        return token if token is not None and token.kind == "access" else None


class _UserInfo(UserInfoEndpoint):  # type: ignore[misc]
    def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
        return UserInfo(user)


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, provider: AltProvider) -> None:
        super().__init__()
        self.provider = provider

    def query_client(self, client_id: str) -> _Client | None:
        return self.provider.client if client_id == CLIENT_ID else None

    def save_token(self, token: dict[str, Any], req: Any) -> None:
        provider = self.provider
        now = time.time()
        with provider.lock:
            provider.tokens[token["access_token"]] = _Token(
                token["access_token"],
                "access",
                req.client,
                token.get("scope", ""),
                now + int(token["expires_in"]),
            )
            if token.get("refresh_token"):
                provider.tokens[token["refresh_token"]] = _Token(
                    token["refresh_token"], "refresh", req.client, token.get("scope", ""), now + 1e9
                )
            if req.authorization_code is not None and req.authorization_code.nonce:
                provider.used_nonces.add(req.authorization_code.nonce)


class _QuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log."""


_KEY_MAKERS: dict[str, Any] = {
    "ES256": lambda: ECKey.generate_key("P-256", parameters={"kid": "es-2024-1"}),
    "ES384": lambda: ECKey.generate_key("P-384", parameters={"kid": "es384-1", "use": "sig"}),
    "Ed25519": lambda: OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1", "use": "sig"}),
    "PS256": lambda: RSAKey.generate_key(2048, parameters={"kid": "ps-1", "alg": "PS256"}),
    "RS256": lambda: RSAKey.generate_key(
        2048, parameters={"kid": "rs-2024-1", "use": "sig", "alg": "RS256"}
    ),
    "enc": lambda: RSAKey.generate_key(
        2048, parameters={"kid": "enc-1", "use": "enc", "alg": "RSA-OAEP-256"}
    ),
}


class AltProvider:
    """The alternative provider on a real loopback socket; ``issuer`` ends with ``/``."""

    server: _Server

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.client = _Client(self)
        self.options = AltOptions()
        self._keys: dict[str, Any] = {}
        self.codes: dict[str, _Code] = {}
        self.tokens: dict[str, _Token] = {}
        self.used_nonces: set[str] = set()
        self.counters: Counter[str] = Counter()
        self.token_requests: list[dict[str, Any]] = []
        self.authorize_params: list[dict[str, Any]] = []
        self.api_tokens: list[str] = []
        self.last_token_response: dict[str, Any] = {}
        self.last_id_token = ""
        self.app = self._create_app()
        self._thread: threading.Thread | None = None

    # -- state ----------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """``http://127.0.0.1:PORT`` + the ``issuer_path`` option (default ``/``)."""
        return self.url + self.options.issuer_path

    def key(self, name: str) -> Any:
        """The private key for an algorithm (or ``enc``), made on first use."""
        with self.lock:
            if name not in self._keys:
                self._keys[name] = _KEY_MAKERS[name]()
            return self._keys[name]

    @property
    def signing_key(self) -> Any:
        return self.key(self.options.alg)

    @property
    def kid_header(self) -> bool:
        if self.options.kid_header is not None:
            return self.options.kid_header
        return self.options.alg != "RS256"

    def configure(self, **changes: Any) -> AltOptions:
        """Reset all state and apply ``changes`` to the default :class:`AltOptions`."""
        known = {f.name for f in fields(AltOptions)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown options: {sorted(unknown)}")
        with self.lock:
            self.options = replace(AltOptions(), **changes)
            self.codes.clear()
            self.tokens.clear()
            self.used_nonces.clear()
            self.counters.clear()
            self.token_requests.clear()
            self.authorize_params.clear()
            self.api_tokens.clear()
            self.last_token_response = {}
            self.last_id_token = ""
        return self.options

    def _new_refresh_token(self, *args: Any, **kwargs: Any) -> str | None:
        return "rt." + secrets.token_urlsafe(24) if self.options.refresh_tokens else None

    def logout_token(self, sub: str) -> str:
        """A back-channel logout token (explicitly typed, ``aud`` a list, ``sub`` but no sid)."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": [CLIENT_ID],
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            "sub": sub,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        }
        header = {"alg": self.options.alg, "typ": "logout+jwt"}
        if self.kid_header:
            header["kid"] = self.signing_key.kid
        return jwt.encode(header, claims, self.signing_key, algorithms=[self.options.alg])

    def expire_access_tokens(self) -> int:
        """Expire every access token (the API answers 1020); returns how many."""
        with self.lock:
            expired = [t for t in self.tokens.values() if t.kind == "access"]
            for token in expired:
                token.expires_at = 0
        return len(expired)

    def refresh_tokens(self) -> list[_Token]:
        with self.lock:
            return [t for t in self.tokens.values() if t.kind == "refresh"]

    def jwks(self) -> dict[str, Any]:
        keys: list[dict[str, Any]] = []
        if self.options.alg == "RS256":
            keys.append(dict(self.key("enc").as_dict(private=False)))  # listed first
        keys.append(dict(self.signing_key.as_dict(private=False)))
        if self.options.exotic_jwks:
            keys += EXOTIC_JWKS
        return {"keys": keys}

    def discovery(self) -> dict[str, Any]:
        base, opts = self.url, self.options
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/oauth2/authorize?tenant=alt",
            "token_endpoint": f"{base}/oauth2/token?api-version=2",
            "userinfo_endpoint": f"{base}/oauth2/userinfo",
            "jwks_uri": f"{base}/oauth2/keys",
            "end_session_endpoint": f"{base}/oauth2/logout",
            "response_types_supported": ["code", "id_token", "code id_token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [opts.alg],
            "token_endpoint_auth_methods_supported": list(opts.auth_methods),
            "code_challenge_methods_supported": ["S256", "plain"],
            "scopes_supported": opts.scope.split(),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "name", "email", "locale"],
            # Informational members the RP never calls (an http page, aliases, extensions).
            "op_policy_uri": "http://op.example/policy",
            "op_tos_uri": "http://op.example/terms",
            "service_documentation": "http://op.example/docs",
            "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.op.example/oauth2/token"},
            "x_alt_tenant": {"id": "t-42"},
        }
        if opts.revocation:
            document["revocation_endpoint"] = f"{base}/oauth2/revoke"
            document["revocation_endpoint_auth_methods_supported"] = list(opts.auth_methods)
        return document

    # -- the app --------------------------------------------------------------------------

    def _create_app(self) -> Flask:
        app = Flask("alt_provider")
        server = _Server(self)
        self.server = server
        server.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda *a, **kw: "at." + secrets.token_urlsafe(24),
                refresh_token_generator=self._new_refresh_token,
                expires_generator=lambda client, grant_type: self.options.access_token_lifetime,
            ),
        )
        server.register_client_auth_method("client_secret_basic", _basic_auth_rfc6749)
        server.register_grant(_CodeGrant, [CodeChallenge(required=True), _OpenIDCode(self)])
        server.register_grant(_RefreshGrant)
        server.register_endpoint(_Revocation)
        server.register_endpoint(_EndSession)
        protector = ResourceProtector()
        protector.register_token_validator(_Bearer(self))
        server.register_endpoint(_UserInfo(resource_protector=protector))
        provider = self

        @app.get("/.well-known/openid-configuration")
        @app.get("/<path:prefix>/.well-known/openid-configuration")
        def discovery(prefix: str = "") -> Any:
            # OpenID Discovery §4: <issuer without its trailing slash>/.well-known/...
            if prefix.strip("/") != provider.options.issuer_path.strip("/"):
                return Response("no such issuer", 404)
            return jsonify(provider.discovery())

        @app.get("/oauth2/keys")
        def keys() -> Response:
            return Response(json.dumps(provider.jwks()), mimetype="application/jwk-set+json")

        @app.route("/oauth2/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            # Auto-approve the fixed user on POST, or on GET with a login_hint.
            if request.method == "GET" and not request.args.get("login_hint"):
                return Response("<form method=post><button>Sign in</button></form>", 200)
            if request.args.get("tenant") != "alt":
                return Response("the authorize endpoint's own query was dropped", 400)
            provider.counters["authorizations"] += 1
            try:
                grant = server.get_consent_grant(end_user=USER)
            except OAuth2Error as error:
                return Response(f"{error.error}: {error.description}", 400)
            answer: Response = server.create_authorization_response(grant=grant, grant_user=USER)
            if answer.location:  # like Keycloak / Entra ID: an extra session_state parameter
                answer.location += "&session_state=" + secrets.token_urlsafe(8)
            return answer

        @app.post("/oauth2/token")
        def token() -> Response:
            if request.args.get("api-version") != "2":
                return Response("the token endpoint's own query was dropped", 400)
            form = request.form
            provider.token_requests.append(
                {
                    "grant_type": form.get("grant_type"),
                    "json": request.environ.get("alt.json_body", False),
                    "basic": request.headers.get("Authorization", "").startswith("Basic "),
                    "secret_in_body": "client_secret" in form,
                }
            )
            result: Response = server.create_token_response()
            if result.status_code == 200:
                body = result.get_json()
                body["token_type"] = "bearer"
                body["expires_in"] = str(body["expires_in"])
                result.set_data(json.dumps(body))
                provider.last_token_response = body
                if "id_token" in body:
                    provider.last_id_token = body["id_token"]
                kind = "refreshes" if form.get("grant_type") == "refresh_token" else "codes"
                provider.counters[kind] += 1
            else:
                provider.counters["token_errors"] += 1
            return result

        @app.post("/oauth2/revoke")
        def revoke() -> Any:
            if not provider.options.revocation:
                return Response("not found", 404)
            return server.create_endpoint_response("revocation")

        @app.route("/oauth2/userinfo", methods=["GET", "POST"])
        def userinfo() -> Any:
            provider.counters["userinfo"] += 1
            return server.create_endpoint_response("userinfo")

        @app.route("/oauth2/logout", methods=["GET", "POST"])
        def logout() -> Any:
            provider.counters["logout_requests"] += 1
            try:
                answer = server.create_endpoint_response("end_session")
            except OAuth2Error as error:
                return Response(f"{error.error}: {error.description}", 400)
            if answer is None or answer.status_code != 302:
                return Response("<p>You are signed out of Alt.</p>", 200, mimetype="text/html")
            return answer

        # -- the Spark-API stand-in -------------------------------------------------------

        def envelope(status: int, code: int | None = None, message: str = "", **extra: Any) -> Any:
            body: dict[str, Any] = {"Success": status < 400, **extra}
            if code is not None:
                body.update(Code=code, Message=message)
            response = jsonify({"D": body})
            response.status_code = status
            return response

        def bearer() -> _Token | None:
            header = request.headers.get("Authorization", "")
            if not header.lower().startswith("bearer "):
                return None
            value = header[7:]
            with provider.lock:
                provider.api_tokens.append(value)
                found = provider.tokens.get(value)
            return found if found is not None and found.kind == "access" else None

        @app.get("/api/v2/my/account")
        def account() -> Any:
            provider.counters["api_calls"] += 1
            token = bearer()
            if token is None or token.revoked:
                return envelope(401, 1000, "Invalid token")
            if token.is_expired():
                provider.counters["api_1020"] += 1
                answer = envelope(401, 1020, "Session token has expired")
                answer.headers["WWW-Authenticate"] = "Bearer realm='Alt API', error='invalid_token'"
                return answer
            result = {"Id": USER["sub"], "Name": USER["name"], "UserType": "Member"}
            return envelope(200, Results=[result])

        @app.delete("/api/v2/oauth2/token/<value>")
        def delete_token(value: str) -> Any:
            with provider.lock:
                found = provider.tokens.get(value)
                if found is None or found.kind != "access":
                    return envelope(404, 404, "No such token")
                found.revoked = True
                provider.counters["api_token_deletes"] += 1
            return envelope(200, Results=[])

        return app

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """Token requests: JSON objects are read as form parameters; JSON-only mode refuses
        form bodies (Spark documents JSON token requests; some OPs accept nothing else)."""
        if environ.get("PATH_INFO") == "/oauth2/token" and environ.get("REQUEST_METHOD") == "POST":
            kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            if kind == "application/json":
                try:
                    data = json.loads(raw or b"null")
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    return _error(start_response, 400, "invalid_request", "not a JSON object")
                raw = urlencode({k: str(v) for k, v in data.items()}).encode()
                environ["alt.json_body"] = True
                environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
            elif self.options.json_token_requests:
                with self.lock:
                    self.counters["token_errors"] += 1
                return _error(start_response, 415, "invalid_request", "send a JSON object")
            environ["CONTENT_LENGTH"] = str(len(raw))
            environ["wsgi.input"] = io.BytesIO(raw)
        response: Iterable[bytes] = self.app(environ, start_response)
        return response

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> AltProvider:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="alt-provider", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()


def _error(start_response: Any, status: int, error: str, description: str) -> list[bytes]:
    body = json.dumps({"error": error, "error_description": description}).encode()
    reason = {400: "Bad Request", 415: "Unsupported Media Type"}[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


__all__ = ["CLIENT_ID", "CLIENT_SECRET", "USER", "AltOptions", "AltProvider"]

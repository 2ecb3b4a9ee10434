"""The OAuth 2.0 / OpenID Connect machinery, assembled from Authlib's authorization-server parts.

Authlib does the protocol (request validation, client authentication, PKCE, token responses,
revocation, userinfo); this module supplies the sandbox's storage and the Spark specifics:
S256-only PKCE (mandatory for the generic provider only), rotating single-use refresh tokens with
reuse detection, JSON token bodies, and id_tokens minted by :mod:`.tokens` (so faults can forge
them).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from authlib.integrations.flask_oauth2 import (  # type: ignore[import-untyped,unused-ignore]
    AuthorizationServer,
    ResourceProtector,
)
from authlib.integrations.flask_oauth2.requests import (  # type: ignore[import-untyped,unused-ignore]
    FlaskOAuth2Payload,
    FlaskOAuth2Request,
)
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped,unused-ignore]
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.grants import (  # type: ignore[import-untyped,unused-ignore]
    AuthorizationCodeGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6750 import (  # type: ignore[import-untyped,unused-ignore]
    BearerTokenGenerator,
    BearerTokenValidator,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped,unused-ignore]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped,unused-ignore]
from authlib.oauth2.rfc9207 import IssuerParameter  # type: ignore[import-untyped,unused-ignore]
from authlib.oidc.core import (  # type: ignore[import-untyped,unused-ignore]
    OpenIDCode,
    UserInfo,
    UserInfoEndpoint,
)
from authlib.oidc.core.grants.code import (  # type: ignore[import-untyped,unused-ignore]
    OpenIDToken,
)
from flask import Request, g
from flask import request as flask_request
from werkzeug.datastructures import CombinedMultiDict, MultiDict

from .members import Member, get_member
from .models import CLIENT_AUTH_METHODS, AccessToken, AuthCode, RefreshToken, SandboxClient
from .state import SandboxState
from .tokens import IdTokenRequest, mint_id_token


def json_body_as_form(req: Request) -> MultiDict[str, str] | None:
    """A JSON object body as form parameters (Spark's docs show JSON token requests)."""
    if not req.is_json:
        return None
    data = req.get_json(silent=True)
    if not isinstance(data, dict):
        return None
    form: MultiDict[str, str] = MultiDict()
    for key, value in data.items():
        if value is None:
            continue
        form.add(str(key), value if isinstance(value, str) else str(value))
    return form


class _ConvertedPayload(FlaskOAuth2Payload):  # type: ignore[misc,unused-ignore]
    """Request parameters taken from the query string plus a converted JSON body."""

    def __init__(self, req: Request, data: CombinedMultiDict[str, str]) -> None:
        super().__init__(req)
        self._data = data

    @property
    def data(self) -> CombinedMultiDict[str, str]:
        return self._data


class SandboxOAuth2Request(FlaskOAuth2Request):  # type: ignore[misc,unused-ignore]
    """Authlib's Flask request, but a JSON object body reads as if it were form-encoded."""

    def __init__(self, req: Request) -> None:
        super().__init__(req)
        self._json_form = json_body_as_form(req)
        if self._json_form is not None:
            self.payload = _ConvertedPayload(req, CombinedMultiDict([req.args, self._json_form]))

    @property
    def form(self) -> MultiDict[str, str]:
        if self._json_form is not None:
            return self._json_form
        form: MultiDict[str, str] = self._request.form
        return form


class SandboxAuthorizationServer(AuthorizationServer):  # type: ignore[misc,unused-ignore]
    """Authlib's Flask authorization server over the sandbox's in-memory state."""

    def __init__(self, state: SandboxState) -> None:
        super().__init__()
        self.state = state

    def query_client(self, client_id: str) -> SandboxClient | None:
        return self.state.query_client(client_id)

    def create_oauth2_request(self, request: Any) -> SandboxOAuth2Request:
        return SandboxOAuth2Request(flask_request)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Store the issued access (and refresh) token, tied to the login's ``sid``."""
        member: Member = request.user
        client: SandboxClient = request.client
        origin: AuthCode | RefreshToken | None = request.authorization_code or request.refresh_token
        if origin is None:  # pragma: no cover - only the two grants above exist
            raise InvalidRequestError("no authorization grant")
        now = time.time()
        refresh_value = token.get("refresh_token")
        access = AccessToken(
            token=token["access_token"],
            client_id=client.client_id,
            member_id=member.id,
            scope=token.get("scope", ""),
            sid=origin.sid,
            issued_at=now,
            expires_at=now + int(token["expires_in"]),
            refresh_token=refresh_value,
            client=client,
        )
        refresh = None
        if refresh_value:
            refresh = RefreshToken(
                token=refresh_value,
                client_id=client.client_id,
                member_id=member.id,
                scope=token.get("scope", ""),
                sid=origin.sid,
                issued_at=now,
                auth_time=origin.auth_time,
                client=client,
            )
        self.state.save_tokens(access, refresh)


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc,unused-ignore]
    """PKCE with ``S256`` only (never ``plain``); mandatory when ``required``.

    Spark does not advertise PKCE, and whether it honours it is unpublished: by default the
    sandbox checks a challenge that is sent but requires none. The generic provider requires it.
    """

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            if not self.required:
                return
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE 'code_challenge_method' must be 'S256'.")
        super().validate_code_challenge(grant, redirect_uri)


class SandboxAuthorizationCodeGrant(AuthorizationCodeGrant):  # type: ignore[misc,unused-ignore]
    """The code grant: every approved authorization starts a provider session (``sid``)."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.server.state
        return state

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        if "openid" not in (self.request.scope or "").split():
            raise InvalidScopeError(
                "The 'openid' scope is required.",
                redirect_uri=redirect_uri,
                state=self.request.payload.state,
            )
        return redirect_uri

    def save_authorization_code(self, code: str, request: Any) -> None:
        member: Member = request.user
        client: SandboxClient = request.client
        session = self.state.start_session(member.id, client.client_id)
        g.sandbox_sid = session.sid
        data = request.payload.data
        redirect_uri = str(request.payload.redirect_uri or client.get_default_redirect_uri())
        with self.state.lock:
            client.used_redirect_uris.add(redirect_uri)
        self.state.save_code(
            AuthCode(
                code=code,
                client_id=client.client_id,
                redirect_uri=redirect_uri,
                scope=request.scope,
                member_id=member.id,
                sid=session.sid,
                auth_time=session.auth_time,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )
        )

    def query_authorization_code(self, code: str, client: SandboxClient) -> AuthCode | None:
        return self.state.claim_code(code, client.client_id)

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        """Nothing to do: :meth:`query_authorization_code` already consumed the code."""

    def authenticate_user(self, authorization_code: AuthCode) -> Member | None:
        return get_member(authorization_code.member_id)


class SandboxRefreshTokenGrant(RefreshTokenGrant):  # type: ignore[misc,unused-ignore]
    """Refresh with rotation: each refresh token works once; a replay revokes the family."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        state: SandboxState = self.server.state
        client: SandboxClient = self.request.client
        return state.claim_refresh_token(refresh_token, client.client_id)

    def authenticate_user(self, refresh_token: RefreshToken) -> Member | None:
        return get_member(refresh_token.member_id)

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        """Nothing to do: the token was marked rotated when it was claimed."""


def _encode_id_token(state: SandboxState, token: dict[str, Any], request: Any) -> str:
    """Mint the id_token of a token response (honouring the ``id_token_fault`` fault)."""
    code: AuthCode | None = request.authorization_code
    refresh: RefreshToken | None = request.refresh_token
    origin = code or refresh
    if origin is None:  # pragma: no cover - only the two grants above exist
        raise InvalidRequestError("no authorization grant")
    details = IdTokenRequest(
        client_id=request.client.client_id,
        member=request.user,
        sid=origin.sid if state.generic else None,
        auth_time=code.auth_time if code else origin.auth_time,
        nonce=code.nonce if code else None,
        access_token=token.get("access_token"),
        refresh=code is None,
    )
    return mint_id_token(state.keys, state.issuer, details, state.faults.id_token_fault)


class SandboxOpenIDCode(OpenIDCode):  # type: ignore[misc,unused-ignore]
    """OpenID Connect for the code grant: adds the id_token, rejects replayed nonces."""

    def __init__(self, state: SandboxState) -> None:
        super().__init__(require_nonce=False)
        self.state = state

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        with self.state.lock:
            return any(
                c.nonce == nonce and c.client_id == request.payload.client_id
                for c in self.state.codes.values()
            )

    def encode_id_token(self, token: dict[str, Any], request: Any) -> str:
        return _encode_id_token(self.state, token, request)


class SandboxOpenIDRefresh(OpenIDToken):  # type: ignore[misc,unused-ignore]
    """OpenID Connect for the refresh grant: a new id_token with the same ``sid``, no nonce."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def encode_id_token(self, token: dict[str, Any], request: Any) -> str:
        return _encode_id_token(self.state, token, request)


class SandboxRevocationEndpoint(RevocationEndpoint):  # type: ignore[misc,unused-ignore]
    """RFC 7009 revocation; a refresh token takes every token of its login down with it."""

    CLIENT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def query_token(
        self, token_string: str, token_type_hint: str | None
    ) -> AccessToken | RefreshToken | None:
        state: SandboxState = self.server.state
        with state.lock:
            access = state.access_tokens.get(token_string)
            refresh = state.refresh_tokens.get(token_string)
        if token_type_hint == "refresh_token":
            return refresh or access
        return access or refresh

    def revoke_token(self, token: AccessToken | RefreshToken, request: Any) -> None:
        state: SandboxState = self.server.state
        if isinstance(token, RefreshToken):
            state.revoke_family(token.sid)
        else:
            state.revoke_access_token(token.token)


class SandboxBearerValidator(BearerTokenValidator):  # type: ignore[misc,unused-ignore]
    """Bearer access tokens for the userinfo endpoint."""

    def __init__(self, state: SandboxState) -> None:
        super().__init__(realm="Flexmls API")
        self.state = state

    def authenticate_token(self, token_string: str) -> AccessToken | None:
        with self.state.lock:
            return self.state.access_tokens.get(token_string)


class SandboxUserInfoEndpoint(UserInfoEndpoint):  # type: ignore[misc,unused-ignore]
    """OpenID Connect userinfo: the member's claims (``userinfo_sub`` fault can lie about sub)."""

    def __init__(self, state: SandboxState, protector: Any) -> None:
        super().__init__(resource_protector=protector)
        self.state = state

    def generate_user_info(self, user: Member, scope: str) -> Any:
        claims = user.claims()
        forged_sub = self.state.faults.userinfo_sub
        if forged_sub is not None:
            claims["sub"] = forged_sub
        return UserInfo(claims)

    def get_issuer(self) -> str:
        return self.state.issuer

    def resolve_private_key(self) -> Any:
        return self.state.keys.current


class SandboxIssuerParameter(IssuerParameter):  # type: ignore[misc,unused-ignore]
    """RFC 9207: every authorization response carries ``iss``."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def get_issuer(self) -> str:
        return self.state.issuer


def create_authorization_server(state: SandboxState) -> SandboxAuthorizationServer:
    """Assemble the Authlib server: grants, PKCE, OIDC, revocation, userinfo (and, as a generic
    provider only, RFC 9207's ``iss`` authorization-response parameter)."""
    server = SandboxAuthorizationServer(state)
    server.scopes_supported = None  # unknown scopes are dropped by the client, not refused
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=lambda *a, **kw: secrets.token_urlsafe(32),
            refresh_token_generator=lambda *a, **kw: secrets.token_urlsafe(48),
            expires_generator=lambda client, grant_type: state.access_token_lifetime,
        ),
    )
    server.register_grant(
        SandboxAuthorizationCodeGrant,
        [S256CodeChallenge(required=state.generic), SandboxOpenIDCode(state)],
    )
    server.register_grant(SandboxRefreshTokenGrant, [SandboxOpenIDRefresh(state)])
    server.register_endpoint(SandboxRevocationEndpoint)
    protector = ResourceProtector()
    protector.register_token_validator(SandboxBearerValidator(state))
    server.register_endpoint(SandboxUserInfoEndpoint(state, protector))
    if state.generic:  # sparkplatform.com does not advertise authorization_response_iss_...
        server.register_extension(SandboxIssuerParameter(state))
    return server

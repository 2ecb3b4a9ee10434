"""The ``spark`` blueprint: sign-in, callback, sign-out, revocation and the logout receivers."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from . import signals
from .config import check_transport
from .errors import IdTokenError, LoginError, ProviderError, SparkConfigError, SparkError
from .extension import (
    BINDING_KEY,
    CSRF_KEY,
    LOGOUT_STATE_KEY,
    SESSION_KEY,
    SparkState,
    current_state,
    current_user,
    login_data,
)
from .responses import error_response
from .tokens import TokenSet, expires_at
from .transactions import LoginTransaction
from .user import AnonymousUser, SparkUser

log = logging.getLogger("flask_spark")

#: Claims that describe the token, not the user: not kept in the session.
_TECHNICAL_CLAIMS = frozenset(
    {"nonce", "at_hash", "c_hash", "jti", "exp", "iat", "nbf", "azp", "aud"}
)
_MAX_PARAM = 2048


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a same-site relative path, else None (no open redirects)."""
    if not value or len(value) > _MAX_PARAM:
        return None
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def _sender() -> Flask:
    """The real app object, as signal sender."""
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _no_store(response: BaseResponse) -> BaseResponse:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _redirect_uri(state: SparkState) -> str:
    uri = state.config.redirect_uri or url_for("spark.callback", _external=True)
    check_transport(uri, "The redirect URI (SPARK_REDIRECT_URI)", state.config.require_https)
    return uri


def _post_logout_uri(state: SparkState) -> str:
    uri = state.config.post_logout_redirect_uri or url_for("spark.logout_return", _external=True)
    check_transport(uri, "SPARK_POST_LOGOUT_REDIRECT_URI", state.config.require_https)
    return uri


def _fail(
    reason: str, message: str, status: int = 400, title: str = "Sign-in failed"
) -> BaseResponse:
    """Reject a sign-in: signal, log (no secrets), answer with a clear page or JSON."""
    signals.login_failed.send(_sender(), reason=reason, message=message)
    log.info("Sign-in rejected (%s): %s", reason, message)
    return _no_store(error_response(status, title, message, code=reason))


def _param(name: str) -> str | None:
    """A callback query parameter; None if absent; LoginError if malformed."""
    values = request.args.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise LoginError(
            f"The callback carried '{name}' more than once.", reason="malformed_callback"
        )
    value = values[0]
    if len(value) > _MAX_PARAM or not value.isascii() or not value.isprintable():
        raise LoginError(
            f"The callback's '{name}' parameter is malformed (too long or not printable ASCII).",
            reason="malformed_callback",
        )
    return value


def create_blueprint() -> Blueprint:
    """The ``spark`` blueprint (mounted at ``SPARK_URL_PREFIX``)."""
    bp = Blueprint("spark", __name__, template_folder="templates")

    @bp.get("/login")
    def login() -> Any:
        state = current_state()
        next_url = safe_next(request.args.get("next")) or state.config.login_default_next
        try:
            binding = session.get(BINDING_KEY)
            if not isinstance(binding, str):
                binding = secrets.token_urlsafe(24)
                session[BINDING_KEY] = binding
            txn = LoginTransaction.begin(
                next_url=next_url, binding=binding, redirect_uri=_redirect_uri(state)
            )
            url = state.oidc.authorization_url(
                redirect_uri=txn.redirect_uri,
                state=txn.state,
                nonce=txn.nonce,
                code_verifier=txn.code_verifier,
            )
            state.transactions.save(txn)
        except ProviderError as exc:
            return _fail("provider_unavailable", str(exc), exc.status, "Flexmls is unavailable")
        return _no_store(redirect(url))

    @bp.get("/callback")
    def callback() -> Any:
        state = current_state()
        try:
            return _no_store(_complete_login(state))
        except LoginError as exc:
            return _fail(exc.reason, exc.message, exc.status or 400)
        except ProviderError as exc:
            if exc.status == 400:
                return _fail("token_exchange_refused", str(exc), 400)
            return _fail("provider_unavailable", str(exc), exc.status, "Flexmls is unavailable")

    @bp.post("/logout")
    def logout() -> Any:
        bad = _check_csrf()
        if bad is not None:
            return bad
        state = current_state()
        user, confirmed = _end_session(state, revoke_access_at_provider=False)
        if state.config.single_logout:
            return _no_store(_to_single_logout(state))
        return _no_store(_after_logout(state, confirmed))

    @bp.post("/revoke")
    def revoke() -> Any:
        bad = _check_csrf()
        if bad is not None:
            return bad
        state = current_state()
        page = state.config.revoke_at_provider_page
        user, confirmed = _end_session(state, revoke_access_at_provider=page is None)
        if page:
            return _no_store(redirect(page))
        return _no_store(_after_logout(state, confirmed))

    @bp.get("/logged-out")
    def logout_return() -> Any:
        expected = session.pop(LOGOUT_STATE_KEY, None)
        given = request.args.get("state")
        if not (isinstance(expected, str) and given and secrets.compare_digest(expected, given)):
            return _no_store(
                error_response(
                    400,
                    "Unexpected sign-out response",
                    "This sign-out response does not match a sign-out started here. You are "
                    "signed out of this app.",
                    code="logout_state_mismatch",
                )
            )
        return _no_store(redirect(current_state().config.logout_redirect))

    @bp.get("/single-logout")
    def single_logout() -> Any:
        """Front-channel logout (the provider's Single Logout URI), called in an iframe."""
        state = current_state()
        iss = request.args.get("iss")
        provider_sid = request.args.get("sid")
        if iss is not None and iss != state.config.issuer:
            return _no_store(
                error_response(400, "Bad logout request", "Unknown issuer.", code="iss")
            )
        ended = 0
        if provider_sid:
            ended = state.registry.destroy_all(provider_sid=provider_sid)
        data = login_data()
        if data and (not provider_sid or data.get("psid") == provider_sid):
            state.registry.destroy(session.sid, data.get("sub"), data.get("psid"))  # type: ignore[attr-defined]
            session.clear()
            ended += 1
        signals.logged_out.send(
            _sender(),
            user=AnonymousUser(),
            reason="frontchannel",
            sessions=ended,
        )
        response = Response("<!doctype html><title>Signed out</title>", mimetype="text/html")
        return _no_store(response)

    @bp.post("/backchannel-logout")
    def backchannel_logout() -> Any:
        state = current_state()
        token = request.form.get("logout_token", "")
        try:
            if not token or len(token) > 16384:
                raise IdTokenError("A logout_token form field is required.")
            claims = state.oidc.validate_logout_token(token)
        except (IdTokenError, ProviderError) as exc:
            log.info("Back-channel logout refused: %s", exc.message)
            response = Response(
                '{"error": "invalid_request"}', status=400, mimetype="application/json"
            )
            return _no_store(response)
        ended = state.registry.destroy_all(sub=claims.get("sub"), provider_sid=claims.get("sid"))
        signals.logged_out.send(
            _sender(),
            user=AnonymousUser(),
            reason="backchannel",
            sessions=ended,
        )
        return _no_store(Response("", status=200))

    return bp


def _complete_login(state: SparkState) -> BaseResponse:
    """The callback: state, errors, code exchange, id_token, new session, stored tokens."""
    txn_state = _param("state")
    error = _param("error")
    if not txn_state:
        raise LoginError(
            "The sign-in response has no state; please start the sign-in again.",
            reason="state_missing",
        )
    txn = state.transactions.pop(txn_state)
    if txn is None:
        raise LoginError(
            "This sign-in response is unknown, expired or already used; please sign in again.",
            reason="state_mismatch",
        )
    if not txn.bound_to(session.get(BINDING_KEY)):
        raise LoginError(
            "This sign-in was started in another browser session; please sign in again.",
            reason="state_mismatch",
        )
    iss = _param("iss")
    if iss is not None and iss != state.config.issuer:
        raise LoginError(
            "The sign-in response came from an unexpected issuer.", reason="issuer_mismatch"
        )
    if error:
        description = _param("error_description")
        if error == "access_denied":
            message = "You cancelled the sign-in with Flexmls, or access was not granted."
        else:
            message = f"Flexmls could not sign you in ({error})."
        if description:
            message += f" {description}"
        raise LoginError(message, reason=error if error.isidentifier() else "provider_error")
    code = _param("code")
    if not code:
        raise LoginError("The sign-in response has no authorization code.", reason="code_missing")

    response = state.oidc.exchange_code(
        code=code, redirect_uri=txn.redirect_uri, code_verifier=txn.code_verifier
    )
    id_token = response.get("id_token")
    if not isinstance(id_token, str):
        raise IdTokenError("The provider sent no id_token.", reason="id_token_missing")
    claims = state.oidc.validate_id_token(id_token, nonce=txn.nonce)
    if state.config.fetch_userinfo:
        info = state.oidc.userinfo(response["access_token"])
        if info.get("sub") != claims["sub"]:
            raise IdTokenError(
                "The userinfo response is about another user.", reason="userinfo_sub_mismatch"
            )
        claims = {**info, **claims}

    # A new session id at sign-in (the old server-side session is deleted).
    binding = session.get(BINDING_KEY)  # kept: other tabs may still be signing in
    state.session_interface.regenerate(session)
    session.clear()
    session[BINDING_KEY] = binding
    now = time.time()
    lifetime = state.config.session_lifetime
    kept = {k: v for k, v in claims.items() if k not in _TECHNICAL_CLAIMS}
    provider_sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
    sid: str = session.sid  # type: ignore[attr-defined]
    tokens = TokenSet(
        access_token=response["access_token"],
        refresh_token=response.get("refresh_token"),
        id_token=id_token,
        expires_at=expires_at(response, now),
        sid=sid,
        scope=response.get("scope"),
    )
    state.tokens.create(tokens, ttl=lifetime)
    state.registry.register(sid, str(claims["sub"]), provider_sid, ttl=lifetime)
    session[SESSION_KEY] = {
        "sub": claims["sub"],
        "claims": kept,
        "login_at": int(now),
        "expires": int(now + lifetime),
        "psid": provider_sid,
    }
    signals.logged_in.send(_sender(), user=SparkUser(kept))
    log.info("Signed in %s", claims["sub"])
    return redirect(txn.next_url)


def _check_csrf() -> Response | None:
    expected = session.get(CSRF_KEY)
    given = request.form.get("csrf_token") or request.headers.get("X-CSRFToken")
    if isinstance(expected, str) and given and secrets.compare_digest(expected, given):
        return None
    return error_response(
        400,
        "Form expired",
        "This form has expired or did not come from this site; reload the page and try again.",
        code="csrf_failed",
    )


def _end_session(state: SparkState, *, revoke_access_at_provider: bool) -> tuple[Any, bool]:
    """Revoke at the provider, delete the access token at the API, destroy the session."""
    data = login_data() or (
        session.get(SESSION_KEY) if isinstance(session.get(SESSION_KEY), dict) else None
    )
    user = current_user()
    sid: str = session.sid  # type: ignore[attr-defined]
    tokens = state.tokens.load(sid)
    confirmed = True
    if tokens is not None:
        confirmed = _revoke_tokens(state, tokens, revoke_access_at_provider)
    state.registry.destroy(
        sid, data.get("sub") if data else None, data.get("psid") if data else None
    )
    session.clear()
    state.session_interface.regenerate(session)
    if tokens is not None:
        signals.tokens_revoked.send(
            _sender(),
            user=user,
            revoked=confirmed,
        )
    signals.logged_out.send(_sender(), user=user, reason="logout")
    return user, confirmed


def _revoke_tokens(state: SparkState, tokens: TokenSet, revoke_access: bool) -> bool:
    """Best effort: the local session ends whatever the provider says."""
    confirmed = True
    try:
        if tokens.refresh_token:
            confirmed = state.oidc.revoke(tokens.refresh_token, "refresh_token") and confirmed
        if revoke_access:
            confirmed = state.oidc.revoke(tokens.access_token, "access_token") and confirmed
    except (SparkError, SparkConfigError) as exc:
        log.warning("Revocation at the provider failed: %s", exc.message)
        confirmed = False
    try:
        state.api_delete_token(tokens)
    except SparkError as exc:
        log.warning("Deleting the access token at the Spark API failed: %s", exc.message)
        confirmed = False
    return confirmed


def _to_single_logout(state: SparkState) -> BaseResponse:
    logout_state = secrets.token_urlsafe(32)
    session[LOGOUT_STATE_KEY] = logout_state
    try:
        url = state.oidc.logout_url(
            post_logout_redirect_uri=_post_logout_uri(state), state=logout_state, id_token_hint=None
        )
    except ProviderError as exc:
        log.warning("Single logout unavailable: %s", exc.message)
        return _after_logout(state, False)
    return redirect(url)


def _after_logout(state: SparkState, confirmed: bool) -> BaseResponse:
    if confirmed:
        return redirect(state.config.logout_redirect)
    return error_response(
        200,
        "Signed out",
        "You are signed out of this app. We could not reach Flexmls to revoke this app's "
        "access right now; it will expire on its own.",
        code="revocation_pending",
    )

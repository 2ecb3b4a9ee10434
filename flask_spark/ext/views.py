"""The ``spark`` blueprint: sign-in, callback, sign-out, revocation and the logout receivers."""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from ..core.compare import same_secret
from ..core.config import check_transport
from ..core.errors import IdTokenError, LoginError, ProviderError, SparkConfigError
from ..core.redis_client import REDIS_DOWN
from ..core.transactions import LoginTransaction
from ..core.user import AnonymousUser, SparkUser
from . import signals
from .context import csrf_field_name, csrf_valid, current_state, is_logged_in
from .responses import error_response, handle_store_down, store_unavailable
from .session_interface import LOGOUT_STATE_KEY, SESSION_KEY
from .signin import start_session
from .signout import revoke_grant, revoke_tokens
from .state import SparkState
from .store_logout import answer_store_logout

log = logging.getLogger("flask_spark")

_MAX_PARAM = 2048
#: The cookie that binds a browser to the sign-ins it started (a random value, not a session).
BINDING_COOKIE = "spark_signin"
#: Over HTTPS the cookie is ``__Host-`` prefixed (Secure, Path=/, no Domain): a sibling
#: subdomain cannot plant a value of its own in it to bind a victim to the attacker's sign-in.
HOST_BINDING_COOKIE = "__Host-" + BINDING_COOKIE
_BINDING = re.compile(r"[A-Za-z0-9_-]{43}")
_MAX_LOGOUT_TOKEN = 16384


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


def _binding_cookie() -> tuple[str, str, bool]:
    """The binding cookie's name, path and Secure flag for this app."""
    secure = bool(current_app.session_interface.get_cookie_secure(current_app))
    if secure:
        return HOST_BINDING_COOKIE, "/", True
    # Plain HTTP (debug on loopback): sent back to our routes only, mounted under a prefix too.
    return BINDING_COOKIE, request.script_root + current_state().config.url_prefix, False


def _binding() -> str | None:
    """This browser's sign-in binding, from its cookie (None when absent or malformed)."""
    value = request.cookies.get(_binding_cookie()[0])
    return value if value and _BINDING.fullmatch(value) else None


def _redirect_uri(state: SparkState) -> str:
    uri = state.config.redirect_uri or url_for("spark.callback", _external=True)
    check_transport(uri, "The redirect URI (SPARK_REDIRECT_URI)", state.config.require_https)
    return uri


def _post_logout_uri(state: SparkState) -> str:
    """Where single logout returns: the redirect URI unless configured (Spark: it "must match
    the redirect_uri for the client_id"); the callback recognises the return by its state."""
    uri = state.config.post_logout_redirect_uri
    if not uri:
        return _redirect_uri(state)
    check_transport(uri, "SPARK_POST_LOGOUT_REDIRECT_URI", state.config.require_https)
    return uri


def _fail(
    reason: str, message: str, status: int = 400, title: str = "Sign-in failed"
) -> BaseResponse:
    """Reject a sign-in: signal, log (no secrets), answer with a clear page or JSON."""
    signals.login_failed.send(_sender(), reason=reason, message=message)
    log.info("Sign-in rejected (%s): %s", reason, message)
    return _no_store(error_response(status, title, message, code=reason))


def _well_formed(value: str) -> bool:
    """A query value fit to compare and log: printable ASCII of a sane length."""
    return len(value) <= _MAX_PARAM and value.isascii() and value.isprintable()


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
    if not _well_formed(value):
        raise LoginError(
            f"The callback's '{name}' parameter is malformed (too long or not printable ASCII).",
            reason="malformed_callback",
        )
    return value


def create_blueprint() -> Blueprint:
    """The ``spark`` blueprint (mounted at ``SPARK_URL_PREFIX``)."""
    bp = Blueprint("spark", __name__, template_folder="templates")
    for exc in REDIS_DOWN:  # only this blueprint's views: the app's own Redis errors stay its own
        bp.register_error_handler(exc, handle_store_down)

    # Every answer of this blueprint, including those of error handlers (the app's 500 page,
    # the store-down 503 below), is uncacheable and sends no Referer: the callback's URL holds
    # the authorization code and state, and a page shown at that URL must not pass them on.
    bp.after_request(_no_store)

    @bp.before_request
    def refuse_when_store_down() -> Response | None:
        return store_unavailable() if getattr(session, "store_unavailable", False) else None

    @bp.get("/login")
    def login() -> Any:
        state = current_state()
        # ``next`` is a path within the app: under a mount point (SCRIPT_NAME) it lands there.
        next_path = safe_next(request.args.get("next"))
        next_url = request.script_root + next_path if next_path else state.config.login_default_next
        binding = _binding() or secrets.token_urlsafe(32)
        try:
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
            return _fail(
                exc.error or "provider_unavailable", str(exc), exc.status, "Flexmls is unavailable"
            )
        except SparkConfigError as exc:  # a deployment mistake, e.g. http behind a TLS proxy
            log.error("Sign-in refused by configuration: %s", exc.message)
            return _fail("configuration_error", exc.message, 500, "Sign-in is misconfigured")
        response = _no_store(redirect(url))
        # No server-side session for a visitor who is only signing in: the browser is bound to
        # its pending sign-ins by this short-lived cookie, sent back to our routes only.
        name, path, secure = _binding_cookie()
        response.set_cookie(
            name,
            binding,
            max_age=state.config.transaction_ttl,
            path=path,
            secure=secure,
            httponly=True,
            samesite="Lax",
        )
        return response

    @bp.get("/callback")
    def callback() -> Any:
        state = current_state()
        if _returning_from_logout():
            return _no_store(redirect(state.config.logout_redirect))
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
        """Sign out: revoke the refresh token, delete the access token, end the session."""
        bad = _check_csrf()
        if bad is not None:
            return bad
        state = current_state()
        confirmed = _end_session(state, revoke_access=False)
        if state.config.single_logout:
            return _no_store(_to_single_logout(state))
        return _no_store(_after_logout(state, confirmed))

    @bp.post("/revoke")
    def revoke() -> Any:
        """Disconnect: revoke both tokens and end the session (or send to the provider's page)."""
        bad = _check_csrf()
        if bad is not None:
            return bad
        state = current_state()
        page = state.config.revoke_at_provider_page
        confirmed = _end_session(state, revoke_access=page is None)
        if page:
            return _no_store(redirect(page))
        return _no_store(_after_logout(state, confirmed))

    @bp.get("/logged-out")
    def logout_return() -> Any:
        """A way back after single logout (SPARK_POST_LOGOUT_REDIRECT_URI pointed here):
        ``state`` must be the one we sent."""
        expected = session.pop(LOGOUT_STATE_KEY, None)
        given = request.args.get("state")
        if not same_secret(expected, given):
            log.info("Single-logout return refused: state missing or not ours.")
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

    @bp.route("/store-logout", methods=["GET", "POST"])
    def store_logout() -> Any:
        """The Spark Store "Single Logout URI": signs out only on a request proven to be
        Spark's (see :mod:`.store_logout`)."""
        state = current_state()
        return _no_store(
            answer_store_logout(state, lambda: _end_session(state, revoke_access=True))
        )

    @bp.get("/single-logout")
    def single_logout() -> Any:
        """Front-channel logout (the provider's Single Logout URI), called in an iframe.

        The iframe gets no ``SameSite=Lax`` cookie, so the sessions are found by the provider's
        ``sid`` alone; ``iss`` and ``sid`` are both required (Front-Channel Logout 1.0 §2).
        The browser's cookie is deliberately not used: a cookie-authenticated GET that signs
        out would let any page log the user out.
        """
        state = current_state()
        iss = _single_param("iss")
        provider_sid = _single_param("sid")
        if not provider_sid or not same_secret(state.config.issuer, iss):
            log.info("Front-channel logout refused: iss missing or unknown, or sid missing.")
            return _no_store(
                error_response(
                    400,
                    "Bad logout request",
                    "This logout request does not name this app's provider and session.",
                    code="logout_request_invalid",
                )
            )
        _announce_ended(state.registry.destroy_all(provider_sid=provider_sid), "frontchannel")
        response = Response(
            "<!doctype html><title>Signed out</title><p>Signed out.</p>", mimetype="text/html"
        )
        return _no_store(response)

    @bp.post("/backchannel-logout")
    def backchannel_logout() -> Any:
        """Back-channel logout: a signed ``logout_token`` from the provider ends sessions."""
        state = current_state()
        try:
            claims = _logout_token_claims(state)
        except (IdTokenError, ProviderError) as exc:
            log.info("Back-channel logout refused: %s", exc.message)
            response = Response(
                '{"error": "invalid_request"}', status=400, mimetype="application/json"
            )
            return _no_store(response)
        sub = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        provider_sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        ended = state.registry.destroy_all(
            sub=sub, provider_sid=provider_sid, issued_at=claims["iat"]
        )
        _announce_ended(ended, "backchannel")
        return _no_store(Response("", status=200))

    return bp


def _returning_from_logout() -> bool:
    """Whether this callback hit is single logout coming back, not a sign-in response.

    A sign-out started here left its ``state`` in the session: the return carries that state,
    or (a provider that drops it) no state, code or error at all. Either way it is consumed.
    """
    expected = session.get(LOGOUT_STATE_KEY)
    if not isinstance(expected, str):
        return False
    given = request.args.get("state")
    if given:
        if not same_secret(expected, given):
            return False  # another response (a new sign-in's): the usual checks apply
    elif request.args.get("code") or request.args.get("error"):
        return False
    session.pop(LOGOUT_STATE_KEY, None)
    log.info("Single logout returned%s.", "" if given else " without its state")
    return True


def _complete_login(state: SparkState) -> BaseResponse:
    """The callback: state, errors, code exchange, id_token, new session, stored tokens."""
    txn_state = _param("state")
    error = _param("error")
    if not txn_state:
        raise LoginError(
            "The sign-in response has no state; please start the sign-in again.",
            reason="state_missing",
        )
    binding = _binding()
    txn = state.transactions.pop(binding, txn_state) if binding else None
    if txn is None and is_logged_in():
        # A reload of (or Back onto) a used callback: already signed in, so go to the landing
        # page; nothing about the session changes.
        log.info("Unknown or used sign-in response while signed in: to the landing page.")
        return redirect(state.config.login_default_next)
    if txn is None:
        raise LoginError(
            "This sign-in response is unknown, expired, already used or was started in another "
            "browser (or this browser did not send its sign-in cookie back: cookies blocked, or "
            "a Secure cookie over plain HTTP?); please sign in again.",
            reason="state_mismatch",
        )
    iss = _param("iss")
    if iss is None and state.oidc.metadata().get("authorization_response_iss_parameter_supported"):
        raise LoginError(
            "The sign-in response lacks the issuer it promises to send (RFC 9207).",
            reason="issuer_missing",
        )
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
    try:
        _sign_in(state, txn.nonce, response)
    except Exception:
        _revoke_grant(state, response)  # the provider issued tokens we will never use
        raise
    return redirect(txn.next_url)


def _sign_in(state: SparkState, nonce: str, response: dict[str, Any]) -> None:
    """Validate the token response's id_token (and userinfo) and start the session."""
    id_token = response.get("id_token")
    if not isinstance(id_token, str):
        raise IdTokenError("The provider sent no id_token.", reason="id_token_missing")
    claims = state.oidc.validate_id_token(id_token, nonce=nonce)
    if state.config.fetch_userinfo:
        info = state.oidc.userinfo(response["access_token"])
        if info.get("sub") != claims["sub"]:
            raise IdTokenError(
                "The userinfo response is about another user.", reason="userinfo_sub_mismatch"
            )
        claims = {**info, **claims}
    state.oidc.check_required_claims(claims)

    # A new session id, the encrypted token record, the indexes, the session data, the signal.
    start_session(state, session, claims, {**response, "id_token": id_token})


def _revoke_grant(state: SparkState, response: dict[str, Any]) -> None:
    """Give back the grant of a sign-in that failed after the code exchange (best effort)."""
    refresh = response.get("refresh_token")
    try:
        revoke_grant(state, response["access_token"], refresh if isinstance(refresh, str) else None)
    except REDIS_DOWN as exc:  # the retry queue is in Redis too
        log.error("Could not revoke the grant of a failed sign-in: %s", type(exc).__name__)


def _check_csrf() -> Response | None:
    given = request.form.get(csrf_field_name()) or request.headers.get("X-CSRFToken")
    if csrf_valid(given):
        return None
    return error_response(
        400,
        "Form expired",
        "This form has expired or did not come from this site; reload the page and try again.",
        code="csrf_failed",
    )


def _end_session(state: SparkState, *, revoke_access: bool) -> bool:
    """End this browser's session, then revoke its tokens; True when the provider confirmed.

    The local session goes first, so that it is gone even if the provider or the API hangs or
    fails: the revocation is best effort (and queued for a retry when the provider fails).
    """
    found = session.get(SESSION_KEY)
    data: dict[str, Any] = found if isinstance(found, dict) else {}
    sub, psid = data.get("sub"), data.get("psid")
    claims = data.get("claims")
    user = (
        SparkUser(claims if isinstance(claims, dict) else {"sub": sub}) if sub else AnonymousUser()
    )
    sid: str = session.sid  # type: ignore[attr-defined]
    tokens = state.tokens.load(sid)
    state.registry.destroy(sid, sub, psid)
    session.clear()
    state.session_interface.regenerate(session)
    confirmed = True
    if tokens is not None:
        confirmed = revoke_tokens(state, tokens, revoke_access=revoke_access)
        signals.tokens_revoked.send(_sender(), user=user, revoked=confirmed)
    signals.logged_out.send(_sender(), user=user, reason="logout")
    if user:
        log.info("Signed out %s", user.id)
    return confirmed


def _to_single_logout(state: SparkState) -> BaseResponse:
    """Redirect to the provider's single-logout URL with a fresh ``state`` kept in the session."""
    logout_state = secrets.token_urlsafe(32)
    try:
        url = state.oidc.logout_url(
            post_logout_redirect_uri=_post_logout_uri(state), state=logout_state, id_token_hint=None
        )
    except (ProviderError, SparkConfigError) as exc:
        log.warning("Single logout unavailable: %s", exc.message)
        return _after_logout(state, False)
    session[LOGOUT_STATE_KEY] = logout_state
    return redirect(url)


def _after_logout(state: SparkState, confirmed: bool) -> BaseResponse:
    """The configured page after sign-out, or a page saying the provider was not reached."""
    if confirmed:
        return redirect(state.config.logout_redirect)
    return error_response(
        200,
        "Signed out",
        "You are signed out of this app. We could not reach Flexmls to revoke this app's "
        "access right now; we will try again later, and it expires on its own.",
        code="revocation_pending",
    )


def _single_param(name: str) -> str | None:
    """A query parameter given at most once, printable and short; else None."""
    values = request.args.getlist(name)
    if len(values) != 1:
        return None
    value = values[0]
    return value if value and _well_formed(value) else None


def _logout_token_claims(state: SparkState) -> dict[str, Any]:
    """The validated claims of the posted ``logout_token``; IdTokenError when refused.

    A token is accepted once: its ``jti`` is remembered for as long as the token would be
    accepted (bounded, whatever its ``exp``), so a captured token cannot be replayed.
    """
    token = request.form.get("logout_token", "")
    if not token or len(token) > _MAX_LOGOUT_TOKEN:
        raise IdTokenError("A logout_token form field is required.")
    claims = state.oidc.validate_logout_token(token)
    ttl = math.ceil(state.oidc.logout_token_accepted_until(claims) - time.time()) + 1
    if not state.registry.first_use_of_logout_token(claims["jti"], ttl):
        raise IdTokenError("The logout_token was already used.")
    return claims


def _announce_ended(subs: list[str], reason: str) -> None:
    """``logged_out`` once per user whose sessions a provider-initiated logout ended."""
    for sub in sorted(set(subs) - {""}):
        signals.logged_out.send(
            _sender(), user=SparkUser({"sub": sub}), reason=reason, sessions=subs.count(sub)
        )
    log.info("Provider-initiated (%s) logout ended %d session(s).", reason, len(subs))

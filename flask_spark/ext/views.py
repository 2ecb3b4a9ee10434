"""The ``spark`` blueprint's routes; the work is done in :mod:`.signin` and :mod:`.signout`."""

from __future__ import annotations

import logging
import math
from typing import Any

from flask import Blueprint, Response, redirect, request, session

from ..core.errors import IdTokenError, LoginError, ProviderError, SparkConfigError
from ..core.oidc import LOGOUT_TOKEN_MAX_AGE
from ..core.redis_client import REDIS_DOWN
from ..core.transactions import same_secret
from . import signals, signin, signout
from .context import csrf_field_name, csrf_valid, current_state
from .responses import error_response, no_store, store_unavailable
from .session_interface import LOGOUT_STATE_KEY

log = logging.getLogger("flask_spark")


def _no_referrer(response: Response) -> Response:
    """No Referer (the callback's URL holds the code and state), no caching: error pages too."""
    response.headers["Referrer-Policy"] = "no-referrer"
    return no_store(response)


def _fail(reason: str, message: str, status: int = 400, title: str = "Sign-in failed") -> Response:
    """Reject a sign-in: signal, log (no secrets; a 5xx as an error), answer with a page or JSON."""
    signals.login_failed.send(current_state().app, reason=reason, message=message)
    level = logging.ERROR if status >= 500 else logging.INFO
    log.log(level, "Sign-in rejected (%s): %s", reason, message)
    return error_response(status, title, message, code=reason)


def create_blueprint() -> Blueprint:
    """The ``spark`` blueprint (mounted at ``SPARK_URL_PREFIX``)."""
    bp = Blueprint("spark", __name__, template_folder="templates")
    for exc in REDIS_DOWN:  # only this blueprint's views: the app's own Redis errors stay its own
        bp.register_error_handler(exc, store_unavailable)
    bp.after_request(_no_referrer)

    @bp.before_request
    def guard() -> Response | None:
        """A session store out of reach is a 503; sign-out forms must carry their CSRF token."""
        if getattr(session, "store_unavailable", False):
            return store_unavailable()
        if request.endpoint in ("spark.logout", "spark.revoke") and not csrf_valid(
            request.form.get(csrf_field_name()) or request.headers.get("X-CSRFToken")
        ):
            message = "This form has expired or did not come from this site; reload the page."
            return error_response(400, "Form expired", message, code="csrf_failed")
        return None

    @bp.errorhandler(LoginError)
    def login_failed(exc: LoginError) -> Response:
        return _fail(exc.reason, exc.message)

    @bp.errorhandler(ProviderError)
    def provider_failed(exc: ProviderError) -> Response:
        if exc.status == 400:  # the provider refused the authorization code
            return _fail("token_exchange_refused", str(exc))
        reason = exc.error or "provider_unavailable"
        return _fail(reason, str(exc), exc.status, "Flexmls is unavailable")

    @bp.get("/login")
    def login() -> Any:
        try:
            return signin.begin_login(current_state())
        except SparkConfigError as exc:  # a deployment mistake, e.g. http behind a TLS proxy
            return _fail("configuration_error", exc.message, 500, "Sign-in is misconfigured")

    @bp.get("/callback")
    def callback() -> Any:
        if signout.returning_from_logout():
            return redirect(current_state().config.logout_redirect)
        return signin.complete_login(current_state())

    @bp.post("/logout")
    def logout() -> Any:
        state = current_state()
        confirmed = signout.end_session(state, revoke_access=False)
        if state.config.single_logout:
            return signout.to_single_logout(state)
        return signout.after_logout(state, confirmed)

    @bp.post("/revoke")
    def revoke() -> Any:
        state = current_state()
        page = state.config.revoke_at_provider_page
        confirmed = signout.end_session(state, revoke_access=page is None)
        return redirect(page) if page else signout.after_logout(state, confirmed)

    @bp.get("/logged-out")
    def logout_return() -> Any:
        if not same_secret(session.pop(LOGOUT_STATE_KEY, None), request.args.get("state")):
            log.info("Single-logout return refused: state missing or not ours.")
            message = "This sign-out response matches no sign-out started here. You are signed out."
            title = "Unexpected sign-out response"
            return error_response(400, title, message, code="logout_state_mismatch")
        return redirect(current_state().config.logout_redirect)

    bp.add_url_rule("/store-logout", view_func=signout.store_logout, methods=["GET", "POST"])

    @bp.get("/single-logout")
    def single_logout() -> Any:
        """Front-channel logout: sessions found by ``iss`` and ``sid``, never by the cookie."""
        state = current_state()
        try:
            provider_sid, iss = signin.param("sid"), signin.param("iss")
        except LoginError:
            provider_sid = iss = None
        if not provider_sid or not same_secret(state.config.issuer, iss):
            log.info("Front-channel logout refused: iss missing or unknown, or sid missing.")
            message = "This logout request does not name this app's provider and session."
            return error_response(400, "Bad logout request", message, code="logout_request_invalid")
        ended = state.registry.destroy_all(provider_sid=provider_sid)
        signout.announce_ended(state, ended, "frontchannel")
        return "<!doctype html><title>Signed out</title><p>Signed out.</p>"

    @bp.post("/backchannel-logout")
    def backchannel_logout() -> Any:
        state = current_state()
        token = request.form.get("logout_token", "")
        try:
            if not token or len(token) > 16384:  # far longer than any signed logout token
                raise IdTokenError("A logout_token form field is required.")
            claims = state.oidc.validate_logout_token(token)
            # Accepted at most LOGOUT_TOKEN_MAX_AGE after its iat (up to skew ahead), + skew.
            ttl = math.ceil(LOGOUT_TOKEN_MAX_AGE) + 2 * state.config.clock_skew + 1
            if not state.registry.first_use_of_logout_token(claims["jti"], ttl):
                raise IdTokenError("The logout_token was already used.")
        except (IdTokenError, ProviderError) as exc:
            log.info("Back-channel logout refused: %s", exc.message)
            return {"error": "invalid_request"}, 400
        ended = state.registry.destroy_all(  # sub and sid: absent, or short strings
            sub=claims.get("sub"), provider_sid=claims.get("sid"), issued_at=claims["iat"]
        )
        signout.announce_ended(state, ended, "backchannel")
        return ""

    return bp

"""Signing out in every form. The local session ends first (even when the provider hangs), then
the grant: the access token is deleted at the Spark API, then the tokens are revoked."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any
from urllib.parse import quote

from flask import Response, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from ..core.api import StaticTokens
from ..core.config import check_transport, origin_of
from ..core.errors import (
    AuthenticationError,
    LoginRequired,
    ProviderError,
    ResourceNotFound,
    SparkConfigError,
    SparkError,
    TokenExpired,
)
from ..core.refresh import RevocationQueue
from ..core.tokens import TokenSet
from ..core.transactions import same_secret
from ..core.user import AnonymousUser, SparkUser
from . import signals
from .context import csrf_field_name, csrf_token, current_state
from .responses import error_response, not_framed
from .session_interface import LOGOUT_STATE_KEY, SESSION_KEY
from .state import SparkState

log = logging.getLogger("flask_spark")


def revoke_tokens(state: SparkState, tokens: TokenSet, *, revoke_access: bool) -> bool:
    """Delete the access token at the Spark API (404 or 1020, expired: already gone), then
    revoke at the provider; True when all confirmed."""
    confirmed = True
    if state.config.delete_token_at_api:
        token = tokens.access_token
        try:
            state.api_with(StaticTokens(token)).delete(f"oauth2/token/{quote(token, safe='')}")
        except (ResourceNotFound, TokenExpired):
            pass
        except SparkError as exc:
            log.warning("Deleting the access token at the Spark API failed: %s", exc.message)
            confirmed = False
    access = tokens.access_token if revoke_access else None
    return revoke_at_provider(state, access, tokens.refresh_token) and confirmed


def revoke_at_provider(state: SparkState, access: object, refresh: object) -> bool:
    """Revoke the text tokens given at the provider (a failure is queued); True if all confirmed."""
    queue = RevocationQueue(state.redis, state.config.key_prefix, state.vault)
    pairs = [(access, "access_token"), (refresh, "refresh_token")]
    done = [queue.revoke(state.oidc, t, hint) for t, hint in pairs if t and isinstance(t, str)]
    return all(done)  # each revoked, even after a failure


def end_session(state: SparkState, *, revoke_access: bool) -> bool:
    """End this browser's session, then revoke its tokens; True when the provider confirmed."""
    data: dict[str, Any] = found if isinstance(found := session.get(SESSION_KEY), dict) else {}
    user = SparkUser(data["claims"]) if data else AnonymousUser()
    sid: str = session.sid  # type: ignore[attr-defined]
    tokens = state.tokens.load(sid)
    state.registry.destroy(sid, data.get("sub"), data.get("psid"))
    state.session_interface.regenerate(session)  # without flask-spark's keys, the app's kept
    confirmed = True
    if tokens is not None:
        confirmed = revoke_tokens(state, tokens, revoke_access=revoke_access)
        signals.tokens_revoked.send(state.app, user=user, revoked=confirmed)
    signals.logged_out.send(state.app, user=user, reason="logout")
    if user:
        log.info("Signed out %s", user.id)
    return confirmed


def after_logout(state: SparkState, confirmed: bool) -> BaseResponse:
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


def callback_uri(state: SparkState) -> str:
    """``SPARK_REDIRECT_URI``, else this app's callback URL (SparkConfigError: HTTP, not HTTPS)."""
    if state.config.redirect_uri:
        return state.config.redirect_uri
    uri = url_for("spark.callback", _external=True)
    check_transport(uri, "The redirect URI (SPARK_REDIRECT_URI)", state.config.require_https)
    return uri


def to_single_logout(state: SparkState) -> BaseResponse:
    """Redirect to the provider's single logout with a fresh ``state`` kept in the session."""
    logout_state = secrets.token_urlsafe(32)
    try:
        uri = state.config.post_logout_redirect_uri or callback_uri(state)
        url = state.oidc.logout_url(uri, logout_state)
    except (ProviderError, SparkConfigError) as exc:
        log.warning("Single logout unavailable: %s", exc.message)
        return after_logout(state, False)
    session[LOGOUT_STATE_KEY] = logout_state
    return redirect(url)


def store_logout() -> BaseResponse | str:
    """The Spark Store "Single Logout URI": any site can GET it with the cookie, so sign out only
    on proof (its origin in ``store_logout_origins``, or Spark refusing its token); else ask."""
    state = current_state()
    if not isinstance(session.get(SESSION_KEY), dict):
        return _frameable("Nothing to sign out", "This browser is not signed in to this app.")
    sent = request.headers.get("Origin") or "null"
    origin = origin_of(request.headers.get("Referer", "") if sent == "null" else sent)
    proven, how = origin is not None and origin in state.config.store_logout_origins, "origin"
    if not proven and state.config.store_logout_verify:  # does Spark still take its token?
        how = "token refused"
        try:
            state.api_for(session.sid, in_request=True).get("my/account")  # type: ignore[attr-defined]
        except (LoginRequired, AuthenticationError):
            proven = True
        except SparkError as exc:  # unreachable, rate limited...: proves nothing either way
            log.info("Store logout: could not ask the Spark API (%s).", type(exc).__name__)
    if proven:
        end_session(state, revoke_access=True)
        log.info("Store logout (%s): signed out.", how)
        return redirect(state.config.logout_redirect)
    log.info("Store logout not proven (origin %s); nothing signed out.", origin or "unknown")
    if not state.config.store_logout_confirm:
        return _frameable("Still signed in", "This sign-out could not be verified: nothing done.")
    page = render_template("spark/store_logout.html", field=csrf_field_name(), token=csrf_token())
    return not_framed(Response(page, mimetype="text/html"))  # a button: no clickjacking


def _frameable(title: str, message: str) -> str:
    """A small answer that Spark's page may show in an iframe."""
    return render_template("spark/error.html", title=title, message=message, code="store_logout")


def returning_from_logout() -> bool:
    """Whether this callback hit is single logout returning, not a sign-in response."""
    expected = session.get(LOGOUT_STATE_KEY)
    given = request.args.get("state")
    answered = request.args.get("code") or request.args.get("error")
    if not (same_secret(expected, given) if given else expected and not answered):
        return False
    session.pop(LOGOUT_STATE_KEY, None)
    log.info("Single logout returned%s.", "" if given else " without its state")
    return True


def announce_ended(state: SparkState, subs: list[str], reason: str) -> None:
    """``logged_out`` once per user whose sessions a logout (``reason``) ended."""
    for sub in sorted(set(subs) - {""}):
        signals.logged_out.send(
            state.app, user=SparkUser({"sub": sub}), reason=reason, sessions=subs.count(sub)
        )
    log.info("Logout (%s) ended %d session(s).", reason, len(subs))


def _end(state: SparkState, sid: str, sub: str) -> bool:
    """End session ``sid`` of ``sub`` server-side and give its grant back; True if it was alive."""
    tokens = state.tokens.load(sid)
    alive = state.registry.destroy(sid, sub)
    if tokens is not None:
        revoke_tokens(state, tokens, revoke_access=True)
    return alive


def end_user_sessions(state: SparkState, sub: str) -> int:
    """End every session of user ``sub`` and revoke their grants; how many were alive."""
    ended = sum(_end(state, sid, sub) for sid in sorted(state.registry.sessions_of(sub=sub)))
    announce_ended(state, [sub] * ended, "everywhere")
    return ended


def end_idle_sessions(state: SparkState, sub: str) -> None:
    """Revoke the grants of user ``sub``'s sessions that their idle timeout ended (the session
    key expired in Redis, its token record did not): a new sign-in leaves one live grant. A
    sign-in of the last minute is left alone: its session may not be stored yet."""
    for sid in state.registry.sessions_of(sub=sub, signed_in_before=time.time() - 60):
        if not state.registry.session_redis.exists(state.registry.session_key(sid)):
            _end(state, sid, sub)


def end_dropped_signin(state: SparkState, sid: str, data: dict[str, Any]) -> bool:
    """End a Flexmls sign-in that the app's own code dropped (``session.clear()``, a new id):
    records gone, grant revoked. False when it had already ended (a sign-out, here or elsewhere)."""
    tokens = state.tokens.load(sid)
    if tokens is None:
        return False
    state.registry.destroy(sid, data.get("sub"), data.get("psid"))
    confirmed = revoke_tokens(state, tokens, revoke_access=True)
    user = SparkUser(data["claims"])
    signals.tokens_revoked.send(state.app, user=user, revoked=confirmed)
    signals.logged_out.send(state.app, user=user, reason="session_ended")
    return True

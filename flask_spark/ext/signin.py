"""Signing in: the start, the callback's checks, the new session (:mod:`.testing`'s too)."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

from flask import current_app, redirect, request, session
from werkzeug.wrappers import Response

from ..core.errors import IdTokenError, LoginError
from ..core.redis_client import REDIS_DOWN
from ..core.tokens import TokenSet, expires_at
from ..core.transactions import LoginTransaction
from ..core.user import SparkUser
from . import signals
from .context import current_state, is_logged_in
from .session_interface import SESSION_KEY, drop_spark_keys
from .signout import callback_uri, end_idle_sessions, revoke_at_provider, revoke_tokens
from .state import SparkState

log = logging.getLogger("flask_spark")

_MAX_PARAM = 2048
#: The cookie binding a browser to the sign-ins it started; ``__Host-`` over HTTPS (Secure, no
#: Domain): a sibling subdomain cannot plant one to bind a victim to the attacker's sign-in.
BINDING_COOKIE = "spark_signin"
_BINDING = re.compile(r"[A-Za-z0-9_-]{43}")
#: Claims that describe the token, not the user: not kept in the session.
TECHNICAL_CLAIMS = {"nonce", "at_hash", "c_hash", "jti", "exp", "iat", "nbf", "azp", "aud"}
#: Nesting of kept claim values at most (``address`` is two deep; ``groups`` lists one).
MAX_DEPTH = 16
#: Size of the kept claims, serialised, at most (bytes): they are read on every request.
MAX_BYTES = 32 * 1024


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a same-site path (``/``, not ``//``, no dot segment: no scheme or host
    once a browser resolves it), else None."""
    if not value or len(value) > _MAX_PARAM or not value.startswith("/"):
        return None
    if "\\" in value or value.startswith("//") or any(ord(c) < 0x21 or c == "\x7f" for c in value):
        return None
    # Browsers remove dot segments (``%2e`` is a dot to them): "/.//host" would land on "//host".
    dots = {part.lower().replace("%2e", ".") for part in value.split("?")[0].split("/")}
    return None if dots & {".", ".."} else value


def _binding_cookie() -> tuple[str, dict[str, Any]]:
    """The binding cookie's name and its ``path`` and ``secure`` for this app."""
    if current_app.session_interface.get_cookie_secure(current_app):
        return "__Host-" + BINDING_COOKIE, {"path": "/", "secure": True}
    # Plain HTTP (debug on loopback): sent back to our routes only, mounted under a prefix too.
    return BINDING_COOKIE, {"path": request.script_root + current_state().config.url_prefix}


def _binding() -> str | None:
    """This browser's sign-in binding, from its cookie (None when absent or malformed)."""
    value = request.cookies.get(_binding_cookie()[0])
    return value if value and _BINDING.fullmatch(value) else None


def begin_login(state: SparkState) -> Response:
    """Remember a new sign-in, bound to the browser by a cookie (no session), and redirect."""
    next_path = safe_next(request.args.get("next"))
    next_url = request.script_root + next_path if next_path else state.config.login_default_next
    redirect_uri = callback_uri(state)
    binding = _binding() or secrets.token_urlsafe(32)
    txn = LoginTransaction.begin(next_url=next_url, binding=binding, redirect_uri=redirect_uri)
    response = redirect(state.oidc.authorization_url(txn))
    state.transactions.save(txn)
    name, where = _binding_cookie()
    ttl = state.config.transaction_ttl
    response.set_cookie(name, binding, max_age=ttl, httponly=True, samesite="Lax", **where)
    return response


def param(name: str) -> str | None:
    """A query parameter or None; LoginError if repeated or not short printable ASCII."""
    values = request.args.getlist(name)
    if len(values) > 1 or not all(
        len(v) <= _MAX_PARAM and v.isascii() and v.isprintable() for v in values
    ):
        raise LoginError(f"Parameter '{name}' repeated or malformed.", reason="malformed_callback")
    return values[0] if values else None


def complete_login(state: SparkState) -> Response:
    """The callback: state, errors, code exchange, id_token, new session, stored tokens."""
    txn_state = param("state")
    error = param("error")
    if not txn_state:
        raise LoginError("A sign-in response without state; sign in again.", reason="state_missing")
    binding = _binding()
    txn = state.transactions.pop(binding, txn_state) if binding else None
    if txn is None and is_logged_in():
        log.info("Used or unknown sign-in response (a reload?) while signed in: no change.")
        return redirect(state.config.login_default_next)
    if txn is None:
        raise LoginError(
            "This sign-in response is unknown, expired, already used or from another browser (or "
            "its cookie did not come back: blocked, or Secure over HTTP?); please sign in again.",
            reason="state_mismatch",
        )
    iss = param("iss")
    if iss is None and state.oidc.metadata().get("authorization_response_iss_parameter_supported"):
        raise LoginError("The sign-in response has no issuer (RFC 9207).", reason="issuer_missing")
    if iss is not None and iss != state.config.issuer:
        raise LoginError("A sign-in response from an unexpected issuer.", reason="issuer_mismatch")
    if error:
        message = f"Flexmls could not sign you in ({error})."
        if error == "access_denied":
            message = "You cancelled the sign-in with Flexmls, or access was not granted."
        description = param("error_description")
        message += f" {description}" if description else ""
        raise LoginError(message, reason=error if error.isidentifier() else "provider_error")
    code = param("code")
    if not code:
        raise LoginError("The sign-in response has no authorization code.", reason="code_missing")

    response = state.oidc.exchange_code(code, txn)
    try:
        _sign_in(state, txn.nonce, response)
    except Exception:  # give the refused sign-in's grant back, at the provider only (no API)
        revoke_at_provider(state, response["access_token"], response.get("refresh_token"))
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
            raise IdTokenError("The userinfo names another user.", reason="userinfo_sub_mismatch")
        claims = {**info, **claims}
    missing = [n for n in state.config.required_claims if claims.get(n) in (None, "", [])]
    if missing:
        raise LoginError(
            f"Flexmls did not share {', '.join(missing)} about you, which this app needs. Ask "
            "its owner to check the requested scopes (SPARK_SCOPE) and SPARK_REQUIRED_CLAIMS.",
            reason="claims_missing",
        )
    start_session(state, session, claims, response)


def start_session(
    state: SparkState,
    session: MutableMapping[str, Any],
    claims: Mapping[str, Any],
    token_response: Mapping[str, Any],
) -> SparkUser:
    """Sign ``session`` (the request's, or a test client's) in as the user of ``claims`` with
    the token endpoint's answer: all or nothing (a failure removes what was written)."""
    now = time.time()
    lifetime = state.config.session_lifetime
    kept = {k: v for k, v in claims.items() if k not in TECHNICAL_CLAIMS}
    serializer = state.session_interface.serializer
    try:  # kept only if they read back unchanged from the session store, before any write
        data = serializer.encode(kept)
        ok = not _too_deep(kept) and len(data) <= MAX_BYTES and serializer.decode(data) == kept
    except Exception:  # a value the serializer refuses (a 65-bit integer...)
        ok = False
    if not ok:
        raise LoginError(
            f"The sign-in returned user details this app cannot store (over {MAX_BYTES} bytes or "
            f"{MAX_DEPTH} levels, or not read back unchanged); please tell the site's owner.",
            reason="claims_unstorable",
        )
    sub = str(claims["sub"])
    provider_sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None

    if isinstance(previous := session.get(SESSION_KEY), dict):  # signed in: that grant ends
        old_sid: str = session.sid  # type: ignore[attr-defined]
        replaced = state.tokens.load(old_sid)
        state.registry.destroy(old_sid, previous.get("sub"), previous.get("psid"))
        if replaced is not None:
            revoke_tokens(state, replaced, revoke_access=True)
    state.session_interface.regenerate(session)  # a new id (ASVS 7.2.4), the app's data kept
    sid: str = session.sid  # type: ignore[attr-defined]
    tokens = TokenSet(
        access_token=token_response["access_token"],
        refresh_token=token_response.get("refresh_token"),
        subject=sub,
        expires_at=expires_at(dict(token_response), now),
        sid=sid,
    )
    user = SparkUser(kept)
    try:
        state.tokens.create(tokens, ttl=lifetime)
        state.registry.register(sid, sub, provider_sid, ttl=lifetime, login_at=now)
        session[SESSION_KEY] = {
            "sub": claims["sub"],
            "claims": kept,
            "login_at": int(now),
            "expires": int(now + lifetime),
            "psid": provider_sid,
        }
        # A receiver that raises fails the sign-in: Flask saves the session even on a 500.
        signals.logged_in.send(state.app, user=user)
        end_idle_sessions(state, sub)
    except Exception:
        drop_spark_keys(session)
        try:  # best effort: the store may be what failed
            state.registry.destroy(sid, sub, provider_sid)
        except REDIS_DOWN as exc:
            log.error("Could not roll back a failed sign-in: %s", type(exc).__name__)
        raise
    log.info("Signed in %s", sub)
    return user


def _too_deep(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` nests deeper than :data:`MAX_DEPTH` (recursing at most that far)."""
    children = value.values() if isinstance(value, dict) else value
    return depth > MAX_DEPTH or (
        isinstance(value, dict | list) and any(_too_deep(c, depth + 1) for c in children)
    )

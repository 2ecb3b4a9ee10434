"""The Spark Store "Single Logout URI" receiver (``/spark/store-logout``, GET or POST).

Spark "destroys custom sessions for other applications … so long as those applications have
specified a Single Logout URI in the Spark Store"; how it calls that URI is not published. The
plausible forms are a top-level navigation (the browser sends the app's ``SameSite=Lax`` cookie)
and an iframe (no cookie), each with or without parameters. A cookie-carrying GET can come from any
site, so the request alone never signs anyone out. One of these must prove it first:

1. the browser says the navigation comes from Spark: its ``Origin``, or else its ``Referer``, is
   one of the ``store_logout_origins`` (default: the issuer's; a page elsewhere cannot make a
   browser claim that);
2. Spark itself says the session is over: with ``store_logout_verify``, a Spark API call
   with the session's token is refused even after a refresh (a third party cannot cause that).

Otherwise, with ``store_logout_confirm``, the user is asked (a page that cannot be framed,
whose button posts the usual CSRF-protected sign-out form). Parameters are never trusted: none
are signed, and an unsigned ``sub`` or ``sid`` would let anyone sign anybody out. Without the
cookie (an iframe) there is no session to find, so the answer says so and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Response, redirect, render_template, request, session
from werkzeug.wrappers import Response as BaseResponse

from ..core.config import origin_of
from ..core.errors import AuthenticationError, LoginRequired, SparkError
from .context import csrf_field_name, csrf_token
from .responses import not_framed
from .session_interface import SESSION_KEY
from .state import SparkState

log = logging.getLogger("flask_spark")


def caller_origin() -> str | None:
    """The origin the browser reports for this request: ``Origin``, else ``Referer``'s."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return origin_of(origin)
    referer = request.headers.get("Referer")
    return origin_of(referer) if referer else None


def _refused_by_spark(state: SparkState) -> bool:
    """True when Spark no longer accepts this session's token (nor refreshes it)."""
    sid: str = session.sid  # type: ignore[attr-defined]
    try:
        state.api_for(sid, in_request=True).get("my/account")
    except (LoginRequired, AuthenticationError):
        return True
    except SparkError as exc:  # unreachable, rate limited...: proves nothing either way
        log.info("Store logout: could not ask the Spark API (%s).", type(exc).__name__)
    return False


def _page(title: str, message: str) -> Response:
    """A small frameable answer (the call may be an iframe on Spark's page)."""
    body = render_template(
        "spark/error.html", status=200, title=title, message=message, code="store_logout"
    )
    return Response(body, mimetype="text/html")


def answer_store_logout(state: SparkState, end_session: Callable[[], bool]) -> BaseResponse:
    """Sign this browser out if the request proves it comes from Spark's sign-out, else ask."""
    config = state.config
    found = session.get(SESSION_KEY)
    if not isinstance(found, dict):
        return _page("Nothing to sign out", "This browser is not signed in to this app.")
    origin = caller_origin()
    proven = origin is not None and origin in config.store_logout_origins
    how = "origin"
    if not proven and config.store_logout_verify:
        proven = _refused_by_spark(state)
        how = "token refused"
    if proven:
        end_session()
        log.info("Store logout (%s): signed out.", how)
        return redirect(config.logout_redirect)
    log.info("Store logout not proven (origin %s); nothing signed out.", origin or "unknown")
    if not config.store_logout_confirm:
        return _page(
            "Still signed in",
            "This sign-out request could not be verified, so nothing was done.",
        )
    page = render_template("spark/store_logout.html", field=csrf_field_name(), token=csrf_token())
    return not_framed(Response(page, mimetype="text/html"))  # a button: no clickjacking

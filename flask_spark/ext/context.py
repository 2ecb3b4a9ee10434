"""What a request knows: the app's runtime, the sign-in, the user and API client (and their
proxies ``spark_user``, ``spark_api``), the forms' CSRF token, the sign-in / sign-out URLs, and
the template helpers that show them."""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

from flask import Flask, after_this_request, current_app, g, has_request_context, session, url_for
from werkzeug.local import LocalProxy

from ..core.api import SparkAPI
from ..core.errors import LoginRequired, SparkConfigError
from ..core.transactions import same_secret
from ..core.user import AnonymousUser, SparkUser
from .responses import no_store
from .session_interface import CSRF_KEY, SESSION_KEY
from .state import SparkState


def current_state(app: Flask | None = None) -> SparkState:
    """The :class:`SparkState` of ``app`` (default: the current app)."""
    app = app or current_app
    try:
        state: SparkState = app.extensions["spark.state"]
    except KeyError:
        raise app.extensions.get("spark.unconfigured") or SparkConfigError(
            "flask-spark is not initialised on this app: call SparkAuth(app) or init_app(app)."
        ) from None
    if app.session_interface is not state.session_interface:
        raise SparkConfigError(
            "The app's session interface was replaced after SparkAuth(app) (Session(app) called "
            "later?). Set it up before SparkAuth(app), or not at all: flask-spark installs one."
        )
    return state


def login_data() -> dict[str, Any] | None:
    """The signed-in session's non-secret data, or None (reads the session only)."""
    data = session.get(SESSION_KEY)
    if isinstance(data, dict) and float(data.get("expires", 0)) > time.time():
        return data
    return None


def is_logged_in() -> bool:
    """True when the current session is signed in and within its absolute lifetime."""
    return login_data() is not None


def current_user() -> SparkUser | AnonymousUser:
    """The signed-in user of this request (cached on ``g``); a response that read one is about
    that user: it gets ``Cache-Control: no-store`` unless the view set its own."""
    if "_spark_user" not in g:
        data = login_data()
        g._spark_user = SparkUser(data["claims"]) if data else AnonymousUser()
        if data:
            after_this_request(no_store)
    return g._spark_user  # type: ignore[no-any-return]


def current_api() -> SparkAPI:
    """The Spark API client of the signed-in user of this request (cached on ``g``); the
    response gets ``no-store`` as with :func:`current_user`."""
    if "_spark_api" not in g:
        if not is_logged_in():
            raise LoginRequired("Sign in with Flexmls to use the Spark API.")
        sid: str = session.sid  # type: ignore[attr-defined]
        g._spark_api = current_state().api_for(sid, in_request=True)
        after_this_request(no_store)
    return g._spark_api  # type: ignore[no-any-return]


#: The Spark API client of the signed-in user (``spark_api.reso`` for the RESO Web API).
spark_api: SparkAPI = cast("SparkAPI", LocalProxy(current_api))
#: The signed-in user's identity (id_token claims), or an anonymous user. Never holds tokens.
spark_user: SparkUser | AnonymousUser = cast("SparkUser | AnonymousUser", LocalProxy(current_user))


def csrf_token() -> str:
    """The token the sign-out and revoke forms carry: Flask-WTF's when its ``CSRFProtect``
    guards the app (so that its check passes too), else this session's own. A per-session
    secret: the page that carries it is ``no-store``."""
    if "_spark_csrf_page" not in g:
        g._spark_csrf_page = after_this_request(no_store)
    if "csrf" in current_app.extensions:
        from flask_wtf.csrf import generate_csrf

        return str(generate_csrf())
    return str(session.setdefault(CSRF_KEY, secrets.token_urlsafe(32)))


def csrf_field_name() -> str:
    """The form field the token travels in: Flask-WTF's when it is active, else our own."""
    if "csrf" in current_app.extensions:
        return str(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))
    return "spark_csrf_token"


def csrf_valid(given: str | None) -> bool:
    """True when ``given`` is this session's sign-out token (Flask-WTF's when it is active)."""
    if "csrf" in current_app.extensions:
        from flask_wtf.csrf import ValidationError, validate_csrf

        try:
            validate_csrf(given)
        except ValidationError:
            return False
        return True
    return same_secret(session.get(CSRF_KEY), given)


def login_url(next: str | None = None) -> str:
    """The URL of the sign-in view, with ``next`` when given."""
    return url_for("spark.login", next=(next or "").rstrip("?") or None)


def logout_url() -> str:
    """The URL the sign-out form posts to."""
    return url_for("spark.logout")


def register_template_helpers(app: Flask) -> None:
    """The template context and globals (``spark/macros.html`` holds the macros)."""

    @app.context_processor
    def spark_context() -> dict[str, Any]:
        if not has_request_context():  # e.g. an e-mail rendered by a background job
            return {"spark_user": AnonymousUser(), "spark_logged_in": False}
        # The proxy: a page that never shows the user is not made uncacheable.
        return {"spark_user": spark_user, "spark_logged_in": is_logged_in()}

    app.add_template_global(login_url, "spark_login_url")
    app.add_template_global(logout_url, "spark_logout_url")
    app.add_template_global(csrf_token, "spark_csrf_token")
    app.add_template_global(csrf_field_name, "spark_csrf_field")

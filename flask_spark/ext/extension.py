"""``SparkAuth``: validates the configuration and wires the session, the blueprint, the helpers
and the CLI into an app, changing nothing there that flask-spark does not own."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, redirect, request
from flask.sessions import SecureCookieSessionInterface

from ..core.api import SparkAPI
from ..core.config import SparkConfig, load_config
from ..core.errors import SparkConfigError, SparkError
from ..core.redaction import install_log_redaction
from .cli import spark_cli
from .context import current_state, exempt_backchannel_from_csrf, login_url
from .jobs import api_for_job, job_handle
from .responses import handle_spark_error, has_handler, wants_json
from .session_interface import SparkSessionInterface
from .signout import end_user_sessions
from .state import SparkState
from .templating import register_template_helpers
from .views import create_blueprint

log = logging.getLogger("flask_spark")

UnauthorizedHandler = Callable[[], Any]

#: Flask's own defaults for the session cookie: a value still equal to these was not chosen by
#: the app, so flask-spark may make it safer.
_FLASK_COOKIE_DEFAULTS = {
    key: Flask.default_config[key]
    for key in ("SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE")
}


class SparkAuth:
    """The flask-spark extension: ``SparkAuth(app)`` or ``SparkAuth()`` + :meth:`init_app`."""

    def __init__(self, app: Flask | None = None) -> None:
        self._unauthorized: UnauthorizedHandler | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate the configuration and register the session, blueprint, helpers and CLI."""
        config = load_config(
            app.config, debug=app.debug, testing=app.testing, instance_path=app.instance_path
        )
        install_log_redaction()
        cookie_defaults = apply_cookie_defaults(app, config)
        state = SparkState(app, config, _adopted_session_interface(app, config))
        state.cookie_defaults = cookie_defaults
        if config.configure_session is not False:
            app.session_interface = state.session_interface
        app.extensions["spark"] = self
        app.extensions["spark.state"] = state
        app.register_blueprint(create_blueprint(), url_prefix=config.url_prefix)
        state.backchannel_csrf_exempt = exempt_backchannel_from_csrf(app)
        register_template_helpers(app)
        if "spark" not in app.cli.commands:
            app.cli.add_command(spark_cli)
        if not has_handler(app, SparkError):  # the app's own handler for our errors wins
            app.register_error_handler(SparkError, handle_spark_error)

    def unauthorized_handler(self, handler: UnauthorizedHandler) -> UnauthorizedHandler:
        """Decorator: replace the answer given when a protected view has no signed-in user."""
        self._unauthorized = handler
        return handler

    def state(self, app: Flask | None = None) -> SparkState:
        """The runtime of ``app`` (default: the current app)."""
        if app is None:
            return current_state()
        try:
            state: SparkState = app.extensions["spark.state"]
        except KeyError:
            raise SparkConfigError(
                "flask-spark is not initialised on this app: call SparkAuth(app) or init_app(app)."
            ) from None
        return state

    def job_handle(self) -> str:
        """A handle for a background job acting for the signed-in user of this request.

        Give the job this handle, never the session id (the browser's credential): with
        :meth:`api_for_job` it gives API calls on the user's behalf and nothing else. It ends
        when the session ends, or with :meth:`revoke_job_handle`. Raises
        :class:`~flask_spark.LoginRequired` when nobody is signed in.
        """
        return job_handle()

    def api_for_job(self, handle: str, app: Flask | None = None) -> SparkAPI:
        """A Spark API client for the session of a :meth:`job_handle`, outside a request.

        The handle is checked on every call: once revoked, or once the user signed out, the
        next call raises :class:`~flask_spark.core.errors.SessionExpired`.
        """
        return api_for_job(self.state(app), handle)

    def revoke_job_handle(self, handle: str, app: Flask | None = None) -> bool:
        """End a job handle now; True when it was still valid."""
        return self.state(app).registry.jobs.revoke(handle)

    def sign_out_everywhere(self, sub: str, app: Flask | None = None) -> int:
        """End every session of user ``sub`` (all browsers and devices) and revoke their grants.

        For an admin action or a security response ("sign this user out everywhere"). Returns
        how many sessions were ended; when any were, ``logged_out`` is sent once (reason
        ``"everywhere"``, ``sessions`` the count).
        """
        return end_user_sessions(self.state(app), sub)

    def unauthorized(self) -> Any:
        """The answer to a request that needs a signed-in user and has none."""
        if self._unauthorized is not None:
            return self._unauthorized()
        url = login_url(request.full_path if request.method == "GET" else None)
        if wants_json():
            response = jsonify(
                error="login_required",
                message="Sign in with Flexmls to continue.",
                login_url=url,
            )
            response.status_code = 401
            return response
        return redirect(url)


def apply_cookie_defaults(app: Flask, config: SparkConfig) -> dict[str, Any]:
    """Make the session cookie safe where the app left Flask's default; returns what was set.

    ``Secure`` outside debug (when HTTPS is required), ``HttpOnly``, and ``SameSite=Lax``
    (``Strict`` would drop the cookie on the provider's redirect back). A value the app chose
    itself is left alone; ``flask spark doctor`` reports both.
    """
    wanted = {
        "SESSION_COOKIE_SECURE": True if config.require_https else None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
    }
    applied: dict[str, Any] = {}
    for key, value in wanted.items():
        if value is None or app.config.get(key) != _FLASK_COOKIE_DEFAULTS[key]:
            continue
        if value != app.config.get(key):
            app.config[key] = value
            applied[key] = value
    return applied


def _adopted_session_interface(app: Flask, config: SparkConfig) -> Any:
    """The session interface to keep, or None for flask-spark's own on its Redis.

    An app that set up Flask-Session's Redis sessions gets flask-spark's interface on the same
    client and key prefix (stock Flask-Session would write a session back after a sign-out
    elsewhere deleted it). Any other interface is an error, unless SPARK_CONFIGURE_SESSION is
    False: then it must be a server-side session with ``regenerate()`` and ``store_key()``.
    """
    current: Any = app.session_interface
    install = config.configure_session
    if install is False:
        if not hasattr(current, "regenerate") or not hasattr(current, "store_key"):
            raise SparkConfigError(
                "SPARK_CONFIGURE_SESSION = False needs a server-side session interface with "
                "regenerate() and store_key(sid), like flask_spark.ext.session_interface."
                "SparkSessionInterface: install one, or let flask-spark do it."
            )
        return current
    if isinstance(current, SparkSessionInterface):
        return current  # another SparkAuth on this app already installed it
    if type(current).__module__.startswith("flask_session") and hasattr(current, "client"):
        if type(current).__name__ != "RedisSessionInterface":
            raise SparkConfigError(
                f"Flask-Session's {type(current).__name__} keeps sessions outside Redis: "
                "flask-spark needs Redis sessions. Use SESSION_TYPE = 'redis', or drop Session()."
            )
        log.info("flask-spark replaces Flask-Session's Redis interface with its own.")
        return SparkSessionInterface(
            current.client,
            key_prefix=current.key_prefix,
            idle_timeout=config.session_idle_timeout,
        )
    if install is None and not isinstance(current, SecureCookieSessionInterface):
        raise SparkConfigError(
            f"The app uses its own session interface ({type(current).__name__}). "
            "flask-spark needs its Redis session (idle timeout, logout safety): remove "
            "yours, or set SPARK_CONFIGURE_SESSION = False to keep it at your own risk."
        )
    return None

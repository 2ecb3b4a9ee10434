"""``SparkAuth``: validates the configuration and wires the session (safe cookie settings where
the app kept Flask's defaults), the blueprint, the helpers and the CLI into an app."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, jsonify, redirect, request, session
from flask_session.redis import RedisSessionInterface

from ..core.api import SparkAPI
from ..core.config import SparkConfig, load_config
from ..core.errors import LoginRequired, SparkConfigError, SparkError
from ..core.redaction import install_log_redaction
from .cli import spark_cli
from .context import current_state, login_data, login_url, register_template_helpers
from .responses import handle_spark_error, wants_json
from .signout import end_dropped_signin, end_user_sessions
from .state import JobTokenSource, SparkState
from .views import create_blueprint

log = logging.getLogger("flask_spark")

#: The idle timeout of a session whose app left Flask's PERMANENT_SESSION_LIFETIME (31 days).
IDLE_TIMEOUT = timedelta(hours=2)


class SparkAuth:
    """The flask-spark extension: ``SparkAuth(app)`` or ``SparkAuth()`` + :meth:`init_app`."""

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        self._unauthorized: Callable[[], Any] | None = None
        #: values that are no settings (tests, providers other than Spark): see SparkConfig
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate the configuration and register the session, blueprint, helpers and CLI. An
        app with no ``SPARK_*`` setting at all starts; flask-spark raises the error when used."""
        app.extensions["spark"] = self
        if "spark" not in app.cli.commands:
            app.cli.add_command(spark_cli)
        try:
            config = load_config(
                app.config,
                debug=app.debug,
                testing=app.testing,
                instance_path=app.instance_path,
                options=self.options,
            )
        except SparkConfigError as exc:
            if any(k.startswith("SPARK_") and v is not None for k, v in app.config.items()):
                raise
            log.warning("flask-spark is not configured here: %s", exc.message)
            app.extensions["spark.unconfigured"] = exc
            return
        own_setup = isinstance(app.session_interface, RedisSessionInterface)  # its cookie stays
        state = SparkState(app, config)
        state.cookie_defaults = apply_cookie_defaults(app, config, rename=not own_setup)
        app.session_interface = state.session_interface
        state.session_interface.on_signin_dropped = functools.partial(end_dropped_signin, state)
        _follow_flask_login(app)
        app.extensions["spark.state"] = state
        app.register_blueprint(create_blueprint(), url_prefix=config.url_prefix)
        install_log_redaction(
            r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("spark.")
        )
        csrf = app.extensions.get("csrf")  # Flask-WTF: the provider's POST has no CSRF token
        if csrf is not None:
            csrf.exempt(app.view_functions["spark.backchannel_logout"])
        state.backchannel_csrf_exempt = csrf is not None
        register_template_helpers(app)
        handlers = app.error_handler_spec.get(None, {}).values()
        if not any(SparkError in found for found in handlers):  # the app's own handler wins
            app.register_error_handler(SparkError, handle_spark_error)

    def unauthorized_handler(self, handler: Callable[[], Any]) -> Callable[[], Any]:
        """Decorator: replace the answer given when a protected view has no signed-in user."""
        self._unauthorized = handler
        return handler

    state = staticmethod(current_state)

    def job_handle(self) -> str:
        """A handle for a background job acting for this request's signed-in user (never give
        it the session id, the browser's credential); it ends with the session or when revoked."""
        data = login_data()
        if data is None:
            raise LoginRequired("Sign in with Flexmls before starting a job on your behalf.")
        sid: str = session.sid  # type: ignore[attr-defined]
        return current_state().registry.jobs.issue(sid, int(float(data["expires"]) - time.time()))

    def api_for_job(self, handle: str, app: Flask | None = None) -> SparkAPI:
        """A Spark API client for the session of a :meth:`job_handle`, outside a request; its
        calls raise ``SessionExpired`` once the handle is revoked or the user signed out."""
        state = current_state(app)
        return state.api_with(JobTokenSource(state, handle))

    def revoke_job_handle(self, handle: str, app: Flask | None = None) -> bool:
        """End a job handle now; True when it was still valid."""
        return current_state(app).registry.jobs.revoke(handle)

    def sign_out_everywhere(self, sub: str, app: Flask | None = None) -> int:
        """End every session of user ``sub`` on every device and revoke their grants; returns
        how many ended (if any, ``logged_out`` is sent once: ``reason="everywhere"``)."""
        return end_user_sessions(current_state(app), sub)

    def unauthorized(self) -> Any:
        """The answer to a request that needs a signed-in user and has none."""
        if self._unauthorized is not None:
            return self._unauthorized()
        url = login_url(request.full_path if request.method == "GET" else None)
        if wants_json():
            message = "Sign in with Flexmls to continue."
            return jsonify(error="login_required", message=message, login_url=url), 401
        return redirect(url)


def apply_cookie_defaults(app: Flask, config: SparkConfig, *, rename: bool) -> dict[str, Any]:
    """Make the session safe where the app left Flask's default (returns what was set): ``Secure``
    over HTTPS, ``SameSite=Lax`` (``Strict`` drops it on the provider's redirect), a 2-hour idle
    timeout, with ``rename`` the name ``__Host-session`` (no other host can plant an id in it)."""
    wanted: dict[str, Any] = {
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": IDLE_TIMEOUT,
    }
    if config.require_https:
        wanted["SESSION_COOKIE_SECURE"] = True
    applied = {k: v for k, v in wanted.items() if app.config[k] == Flask.default_config[k]}
    app.config.update(applied)
    if (
        rename
        and app.config["SESSION_COOKIE_SECURE"]
        and app.config["SESSION_COOKIE_NAME"] == Flask.default_config["SESSION_COOKIE_NAME"]
        and not app.config["SESSION_COOKIE_DOMAIN"]
    ):
        applied["SESSION_COOKIE_NAME"] = app.config["SESSION_COOKIE_NAME"] = "__Host-session"
        if (app.config["SESSION_COOKIE_PATH"] or app.config["APPLICATION_ROOT"]) != "/":
            applied["SESSION_COOKIE_PATH"] = app.config["SESSION_COOKIE_PATH"] = "/"
    return applied


def _follow_flask_login(app: Flask) -> None:
    """A new session id whenever the app logs its user in or out with Flask-Login, as Flask's
    cookie session would give (a planted id never becomes the signed-in session)."""
    try:
        from flask_login import user_logged_in, user_logged_out
    except ImportError:
        return
    for signal in (user_logged_in, user_logged_out):
        signal.connect(_new_session_id, app, weak=False)


def _new_session_id(app: Flask, **_: Any) -> None:
    if getattr(session, "from_store", False):  # not already new in this request
        session.lost = not app.session_interface.regenerate(session)  # type: ignore[attr-defined]

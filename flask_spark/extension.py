"""``SparkAuth``: wires the configuration, Redis, the session, the blueprint and the helpers
into a Flask app, and keeps the per-app runtime (:class:`SparkState`)."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, current_app, g, jsonify, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_session.redis import RedisSessionInterface

from . import signals
from .api import ResoAPI, RetryPolicy, SparkAPI, StaticTokens, pooled_session
from .config import SparkConfig, load_config
from .errors import (
    LoginRequired,
    ProviderError,
    SessionExpired,
    SessionStoreUnavailable,
    SparkAPIError,
    SparkConfigError,
    SparkError,
)
from .oidc import OIDCClient
from .redaction import install_log_redaction
from .redis_conn import redis_from_url
from .refresh import TokenManager
from .responses import error_response, wants_json
from .session import REDIS_DOWN, SparkSessionInterface
from .sessions import SessionRegistry
from .tokens import TokenSet, TokenStore, TokenVault
from .transactions import TransactionStore
from .user import AnonymousUser, SparkUser

log = logging.getLogger("flask_spark")

SESSION_KEY = "_spark"
CSRF_KEY = "_spark_csrf"
BINDING_KEY = "_spark_bind"
LOGOUT_STATE_KEY = "_spark_logout_state"

UnauthorizedHandler = Callable[[], Any]


class SparkState:
    """The runtime of one app: its config, Redis, stores, OIDC client and HTTP pool."""

    def __init__(self, app: Flask, config: SparkConfig, extension: SparkAuth) -> None:
        self.app = app
        self.config = config
        self.extension = extension
        self.embedded_redis: Any = None
        self.redis = self._connect()
        self.vault = TokenVault(config.token_keys)
        self.tokens = TokenStore(self.redis, self.vault, config.key_prefix)
        self.transactions = TransactionStore(self.redis, config.key_prefix, config.transaction_ttl)
        self.oidc = OIDCClient(config)
        self.session_interface = self._session_interface()
        self.registry = SessionRegistry(
            self.redis,
            config.key_prefix,
            self.tokens,
            self.session_store_key,
            session_redis=getattr(self.session_interface, "client", None),
        )
        self.manager = TokenManager(
            self.tokens,
            self.oidc,
            skew=config.refresh_skew,
            lock_timeout=config.lock_timeout,
            lock_wait=config.lock_wait,
            on_refresh=self._refreshed,
            on_session_end=self._session_ended,
        )
        self.retry = RetryPolicy(config.retry_max, config.retry_backoff, config.retry_max_time)
        self._http_pid = -1
        self._http: Any = None

    def _connect(self) -> Any:
        cfg = self.config
        if cfg.redis is not None:
            return cfg.redis
        if cfg.redis_url:
            return redis_from_url(cfg.redis_url)
        from .redis_server import RedisServer

        self.embedded_redis = RedisServer(unix_socket=True, die_with_parent=True).start()
        log.warning(
            "SPARK_REDIS_URL is not set: started an embedded redis-server for debug/testing at %s.",
            self.embedded_redis.url,
        )
        return redis_from_url(self.embedded_redis.url)

    def _session_interface(self) -> Any:
        """Install flask-spark's Redis session unless the app insists on its own.

        An app that set up Flask-Session's Redis sessions gets them replaced by the subclass
        (same client and key prefix): stock Flask-Session would write a session back after a
        logout elsewhere deleted it, and keeps sessions for PERMANENT_SESSION_LIFETIME.
        """
        app, cfg = self.app, self.config
        current: Any = app.session_interface
        install = cfg.configure_session
        client, prefix = self.redis, cfg.session_key_prefix
        if install is None:
            if isinstance(current, SparkSessionInterface):
                return current  # another SparkAuth on this app already did it
            if isinstance(current, RedisSessionInterface):
                client, prefix, install = current.client, current.key_prefix, True
                log.info("flask-spark replaces Flask-Session's Redis interface with its own.")
            elif isinstance(current, SecureCookieSessionInterface):
                install = True
            else:
                raise SparkConfigError(
                    f"The app uses its own session interface ({type(current).__name__}). "
                    "flask-spark needs its Redis session (idle timeout, logout safety): remove "
                    "yours, or set SPARK_CONFIGURE_SESSION = False to keep it at your own risk."
                )
        if install:
            ours = SparkSessionInterface(
                app,
                client,
                key_prefix=prefix,
                idle_timeout=cfg.session_idle_timeout,
                short_lived=(frozenset({BINDING_KEY}), cfg.transaction_ttl),
            )
            app.session_interface = ours
            return ours
        if not hasattr(current, "regenerate"):
            raise SparkConfigError(
                "The app's session interface is not a server-side session with regenerate(): "
                "remove it, or set SPARK_CONFIGURE_SESSION = True to let flask-spark install one."
            )
        return current

    def session_store_key(self, sid: str) -> str:
        """The Redis key of Flask-Session's record for ``sid``."""
        getter = getattr(self.session_interface, "_get_store_id", None)
        return str(getter(sid)) if getter else f"{self.config.session_key_prefix}{sid}"

    # -- HTTP pool (one per process, rebuilt after fork) -----------------------------------

    @property
    def http(self) -> Any:
        """The pooled HTTP session of this process for API calls."""
        if self._http_pid != os.getpid():
            self._http = pooled_session()
            self._http_pid = os.getpid()
        return self._http

    # -- API clients -----------------------------------------------------------------------

    def api_for(self, sid: str, *, in_request: bool = False) -> SparkAPI:
        """A Spark API client acting for the session ``sid`` (refresh rules included)."""
        source = SessionTokenSource(self, sid, in_request=in_request)
        common: dict[str, Any] = {
            "user_agent": self.config.user_agent,
            "tokens": source,
            "http": self.http,
            "timeout": self.config.http_timeout,
            "retry": self.retry,
        }
        reso = ResoAPI(base_url=self.config.reso_base_url, **common)
        return SparkAPI(base_url=self.config.api_base_url, reso=reso, **common)

    def api_delete_token(self, tokens: TokenSet) -> None:
        """Delete the access token at the Spark API (``DELETE oauth2/token/<token>``)."""
        client = SparkAPI(
            base_url=self.config.api_base_url,
            user_agent=self.config.user_agent,
            tokens=StaticTokens(tokens.access_token),
            http=self.http,
            timeout=self.config.http_timeout,
            retry=RetryPolicy(max_retries=0),
        )
        client.delete(f"oauth2/token/{quote(tokens.access_token, safe='')}")

    # -- hooks -----------------------------------------------------------------------------

    def _refreshed(self, sid: str, tokens: TokenSet) -> None:
        signals.token_refreshed.send(self.app, sid=sid)

    def _session_ended(self, sid: str, subject: str | None) -> None:
        self.registry.destroy(sid, subject)


class SessionTokenSource:
    """Tokens of one session for an API client; ends the Flask session if the sign-in ended."""

    def __init__(self, state: SparkState, sid: str, *, in_request: bool) -> None:
        self.state = state
        self.sid = sid
        self.in_request = in_request
        self._tokens: TokenSet | None = None

    def _guard(self, fetch: Callable[[], TokenSet]) -> TokenSet:
        try:
            tokens = fetch()
        except SessionExpired:
            if self.in_request:
                session.clear()
            raise
        self._tokens = tokens
        return tokens

    def access_token(self) -> str:
        """A valid access token (refreshed first if it is about to expire).

        Within a request the record is read from Redis once (a token another worker rotated
        meanwhile is caught by the 401 path in :meth:`refresh`). A background client reads it
        on every call, so that it stops as soon as the user signs out anywhere.
        """
        cached = self._tokens
        if (
            self.in_request
            and cached is not None
            and not cached.expires_within(self.state.manager.skew)
        ):
            return cached.access_token
        return self._guard(lambda: self.state.manager.current(self.sid)).access_token

    def refresh(self, rejected: str) -> str:
        """A new token after a 1020 answer to ``rejected``."""
        stale = self._tokens
        if stale is None or stale.access_token != rejected:
            stale = self._guard(lambda: self.state.manager.current(self.sid))
            if stale.access_token != rejected:
                return stale.access_token
        fresh = self._guard(lambda: self.state.manager.refresh(self.sid, stale=stale))
        return fresh.access_token


class SparkAuth:
    """The flask-spark extension: ``SparkAuth(app)`` or ``SparkAuth()`` + :meth:`init_app`."""

    def __init__(self, app: Flask | None = None) -> None:
        self._unauthorized: UnauthorizedHandler | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate the configuration and register the session, blueprint, helpers and CLI."""
        from .cli import spark_cli
        from .templating import register_template_helpers
        from .views import create_blueprint

        config = load_config(app.config, debug=app.debug, testing=app.testing)
        install_log_redaction()
        if config.require_https:
            app.config["SESSION_COOKIE_SECURE"] = True
        app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
        if app.config.get("SESSION_COOKIE_SAMESITE") is None:
            app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
        state = SparkState(app, config, self)
        app.extensions["spark"] = self
        app.extensions["spark.state"] = state
        app.register_blueprint(create_blueprint(), url_prefix=config.url_prefix)
        register_template_helpers(app)
        if "spark" not in app.cli.commands:
            app.cli.add_command(spark_cli)
        app.before_request(_refuse_when_store_down)
        app.register_error_handler(LoginRequired, _handle_login_required)
        app.register_error_handler(SparkError, _handle_spark_error)
        for exc in REDIS_DOWN:
            app.register_error_handler(exc, _handle_store_down)

    def unauthorized_handler(self, handler: UnauthorizedHandler) -> UnauthorizedHandler:
        """Decorator: replace the answer given when a protected view has no signed-in user."""
        self._unauthorized = handler
        return handler

    def state(self, app: Flask | None = None) -> SparkState:
        """The runtime of ``app`` (default: the current app)."""
        app = app or current_app
        try:
            state: SparkState = app.extensions["spark.state"]
        except KeyError:
            raise SparkConfigError(
                "flask-spark is not initialised on this app: call SparkAuth(app) or init_app(app)."
            ) from None
        return state

    def api_for_session(self, sid: str, app: Flask | None = None) -> SparkAPI:
        """A Spark API client acting for session ``sid`` outside a request (background jobs)."""
        return self.state(app).api_for(sid)

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


# -- request-time helpers ------------------------------------------------------------------


def current_state() -> SparkState:
    """The :class:`SparkState` of the current app."""
    ext: SparkAuth = current_app.extensions["spark"]
    return ext.state()


def login_data() -> dict[str, Any] | None:
    """The signed-in session's non-secret data, or None (reads the session only)."""
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    if float(data.get("expires", 0)) <= time.time():
        return None
    return data


def is_logged_in() -> bool:
    """True when the current session is signed in and within its absolute lifetime."""
    return login_data() is not None


def current_user() -> SparkUser | AnonymousUser:
    """The signed-in user of this request (cached on ``g``)."""
    cached = g.get("_spark_user")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    data = login_data()
    user: SparkUser | AnonymousUser = SparkUser(data["claims"]) if data else AnonymousUser()
    g._spark_user = user
    return user


def current_api() -> SparkAPI:
    """The Spark API client of the signed-in user of this request."""
    cached = g.get("_spark_api")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    if not is_logged_in():
        raise LoginRequired("Sign in with Flexmls to use the Spark API.")
    api = current_state().api_for(session.sid, in_request=True)  # type: ignore[attr-defined]
    g._spark_api = api
    return api


def csrf_token() -> str:
    """This session's CSRF token for the sign-out and revoke forms (created on first use)."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return token


def login_url(next: str | None = None) -> str:
    """The URL of the sign-in view, with ``next`` when given."""
    if next:
        next = next.rstrip("?")
    return url_for("spark.login", next=next) if next else url_for("spark.login")


def logout_url() -> str:
    """The URL the sign-out form posts to."""
    return url_for("spark.logout")


# -- app-wide handlers -----------------------------------------------------------------------


def _refuse_when_store_down() -> Response | None:
    state = current_state()
    if current_app.session_interface is not state.session_interface:
        raise SparkConfigError(
            "The app's session interface was replaced after SparkAuth(app) (Session(app) called "
            "later?). Initialise Flask-Session first, or not at all: flask-spark installs it."
        )
    if getattr(session, "store_unavailable", False):
        return error_response(
            503,
            "Session store unavailable",
            "We cannot reach our session store right now. Your sign-in is kept; please try "
            "again in a moment.",
            code="session_store_unavailable",
        )
    return None


def _handle_login_required(exc: LoginRequired) -> Any:
    ext: SparkAuth = current_app.extensions["spark"]
    return ext.unauthorized()


def _handle_store_down(exc: Exception) -> Response:
    log.error("Session store unavailable during a request: %s", type(exc).__name__)
    return _handle_spark_error(
        SessionStoreUnavailable("We cannot reach our session store right now; please retry.")
    )


def _handle_spark_error(exc: SparkError) -> Response:
    status = exc.status if 400 <= exc.status <= 599 else 500
    if (
        isinstance(exc, SparkAPIError | ProviderError)
        and status >= 500
        and status not in (503, 504)
    ):
        status = 502  # the API's or the provider's 5xx: a bad gateway here, not this app's 500
    if status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    titles = {502: "Bad gateway", 503: "Service unavailable", 504: "Gateway timeout"}
    return error_response(
        status,
        titles.get(status, "Request failed"),
        exc.message or "Something went wrong talking to the Spark Platform.",
        code=str(exc.code) if exc.code is not None else type(exc).__name__,
    )

"""The runtime of one app (:class:`SparkState`): its Redis, stores, OpenID client, HTTP pool and
the API clients it hands out, with their token sources (a session's, a background job's)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, session

from ..core.api import ResoAPI, SparkAPI, TokenSource
from ..core.config import SparkConfig
from ..core.errors import SessionExpired, SessionStoreUnavailable
from ..core.http import ProcessLocal, pooled_adapter, pooled_session
from ..core.oidc import OIDCClient
from ..core.redis_client import REDIS_DOWN, embedded_redis, redis_from_url
from ..core.refresh import TokenManager
from ..core.registry import SessionRegistry
from ..core.retry import api_retry
from ..core.tokens import TokenSet, TokenStore, TokenVault
from ..core.transactions import TransactionStore
from . import signals
from .session_interface import SESSION_KEY, drop_spark_keys, session_interface_for

log = logging.getLogger("flask_spark")


class SparkState:
    """The runtime of one app: its config, Redis, stores, OIDC client and HTTP pool."""

    def __init__(self, app: Flask, config: SparkConfig) -> None:
        self.app = app
        self.config = config
        #: the session-cookie settings flask-spark chose because the app had not (for doctor)
        self.cookie_defaults: dict[str, Any] = {}
        #: the session cookie's name when the app chose one that another host can plant
        #: (no ``__Host-`` prefix) while HTTPS is required (for doctor)
        self.plantable_cookie: str | None = None
        #: Flask-Session settings whose meaning flask-spark changes (for doctor)
        self.session_overrides = [
            "SESSION_REFRESH_EACH_REQUEST: an unchanged session is not written again (its read "
            "renews the idle timeout); its cookie is sent when the session is written"
        ]
        #: Flask-WTF's CSRFProtect was there at init_app and now lets the provider's
        #: back-channel logout POST through (for doctor)
        self.backchannel_csrf_exempt = False
        self.redis = self._connect()
        self.session_interface = session_interface_for(app, self.redis)
        self.vault = TokenVault(config.token_keys)
        self.tokens = TokenStore(
            self.redis, self.vault, config.key_prefix, self.session_interface.key_prefix
        )
        if self.session_interface.client is self.redis:  # one round trip, one cluster slot
            self.session_interface.prefetch = self.tokens.queue_load
        self.transactions = TransactionStore(self.redis, config.key_prefix, config.transaction_ttl)
        self.oidc = OIDCClient(config)
        self.registry = SessionRegistry(
            self.redis,
            config.key_prefix,
            self.tokens,
            self.session_interface.store_key,
            session_redis=self.session_interface.client,
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
        self._http = ProcessLocal(self._api_session)

    def _connect(self) -> Any:
        cfg = self.config
        if cfg.redis is not None:
            return cfg.redis
        if cfg.redis_url:
            return redis_from_url(cfg.redis_url)
        client = embedded_redis(self.app.instance_path)
        log.warning(
            "SPARK_REDIS_URL is not set: using an embedded redis-server for debug/testing, "
            "kept in %s.",
            self.app.instance_path,
        )
        return client

    def _api_session(self) -> Any:
        """A pooled session whose adapter retries idempotent calls (urllib3's ``Retry``)."""
        cfg = self.config
        retries = api_retry(cfg.retry_max, cfg.retry_backoff, cfg.retry_max_time)
        hosts = (cfg.api_base_url, cfg.reso_base_url)  # their proxies resolved once
        return pooled_session(pooled_adapter(retries=retries), hosts=hosts)

    @property
    def http(self) -> Any:
        """The pooled HTTP session of this process for API calls."""
        return self._http.get()

    # -- API clients -----------------------------------------------------------------------

    def api_for(self, sid: str, *, in_request: bool = False) -> SparkAPI:
        """A Spark API client acting for the session ``sid`` (refresh rules included)."""
        return self.api_with(SessionTokenSource(self, sid, in_request=in_request))

    def api_for_job(self, handle: str) -> SparkAPI:
        """A Spark API client acting, call by call, for the session of a job ``handle``."""
        return self.api_with(JobTokenSource(self, handle))

    def api_with(self, tokens: TokenSource) -> SparkAPI:
        """A Spark API client (with its RESO client) on this app's pool, using ``tokens``."""
        common: dict[str, Any] = {
            "user_agent": self.config.user_agent,
            "tokens": tokens,
            "http": self.http,
            "timeout": self.config.http_timeout,
        }
        reso = ResoAPI(base_url=self.config.reso_base_url, **common)
        return SparkAPI(base_url=self.config.api_base_url, reso=reso, **common)

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
                drop_spark_keys(session)
            raise
        except REDIS_DOWN as exc:
            log.error("Session store unavailable during an API call: %s", type(exc).__name__)
            raise SessionStoreUnavailable(
                "We cannot reach our session store right now; please retry."
            ) from None
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
        blob = self._prefetched() if cached is None else None
        return self._guard(lambda: self.state.manager.current(self.sid, blob)).access_token

    def _prefetched(self) -> bytes | None:
        """The record read with this request's session, taken once (None: read it from Redis).

        Only while the session is still the one it was read with, and still signed in (a
        sign-out earlier in the request leaves the record to Redis, where it is gone).
        """
        if (
            not self.in_request
            or getattr(session, "sid", None) != self.sid
            or SESSION_KEY not in session
        ):
            return None
        blob: bytes | None = getattr(session, "token_blob", None)
        if blob is not None:
            session.token_blob = None  # type: ignore[attr-defined]
        return blob

    def refresh(self, rejected: str) -> str:
        """A new token after the API refused ``rejected`` (1020 or an invalid token)."""
        stale = self._tokens
        if stale is None or stale.access_token != rejected:
            stale = self._guard(lambda: self.state.manager.current(self.sid))
            if stale.access_token != rejected:
                return stale.access_token
        fresh = self._guard(lambda: self.state.manager.refresh(self.sid, stale=stale))
        return fresh.access_token


class JobTokenSource:
    """The tokens of the session a job handle names, looked up on every call: a revoked handle
    or an ended session (idle timeout included) stops the job with ``SessionExpired``."""

    def __init__(self, state: SparkState, handle: str) -> None:
        self.state = state
        self.handle = handle

    def __repr__(self) -> str:  # the handle is a credential for API calls: not in reprs
        return "JobTokenSource(handle=…)"

    def _session(self) -> SessionTokenSource:
        registry = self.state.registry
        sid = registry.jobs.session_of(self.handle)
        # The idle timeout ends a session by expiring its key, not through a sign-out: the
        # token record outlives it, so the session itself is asked (EXISTS renews no TTL).
        if sid is not None and not registry.session_redis.exists(registry.session_key(sid)):
            registry.jobs.revoke_all(sid)
            sid = None
        if sid is None:
            raise SessionExpired("This job's handle was revoked, or the user's sign-in ended.")
        return SessionTokenSource(self.state, sid, in_request=False)

    def access_token(self) -> str:
        return self._session().access_token()

    def refresh(self, rejected: str) -> str:
        return self._session().refresh(rejected)

"""The runtime of one app (:class:`SparkState`): its Redis, stores, OpenID client, HTTP pool and
the API clients it hands out, with their token sources (a session's, a background job's)."""

from __future__ import annotations

import logging
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
        #: for doctor: the session-cookie settings flask-spark chose because the app had not,
        #: and whether Flask-WTF's CSRFProtect lets the back-channel logout POST through
        self.cookie_defaults: dict[str, Any] = {}
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
        if self.config.redis is not None:
            return self.config.redis
        if self.config.redis_url:
            return redis_from_url(self.config.redis_url)
        return embedded_redis(self.app.instance_path)

    def _api_session(self) -> Any:
        """A pooled session whose adapter retries idempotent calls (urllib3's ``Retry``)."""
        cfg = self.config
        retries = api_retry(cfg.retry_max, cfg.retry_backoff, cfg.retry_max_time)
        hosts = (cfg.api_base_url, cfg.reso_base_url)  # their proxies resolved once
        return pooled_session(pooled_adapter(retries=retries), hosts=hosts)

    def _refreshed(self, sid: str, tokens: TokenSet) -> None:
        signals.token_refreshed.send(self.app, sid=sid)

    def _session_ended(self, sid: str, subject: str | None) -> None:
        self.registry.destroy(sid, subject)

    def api_for(self, sid: str, *, in_request: bool = False) -> SparkAPI:
        """A Spark API client acting for the session ``sid`` (refresh rules included)."""
        return self.api_with(SessionTokenSource(self, sid, in_request=in_request))

    def api_with(self, tokens: TokenSource) -> SparkAPI:
        """A Spark API client (with its RESO client) on this process's pool, using ``tokens``."""
        common: dict[str, Any] = {
            "user_agent": self.config.user_agent,
            "tokens": tokens,
            "http": self._http.get(),
            "timeout": self.config.http_timeout,
        }
        reso = ResoAPI(base_url=self.config.reso_base_url, **common)
        return SparkAPI(base_url=self.config.api_base_url, reso=reso, **common)


class SessionTokenSource:
    """Tokens of one session for an API client; ends the Flask session if the sign-in ended."""

    def __init__(self, state: SparkState, sid: str, *, in_request: bool) -> None:
        self.state = state
        self.sid = sid
        self.in_request = in_request
        self._tokens: TokenSet | None = None

    def _current(self, stale: TokenSet | None = None, blob: bytes | None = None) -> TokenSet:
        """The session's tokens (``stale`` refreshed when given); a Redis outage as a 503."""
        manager = self.state.manager
        try:
            if stale is not None:
                self._tokens = manager.refresh(self.sid, stale=stale)
            else:
                self._tokens = manager.current(self.sid, blob)
        except SessionExpired:
            if self.in_request:
                drop_spark_keys(session)
            raise
        except REDIS_DOWN as exc:
            log.error("Session store unavailable during an API call: %s", type(exc).__name__)
            raise SessionStoreUnavailable(
                "We cannot reach our session store right now; please retry."
            ) from None
        return self._tokens

    def access_token(self) -> str:
        """A valid access token, refreshed if about to expire; read once per request (a rotation
        elsewhere meets :meth:`refresh`), on every call outside one (a sign-out stops a job)."""
        cached = self._tokens
        if self.in_request and cached and not cached.expires_within(self.state.manager.skew):
            return cached.access_token
        return self._current(blob=None if cached else self._prefetched()).access_token

    def _prefetched(self) -> bytes | None:
        """The record read with this request's still signed-in session, taken once."""
        own: Any = session
        if not self.in_request or own.sid != self.sid or SESSION_KEY not in own:
            return None
        blob, own.token_blob = own.token_blob, None
        return blob  # type: ignore[no-any-return]

    def refresh(self, rejected: str) -> str:
        """A new token after the API refused ``rejected`` (1020 or an invalid token)."""
        stale = self._tokens
        if stale is None or stale.access_token != rejected:
            stale = self._current()
            if stale.access_token != rejected:
                return stale.access_token
        return self._current(stale=stale).access_token


class JobTokenSource(SessionTokenSource):
    """The tokens of the session a job handle names, looked up on every call: a revoked handle
    or an ended session (idle timeout included) stops the job with ``SessionExpired``."""

    def __init__(self, state: SparkState, handle: str) -> None:
        super().__init__(state, "", in_request=False)
        self.handle = handle

    def __repr__(self) -> str:  # the handle is a credential for API calls: not in reprs
        return "JobTokenSource(handle=…)"

    def _current(self, stale: TokenSet | None = None, blob: bytes | None = None) -> TokenSet:
        registry = self.state.registry
        sid = registry.jobs.session_of(self.handle)
        # The idle timeout ends a session by expiring its key, not through a sign-out: the
        # token record outlives it, so the session itself is asked (EXISTS renews no TTL).
        if sid is not None and not registry.session_redis.exists(registry.session_key(sid)):
            registry.jobs.revoke_all(sid)
            sid = None
        if sid is None:
            raise SessionExpired("This job's handle was revoked, or the user's sign-in ended.")
        self.sid = sid
        return super()._current(stale, blob)
